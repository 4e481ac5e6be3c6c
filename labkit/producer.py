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

**Watermark.**  After finishing each partition the producer records, in
``temps:watermark``, the time below which it has written every reading (at the
end of a run, the end of its last hour: the run promises nothing more for it).
The aggregating consumer uses it to close the final hour.

Writing uses Redis's mass-insertion technique: commands are encoded once and
streamed down one connection, the next batch sent before the previous batch's
replies are read, so the client never waits for a round trip.  The replies are
the entries' IDs, known in advance, so they are compared as bytes rather than
parsed; and the next partition's walk is computed while the server works
through a batch of this one.  The producer keeps up with what one connection can push.
"""

from __future__ import annotations

import bisect
import datetime as dt
import math
import time
from collections import deque
from dataclasses import dataclass
from typing import Callable, Iterator, Sequence

import numpy as np
import redis

from .errors import LabkitError
from .keys import Keys
from .log import LogLine, Sink, null_sink
from .partition import DAY_MS, HOUR_MS, day_of, day_start_ms, id_ms, partition_name, partitions_between

DEFAULT_START = "2025-01-01"
DEFAULT_RETENTION_DAYS = 2.0
WALK_START, WALK_MIN, WALK_MAX = 50, 0, 100
BATCH = 20_000


def parse_start(text: str) -> int:
    """``2025-01-01`` or ``2025-01-01T06:30[:00]`` (UTC) → epoch ms."""
    raw = (text or "").strip()
    try:
        when = dt.datetime.fromisoformat(raw)
    except ValueError:
        raise LabkitError(f"--start {text!r} is not a date",
                          "use YYYY-MM-DD or YYYY-MM-DDTHH:MM[:SS], in UTC, e.g. 2025-01-01") from None
    if when.tzinfo is not None and when.utcoffset() != dt.timedelta(0):
        raise LabkitError(f"--start {text!r} is not in UTC", "drop the offset: labkit dates are UTC")
    when = when.replace(tzinfo=dt.timezone.utc)
    if not dt.datetime(1971, 1, 1, tzinfo=dt.timezone.utc) <= when < dt.datetime(2200, 1, 1, tzinfo=dt.timezone.utc):
        raise LabkitError(f"--start {text!r} is out of range", "use a date between 1971 and 2199")
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
            raise LabkitError(f"--days {self.days} is out of range", "use a number of days above 0, at most 3660")
        if not (isinstance(self.interval_ms, int) and 1 <= self.interval_ms <= DAY_MS):
            raise LabkitError(f"--interval {self.interval_ms / 1000:g}s is out of range",
                              "use seconds between 0.001 and 86400, e.g. --interval 1")
        if self.count > 100_000_000:
            raise LabkitError(f"{self.count:,} readings is more than labkit will write",
                              "use fewer --days or a longer --interval")
        if not 0 <= self.seed < 2**63:
            raise LabkitError(f"--seed {self.seed} is out of range", "use a whole number from 0 to 2**63-1")

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


class _Partitions:
    """``(day, first_index, stop_index, readings)`` for each partition of a dataset, oldest first.

    :meth:`ahead` computes the next partition's readings early: the producer
    calls it while the server works through a full batch, so the walk never
    keeps the server waiting.
    """

    def __init__(self, data: Dataset):
        self._walk, self._slices, self._next = Walk(data.seed), data.slices(), None

    def ahead(self) -> None:
        if self._next is None:
            self._next = next(((day, lo, hi, self._walk(hi - lo)) for day, lo, hi in self._slices), False)

    def __iter__(self) -> Iterator[tuple[dt.date, int, int, list[int]]]:
        while True:
            self.ahead()
            item, self._next = self._next, None
            if not item:
                return
            yield item


def expire_at_ms(day: dt.date, first_day: dt.date, now_ms: int, retention_ms: int) -> int:
    """When the partition of ``day`` expires (see the module docstring)."""
    day_end = day_start_ms(day) + DAY_MS
    shift = max(0, now_ms - (day_start_ms(first_day) + DAY_MS))
    return day_end + shift + retention_ms


def _cmd(*args: bytes) -> bytes:
    """One command in the Redis protocol (RESP)."""
    return b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args)


class _Pipe:
    """Streams pre-encoded commands down one connection, checking replies one batch behind.

    The reply to ``XADD key <ms>-0 ...`` is that ID, so the replies to a batch
    of readings are known before they arrive: :meth:`send` compares them with
    the expected bytes instead of parsing thousands of replies one by one, and
    parses them (hiredis) only to say what went wrong.  Commands whose replies
    are not known in advance go through :meth:`call`: one round trip, parsed.
    """

    def __init__(self, r: redis.Redis):
        self.r = r
        self.conn = r.connection_pool.get_connection()
        self.sock = self.conn._sock
        self.owed: deque[tuple[bytes, int]] = deque()  # per send not yet checked: (expected replies, how many)
        self.rest = b""                                 # received beyond the replies checked so far

    def send(self, payload: bytes, expect: bytes, replies: int) -> None:
        """Send ``payload``, whose ``replies`` replies will be ``expect``; then check the earlier sends."""
        self.conn.send_packed_command([payload], check_health=False)
        self.owed.append((expect, replies))
        while len(self.owed) > 1:
            self._expect(*self.owed.popleft())

    def call(self, payload: bytes, replies: int) -> list:
        """Once every earlier reply is in, send ``payload`` and return its ``replies`` replies."""
        self.drain()
        if self.rest:
            raise redis.ConnectionError("the server sent more replies than commands")
        self.conn.send_packed_command([payload], check_health=False)
        out = [self.conn.read_response() for _ in range(replies)]
        for reply in out:
            self._check(reply)
        return out

    def drain(self) -> None:
        while self.owed:
            self._expect(*self.owed.popleft())

    def _recv(self) -> bytes:
        chunk = self.sock.recv(1 << 20)
        if not chunk:
            raise redis.ConnectionError("the server closed the connection")
        return chunk

    def _expect(self, expect: bytes, replies: int) -> None:
        got, self.rest = self.rest, b""
        pos = 0
        while True:
            chunk = got or self._recv()
            got = b""
            take = chunk[:len(expect) - pos]
            if expect[pos:pos + len(take)] != take:
                self._fail(expect[:pos] + chunk, replies)
            pos += len(take)
            if pos == len(expect):
                self.rest = chunk[len(take):]
                return

    def _fail(self, received: bytes, replies: int) -> None:
        """Parse the replies that differ from the expected ones and raise the server's error."""
        import hiredis
        reader = hiredis.Reader()
        reader.feed(received)
        for _ in range(replies):
            while (reply := reader.gets()) is False:
                reader.feed(self._recv())
            self._check(reply)
        raise redis.ResponseError(f"unexpected reply: {received[:80]!r}")

    @staticmethod
    def _check(reply) -> None:
        for item in reply if isinstance(reply, list) else [reply]:
            if isinstance(item, Exception):
                raise redis.ResponseError(str(item))

    def close(self, ok: bool) -> None:
        if not ok or self.owed or self.rest:
            self.conn.disconnect()  # replies left unread: never reuse this connection
        self.r.connection_pool.release(self.conn)


