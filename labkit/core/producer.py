"""The producer: a reproducible temperature dataset written into date partitions.

Readings are a seeded random walk (start 50 °F, ±1 per reading, kept within
0..100).  Each reading goes to the partition of its UTC day, ``temps:YYYYMMDD``,
under the entry ID ``<epoch ms>-0``.

**Expiry.**  Every partition gets one, set in the same transaction as its first
entry, so no partition ever exists without one.  A partition expires
``retention`` after its UTC day ends.  A dataset dated in the past is treated as
if its first day ended *now*: the oldest partition still expires first, each
later one a day after it, and nothing is deleted on the day it was written
(an absolute "reading time + 2 days" rule would delete a 2025 dataset the moment
it is written).  For live, today's data the shift is zero and the rule is the
course's.

**Never re-created.**  Once a partition exists, every write to it is
``XADD … NOMKSTREAM``: if the partition vanished (deleted, evicted, or expired)
the server answers nil instead of re-creating it without its TTL and without
its first readings, and the producer stops, naming it (it stays marked
``writing``).  One found gone after a reconnect (a failover to a replica
that had not received it) is rewritten from its first reading, and the log says so.  Expiry is computed from the server's clock (``TIME``), never
the client's, so a client clock days behind cannot set an expiry in the past.

**Completeness.**  Before rewriting a partition the producer marks it
``writing`` in the partition manifest (:mod:`labkit.core.manifest`); once the
server has acknowledged every reading of it, ``complete``.  The aggregating
consumer closes a partition's final hour only then.  While it writes, the
producer holds the namespace's producer lease (:mod:`labkit.core.lease`), naming the
partitions it covers, so two producers never write at once and a consumer can
tell "still being written" from "abandoned by a producer that died".

Writing uses Redis's mass-insertion technique: commands are encoded once and
streamed down one connection, the next batch sent before the previous batch's
replies are read, so the client never waits for a round trip, not even from
one partition to the next.  The replies are known in advance (an ``XADD``
with an explicit ID answers that ID), so they are compared as bytes, not parsed.
"""

from __future__ import annotations

import bisect
import datetime as dt
import math
import time
from collections import deque
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import redis

from ..errors import LabkitError
from ..log import LogLine, Sink, null_sink
from ..servers import connection
from . import eviction, keyspace, manifest
from .keys import Keys
from .lease import Holder, Lease
from .partition import (
    DAY_MS,
    DEFAULT_RETENTION_DAYS,
    day_of,
    day_start_ms,
    id_ms,
    partition_name,
    partitions_between,
)

DEFAULT_START = "2025-01-01"
WALK_START, WALK_MIN, WALK_MAX = 50, 0, 100
BATCH = 20_000
REPLICA_WAIT_MS = 2000  # how long a partition's replicas get to confirm it, on a cluster


def parse_start(text: str) -> int:
    """``2025-01-01`` or ``2025-01-01T06:30[:00]`` (UTC) → epoch ms."""
    raw = (text or "").strip()
    try:
        when = dt.datetime.fromisoformat(raw)
    except ValueError:
        raise LabkitError(f"start {text!r} is not a date",
                          "use YYYY-MM-DD or YYYY-MM-DDTHH:MM[:SS], in UTC, e.g. 2025-01-01", "start") from None
    if when.tzinfo is not None and when.utcoffset() != dt.timedelta(0):
        raise LabkitError(f"start {text!r} is not in UTC", "drop the offset: labkit dates are UTC", "start")
    when = when.replace(tzinfo=dt.timezone.utc)
    if not dt.datetime(1971, 1, 1, tzinfo=dt.timezone.utc) <= when < dt.datetime(2200, 1, 1, tzinfo=dt.timezone.utc):
        raise LabkitError(f"start {text!r} is out of range", "use a date between 1971 and 2199", "start")
    return int(when.timestamp() * 1000)


