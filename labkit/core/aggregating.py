"""The aggregating consumer: date partitions in, hourly averages out.

It reads its current partition in batches, folds readings into hourly windows
by message-ID time (:func:`labkit.core.window.fold`), and publishes each closed hour
to ``temps:averages``.  A partition's final hour is closed only when the
partition manifest says the partition is complete (:mod:`labkit.core.manifest`);
then the consumer moves to the next day's partition as soon as it exists.

**Exactly once, and only one writer.**  Each batch is committed by one Lua
script (:data:`COMMIT`) that, atomically, checks that this consumer still holds
the namespace's lease and that the saved state is the one it last wrote, then
publishes the closed hours, writes dead letters and saves the new state.  A
crash leaves all of a batch or none of it; a second consumer can neither start
(the lease) nor write over this one (the state check).  Each average's entry ID
is its hour's start, so an hour can never be published twice.

**Nothing lost without a word.**  A partition that vanishes (expires) under
the consumer, one that ends before the reading its manifest promised, one
abandoned half-written by a producer that died, and a day that is missing
while later days exist: each is named in the log and in the dead-letter
stream, the partial hour is never published as if it were whole, and the
consumer moves on.  While a partition may still arrive, it waits and says for what.

**Fast, with the same results.**  Each batch is asked for one batch ahead
(the server prepares batch N+1 while this one is folded; on a cluster, the
partition's master does) and folded in bulk (:mod:`labkit.core.fastfold`); a
batch with anything unusual in it goes to the plain fold, which stays the
definition.  ``fast=False`` runs the plain path (redis-py's XREAD, one reading
at a time).
"""

from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import replace

import redis

from ..errors import LabkitError, SimulatedCrash
from ..log import LogLine, Sink
from ..servers import connection
from ..servers.replies import text
from . import deadletters, keyspace, manifest
from .keys import Keys
from .lease import Holder, Lease
from .partition import DAY_MS, HOUR_MS, day_start_ms, id_ms, next_partition, parse_partition
from .state import AggregatingState, combine_caps, data_gone
from .averages import DEFAULT_MAXLEN
from .batches import BatchReader, paused_gc, xrange_raw
from .fastfold import as_entries, fold_raw
from .window import HourAverage, HourlyWindow, fold

BATCH = 10_000          # measured as fast as 20,000 and faster than 50,000 (docs/benchmark.md)
BLOCK_MS = 500
WRITING_POLL_MS = 250  # longest wait on a partition that is still being written (see _loop)

# KEYS: averages, state, lease, deadletter.
# ARGV, read front to back, where a "list" is its number of pairs, then field, value, field, value, …:
#   token, lease ttl ms, averages maxlen (0 = none), dead-letter maxlen, holder (to retake an expired lease),
#   the state's position as saved (list), the new state (list),
#   #hours, then per hour its entry ID and fields (list), #dead letters, then per dead letter its fields (list).
# Field names come from Python (AggregatingState, HourAverage.fields, deadletters.record): a field added
# there is written here unchanged.
# Returns {status, published, replayed, detail}; nothing is written unless status is OK or RETAKEN.
# An empty token (a consumer driven without a lease, as in unit tests) skips the lease check.
COMMIT = """
local at = 0
local function arg() at = at + 1; return ARGV[at] end
local function list() local t = {}; for i = 1, 2 * tonumber(arg()) do t[i] = arg() end; return t end
local token, ttl, maxlen, dl_maxlen, holder = arg(), arg(), arg(), arg(), arg()
local position, state = list(), list()
local hours, dead = {}, {}
for i = 1, tonumber(arg()) do hours[i] = {arg(), list()} end
for i = 1, tonumber(arg()) do dead[i] = list() end

local lease = token ~= '' and redis.call('GET', KEYS[3])
local mine = token == ''
if lease then
  local ok, h = pcall(cjson.decode, lease)
  mine = ok and type(h) == 'table' and h['token'] == token
  if not mine then return {'LEASE', 0, 0, lease} end
end
local names, saved = {}, {}
for i = 1, #position, 2 do names[#names + 1] = position[i] end
local now = redis.call('HMGET', KEYS[2], unpack(names))
if not now[1] then return {'GONE', 0, 0, ''} end
local same = true
for i = 1, #names do
  saved[i] = tostring(now[i])
  same = same and now[i] == position[2 * i]
end
if not same then return {'STATE', 0, 0, table.concat(saved, ' ')} end
local function ms_of(id) return tonumber(string.match(id, '^(%d+)')) end
local top = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
local top_ms = top[1] and ms_of(top[1][1]) or -1
local fresh, replayed = {}, 0
for _, h in ipairs(hours) do
  local id, want = h[1], h[2]
  if ms_of(id) > top_ms then
    fresh[#fresh + 1] = h
  else
    local e = redis.call('XRANGE', KEYS[1], id, id)[1]
    local same = e ~= nil and #e[2] == #want
    if same then for j = 1, #want do if e[2][j] ~= want[j] then same = false end end end
    if not same then return {'CONFLICT', 0, 0, id} end
    replayed = replayed + 1
  end
end
for _, h in ipairs(fresh) do
  local args = {'XADD', KEYS[1]}
  if maxlen ~= '0' then args[#args+1] = 'MAXLEN'; args[#args+1] = '~'; args[#args+1] = maxlen end
  args[#args+1] = h[1]
  for _, v in ipairs(h[2]) do args[#args+1] = v end
  redis.call(unpack(args))
end
for _, fields in ipairs(dead) do
  redis.call('XADD', KEYS[4], 'MAXLEN', '~', dl_maxlen, '*', unpack(fields))
end
redis.call('HSET', KEYS[2], unpack(state))
if mine then
  if token ~= '' then redis.call('PEXPIRE', KEYS[3], ttl) end
  return {'OK', #fresh, replayed, ''}
end
redis.call('SET', KEYS[3], holder, 'PX', ttl)
return {'RETAKEN', #fresh, replayed, ''}
"""


