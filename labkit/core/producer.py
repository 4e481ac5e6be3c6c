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

**Completeness.**  Before rewriting a partition the producer marks it
``writing`` in the partition manifest (:mod:`labkit.manifest`); once the
server has acknowledged every reading of it, ``complete``.  The aggregating
consumer closes a partition's final hour only then.  While it writes, the
producer holds the namespace's producer lease (:mod:`labkit.lease`), naming the
partitions it covers, so two producers never write at once and a consumer can
tell "still being written" from "abandoned by a producer that died".

Writing uses Redis's mass-insertion technique: commands are encoded once and
streamed down one connection, the next batch sent before the previous batch's
replies are read, so the client never waits for a round trip.
"""

from __future__ import annotations

import bisect
import datetime as dt
import math
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import redis

from ..errors import LabkitError
from ..log import LogLine, Sink, null_sink
from ..servers import connection
from . import keyspace, manifest
from .keys import Keys
from .lease import Holder, Lease
from .partition import (
    DAY_MS,
    day_of,
    day_start_ms,
    id_ms,
    partition_name,
    partitions_between,
)

DEFAULT_START = "2025-01-01"
DEFAULT_RETENTION_DAYS = 2.0
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


def _cmd(*args: bytes) -> bytes:
    """One command in the Redis protocol (RESP)."""
    return b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args)


class _Pipe:
    """Streams pre-encoded commands down one connection, reading replies one batch behind.

    Replies are parsed in bulk with hiredis straight from the socket when it
    is available (the common case), else one by one through redis-py.
    """

    def __init__(self, r: redis.Redis):
        self.r = r
        self.conn = connection.pooled_connection(r)
        self.unread = 0
        self.sock = getattr(self.conn, "_sock", None)
        try:
            import hiredis
            self.reader = hiredis.Reader() if self.sock is not None else None
        except ImportError:
            self.reader = None

    def send(self, payload: bytes, replies: int) -> None:
        self.conn.send_packed_command([payload], check_health=False)
        self.drain()
        self.unread = replies

    def drain(self) -> None:
        n, self.unread = self.unread, 0
        if self.reader is None:
            for _ in range(n):
                self._check(self.conn.read_response())
            return
        gets, check = self.reader.gets, self._check
        while n:
            reply = gets()
            if reply is False:
                chunk = self.sock.recv(1 << 20)
                if not chunk:
                    raise redis.ConnectionError("the server closed the connection")
                self.reader.feed(chunk)
                continue
            if reply.__class__ is not bytes:  # XADD answers an ID; anything else is checked
                check(reply)
            n -= 1

    @staticmethod
    def _check(reply) -> None:
        for item in reply if isinstance(reply, list) else [reply]:
            if isinstance(item, Exception):
                raise redis.ResponseError(str(item))

    def close(self, ok: bool) -> None:
        if not ok:
            self.conn.disconnect()  # replies left unread: never reuse this connection
        self.r.connection_pool.release(self.conn)


def _encode_xadds(key: bytes, ms: list[int], temps: list[int]) -> bytes:
    """``XADD key <ms>-0 temp_f <t>`` for each reading, as one RESP payload."""
    head = b"*5\r\n$4\r\nXADD\r\n$%d\r\n%s\r\n" % (len(key), key)
    tails = _TAILS
    width = len(str(ms[0]))
    if width == len(str(ms[-1])):  # the usual case: one ID width for the whole batch
        head += b"$%d\r\n" % (width + 2)
        return b"".join([b"%s%d%s" % (head, m, tails[t]) for m, t in zip(ms, temps)])
    return b"".join([b"%s$%d\r\n%d%s" % (head, len(str(m)) + 2, m, tails[t]) for m, t in zip(ms, temps)])


#: The encoded end of an XADD for each possible reading (pre-encoded once: the hot loop only formats IDs).
_TAILS = {v: b"-0\r\n$6\r\ntemp_f\r\n$%d\r\n%d\r\n" % (len(str(v)), v) for v in range(WALK_MIN, WALK_MAX + 1)}


def _payloads(key: bytes, ms: list[int], temps: list[int], expire_ms: int, start: int):
    """What writing readings ``start:`` of one partition sends: ``(payload, replies, readings written after it)``."""
    expire = b"%d" % expire_ms
    if start == 0:
        # The first entry and the expiry in one transaction: never a partition without a TTL.
        yield (_cmd(b"MULTI") + _cmd(b"XADD", key, b"%d-0" % ms[0], b"temp_f", b"%d" % temps[0])
               + _cmd(b"PEXPIREAT", key, expire) + _cmd(b"EXEC"), 4, 1)
        start = 1
    else:
        yield _cmd(b"PEXPIREAT", key, expire), 1, start
    for b in range(start, len(ms), BATCH):
        e = min(b + BATCH, len(ms))
        yield _encode_xadds(key, ms[b:e], temps[b:e]), e - b, e


@dataclass
class _Job:
    """One partition to write; ``sent`` readings of it are on their way."""

    key: bytes
    ms: list
    temps: list
    expire_ms: int
    sent: int = 0
    steps: object = None


class _Writer:
    """Writes partitions through one :class:`_Pipe` per master, each partition down its owner's pipe.

    On a single server that is one pipe and one partition at a time.  On a
    cluster, one partition per master is in flight and batches go round-robin,
    so each master works while the others' replies travel.  A lost connection,
    or a redirection (a failover moved a slot), closes every pipe; the writer
    waits for the server, rereads the layout and resumes each partition after
    the last entry it holds (IDs are explicit, so nothing is written twice).
    """

    def __init__(self, r, sink: Sink, reconnect_s: float):
        self.r, self.sink, self.reconnect_s = r, sink, reconnect_s
        self.cluster = connection.is_cluster(r)
        self.pipes: dict[str, _Pipe] = {}
        self.active: dict[str, _Job] = {}   # by owner: the partition each master is writing

    @property
    def active_jobs(self) -> list[_Job]:
        return list(self.active.values())

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
        active = self.active
        width = len(self.r.get_primaries()) if self.cluster else 1
        exhausted = False
        while True:
            while not exhausted and len(ready) + len(active) < 2 * width:
                job = next(pending, None)
                if job is None:
                    exhausted = True
                else:
                    ready.append(job)
            for job in list(ready):
                owner = self._owner(job.key)
                if owner not in active:
                    ready.remove(job)
                    active[owner] = job
                    if job.steps is None:
                        self.sink(LogLine("", f"Populating stream partition {job.key.decode()}."))
                        job.steps = _payloads(job.key, job.ms, job.temps, job.expire_ms, 0)
            if not active:
                return
            try:
                for owner, job in list(active.items()):
                    pipe = self._pipe(owner, job.key)
                    step = next(job.steps, None)
                    if step is None:
                        pipe.drain()
                        del active[owner]
                        job.sent = len(job.ms)
                        yield job
                        continue
                    pipe.send(step[0], step[1])
                    job.sent = step[2]
                    report()
            except (redis.ConnectionError, redis.TimeoutError, ConnectionError, TimeoutError) as exc:
                ready[:0] = self._recover(exc, list(active.values()))
                active.clear()
            except redis.ResponseError as exc:
                if not connection.relayout(exc):
                    self.close(False)
                    raise _refused(exc, job.key.decode()) from None
                ready[:0] = self._recover(exc, list(active.values()))
                active.clear()

    def _recover(self, exc: Exception, jobs: list[_Job]) -> list[_Job]:
        """Close every pipe, wait for the server, and set each job to resume after its partition's last entry."""
        self.close(False)
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
        for job, last in zip(jobs, tops):
            start = bisect.bisect_right(job.ms, id_ms(last[0][0])) if last else 0
            job.steps, job.sent = _payloads(job.key, job.ms, job.temps, job.expire_ms, start), start
            self.sink(LogLine("produce", f"resuming {job.key.decode()} at reading {start:,} of {len(job.ms):,}"))
        return jobs


