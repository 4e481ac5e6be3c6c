"""Live mode: readings written in real time into today's UTC partition.

``python -m labkit produce --live --rate 1000`` writes ``rate`` readings a
second, each with the ID ``<scheduled ms>-*`` (the server numbers readings
that share a millisecond), rolling over to the next partition at midnight
UTC.  Here the course's absolute expiry makes sense: a partition expires
``retention`` after its day ends.  An hour closes when the first reading of the
next one arrives; a day's partition is marked complete in the manifest when
the day is over.  While it runs it holds the producer lease, covering today
onwards, so a second live producer is refused with a clear line.

A live producer killed (kill -9) and started again **continues**: it appends
to today's partition and keeps the manifest record's run, so a consumer
reading it goes on (only a dataset ``produce``, which deletes and rewrites a
partition, is a rewrite).  Once a partition exists every write to it is
``XADD … NOMKSTREAM``: one that vanished (deleted, evicted) stops live mode,
named, instead of being re-created without its expiry.  Expiry never lies in
the server's past, whatever the client's clock says.  A clock behind the newest
reading already in the partition is refused, named: a reading's ID is its time,
so live mode neither goes back nor rewrites times.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from typing import Callable

import redis

from ..errors import LabkitError
from ..log import LogLine, Sink, null_sink
from ..servers import connection
from ..servers.connection import RECONNECT_S
from . import eviction, manifest
from .keys import Keys
from .partition import DAY_MS, day_of, day_start_ms, id_ms, partition_name
from .producer import (
    DEFAULT_RETENTION_DAYS,
    Walk,
    acquire_producer_lease,
    server_ms,
    still_ours,
    vanished,
    wait_for_server,
)

TICK_S = 0.02


def _write_tick(r: redis.Redis, keys: Keys, stamps: list[int], temps: list[int], expire_ms: Callable[[int], int],
                sink: Sink, current: str | None, last_ms: int | None, run_of: Callable[[str], str],
                retry: bool = False) -> None:
    """One transaction a tick: readings and expiry land together or not at all.

    A day that ends inside the tick has its partition marked complete in the
    same transaction, right after its last reading (``last_ms`` is the reading
    before this tick's first).
    """
    if connection.is_cluster(r):
        return _write_tick_cluster(r, keys, stamps, temps, expire_ms, sink, current, last_ms, run_of, retry)
    p = r.pipeline(transaction=True)
    xadds = []
    for ms, t in zip(stamps, temps):
        key = partition_name(day_of(ms), keys.partition_prefix)
        xadds.append((len(p), key))
        p.xadd(key, {"temp_f": t}, id=f"{ms}-*", nomkstream=key == current)
        if key != current:
            if current is not None:
                p.hset(keys.manifest, current, manifest.Record(manifest.COMPLETE, run_of(current), 0, last_ms).encode())
            sink(LogLine("", f"Populating stream partition {key}."))
            p.hset(keys.manifest, key, manifest.Record(manifest.WRITING, run_of(key)).encode())
            p.pexpireat(key, expire_ms(ms))
            current = key
        last_ms = ms
    replies = p.execute()
    _check_landed(r, [key for i, key in xadds if replies[i] is None])


def _write_tick_cluster(r, keys: Keys, stamps: list[int], temps: list[int], expire_ms: Callable[[int], int],
                        sink: Sink, current: str | None, last_ms: int | None, run_of: Callable[[str], str],
                        retry: bool) -> None:
    """A tick on a cluster: one transaction per partition, on the node that serves it, then the manifest.

    A transaction cannot span the partition's slot and the manifest's, so the
    manifest is written after the readings: "complete" still follows a day's
    last reading.  A retried tick skips a partition whose part already landed.
    """
    groups: dict[str, list[tuple[int, int]]] = {}
    for ms, t in zip(stamps, temps):
        groups.setdefault(partition_name(day_of(ms), keys.partition_prefix), []).append((ms, t))
    records = {}
    for key, readings in groups.items():
        existing = key == current
        if key != current:
            if current is not None:
                records[current] = manifest.Record(manifest.COMPLETE, run_of(current), 0, last_ms).encode()
            sink(LogLine("", f"Populating stream partition {key}."))
            records[key] = manifest.Record(manifest.WRITING, run_of(key)).encode()
            current = key
        last_ms = readings[-1][0]
        if retry and _landed(r, keys, last_ms):
            continue   # a retry: this partition's part of the tick is in already
        p = connection.node_client(r, key).pipeline(transaction=True)
        for ms, t in readings:
            p.xadd(key, {"temp_f": t}, id=f"{ms}-*", nomkstream=existing)
        p.pexpireat(key, expire_ms(readings[0][0]))
        try:
            replies = p.execute()
        except redis.ResponseError as exc:
            raise connection.moved_to_lost(r, exc) from None
        _check_landed(r, [key] if None in replies[:-1] else [])
    if records:
        r.hset(keys.manifest, mapping=records)


def _check_landed(r: redis.Redis, gone: list[str]) -> None:
    """``XADD … NOMKSTREAM`` answered nil: the partition vanished under live mode.  Stop, naming it."""
    if gone:
        raise vanished(r, gone[0])


def _lost(r: redis.Redis, keys: Keys) -> LabkitError:
    """The producer lease is no longer ours: a server that came back without labkit's keys, or a suspension."""
    if not r.exists(keys.manifest) and not r.exists(keys.producer_lease):
        return LabkitError(f"Redis lost labkit's keys while live mode was writing ({keys.manifest} and "
                           f"{keys.producer_lease} are gone): the server restarted without persistence, or "
                           "the keys were deleted", "make the server keep its data (appendonly yes), then start "
                                                    "live mode again")
    return LabkitError(f"lost {keys.producer_lease} (was the process suspended past its lease?)",
                       "start live mode again")


def _landed(r: redis.Redis, keys: Keys, last_ms: int) -> bool:
    """Whether a tick ending with the reading at ``last_ms`` is in Redis (its reply may have been lost)."""
    top = r.xrevrange(partition_name(day_of(last_ms), keys.partition_prefix), count=1)
    return bool(top) and id_ms(top[0][0]) >= last_ms


def _utc(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + " UTC"


def _check_clock(r: redis.Redis, keys: Keys, start_ms: int, own_clock: bool) -> None:
    """Refuse to start when the clock is behind the newest reading of its day's partition (or of the next
    day's, a clock back across midnight): a reading's ID is its time, and IDs must grow.  Nothing is written."""
    day = day_of(start_ms)
    for key in (partition_name(day, keys.partition_prefix), partition_name(day + dt.timedelta(days=1),
                                                                          keys.partition_prefix)):
        top = r.xrevrange(key, count=1)
        newest = id_ms(top[0][0]) if top else None
        if newest is not None and newest > start_ms:
            who = "this machine's clock" if own_clock else "the clock given"
            raise LabkitError(f"{who} reads {_utc(start_ms)}, {(newest - start_ms) / 1000:g} s behind the newest "
                              f"reading already in {key} ({_utc(newest)}): a live reading's ID is its time, which "
                              "must not go back",
                              "fix the clock (turn on NTP, e.g. timedatectl set-ntp true), or wait until "
                              f"{_utc(newest)} has passed, then start live mode again")


def run_live(r: redis.Redis, keys: Keys = Keys(), rate: float = 1.0, duration: float | None = None,
             sink: Sink = null_sink, stop: threading.Event | None = None, seed: int = 0,
             retention_days: float = DEFAULT_RETENTION_DAYS, clock: Callable[[], float] = time.time,
             reconnect_s: float = RECONNECT_S) -> dict:
    """Write live readings until ``stop`` is set or ``duration`` seconds pass.  Returns counts."""
    if not 0 < rate <= 100_000:
        raise LabkitError(f"rate {rate:g} is out of range", "use readings per second above 0, at most 100000", "rate")
    if duration is not None and not duration > 0:
        raise LabkitError(f"duration {duration:g} must be above 0", "e.g. 60 seconds, or none to run until stopped",
                          "duration")
    if not 1 <= retention_days <= 3650:
        raise LabkitError(f"retention_days {retention_days:g} is out of range", "use at least 1 day",
                          "retention_days")
    stop = stop or threading.Event()
    eviction.check(r, sink, "live")
    walk = Walk(seed)
    start_ms = int(clock() * 1000)
    lease = acquire_producer_lease(r, keys, partition_name(day_of(start_ms), keys.partition_prefix), None)
    try:
        _check_clock(r, keys, start_ms, clock is time.time)
        return _run(r, keys, rate, duration, sink, stop, walk, start_ms, retention_days, clock, reconnect_s, lease)
    finally:
        lease.release()


def _run(r, keys, rate, duration, sink, stop, walk, start_ms, retention_days, clock, reconnect_s, lease) -> dict:
    step = 1000.0 / rate
    skew = server_ms(r) - int(clock() * 1000)      # the server's clock minus the client's
    retention = round(retention_days * DAY_MS)
    runs: dict[str, str] = {}

    def expire_ms(ms: int) -> int:
        """The course's rule (``retention`` after the day ends), never earlier than ``retention`` from the
        server's now: a client clock days behind must not set an expiry in the server's past."""
        return max(day_start_ms(day_of(ms)) + DAY_MS + retention, ms + skew + retention)

    def run_of(partition: str) -> str:
        """The run a partition's record names: the one it already has if the partition exists (a restarted
        live producer appends: it continues that run), else this one."""
        if partition not in runs:
            rec = manifest.Record.decode(r.hget(keys.manifest, partition))
            runs[partition] = rec.run if rec and r.exists(partition) else lease.token
        return runs[partition]

    written, current, last_ms, t_end = 0, None, None, None if duration is None else time.monotonic() + duration
    last_report = time.monotonic()
    sink(LogLine("live", f"Writing {rate:g} readings/s in real time; Ctrl+C to stop."))
    while not stop.is_set() and (t_end is None or time.monotonic() < t_end):
        due = int((clock() * 1000 - start_ms) / step) + 1 - written
        if due <= 0:
            stop.wait(TICK_S)
            continue
        stamps = [start_ms + int((written + i) * step) for i in range(due)]
        temps = walk(due)
        retry = False
        while True:
            try:
                _write_tick(r, keys, stamps, temps, expire_ms, sink, current, last_ms, run_of, retry)
                break
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                wait_for_server(r, sink, "live", exc, reconnect_s)
                if not still_ours(r, lease):
                    raise _lost(r, keys) from None
                if connection.is_cluster(r):
                    retry = True   # resend only the partitions whose part did not land, then the manifest
                elif _landed(r, keys, stamps[-1]):
                    break   # the tick landed; only its reply was lost
        if lease.due() and not lease.renew():
            raise _lost(r, keys)
        current, last_ms = partition_name(day_of(stamps[-1]), keys.partition_prefix), stamps[-1]
        written += due
        if time.monotonic() - last_report >= 10:
            sink(LogLine("live", f"{written:,} readings written"))
            last_report = time.monotonic()
    return {"readings": written, "start_ms": start_ms, "end_ms": start_ms + int(written * step)}
