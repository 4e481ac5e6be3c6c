"""The aggregating consumer: date partitions in, hourly averages out.

It reads its current partition in batches, folds readings into hourly windows
by message-ID time (:func:`labkit.window.fold`), and publishes each closed hour
to ``temps:averages``.  When the partition is drained and the next day's
partition exists, it closes the open hour and moves on at once; otherwise it
blocks on *both* streams, so either more readings or a new partition wake it.

**Exactly once.**  Each batch's averages, dead letters and the new state are
written in one MULTI/EXEC, so a crash leaves either all of them or none.
Each average's entry ID is its hour's start time, so publishing the same hour
again is refused by the server (IDs must grow): even where one transaction cannot
span the keys (Redis Cluster), a replayed batch publishes nothing twice.
"""

from __future__ import annotations

import threading
import time

import redis

from .keys import Keys
from .log import LogLine, Sink
from .partition import next_partition
from .state import AggregatingState
from .window import HourAverage, fold

DEFAULT_MAXLEN = 120
BATCH = 10_000
BLOCK_MS = 500


class SimulatedCrash(Exception):
    """Raised inside a consumer thread to stop it dead, without saving anything."""


class AggregatingConsumer:
    def __init__(self, r: redis.Redis, keys: Keys, sink: Sink, averages_maxlen: int = DEFAULT_MAXLEN,
                 batch: int = BATCH, block_ms: int = BLOCK_MS):
        self.r, self.keys, self.sink = r, keys, sink
        self.maxlen, self.batch, self.block_ms = averages_maxlen, batch, block_ms
        self.state: AggregatingState | None = None
        self.readings = 0
        self.published = 0
        self.replayed = 0       # hours the server already had (a replay after a crash)
        self.dead_letters = 0
        self.last_average: HourAverage | None = None
        self.idle_since: float | None = None
        self.client_id: int | None = None  # of the connection that blocks, for CLIENT UNBLOCK

    def log(self, text: str) -> None:
        self.sink(LogLine("agg", text))

    def run(self, stop: threading.Event, crash: threading.Event) -> None:
        s = AggregatingState.load(self.r, self.keys)
        if s is None:
            raise RuntimeError("no aggregating_consumer_state: the runner sets it before starting")
        self.state = s
        window = s.window()
        self.log(f"Starting aggregating consumer in stream {s.stream} at message {s.last_id}.")
        waiting = False
        while not stop.is_set():
            nxt = next_partition(s.stream, self.keys.partition_prefix)
            # Watermark and next partition are read *before* the batch: if they
            # say "complete", the batch read after them saw everything.
            p = self.r.pipeline(transaction=False)
            p.get(self.keys.watermark)
            p.exists(nxt)
            p.xread({s.stream: s.last_id}, count=self.batch)
            mark, next_exists, resp = p.execute()
            entries = resp[0][1] if resp else []
            closed, bad = fold(window, entries)
            new = AggregatingState(s.stream, s.last_id, 0, 0)
            if entries:
                new.last_id = entries[-1][0].decode()
            switch = len(entries) < self.batch and bool(next_exists)
            if switch:
                closed += [h for h in [window.close()] if h]
                new = AggregatingState(nxt, "0", 0, 0)
            elif len(entries) < self.batch:
                closed += [h for h in [window.close_through(int(mark) if mark else None)] if h]
            new.total, new.count = window.total, window.count
            if crash.is_set():
                raise SimulatedCrash()
            if entries or closed or switch:
                self._commit(closed, bad, new, s.stream)
                self.readings += len(entries) - len(bad)
                s = self.state = new
            if switch:
                self.log(f"Changing partition to consume stream: {nxt}")
            if entries or switch:
                waiting, self.idle_since = False, None
                continue
            if not waiting:
                self.log(f"Waiting for new messages in stream {s.stream}, or new stream partition.")
                waiting, self.idle_since = True, time.monotonic()
                self.client_id = self.r.client_id()
            # Wake on a new reading *or* on the next partition appearing.
            self.r.xread({s.stream: s.last_id, nxt: "0-0"}, count=1, block=self.block_ms)

    def _commit(self, closed: list[HourAverage], bad: list, new: AggregatingState, source: str) -> None:
        p = self.r.pipeline(transaction=True)
        maxlen = self.maxlen or None
        for h in closed:
            p.xadd(self.keys.averages, h.fields(), id=h.entry_id, maxlen=maxlen, approximate=True)
        for eid, fields, reason in bad:
            p.xadd(self.keys.deadletter, {"source": source, "id": eid, "reason": reason,
                                          "payload": repr(fields)[:500]}, maxlen=10_000, approximate=True)
        p.hset(self.keys.aggregating_state, mapping=new.fields())
        results = p.execute(raise_on_error=False)
        for h, res in zip(closed, results):
            if isinstance(res, redis.ResponseError):
                if "equal or smaller" not in str(res):
                    raise res
                self.replayed += 1      # already published before a crash: nothing to do
            else:
                self.published += 1
                self.last_average = h
        for res in results[len(closed):]:
            if isinstance(res, Exception):
                raise res
        if bad:
            self.dead_letters += len(bad)
            self.log(f"Dead-lettered {len(bad)} bad reading(s) from {source} to {self.keys.deadletter}.")