def _encode_xadds(key: bytes, ms: Sequence[int], temps: Sequence[int]) -> tuple[bytes, bytes]:
    """``XADD key <ms>-0 temp_f <t>`` for each reading, as one RESP payload; and the replies
    the server sends when all goes well, each entry's ID."""
    ids = list(map(b"%d-0".__mod__, ms))
    head = b"*5\r\n$4\r\nXADD\r\n$%d\r\n%s\r\n" % (len(key), key)
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


#: The encoded end of an XADD for each possible reading (pre-encoded once: the hot loop only formats IDs).
_TAILS = {v: b"\r\n$6\r\ntemp_f\r\n$%d\r\n%d\r\n" % (len(str(v)), v) for v in range(WALK_MIN, WALK_MAX + 1)}


def _idle() -> None:
    pass


def _write_partition(pipe: "_Pipe", key: bytes, ms: Sequence[int], temps: Sequence[int], expire_ms: int,
                     watermark: tuple[bytes, int], start: int, progress: Callable[[int], None],
                     meanwhile: Callable[[], None] = _idle) -> None:
    """Write readings ``start:`` of one partition, then its watermark; returns once the server has them all.

    ``meanwhile`` is called once while the server has a full batch to work through.
    """
    expire = b"%d" % expire_ms
    if start == 0:
        # The first entry and the expiry in one transaction: never a partition without a TTL.
        first = b"%d-0" % ms[0]
        pipe.send(_cmd(b"MULTI") + _cmd(b"XADD", key, first, b"temp_f", b"%d" % temps[0])
                  + _cmd(b"PEXPIREAT", key, expire) + _cmd(b"EXEC"),
                  b"+OK\r\n+QUEUED\r\n+QUEUED\r\n*2\r\n$%d\r\n%s\r\n:1\r\n" % (len(first), first), 4)
        start = 1
    else:
        pipe.call(_cmd(b"PEXPIREAT", key, expire), 1)
    b, size = start, BATCH // 16    # small batches first: the server starts at once, the encoder gets ahead
    while b < len(ms):
        e = min(b + size, len(ms))
        pipe.send(*_encode_xadds(key, ms[b:e], temps[b:e]), e - b)
        progress(e)
        if size == BATCH:
            meanwhile()
            meanwhile = _idle
        b, size = e, min(4 * size, BATCH)
    pipe.call(_cmd(b"SET", watermark[0], b"%d" % watermark[1]), 1)  # after every reply is in
    progress(len(ms))