def wait_for_server(r: redis.Redis, sink: Sink, source: str, exc: Exception, seconds: float) -> None:
    """Wait for the server to answer again (see :func:`labkit.connection.reconnect`); :class:`LabkitError`
    after ``seconds``."""
    if not connection.reconnect(r, lambda text: sink(LogLine(source, text)), exc, seconds):
        raise LabkitError(f"Redis did not come back within {seconds:g} s",
                          "start the server again, then rerun the same command")


def _who() -> str:
    import sys
    return "a notebook kernel's producer" if "ipykernel" in sys.modules else "python -m labkit produce"


def acquire_producer_lease(r: redis.Redis, keys: Keys, first: str | None, last: str | None) -> Lease:
    """The namespace's producer lease, or a one-line error naming the producer that holds it."""
    return Lease(r, keys.producer_lease, Holder(what=_who(), first=first, last=last)).acquire(
        "wait for it to finish (or stop it), or set LABKIT_NAMESPACE to write elsewhere")


def produce(r: redis.Redis, data: Dataset, keys: Keys = Keys(), sink: Sink = null_sink,
            retention_days: float = DEFAULT_RETENTION_DAYS, progress: Callable[[int], None] | None = None,
            now_ms: int | None = None, reconnect_s: float = connection.RECONNECT_S,
            replica_wait_ms: int = REPLICA_WAIT_MS) -> dict:
    """Delete the partitions ``data`` covers, then write it.  Returns counts and timings.

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
    keys = keyspace.keys_for(r, keys)
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
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
            ms = [data.start_ms + i * data.interval_ms for i in range(lo, hi)]
            yield _Job(partition_name(day, keys.partition_prefix).encode(), ms, walk(hi - lo),
                       expire_at_ms(day, first_day, now_ms, retention_ms))

    writer = _Writer(r, sink, reconnect_s)
    done = 0

    def report() -> None:
        if lease.due() and not lease.renew():
            writing = ", ".join(j.key.decode() for j in writer.active_jobs)
            raise LabkitError(f"lost {keys.producer_lease} while writing {writing} "
                              "(was the process suspended?)",
                              "run the same produce command again; it rewrites these partitions")
        if progress:
            progress(done + sum(j.sent for j in writer.active_jobs))

    ok = False
    try:
        for job in writer.run(jobs(), report):
            # Every reading of this partition is acknowledged (and, on a cluster, replicated, so a
            # failover cannot shorten a partition marked complete): only now is it complete.
            _confirm_replicas(r, sink, job, replica_wait_ms)
            manifest.mark_complete(r, keys, job.key.decode(), run, len(job.ms), job.ms[-1])
            done += len(job.ms)
        ok = True
    finally:
        writer.close(ok)
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


def _refused(exc: redis.ResponseError, partition: str) -> LabkitError:
    """The server refused a write: say which partition is now half written and what to do."""
    msg = str(exc).splitlines()[0]
    if msg.startswith("OOM"):
        return LabkitError(f"Redis is out of memory (maxmemory reached) while writing {partition}, which is "
                           "left half written and marked incomplete",
                           "free memory (delete old partitions or raise maxmemory), then produce again; "
                           "see the README's troubleshooting row 'out of memory'")
    return LabkitError(f"Redis refused a write to {partition} ({msg}); it is left half written and marked "
                       "incomplete", "fix the cause above, then produce again")
