"""Live mode: readings written in real time into today's UTC partition.

``python -m labkit produce --live --rate 1000`` writes ``rate`` readings a
second, each with the ID ``<scheduled ms>-*`` (the server numbers readings
that share a millisecond), rolling over to the next partition at midnight
UTC.  Here the course's absolute expiry makes sense: a partition expires
``retention`` after its day ends.  After every batch the watermark moves to
the time of the next reading due, so the aggregating consumer closes each hour
as soon as it is over.
"""

from __future__ import annotations

import threading
import time
from typing import Callable

import redis

from .errors import LabkitError
from .keys import Keys
from .log import LogLine, Sink, null_sink
from .partition import DAY_MS, day_of, day_start_ms, partition_name
from .producer import DEFAULT_RETENTION_DAYS, Walk, wait_for_server

TICK_S = 0.02


def _write_tick(r: redis.Redis, keys: Keys, stamps: list[int], temps: list[int], mark: int,
                retention_days: float, sink: Sink, current: str | None) -> None:
    """One transaction a tick: readings, expiry and watermark land together or not at all."""
    p = r.pipeline(transaction=True)
    for ms, t in zip(stamps, temps):
        key = partition_name(day_of(ms), keys.partition_prefix)
        p.xadd(key, {"temp_f": t}, id=f"{ms}-*")
        if key != current:
            sink(LogLine("", f"Populating stream partition {key}."))
            current = key
            p.pexpireat(key, day_start_ms(day_of(ms)) + DAY_MS + round(retention_days * DAY_MS))
    p.set(keys.watermark, mark)
    p.execute()


def run_live(r: redis.Redis, keys: Keys = Keys(), rate: float = 1.0, duration: float | None = None,
             sink: Sink = null_sink, stop: threading.Event | None = None, seed: int = 0,
             retention_days: float = DEFAULT_RETENTION_DAYS, clock: Callable[[], float] = time.time,
             reconnect_s: float = 60.0) -> dict:
    """Write live readings until ``stop`` is set or ``duration`` seconds pass.  Returns counts."""
    if not 0 < rate <= 100_000:
        raise LabkitError(f"--rate {rate:g} is out of range", "use readings per second above 0, at most 100000")
    if duration is not None and not duration > 0:
        raise LabkitError(f"--duration {duration:g} must be above 0", "e.g. --duration 60, or omit it to run until Ctrl+C")
    if not 1 <= retention_days <= 3650:
        raise LabkitError(f"--retention-days {retention_days:g} is out of range", "use at least 1 day")
    stop = stop or threading.Event()
    walk = Walk(seed)
    start_ms = int(clock() * 1000)
    step = 1000.0 / rate
    written, current, t_end = 0, None, None if duration is None else time.monotonic() + duration
    last_report = time.monotonic()
    sink(LogLine("live", f"Writing {rate:g} readings/s in real time; Ctrl+C to stop."))
    while not stop.is_set() and (t_end is None or time.monotonic() < t_end):
        due = int((clock() * 1000 - start_ms) / step) + 1 - written
        if due <= 0:
            stop.wait(TICK_S)
            continue
        stamps = [start_ms + int((written + i) * step) for i in range(due)]
        temps = walk(due)
        mark = start_ms + int((written + due) * step)
        while True:
            try:
                _write_tick(r, keys, stamps, temps, mark, retention_days, sink, current)
                break
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                wait_for_server(r, sink, "live", exc, reconnect_s)
                if r.get(keys.watermark) == b"%d" % mark:
                    break   # the tick landed; only its reply was lost
        current = partition_name(day_of(stamps[-1]), keys.partition_prefix)
        written += due
        if time.monotonic() - last_report >= 10:
            sink(LogLine("live", f"{written:,} readings written"))
            last_report = time.monotonic()
    return {"readings": written, "start_ms": start_ms, "end_ms": start_ms + int(written * step)}