def wait_for_server(r: redis.Redis, sink: Sink, source: str, exc: Exception, seconds: float) -> None:
    """Ping with capped exponential backoff until the server answers; :class:`LabkitError` after ``seconds``."""
    sink(LogLine(source, f"lost the connection to Redis ({str(exc).splitlines()[0][:80]}); "
                         f"reconnecting for up to {seconds:g} s"))
    deadline, delay = time.monotonic() + seconds, 0.05
    while True:
        try:
            r.ping()
            sink(LogLine(source, "reconnected to Redis"))
            return
        except (redis.ConnectionError, redis.TimeoutError):
            if time.monotonic() > deadline:
                raise LabkitError(f"Redis did not come back within {seconds:g} s",
                                  "start the server again, then rerun the same command") from None
            time.sleep(delay)
            delay = min(delay * 2, 2.0)


def produce(r: redis.Redis, data: Dataset, keys: Keys = Keys(), sink: Sink = null_sink,
            retention_days: float = DEFAULT_RETENTION_DAYS, progress: Callable[[int], None] | None = None,
            now_ms: int | None = None, reconnect_s: float = 60.0) -> dict:
    """Delete the partitions ``data`` covers, then write it.  Returns counts and timings.

    If the connection drops, it waits for the server (up to ``reconnect_s``)
    and resumes after the last entry the partition holds: IDs are explicit,
    so nothing is written twice.
    """
    if not (math.isfinite(retention_days) and 1 <= retention_days <= 3650):
        raise LabkitError(f"--retention-days {retention_days} is out of range",
                          "use at least 1 day, so nothing is deleted on the day it is written")
    retention_ms = round(retention_days * DAY_MS)
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    names = data.partitions(keys)
    t0 = time.perf_counter()
    sink(LogLine("", "Deleting old streams:"))
    r.set(keys.watermark, data.start_ms)
    for name in names:
        sink(LogLine("", name))
    if names:
        r.unlink(*names)

    first_day = day_of(data.start_ms)
    done = 0
    pipe = None
    parts = _Partitions(data)
    for day, lo, hi, temps in parts:
        key = partition_name(day, keys.partition_prefix).encode()
        sink(LogLine("", f"Populating stream partition {key.decode()}."))
        ms = range(data.start_ms + lo * data.interval_ms, data.start_ms + hi * data.interval_ms, data.interval_ms)
        expire = expire_at_ms(day, first_day, now_ms, retention_ms)
        # A finished run promises nothing more for its last hour, so the
        # mark is rounded up to that hour's end and the hour can close.
        mark = min(day_start_ms(day) + DAY_MS, -(-data.end_ms // HOUR_MS) * HOUR_MS)
        start = 0
        while True:
            try:
                pipe = pipe or _Pipe(r)
                _write_partition(pipe, key, ms, temps, expire, (keys.watermark.encode(), mark), start,
                                 lambda n: progress(done + n) if progress else None, parts.ahead)
                break
            except (redis.ConnectionError, redis.TimeoutError, ConnectionError, TimeoutError) as exc:
                if pipe:
                    pipe.close(False)
                pipe = None
                wait_for_server(r, sink, "produce", exc, reconnect_s)
                last = r.xrevrange(key, count=1)
                start = bisect.bisect_right(ms, id_ms(last[0][0])) if last else 0
                sink(LogLine("produce", f"resuming {key.decode()} at reading {start:,} of {len(ms):,}"))
        done += len(ms)
    if pipe:
        pipe.close(True)
    seconds = time.perf_counter() - t0
    return {"readings": done, "partitions": len(names), "seconds": seconds,
            "rate": done / seconds if seconds else float("inf")}