def pairs(fields: dict) -> list:
    """``fields`` as one of :data:`COMMIT`'s lists: how many pairs, then field, value, field, value, …"""
    return [len(fields), *(x for item in fields.items() for x in item)]



def _given_up(day_end_ms: int) -> str:
    """The ``last_message_id`` that marks a partition as given up on: past every reading of its day,
    with a sequence number no producer writes."""
    return f"{day_end_ms}-{2**64 - 1}"


def _clock(ms: int) -> str:
    return time.strftime("%Y/%m/%d %H:%M:%S", time.gmtime(ms / 1000))


class AggregatingConsumer:
    def __init__(self, r: redis.Redis, keys: Keys, sink: Sink, averages_maxlen: int = DEFAULT_MAXLEN,
                 batch: int = BATCH, block_ms: int = BLOCK_MS, lease: Lease | None = None, fast: bool = True,
                 pace_ms: int = 0):
        self.r, self.keys, self.sink = r, keys, sink
        self.pace_s = pace_ms / 1000      # slow motion: a pause after each full batch (0: none)
        self.cluster = connection.is_cluster(r)
        self.fast = fast        # the fast path: read-ahead and the bulk fold
        self.maxlen, self.batch, self.block_ms = averages_maxlen, batch, block_ms
        self.lease = lease
        self._commit_script = r.register_script(COMMIT)
        self.state: AggregatingState | None = None
        self.readings = 0
        self.published = 0
        self.replayed = 0       # hours the server already had, identical (a replay)
        self.dead_letters = 0
        self.losses = 0         # partitions (or their tails) lost or missing, each named in the log
        self.last_average: HourAverage | None = None
        self.idle_since: float | None = None
        self.client_id: int | None = None  # of the connection that blocks, for CLIENT UNBLOCK
        self.blocker: redis.Redis | None = None  # on a cluster: the node client where that connection is
        self._waiting = ""
        self._next: str | None = None        # the next partition, while waiting for it to appear
        self._blocked_on: str | None = None
        self.started = threading.Event()  # set once it has said where it starts (or failed to)

    def log(self, text: str) -> None:
        self.sink(LogLine("agg", text))

    # ------------------------------------------------------------------ main loop

    def run(self, stop: threading.Event, crash: threading.Event) -> None:
        s = AggregatingState.load(self.r, self.keys)
        if s is None:
            raise data_gone(self.keys, self.keys.aggregating_state)
        s = self.state = replace(s, cap=combine_caps(s.cap, self.maxlen or 0))
        window = s.window()
        self.log(f"Starting aggregating consumer in stream {s.stream} at message {s.last_id}.")
        self.started.set()
        self._waiting = ""
        reader = self._reader()
        try:
            self._loop(s, window, stop, crash, reader)
        finally:
            if reader:
                reader.close()  # a read still in flight (stop, crash, error) closes its connection

    def _reader(self) -> BatchReader | None:
        """The fast path's reader: each batch asked for with the partition's manifest record and whether it
        exists, in that order, one batch ahead.  On one server all three go in one pipeline; on a cluster the
        manifest (in another slot) is read first, then the partition's master gets the other two."""
        if not self.fast:
            return None
        if self.cluster:
            return BatchReader(self.r, self.batch, first=lambda stream: [self.r.hget(self.keys.manifest, stream)],
                               before=lambda stream: [("EXISTS", stream)])
        return BatchReader(self.r, self.batch,
                           before=lambda stream: [("HGET", self.keys.manifest, stream), ("EXISTS", stream)])

    def _loop(self, s: AggregatingState, window: HourlyWindow, stop: threading.Event, crash: threading.Event,
              reader: BatchReader | None) -> None:
        while not stop.is_set():
            day_lo = day_start_ms(parse_partition(s.stream, self.keys.partition_prefix))
            # The fast path holds the collector while a batch is alive (see batches.paused_gc).
            with paused_gc() if reader else contextlib.nullcontext():
                rec_raw, exists, entries = self._read(s, reader)
                rec = manifest.Record.decode(rec_raw)
                if rec and s.partition_run and rec.run != s.partition_run:
                    raise self._rewritten(s.stream)
                closed, bad = (fold_raw if reader else fold)(window, entries, (day_lo, day_lo + DAY_MS))
                got = len(entries)
                last = entries[-1][0].decode() if got else s.last_id
                del entries
            run = s.partition_run or (rec.run if rec and got else "")
            new = replace(s, last_id=last, total=window.total, count=window.count, partition_run=run,
                          read=s.read + got if s.read >= 0 else -1)
            lost: list[tuple[str, str, int | None]] = []   # (partition, why, the hour lost or None)
            self._next = None
            if got < self.batch:
                new, window, extra = self._after_drain(new, window, rec, bool(exists), lost)
                closed += extra
            closed = self._whole(closed, bad, rec, s.stream, lost)
            if crash.is_set():
                raise SimulatedCrash()
            changed = new != s or bool(closed or bad or lost)
            if changed or (self.lease and self.lease.due()):
                self._commit(closed, bad, new, s, lost)
                self.readings += got - len(bad)
                s = self.state = new
            if changed:
                self.idle_since = None
                if got:
                    self._waiting = ""
                if self.pace_s and got == self.batch:
                    stop.wait(self.pace_s)
                continue
            # Block on one stream only (two could be in different hash slots of a cluster): the
            # current partition while it may grow, else the next one, which wakes us when it appears.
            # A partition still being written ends with a manifest field, not an entry, and no read
            # wakes on that: there the block is kept short so its final hour closes soon after.
            key, after = (self._next, "0-0") if self._next else (s.stream, s.last_id)
            if self.idle_since is None or key != self._blocked_on:
                self.idle_since = self.idle_since or time.monotonic()
                self.client_id, self.blocker = connection.blocking_id(self.r, key)
                self._blocked_on = key
            self.r.xread({key: after}, count=1,
                         block=self.block_ms if self._next else min(self.block_ms, WRITING_POLL_MS))

    def _read(self, s: AggregatingState, reader: BatchReader | None = None):
        """The partition's manifest record, whether it exists, and the next batch after ``s.last_id``.

        The manifest is read *before* the batch: if it says "complete", the
        batch read after it saw everything the partition will hold.  On one
        server a pipeline keeps that order in one round trip (the fast path's
        :class:`~labkit.core.batches.BatchReader` sends the same pipeline, one batch
        ahead, and hands back the raw entries); the plain path reads the three in
        that order, one round trip each (a cluster pipeline would send to its nodes in parallel).
        """
        if reader is not None:
            (rec_raw, exists), entries = reader.read(s.stream, s.last_id)
            return rec_raw, exists, entries
        # The batch is read raw and made entries by as_entries, not by redis-py's parsing, whose dicts
        # would hide a field given twice (the validity rule rejects such an entry: window.valid_temp).
        rec_raw = self.r.hget(self.keys.manifest, s.stream)
        exists = self.r.exists(s.stream)
        start = "-" if s.last_id in ("0", "0-0") else "(" + s.last_id
        return rec_raw, exists, as_entries(xrange_raw(self.r, s.stream, start, self.batch))

    # ------------------------------------------------------------------ decisions when a partition is drained

    def _after_drain(self, s: AggregatingState, window: HourlyWindow, rec, exists: bool, lost: list):
        """The partition has nothing more to read right now: close it, give up on it, or wait.

        Returns the new state, window and the hours this closes; appends
        ``(partition, why, None)`` to ``lost`` for each loss, after logging it.
        """
        p = s.stream
        day_end = day_start_ms(parse_partition(p, self.keys.partition_prefix)) + DAY_MS
        read_any = s.last_id != "0"
        if s.last_id == _given_up(day_end):
            return self._move_on(s, window, [], lost)          # given up on earlier: only move on
        short = rec and rec.complete and 0 <= s.read < rec.count
        if rec and rec.complete and read_any and id_ms(s.last_id) >= rec.last_ms and not short:
            return self._move_on(s, HourlyWindow(), [h for h in [window.close()] if h], lost)
        if short and id_ms(s.last_id) >= rec.last_ms:
            why = (f"{p} lost readings: the consumer read {s.read:,} of the {rec.count:,} its producer wrote "
                   "(deleted, or evicted, while it waited to be read)")
            if rec.promised_hours():
                # Each hour is held to its own promise (_whole): the last one is published if it is whole.
                self.losses += 1
                self.log(why + ".")
                lost.append((p, why, None))
                gone = replace(s, stream=p, last_id=_given_up(day_end), total=0, count=0)
                return self._move_on(gone, HourlyWindow(), [h for h in [window.close()] if h], lost)
        elif rec and rec.complete:
            why = (f"{p} lost readings after {self._where(s)}: it expired or was deleted while being read "
                   f"(its producer wrote up to {_clock(rec.last_ms)})")
        elif not exists and (read_any or rec):
            why = f"{p} vanished after {self._where(s)} before it was complete (it expired or was deleted)"
        else:
            producer = self._producer()
            if producer and producer.covers(p):
                self._wait(f"Waiting for new messages in stream {p}, or new stream partition "
                           f"({producer.what} is writing it).")
                return s, window, []
            later = self._later_partitions(p)
            if not later:
                self._wait(f"Waiting for new messages in stream {p}, or new stream partition.")
                return s, window, []
            # No producer now, but one may have finished this partition (and let go of its lease) since
            # the record above was read: a producer marks complete before it lets go, so read it again.
            again = manifest.Record.decode(self.r.hget(self.keys.manifest, p))
            if again != rec or bool(self.r.exists(p)) != exists:
                return s, window, []            # look again from the top of the loop
            if rec is None and exists and not self.r.exists(self.keys.manifest):
                why = (f"{self.keys.manifest} is gone (deleted by hand or by another tool), so nothing says {p} "
                       f"is complete after {self._where(s)}")
            else:
                why = (f"{p} is incomplete: its producer stopped after {self._where(s)} without finishing it"
                       if exists else f"{p} is missing")
            why += f" (no producer is writing it, and {later[0]} exists)"
        self._lose(p, window, lost, why)
        gone = replace(s, stream=p, last_id=_given_up(day_end), total=0, count=0)
        return self._move_on(gone, HourlyWindow(), [], lost)

    def _move_on(self, s: AggregatingState, window: HourlyWindow, closed: list, lost: list):
        """``s.stream`` is finished: switch to the next partition that exists, skipping missing days
        that can no longer arrive; else stay and wait."""
        p = s.stream
        nxt = next_partition(p, self.keys.partition_prefix)
        if self.r.exists(nxt):
            self.log(f"Changing partition to consume stream: {nxt}")
            return replace(s, stream=nxt, last_id="0", total=0, count=0, partition_run="", read=0), HourlyWindow(), closed
        producer = self._producer()
        if producer and producer.covers(nxt):
            self._wait(f"Waiting for stream partition {nxt} ({producer.what} is writing it).")
            self._next = nxt
            return s, window, closed
        later = self._later_partitions(p)
        if not later:
            self._wait(f"Waiting for new messages in stream {p}, or new stream partition.")
            self._next = nxt
            return s, window, closed
        if self.r.exists(nxt):                  # written (and its producer gone) since we looked
            return s, window, closed
        missing, day = [], nxt
        while day < later[0]:
            missing.append(day)
            day = next_partition(day, self.keys.partition_prefix)
        names = ", ".join(missing[:10]) + (f" and {len(missing) - 10} more" if len(missing) > 10 else "")
        why = (f"{names} {'is' if len(missing) == 1 else 'are'} missing: no producer is writing "
               f"{'it' if len(missing) == 1 else 'them'}, and {later[0]} exists")
        self.log(why + "; moving on.")
        self.losses += 1
        lost.append((nxt, why, None))
        self.log(f"Changing partition to consume stream: {later[0]}")
        return (replace(s, stream=later[0], last_id="0", total=0, count=0, partition_run="", read=0), HourlyWindow(),
                closed)

    def _whole(self, closed: list[HourAverage], bad: list, rec, p: str, lost: list) -> list[HourAverage]:
        """The closed hours of ``p`` that hold every reading its manifest promised them.  An hour short of its
        promise lost readings before they were read (an XTRIM, XDEL or eviction in the middle of the partition):
        it is named and not published, never published as if it were whole.  Readings dead-lettered for being
        invalid were read, so they count.  Without a promise (live mode, a partition being written) every
        closed hour is kept, and so is one already published (the commit tells a replay from a late reading)."""
        promised = rec.promised_hours() if closed and rec is not None else {}
        keep = []
        for h in closed:
            n = promised.get(h.hour_start_ms, 0)
            if (h.count >= n or h.count + self._dead_in(p, h.hour_start_ms, bad) >= n
                    or self.r.xrange(self.keys.averages, h.entry_id, h.entry_id)):
                keep.append(h)      # whole; or published already (a replay, or a late reading: the commit says)
                continue
            why = (f"{p} lost readings of the hour {h.date} {h.hour}:00 before they were read (deleted, or "
                   f"evicted): the consumer read {h.count:,} of the {n:,} its producer wrote; that hour is not "
                   "published")
            self.losses += 1
            self.log(why + ".")
            lost.append((p, why, h.hour_start_ms))
        return keep

    def _dead_in(self, p: str, hour_ms: int, bad: list) -> int:
        """Readings of ``p``'s hour ``hour_ms`` that were dead-lettered (this batch's ``bad``, and earlier ones
        from the dead-letter stream): read, but not counted in the hour.  Only asked when an hour falls short."""
        def within(eid) -> bool:
            try:
                return hour_ms <= id_ms(eid) < hour_ms + HOUR_MS
            except ValueError:
                return False
        n = sum(within(eid) for eid, _, _ in bad)
        for _, f in self.r.xrange(self.keys.deadletter):
            if text(f.get(b"source", b""), "replace") == p and within(f.get(b"id", b"-")):
                n += 1
        return n

    def _lose(self, partition: str, window: HourlyWindow, lost: list, why: str) -> None:
        if window.count:
            h = HourAverage(window.hour_start_ms, window.total, window.count)
            why += f"; the open hour {h.date} {h.hour}:00 ({h.count} readings) is not published"
        self.losses += 1
        self.log(why + ".")
        lost.append((partition, why, None))

    def _where(self, s: AggregatingState) -> str:
        return "its first reading" if s.last_id == "0" else _clock(id_ms(s.last_id))

    def _wait(self, text: str) -> None:
        if text != self._waiting:
            self.log(text)
            self._waiting = text

    def _producer(self) -> Holder | None:
        return Holder.decode(self.r.get(self.keys.producer_lease))

    def _later_partitions(self, p: str) -> list[str]:
        """Partitions after ``p`` that the manifest knows and that still exist, oldest first (every partition
        after ``p`` when the manifest itself is gone: one SCAN, only then)."""
        names = sorted(n for n in map(text, self.r.hkeys(self.keys.manifest)) if n > p)
        if not names and not self.r.exists(self.keys.manifest):
            return [n for n in keyspace.list_partitions(self.r, self.keys) if n > p]
        if not names:
            return []
        pipe = self.r.pipeline(transaction=False)
        for n in names:
            pipe.exists(n)
        return [n for n, e in zip(names, pipe.execute()) if e]

    def _late_reading(self, p: str, hour_id: str) -> LabkitError | None:
        """A CONFLICT on an hour that ``p`` holds a reading for after its manifest's last one: a late reading,
        appended after the hour was closed and published (None if that is not what happened)."""
        rec = manifest.Record.decode(self.r.hget(self.keys.manifest, p))
        if rec is None or not rec.complete:
            return None
        hour = id_ms(hour_id)
        found = self.r.xrange(p, f"{rec.last_ms + 1}", f"{hour + HOUR_MS - 1}", count=1)
        if not found or id_ms(found[0][0]) < hour:
            return None
        h = HourAverage(hour, 0, 1)
        return LabkitError(f"{p} holds a late reading, {found[0][0].decode()} at {_clock(id_ms(found[0][0]))}, "
                           f"for the hour {h.date} {h.hour}:00, which was already published (its producer had "
                           f"marked {p} complete with its last reading at {_clock(rec.last_ms)}); this consumer "
                           "stops without writing",
                           f"that average leaves the late reading out: delete it (XDEL {p} "
                           f"{found[0][0].decode()}) and resume, or produce the day again and start from it")

    def _rewritten(self, p: str) -> LabkitError:
        return LabkitError(f"{p} was rewritten by another produce run while this consumer was reading it, so "
                           "the averages published from it so far come from the earlier data",
                           f"start again from a partition, e.g. python -m labkit consume {p}")

    # ------------------------------------------------------------------ commit

    def _commit(self, closed: list[HourAverage], bad: list, new: AggregatingState, old: AggregatingState,
                lost: list = ()) -> None:
        """Publish ``closed``, dead-letter ``bad`` and save ``new`` in one atomic script (see :data:`COMMIT`)."""
        token = self.lease.token if self.lease else ""
        ttl = self.lease.ttl_ms if self.lease else 10_000
        holder = self.lease.holder.encode() if self.lease else ""
        # A loss is a dead letter with ID "-" whose source is the partition lost, and with "hour" when one hour of it
        # was not published (verify reads them back).
        letters = ([deadletters.record(old.stream, eid, reason, fields) for eid, fields, reason in bad]
                   + [deadletters.record(partition, "-", why, {}, **({"hour": str(hour)} if hour is not None else {}))
                      for partition, why, hour in lost])
        args: list = [token, ttl, self.maxlen or 0, deadletters.MAXLEN, holder,
                      *pairs(old.position()), *pairs(new.fields()), len(closed)]
        for h in closed:
            args += [h.entry_id, *pairs(h.fields())]
        args.append(len(letters))
        for letter in letters:
            args += pairs(letter)
        keys = [self.keys.averages, self.keys.aggregating_state, self.keys.aggregating_lease, self.keys.deadletter]
        status, published, replayed, detail = self._commit_script(keys=keys, args=args)
        status, detail = text(status), text(detail, errors="replace")
        if status == "LEASE":
            held = Holder.decode(detail)
            raise LabkitError(f"this consumer lost {self.keys.aggregating_lease} to "
                              f"{held.describe() if held else 'another consumer'}; it stops without writing",
                              "only one aggregating consumer runs per namespace: stop the other one, "
                              "then resume (python -m labkit consume)")
        if status == "STATE":
            raise LabkitError(f"{self.keys.aggregating_state} was changed by someone else (now at {detail}); "
                              "this consumer stops without writing",
                              "only one aggregating consumer runs per namespace: resume with "
                              "python -m labkit consume, or start again from a partition")
        if status == "GONE":
            raise data_gone(self.keys, self.keys.aggregating_state)
        if status == "CONFLICT":
            late = self._late_reading(old.stream, detail)
            if late:
                raise late
            raise LabkitError(f"{self.keys.averages} already holds a different average for the hour with ID "
                              f"{detail}; this consumer stops without writing",
                              "something else writes to temps:averages: start again from a partition, "
                              "or set LABKIT_NAMESPACE")
        if status == "RETAKEN":
            self.log(f"{self.keys.aggregating_lease} had expired (was this process suspended?); "
                     "nobody else wrote meanwhile, so it was taken again.")
        if self.lease:
            self.lease.renewed_at = time.monotonic()
        self.published += int(published)
        self.replayed += int(replayed)
        if closed and int(published):
            self.last_average = closed[-1]
        real_bad = len(bad)
        if real_bad:
            self.dead_letters += real_bad
            self.log(f"Dead-lettered {real_bad} bad reading(s) from {old.stream} to {self.keys.deadletter}.")