@dataclass(frozen=True)
class Dataset:
    """What to produce: ``days`` of readings every ``interval_ms`` from ``start_ms``."""

    start_ms: int
    days: float = 10
    interval_ms: int = 1000
    seed: int = 0

    def __post_init__(self):
        if not (isinstance(self.days, (int, float)) and math.isfinite(self.days) and 0 < self.days <= 3660):
            raise LabkitError(f"days {self.days} is out of range", "use a number of days above 0, at most 3660", "days")
        if not (isinstance(self.interval_ms, int) and 1 <= self.interval_ms <= DAY_MS):
            raise LabkitError(f"interval_ms {self.interval_ms} is out of range",
                              "use whole milliseconds from 1 to 86400000, e.g. 1000", "interval_ms")
        if self.count > 100_000_000:
            raise LabkitError(f"{self.count:,} readings is more than labkit will write",
                              "use fewer days or a longer interval")
        if not 0 <= self.seed < 2**63:
            raise LabkitError(f"seed {self.seed} is out of range", "use a whole number from 0 to 2**63-1", "seed")

    @property
    def end_ms(self) -> int:
        """Exclusive end: every reading is earlier."""
        return self.start_ms + round(self.days * DAY_MS)

    @property
    def count(self) -> int:
        return max(0, -(-(self.end_ms - self.start_ms) // self.interval_ms))

    def partitions(self, keys: Keys = Keys()) -> list[str]:
        return partitions_between(self.start_ms, self.end_ms, keys.partition_prefix)

    def slices(self):
        """``(partition_day, first_index, stop_index)`` for each partition, oldest first."""
        i, n = 0, self.count
        while i < n:
            day = day_of(self.start_ms + i * self.interval_ms)
            day_end = day_start_ms(day) + DAY_MS
            stop = min(n, -(-(day_end - self.start_ms) // self.interval_ms))
            yield day, i, stop
            i = stop


class Walk:
    """The seeded, bounded random walk; call it for the next ``n`` readings."""

    def __init__(self, seed: int):
        self.rng = np.random.default_rng(seed)
        self.value = WALK_START

    def __call__(self, n: int) -> list[int]:
        steps = (self.rng.integers(0, 2, n, dtype=np.int8) * 2 - 1).tolist()
        out = [0] * n
        v, lo, hi = self.value, WALK_MIN, WALK_MAX
        for i, s in enumerate(steps):
            v += s
            if v < lo:
                v = lo
            elif v > hi:
                v = hi
            out[i] = v
        self.value = v
        return out


def expire_at_ms(day: dt.date, first_day: dt.date, now_ms: int, retention_ms: int) -> int:
    """When the partition of ``day`` expires (see the module docstring)."""
    day_end = day_start_ms(day) + DAY_MS
    shift = max(0, now_ms - (day_start_ms(first_day) + DAY_MS))
    return day_end + shift + retention_ms


def encode_command(*args: bytes) -> bytes:
    """One command in the Redis protocol (RESP)."""
    return b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args)


class _Refused(redis.ResponseError):
    """The server answered a write of ``job`` with an error (or a reply other than the expected one)."""

    def __init__(self, message: str, job: "_Job | None"):
        super().__init__(message)
        self.job = job


class _Vanished(_Refused):
    """A write of ``job`` found its partition gone: ``XADD … NOMKSTREAM`` answered nil, or ``PEXPIREAT`` 0."""


class _Pipe:
    """Streams pre-encoded commands down one connection, checking replies one send behind.

    The reply to ``XADD key <ms>-0 ...`` is that ID, so the replies to a whole
    send are known before they arrive: :meth:`check` compares the bytes
    received with the expected bytes instead of parsing thousands of replies
    one by one, and parses them (hiredis) only to say what went wrong.  Each
    send names its partition's job, and whether it is that job's last, so the
    writer learns when every reply of a partition is in.
    """

    def __init__(self, r: redis.Redis):
        self.r = r
        self.conn = connection.pooled_connection(r)
        self.conn.connect()                     # a no-op when connected; the socket is read directly
        self.sock = self.conn._sock
        self.owed: deque[tuple[bytes, int, _Job, bool]] = deque()  # per unchecked send: expect, replies, job, last
        self.rest = b""                         # received beyond the replies checked so far

    def send(self, payload: bytes, expect: bytes, replies: int, job: "_Job", last: bool) -> None:
        """Send ``payload``, whose ``replies`` replies will be ``expect`` when all goes well."""
        self.conn.send_packed_command([payload], check_health=False)
        self.owed.append((expect, replies, job, last))

    def check(self, keep: int = 0) -> list["_Job"]:
        """Check the earliest sends' replies until ``keep`` are unchecked; the jobs whose last send was checked."""
        done = []
        while len(self.owed) > keep:
            expect, replies, job, last = self.owed[0]
            self._expect(expect, replies, job)
            self.owed.popleft()
            job.created = True      # its first send, which creates the partition, is in
            if last:
                done.append(job)
        return done

    def _recv(self) -> bytes:
        chunk = self.sock.recv(1 << 20)
        if not chunk:
            raise redis.ConnectionError("the server closed the connection")
        return chunk

    def _expect(self, expect: bytes, replies: int, job: "_Job") -> None:
        got, self.rest = self.rest, b""
        pos, size = 0, len(expect)
        while pos < size:
            chunk = got or self._recv()
            got = b""
            take = chunk[:size - pos]
            if expect[pos:pos + len(take)] != take:
                self._fail(expect[:pos] + chunk, replies, job)
            pos += len(take)
            if pos == size:
                self.rest = chunk[len(take):]

    def _fail(self, received: bytes, replies: int, job: "_Job") -> None:
        """Parse the replies that differ from the expected ones and raise the server's error."""
        import hiredis
        reader = hiredis.Reader()
        reader.feed(received)
        for _ in range(replies):
            while (reply := reader.gets()) is False:
                reader.feed(self._recv())
            for item in reply if isinstance(reply, list) else [reply]:
                if isinstance(item, Exception):
                    raise _Refused(str(item), job)
                if item is None or item == 0:
                    raise _Vanished("the partition vanished", job)
        raise _Refused(f"unexpected reply {received[:80]!r}", job)

    def close(self, ok: bool) -> None:
        if not ok or self.owed or self.rest:
            self.conn.disconnect()  # replies left unread: never reuse this connection
        self.r.connection_pool.release(self.conn)


def encode_xadds(key: bytes, ms: Sequence[int], temps: Sequence[int]) -> tuple[bytes, bytes]:
    """``XADD key NOMKSTREAM <ms>-0 temp_f <t>`` for each reading, as one RESP payload; and the replies
    the server sends when all goes well: each entry's ID (nil instead if the partition vanished)."""
    ids = list(map(b"%d-0".__mod__, ms))
    head = b"*6\r\n$4\r\nXADD\r\n$%d\r\n%s\r\n$10\r\nNOMKSTREAM\r\n" % (len(key), key)
    if len(ids[0]) == len(ids[-1]):  # the usual case: one ID width for the whole batch (IDs ascend)
        length = b"$%d\r\n" % len(ids[0])
        parts = [head + length] * (3 * len(ids))
        replies = length + (b"\r\n" + length).join(ids) + b"\r\n"
    else:
        parts = [b""] * (3 * len(ids))
        parts[0::3] = [b"%s$%d\r\n" % (head, len(i)) for i in ids]
        replies = b"".join([b"$%d\r\n%s\r\n" % (len(i), i) for i in ids])
    parts[1::3] = ids
    parts[2::3] = map(_TAILS.__getitem__, temps)
    return b"".join(parts), replies


#: The encoded end of an XADD for each possible reading (pre-encoded once: the hot loop only joins).
_TAILS = {v: b"\r\n$6\r\ntemp_f\r\n$%d\r\n%d\r\n" % (len(str(v)), v) for v in range(WALK_MIN, WALK_MAX + 1)}


def _payloads(key: bytes, ms: Sequence[int], temps: Sequence[int], expire_ms: int, start: int, size: int):
    """What writing readings ``start:`` of one partition sends, ``size`` readings first, then up to
    :data:`BATCH` at a time: ``(payload, expected replies, replies, readings written after it)``."""
    expire = b"%d" % expire_ms
    if start == 0:
        # The first entry and the expiry in one transaction: never a partition without a TTL.  Its
        # replies are known too, so it travels with the first batch.
        first = b"%d-0" % ms[0]
        head = (encode_command(b"MULTI") + encode_command(b"XADD", key, first, b"temp_f", b"%d" % temps[0])
                + encode_command(b"PEXPIREAT", key, expire) + encode_command(b"EXEC"))
        head_replies = b"+OK\r\n+QUEUED\r\n+QUEUED\r\n*2\r\n$%d\r\n%s\r\n:1\r\n" % (len(first), first)
        e = min(size, len(ms))
        payload, expect = encode_xadds(key, ms[1:e], temps[1:e]) if e > 1 else (b"", b"")
        yield head + payload, head_replies + expect, 4 + e - 1, e
    else:
        # Resuming: the partition exists (its last entry was just read), so PEXPIREAT answers 1.
        e = min(start + size, len(ms))
        payload, expect = encode_xadds(key, ms[start:e], temps[start:e]) if e > start else (b"", b"")
        yield encode_command(b"PEXPIREAT", key, expire) + payload, b":1\r\n" + expect, 1 + e - start, e
    while e < len(ms):
        b, size = e, min(4 * size, BATCH)
        e = min(b + size, len(ms))
        yield (*encode_xadds(key, ms[b:e], temps[b:e]), e - b, e)


@dataclass(eq=False)
class _Job:
    """One partition to write; ``sent`` readings of it are on their way."""

    key: bytes
    ms: Sequence[int]
    temps: list
    expire_ms: int
    sent: int = 0
    steps: object = None
    created: bool = False   # the server acknowledged the transaction that created the partition


class _Writer:
    """Writes partitions through one :class:`_Pipe` per master, each partition down its owner's pipe.

    A pipe always has one send in flight while the next is encoded, also from
    one partition to the next: a partition whose last batch is sent makes way
    for the next one at once, and is reported done once its last reply is in.
    The next partition's walk is computed while the server works through a
    full batch.  On a cluster, one partition per master is being sent and
    batches go round-robin, so each master works while the others' replies
    travel.  A lost connection, or a redirection (a failover moved a slot),
    closes every pipe; the writer waits for the server, rereads the layout and
    resumes each unfinished partition after the last entry it holds (IDs are
    explicit, so nothing is written twice).
    """

    def __init__(self, r, sink: Sink, reconnect_s: float, on_reconnect: Callable[[list, list], None] | None = None):
        self.r, self.sink, self.reconnect_s = r, sink, reconnect_s
        self.on_reconnect = on_reconnect    # (jobs, their last entries): raises if the server lost data meanwhile
        self.cluster = connection.is_cluster(r)
        self.pipes: dict[str, _Pipe] = {}
        self.active: dict[str, _Job] = {}   # by owner: the partition each master is being sent
        self.unfinished: list[_Job] = []    # started, not every reply in yet (oldest first)

    def _owner(self, key: bytes) -> str:
        return self.r.get_node_from_key(key).name if self.cluster else ""

    def _pipe(self, owner: str, key: bytes) -> _Pipe:
        if owner not in self.pipes:
            self.pipes[owner] = _Pipe(connection.node_client(self.r, key))
        return self.pipes[owner]

    def close(self, ok: bool) -> None:
        for pipe in self.pipes.values():
            pipe.close(ok)
        self.pipes.clear()

    def run(self, jobs, report: Callable[[], None]):
        """Write every job (in order, jobs are made lazily); yields each once the server acknowledged all of it."""
        pending = iter(jobs)
        ready: list[_Job] = []
        active, unfinished = self.active, self.unfinished
        width = len(self.r.get_primaries()) if self.cluster else 1
        exhausted = False

        def make_one() -> bool:
            nonlocal exhausted
            if exhausted or len(ready) + len(active) >= 2 * width:
                return False
            job = next(pending, None)
            if job is None:
                exhausted = True
                return False
            ready.append(job)
            return True

        while True:
            while True:     # give each free master its next partition, making partitions as needed
                for job in list(ready):
                    owner = self._owner(job.key)
                    if owner not in active:
                        ready.remove(job)
                        active[owner] = job
                        if job not in unfinished:
                            unfinished.append(job)
                        if job.steps is None:
                            self.sink(LogLine("", f"Populating stream partition {job.key.decode()}."))
                            pipe = self.pipes.get(owner)
                            size = BATCH if pipe and pipe.owed else BATCH // 16   # an idle server starts at once
                            job.steps = _payloads(job.key, job.ms, job.temps, job.expire_ms, 0, size)
                if len(active) == width or not make_one():
                    break
            try:
                for owner, pipe in list(self.pipes.items()):
                    if owner not in active and pipe.owed:     # nothing more to send there: collect the replies
                        for done in pipe.check():
                            unfinished.remove(done)
                            yield done
                if not active:
                    if exhausted and not ready:
                        return
                    continue
                for owner, job in list(active.items()):
                    pipe = self._pipe(owner, job.key)
                    payload, expect, replies, job.sent = next(job.steps)
                    last = job.sent == len(job.ms)
                    pipe.send(payload, expect, replies, job, last)
                    if last:
                        del active[owner]
                    report()
                    if replies >= BATCH // 2:
                        make_one()      # the next partition's walk, while the server works through this batch
                    for done in pipe.check(keep=1):
                        unfinished.remove(done)
                        yield done
            except (redis.ConnectionError, redis.TimeoutError, ConnectionError, TimeoutError) as exc:
                ready[:0] = self._recover(exc)
            except redis.ResponseError as exc:
                if not connection.relayout(exc):
                    self.close(False)
                    failed = exc.job if isinstance(exc, _Refused) else unfinished[0]
                    if isinstance(exc, _Vanished):
                        raise vanished(self.r, failed.key.decode()) from None
                    raise _refused(exc, failed.key.decode()) from None
                ready[:0] = self._recover(exc)

    def _recover(self, exc: Exception) -> list[_Job]:
        """Close every pipe, wait for the server, and set each unfinished job to resume after its partition's
        last entry; returns them, oldest first."""
        self.close(False)
        self.active.clear()
        jobs = list(self.unfinished)
        deadline = time.monotonic() + self.reconnect_s
        while True:
            wait_for_server(self.r, self.sink, "produce", exc, max(0.0, deadline - time.monotonic()))
            try:
                tops = [self.r.xrevrange(job.key, count=1) for job in jobs]
                break
            except (redis.ConnectionError, redis.TimeoutError, redis.exceptions.ClusterDownError) as again:
                exc = again   # a failover is still under way
                if time.monotonic() > deadline:
                    raise
        if self.on_reconnect:
            self.on_reconnect(jobs, tops)
        for job, last in zip(jobs, tops):
            start = bisect.bisect_right(job.ms, id_ms(last[0][0])) if last else 0
            job.steps = _payloads(job.key, job.ms, job.temps, job.expire_ms, start, BATCH // 16)
            job.sent = start
            self.sink(LogLine("produce", f"resuming {job.key.decode()} at reading {start:,} of {len(job.ms):,}"))
        return jobs


def wait_for_server(r: redis.Redis, sink: Sink, source: str, exc: Exception, seconds: float) -> None:
    """Wait for the server to answer again (see :func:`labkit.servers.connection.reconnect`); :class:`LabkitError`
    after ``seconds``."""
    if not connection.reconnect(r, lambda text: sink(LogLine(source, text)), exc, seconds):
        raise LabkitError(f"Redis did not come back within {seconds:g} s",
                          "start the server again, then rerun the same command")


def acquire_producer_lease(r: redis.Redis, keys: Keys, first: str | None, last: str | None) -> Lease:
    """The namespace's producer lease, or a one-line error naming the producer that holds it."""
    return Lease(r, keys.producer_lease, Holder.here("producer", "produce", first=first, last=last)).acquire(
        "wait for it to finish (or stop it), or set LABKIT_NAMESPACE to write elsewhere")


def produce(r: redis.Redis, data: Dataset, keys: Keys = Keys(), sink: Sink = null_sink,
            retention_days: float = DEFAULT_RETENTION_DAYS, progress: Callable[[int], None] | None = None,
            now_ms: int | None = None, reconnect_s: float = connection.RECONNECT_S,
            replica_wait_ms: int = REPLICA_WAIT_MS) -> dict:
    """Delete the partitions ``data`` covers, then write it.  Returns counts and timings.

    ``now_ms`` (for tests) stands in for the server's clock, which sets the expiries.
    A partition that vanishes while it is written, or a server that comes back
    without labkit's keys, stops it with a :class:`LabkitError` naming them.

    If the connection drops, it waits for the server (up to ``reconnect_s``)
    and resumes after the last entry the partition holds: IDs are explicit,
    so nothing is written twice.  On a cluster a partition is marked complete
    once its master's replicas confirm it (up to ``replica_wait_ms``; one that
    does not is named in the log).
    """
    if not (math.isfinite(retention_days) and 1 <= retention_days <= 3650):
        raise LabkitError(f"retention_days {retention_days} is out of range",
                          "use at least 1 day, so nothing is deleted on the day it is written", "retention_days")
    retention_ms = round(retention_days * DAY_MS)
    eviction.check(r, sink, "produce")
    now_ms = server_ms(r) if now_ms is None else now_ms
    names = data.partitions(keys)
    lease = acquire_producer_lease(r, keys, names[0] if names else None, names[-1] if names else None)
    try:
        return _produce(r, data, keys, sink, retention_ms, progress, now_ms, reconnect_s, names, lease,
                        replica_wait_ms)
    finally:
        lease.release()


def _produce(r, data, keys, sink, retention_ms, progress, now_ms, reconnect_s, names, lease,
             replica_wait_ms) -> dict:
    t0 = time.perf_counter()
    run = lease.token
    sink(LogLine("", "Deleting old streams:"))
    for name in names:
        sink(LogLine("", name))
    if names:
        manifest.mark_writing(r, keys, names, run)   # before the delete: never "complete" but empty
        keyspace.delete_keys(r, names)

    walk = Walk(data.seed)
    first_day = day_of(data.start_ms)

    def jobs():
        for day, lo, hi in data.slices():   # made in order: the walk continues from one day to the next
            ms = range(data.start_ms + lo * data.interval_ms, data.start_ms + hi * data.interval_ms, data.interval_ms)
            yield _Job(partition_name(day, keys.partition_prefix).encode(), ms, walk(hi - lo),
                       expire_at_ms(day, first_day, now_ms, retention_ms))

    written: list[str] = []

    def after_reconnect(jobs: list[_Job], tops: list) -> None:
        if not still_ours(r, lease):
            raise _server_lost(r, keys, names, written, writer.unfinished, lease)
        for job, top in zip(jobs, tops):
            if job.created and not top:     # e.g. a failover to a replica that had not received it yet
                sink(LogLine("produce", f"{job.key.decode()} is gone after the reconnect (a failover that lost "
                                        "its writes, or it was deleted); rewriting it from its first reading"))

    writer = _Writer(r, sink, reconnect_s, after_reconnect)
    done = 0

    def report() -> None:
        if lease.due() and not lease.renew():
            raise _server_lost(r, keys, names, written, writer.unfinished, lease)
        if progress:
            progress(done + sum(j.sent for j in writer.unfinished))

    ok = False
    try:
        for job in writer.run(jobs(), report):
            # Every reading of this partition is acknowledged (and, on a cluster, replicated, so a
            # failover cannot shorten a partition marked complete): only now is it complete.
            _confirm_replicas(r, sink, job, replica_wait_ms)
            manifest.mark_complete(r, keys, job.key.decode(), run, len(job.ms), job.ms[-1], job.ms[0])
            written.append(job.key.decode())
            done += len(job.ms)
        ok = True
    finally:
        writer.close(ok)
    gone = _missing(r, written)
    if gone:        # written and acknowledged, and gone since: say so rather than "Wrote …"
        raise _server_lost(r, keys, names, written, [], lease) if not still_ours(r, lease) else \
            vanished(r, gone[0], after=True)
    seconds = time.perf_counter() - t0
    return {"readings": done, "partitions": len(names), "seconds": seconds,
            "rate": done / seconds if seconds else float("inf")}


def _confirm_replicas(r, sink: Sink, job: _Job, timeout_ms: int) -> None:
    try:
        acked, wanted = connection.confirm_replicas(r, job.key.decode(), job.expire_ms, timeout_ms)
    except redis.RedisError as exc:
        acked, wanted = 0, -1
        why = (str(exc).splitlines() or [type(exc).__name__])[0]
    if acked < wanted or wanted < 0:
        told = (f"could not ask its replicas ({why})" if wanted < 0 else
                f"{acked} of {wanted} replica(s) confirmed it within {timeout_ms / 1000:g} s")
        sink(LogLine("produce", f"{job.key.decode()}: {told}; marked complete anyway: a failover before its "
                                "replicas catch up would lose its newest readings (the consumer would name them)"))


def server_ms(r: redis.Redis) -> int:
    """The server's clock (``TIME``), in ms: expiries are computed from it, never from the client's."""
    secs, micros = r.time()
    return int(secs) * 1000 + int(micros) // 1000


def _missing(r: redis.Redis, names: list[str]) -> list[str]:
    if not names:
        return []
    p = r.pipeline(transaction=False)
    for n in names:
        p.exists(n)
    return [n for n, e in zip(names, p.execute()) if not e]


def still_ours(r: redis.Redis, lease: Lease) -> bool:
    """Whether ``lease`` is in Redis and holds this holder's token."""
    held = Holder.decode(r.get(lease.key))
    return held is not None and held.token == lease.token


def _server_lost(r, keys: Keys, names: list[str], written: list[str], unfinished: list, lease: Lease) -> LabkitError:
    """The producer lease is no longer ours: say the real cause."""
    writing = ", ".join(j.key.decode() for j in unfinished) or "its last partition"
    held = Holder.decode(r.get(lease.key))
    if held is not None:
        return LabkitError(f"lost {keys.producer_lease} to {held.describe()} while writing {writing} "
                           "(was this process suspended past its lease?)",
                           "run the same produce command again once the other producer is done; it rewrites "
                           "these partitions")
    gone = _missing(r, written)
    left = len(names) - len(_missing(r, names))
    if gone or not r.exists(keys.manifest):
        what = (f"{len(gone)} of the {len(written)} partitions already written are gone ({', '.join(gone[:5])}"
                f"{' …' if len(gone) > 5 else ''})" if gone else f"{keys.manifest} is gone")
        return LabkitError(f"Redis lost labkit's keys while produce was writing {writing}: {what}, "
                           f"{left} of {len(names)} partitions left (the server restarted without persistence, "
                           "or the keys were deleted)",
                           "make the server keep its data (appendonly yes), then run the same produce command again")
    return LabkitError(f"lost {keys.producer_lease} while writing {writing}: it expired (was this process "
                       "suspended past its lease?)", "run the same produce command again; it rewrites these partitions")


def vanished(r: redis.Redis, partition: str, after: bool = False) -> LabkitError:
    """``partition`` is gone although this producer made it: say so, with the likely cause."""
    policy = eviction.policy(r)
    cause = (f"evicted: maxmemory-policy is {policy}" if eviction.evicting(policy) else
             "deleted by someone, or expired")
    when = "after produce wrote it" if after else "while produce was writing it"
    return LabkitError(f"{partition} vanished {when} ({cause}); it was not re-created, and is "
                       f"{'gone' if after else 'left incomplete (marked writing), so no consumer closes it'}",
                       "run the same produce command again"
                       + ("" if policy == "noeviction" else "; make sure maxmemory-policy is noeviction"))


def _refused(exc: redis.ResponseError, partition: str) -> LabkitError:
    """The server refused a write: say which partition is now half written and what to do."""
    msg = str(exc).splitlines()[0]
    if msg.startswith("OOM"):
        return LabkitError(f"Redis is out of memory (maxmemory reached) while writing {partition}, which is "
                           "left half written and marked incomplete",
                           "free memory (delete old partitions or raise maxmemory), then produce again; "
                           "see docs/troubleshooting.md, the row 'out of memory'")
    return LabkitError(f"Redis refused a write to {partition} ({msg}); it is left half written and marked "
                       "incomplete", "fix the cause above, then produce again")
