"""Consumer groups in production: workers, a supervisor, chaos and dead letters.

A :class:`Pool` runs N workers of one consumer group on one stream, each in a
thread of this process with its own connection (a blocking read holds one):

* **A worker** first replays its *own* pending entries (``XREADGROUP … 0``:
  what it was given before a crash and never acknowledged), then reads new
  entries (``XREADGROUP … >``), calls ``work(entry_id, fields)`` on each and
  ``XACK``\\ s the entry only after ``work`` returned.  If ``work`` raises, the
  entry stays pending: nothing is acknowledged that was not done.
* **The supervisor** watches the group's pending entries list (extended
  ``XPENDING`` with ``IDLE``).  An entry delivered more than ``deadletter_after``
  (K) times and idle is a *poison pill*: it is copied to the dead-letter stream
  (source stream, ID, delivery count, reason, payload) and then acknowledged.
  Every other entry idle for ``claim_idle_ms`` is moved to a healthy worker with
  ``XAUTOCLAIM``, looping until the cursor comes back ``0-0``.  Entries deleted
  from the stream while pending (trimmed) are recorded as dead letters too: on
  Redis 7 they come back in ``XAUTOCLAIM``'s third element, from a consumer's own
  pending list as ``(id, {})``, and ``XCLAIM`` silently drops them.
* **Chaos** kills a random live worker now and then (a thread that stops dead,
  between any two steps, holding whatever it was given) and restarts it under
  the same consumer name ``restart_after`` seconds later.

Invariant (tested under chaos): every entry is acknowledged after successful
work or dead-lettered; none is lost and none is left pending.  Delivery is
*at least once*: a worker killed between work and ``XACK`` has its entry done
again, so ``work`` should be idempotent (the counters report such repeats).

Cluster: a group lives on one stream, and every group command here names that
single key; the dead-letter stream is written with its own single-key ``XADD``
*before* the ``XACK`` on the source stream (a crash in between repeats a dead
letter, never loses one).

Library code never prints: everything goes to a :class:`~labkit.log.Sink`.
"""

from __future__ import annotations

import collections
import random
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import redis

from ..core.keys import Keys
from ..core.keyspace import delete_namespace
from ..core.window import BadReading, parse_temp
from ..errors import LabkitError
from ..log import LogLine, Sink, null_sink
from ..servers import connection

DEFAULT_GROUP = "workers"
#: Consumer name the supervisor claims poison pills under, just before dead-lettering them.
DEADLETTER_CONSUMER = "deadletter"
PAGE = 100

Work = Callable[[str, dict], Any]


# --------------------------------------------------------------------------- keys

def lab_keys(lab: str, base: Keys | None = None) -> Keys:
    """A private namespace for one companion lab, e.g. ``groups07`` or ``alice.groups07``.

    It is derived from ``LABKIT_NAMESPACE`` (if set) but never equal to it, so
    nothing a companion lab writes can collide with the main lab's keys, and
    :func:`delete_keys` can remove exactly what the lab created.
    """
    base = base if base is not None else Keys.from_env()
    return Keys(f"{base.namespace}.{lab}" if base.namespace else lab)


def key(keys: Keys, name: str) -> str:
    """``<namespace>:groups:<name>`` (just ``groups:<name>`` without a namespace)."""
    return keys.key(f"groups:{name}")


def deadletter_key(keys: Keys) -> str:
    return key(keys, "deadletter")


def delete_keys(r: redis.Redis, keys: Keys) -> int:
    """Delete every key of ``keys``' namespace (on every master of a cluster); refuses the empty namespace."""
    if not keys.namespace:
        raise LabkitError("refusing to delete keys without a namespace",
                          "use lab_keys('...') so only the lab's own keys are removed")
    return delete_namespace(r, keys)


def lab_days(default: float = 10.0) -> float:
    """Dataset size for the companion notebooks: ``LABKIT_DAYS`` (default 10; CI uses a small one)."""
    import math
    import os
    raw = os.environ.get("LABKIT_DAYS", "").strip()
    try:
        days = float(raw) if raw else default
    except ValueError:
        raise LabkitError(f"LABKIT_DAYS={raw!r} is not a number", "use e.g. LABKIT_DAYS=10") from None
    if not (math.isfinite(days) and 0 < days <= 3660):
        raise LabkitError(f"LABKIT_DAYS={raw!r} is out of range", "use a number of days above 0, at most 3660")
    return days


def lab_dataset(max_days: float | None = None):
    """The course's dataset (2025-01-01, one reading a second), ``LABKIT_DAYS`` long (at most ``max_days``)."""
    from ..core.producer import DEFAULT_START, Dataset, parse_start
    days = lab_days()
    return Dataset(parse_start(DEFAULT_START), min(days, max_days) if max_days else days)


# --------------------------------------------------------------------------- group helpers

def _s(x) -> str:
    return x.decode() if isinstance(x, bytes) else str(x)


def create_group(r: redis.Redis, stream: str, group: str = DEFAULT_GROUP, start: str = "$",
                 mkstream: bool = False) -> bool:
    """``XGROUP CREATE stream group start [MKSTREAM]``; False if the group already exists.

    ``start="0"`` delivers the whole history, ``"$"`` only entries added from
    now on; ``mkstream`` creates an empty stream if there is none (without it,
    creating a group on a missing key is an error).
    """
    try:
        return bool(r.xgroup_create(stream, group, id=start, mkstream=mkstream))
    except redis.ResponseError as exc:
        if "BUSYGROUP" in str(exc):
            return False
        raise


def copy_stream(r: redis.Redis, src: str, dst: str, limit: int | None = None, batch: int = 5000) -> int:
    """Copy entries (same IDs) from ``src`` to the end of ``dst``; returns how many."""
    start, n = "-", 0
    while limit is None or n < limit:
        want = batch if limit is None else min(batch, limit - n)
        page = r.xrange(src, start, "+", count=want)
        if not page:
            break
        p = r.pipeline(transaction=False)
        for eid, fields in page:
            p.xadd(dst, fields, id=eid)
        p.execute()
        n += len(page)
        start = "(" + _s(page[-1][0])
    return n


def pending_entries(r: redis.Redis, stream: str, group: str, idle_ms: int | None = None,
                    consumer: str | None = None, page: int = PAGE) -> list[dict]:
    """Every pending entry (extended XPENDING, paged), optionally only those idle ≥ ``idle_ms``."""
    out, start = [], "-"
    while True:
        rows = r.xpending_range(stream, group, start, "+", page, consumername=consumer, idle=idle_ms)
        out += rows
        if len(rows) < page:
            return out
        start = "(" + _s(rows[-1]["message_id"])


def pending_count(r: redis.Redis, stream: str, group: str) -> int:
    return int(r.xpending(stream, group)["pending"])


def autoclaim_all(r: redis.Redis, stream: str, group: str, consumer: str, min_idle_ms: int,
                  count: int = PAGE) -> tuple[list, list, int]:
    """XAUTOCLAIM until the cursor is ``0-0``.

    Returns ``(entries, deleted_ids, rounds)``: the claimed ``(id, fields)``
    (``fields`` is ``{}`` or ``None`` for an entry trimmed away but still
    pending, on servers that report it that way), the IDs the server removed
    from the pending list because their entries no longer exist (Redis 7's
    third element), and how many calls it took.  Never uses ``justid=True``:
    redis-py then returns only the IDs and drops the cursor, so a loop could not
    know where to continue.
    """
    cursor, entries, deleted, rounds = "0-0", [], [], 0
    while True:
        res = r.xautoclaim(stream, group, consumer, min_idle_ms, cursor, count=count)
        rounds += 1
        cursor = _s(res[0])
        entries += res[1]
        if len(res) > 2 and res[2]:
            deleted += [_s(x) for x in res[2]]
        if cursor == "0-0":
            return entries, deleted, rounds


def consumers_table(r: redis.Redis, stream: str, group: str) -> list[dict]:
    """XINFO CONSUMERS as plain rows: name, pending, idle ms (and inactive ms on 7.2+)."""
    try:
        rows = r.xinfo_consumers(stream, group)
    except redis.ResponseError:
        return []
    return [{"name": _s(c["name"]), "pending": int(c["pending"]), "idle_ms": int(c["idle"]),
             "inactive_ms": int(c["inactive"]) if c.get("inactive") is not None else None} for c in rows]


def group_info(r: redis.Redis, stream: str, group: str) -> dict | None:
    try:
        for g in r.xinfo_groups(stream):
            if _s(g["name"]) == group:
                return {k: (_s(v) if isinstance(v, bytes) else v) for k, v in g.items()}
    except redis.ResponseError:
        pass
    return None


# --------------------------------------------------------------------------- work steps

def classify_temp(temp_f: float) -> str:
    if temp_f < 32:
        return "freezing"
    if temp_f < 60:
        return "cool"
    if temp_f < 80:
        return "warm"
    return "hot"


def classify_reading(entry_id: str, fields: dict) -> str:
    """Work on a raw reading: its class.  A bad reading raises :class:`~labkit.window.BadReading`."""
    return classify_temp(parse_temp(fields))


def classify_average(entry_id: str, fields: dict) -> str:
    """Work on an hourly average from ``temps:averages``."""
    raw = fields.get(b"average_temp_f", fields.get("average_temp_f"))
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise BadReading(f"average_temp_f is not a number: {raw!r:.40}") from None
    if value != value:
        raise BadReading("average_temp_f is NaN")
    return classify_temp(value)


def slow(work: Work, seconds: float) -> Work:
    """``work`` that takes at least ``seconds`` per entry (to watch workers at a human pace)."""
    def _slow(entry_id, fields):
        time.sleep(seconds)
        return work(entry_id, fields)
    _slow.__name__ = f"slow({getattr(work, '__name__', 'work')}, {seconds})"
    return _slow


class TransientError(RuntimeError):
    """A failure that goes away if the entry is tried again."""


def flaky(work: Work, probability: float, seed: int | None = None) -> Work:
    """``work`` that fails at random with ``probability`` (a transient error: a retry succeeds)."""
    rng = random.Random(seed)
    lock = threading.Lock()

    def _flaky(entry_id, fields):
        with lock:
            fail = rng.random() < probability
        if fail:
            raise TransientError("transient failure")
        return work(entry_id, fields)
    return _flaky


# --------------------------------------------------------------------------- the pool

class _Killed(BaseException):
    """Raised inside a worker thread by chaos: the thread stops dead, acknowledging nothing."""


@dataclass
class Worker:
    name: str
    generation: int = 1
    thread: threading.Thread | None = None
    state: str = "starting"            # starting, replaying, running, killed, stopped, error
    kill_event: threading.Event = field(default_factory=threading.Event)
    stop_event: threading.Event = field(default_factory=threading.Event)
    inbox: collections.deque = field(default_factory=collections.deque)
    done: int = 0
    failed: int = 0
    killed_at: float | None = None
    error: str | None = None

    @property
    def alive(self) -> bool:
        return self.state in ("starting", "replaying", "running") and not self.kill_event.is_set()


class Pool:
    """N workers of one consumer group, a supervisor, and optional chaos.  See the module docstring."""

    COUNTERS = ("delivered", "done", "failed", "replayed", "claimed", "claim_rounds", "deadlettered",
                "trimmed", "killed", "restarted", "repeated")

    def __init__(self, stream: str, group: str = DEFAULT_GROUP, work: Work = classify_reading, *,
                 workers: int = 3, count: int = 10, block_ms: int = 100, claim_idle_ms: int = 1000,
                 deadletter_after: int = 3, deadletter: str | None = None, keys: Keys | None = None,
                 supervise_every: float = 0.2, restart_after: float = 0.5, chaos: bool = False,
                 chaos_every: tuple[float, float] = (0.1, 0.5), seed: int | None = None,
                 create: str | None = "0", sink: Sink = null_sink,
                 target: connection.Target | None = None, track_ids: bool = True, name_prefix: str = "w"):
        if workers < 0 or count < 1 or block_ms < 1 or claim_idle_ms < 1 or deadletter_after < 1:
            raise LabkitError("workers ≥ 0, count ≥ 1, block_ms ≥ 1, claim_idle_ms ≥ 1 and deadletter_after ≥ 1",
                              "check the Pool arguments")
        if block_ms >= connection.SOCKET_TIMEOUT_S * 1000:
            raise LabkitError(f"block_ms {block_ms} is not below the socket timeout", "use a shorter block")
        self.stream, self.group, self.work = stream, group, work
        self.count, self.block_ms, self.claim_idle_ms = count, block_ms, claim_idle_ms
        self.deadletter_after = deadletter_after
        self.keys = keys or Keys.from_env()
        self.deadletter = deadletter or deadletter_key(self.keys)
        self.supervise_every, self.restart_after = supervise_every, restart_after
        self.chaos, self.chaos_every = chaos, chaos_every
        self.sink, self.track_ids, self.name_prefix = sink, track_ids, name_prefix
        self.target = target or connection.target()
        self.rng = random.Random(seed)
        self.desired = workers
        self.create = create
        self.workers: dict[str, Worker] = {}
        self.counts = dict.fromkeys(self.COUNTERS, 0)
        self.labels: collections.Counter = collections.Counter()
        self.done_ids: set[str] = set()
        self.deadletter_ids: set[str] = set()
        self.history: list[tuple[float, int]] = []     # (seconds since start, done) per supervisor tick
        self.errors: list[str] = []
        self._lock = threading.Lock()
        self._wlock = threading.RLock()
        self._stop = threading.Event()
        self._supervisor: threading.Thread | None = None
        self._next_chaos = 0.0
        self.started_at: float | None = None
        self._r = connection.connect(self.target)       # the supervisor's own connection

    # -- logging and counters
    def log(self, text: str) -> None:
        self.sink(LogLine("group", text))

    def _add(self, name: str, n: int = 1) -> None:
        with self._lock:
            self.counts[name] += n

    # -- lifecycle
    def start(self) -> "Pool":
        if self.create is not None:
            create_group(self._r, self.stream, self.group, self.create, mkstream=True)
        self.started_at = time.monotonic()
        self._next_chaos = self.started_at + self._chaos_delay()
        for i in range(1, self.desired + 1):
            self._spawn(f"{self.name_prefix}{i}")
        self._supervisor = threading.Thread(target=self._supervise_loop, name="labkit-group-supervisor",
                                            daemon=True)
        self._supervisor.start()
        self.log(f"Started {self.desired} worker(s) of group {self.group} on {self.stream}.")
        return self

    def _spawn(self, name: str) -> Worker:
        with self._wlock:
            old = self.workers.get(name)
            if old is not None and old.thread is not None and old.thread.is_alive():
                return old
            w = Worker(name, generation=(old.generation + 1) if old else 1)
            self.workers[name] = w
        w.thread = threading.Thread(target=self._worker_main, args=(w,), name=f"labkit-{name}", daemon=True)
        w.thread.start()
        return w

    def stop(self, timeout: float = 5.0) -> None:
        """Stop everything: workers finish the entry in hand; pending entries stay pending."""
        self._stop.set()
        for w in list(self.workers.values()):
            w.stop_event.set()
        deadline = time.monotonic() + timeout
        for t in [self._supervisor] + [w.thread for w in list(self.workers.values())]:
            if t is not None:
                t.join(max(0.0, deadline - time.monotonic()))
        self._r.close()

    def __enter__(self) -> "Pool":
        return self.start() if self._supervisor is None else self

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._supervisor is not None and self._supervisor.is_alive()

    def live_workers(self) -> list[Worker]:
        return [w for w in list(self.workers.values()) if w.alive and w.thread and w.thread.is_alive()]

    def set_workers(self, n: int) -> None:
        """Scale to ``n`` workers: new ones start at once; extra ones finish their entry and stop."""
        n = max(0, int(n))
        self.desired = n
        names = [f"{self.name_prefix}{i}" for i in range(1, n + 1)]
        for name, w in list(self.workers.items()):
            if name not in names and w.state in ("starting", "replaying", "running"):
                w.stop_event.set()
        for name in names:
            w = self.workers.get(name)
            if w is None or w.state in ("stopped", "error"):
                self._spawn(name)
        self.log(f"Workers: {n}.")

    def set_chaos(self, on: bool) -> None:
        self.chaos = bool(on)
        self._next_chaos = time.monotonic() + self._chaos_delay()
        self.log(f"Chaos {'on' if on else 'off'}.")

    def kill(self, name: str | None = None) -> str | None:
        """Kill one worker (a random live one by default); it restarts ``restart_after`` s later."""
        live = self.live_workers()
        if name is None:
            if not live:
                return None
            w = self.rng.choice(live)
        else:
            w = self.workers.get(name)
            if w is None or not w.alive:
                return None
        w.killed_at = time.monotonic()
        w.kill_event.set()
        return w.name

    # -- the worker
    def _check(self, w: Worker) -> None:
        if w.kill_event.is_set():
            raise _Killed()

    def _worker_main(self, w: Worker) -> None:
        r = None
        try:
            r = connection.connect(self.target)
            w.state = "replaying"
            # 1. Replay my own pending list (entries I was given but never acknowledged).
            last = "0"
            while not w.stop_event.is_set():
                self._check(w)
                resp = r.xreadgroup(self.group, w.name, {self.stream: last}, count=self.count)
                entries = resp[0][1] if resp else []
                if not entries:
                    break
                self._add("replayed", len(entries))
                for eid, fields in entries:
                    self._handle(r, w, eid, fields)
                last = _s(entries[-1][0])
            w.state = "running"            # only now may the supervisor claim entries for me
            # 2. New entries, plus whatever the supervisor claimed for me.
            while not w.stop_event.is_set() and not self._stop.is_set():
                self._check(w)
                while w.inbox:
                    eid, fields = w.inbox.popleft()
                    self._handle(r, w, eid, fields)
                resp = r.xreadgroup(self.group, w.name, {self.stream: ">"}, count=self.count,
                                    block=self.block_ms)
                for eid, fields in (resp[0][1] if resp else []):
                    self._handle(r, w, eid, fields)
            w.state = "stopped"
        except _Killed:
            w.state = "killed"
            w.inbox.clear()
            self._add("killed")
            self.log(f"{w.name} killed (holding its unacknowledged entries).")
        except redis.RedisError as exc:
            w.state, w.error = "error", str(connection.explain(exc, self.target))
            self.errors.append(f"{w.name}: {w.error}")
            self.log(f"{w.name} stopped: {w.error}")
        except BaseException as exc:  # never lost: reported through status()
            w.state, w.error = "error", f"{type(exc).__name__}: {exc}"
            self.errors.append(f"{w.name}: {w.error}")
            self.log(f"{w.name} stopped by an unexpected error: {w.error}")
        finally:
            if r is not None:
                r.close()

    def _handle(self, r: redis.Redis, w: Worker, eid, fields) -> None:
        eid = _s(eid)
        self._add("delivered")
        self._check(w)                     # killed before work: the entry stays pending
        if not fields:                     # trimmed away while pending: nothing left to work on
            self._deadletter(r, eid, None, "trimmed: deleted from the stream while pending", w.name)
            r.xack(self.stream, self.group, eid)
            self._add("trimmed")
            return
        try:
            result = self.work(eid, fields)
        except _Killed:
            raise
        except Exception as exc:           # stays pending: the supervisor retries or dead-letters it
            w.failed += 1
            self._add("failed")
            if w.failed <= 3:
                self.log(f"{w.name}: work failed on {eid}: {type(exc).__name__}: {exc}")
            return
        self._check(w)                     # killed after work but before XACK: done again later
        r.xack(self.stream, self.group, eid)
        w.done += 1
        with self._lock:
            self.counts["done"] += 1
            if result is not None:
                self.labels[str(result)] += 1
            if self.track_ids:
                if eid in self.done_ids:
                    self.counts["repeated"] += 1
                self.done_ids.add(eid)

    # -- dead letters
    def _deadletter(self, r: redis.Redis, eid: str, deliveries: int | None, reason: str, consumer: str,
                    fields: dict | None = None) -> None:
        if deliveries is None:
            rows = r.xpending_range(self.stream, self.group, eid, eid, 1)
            deliveries = int(rows[0]["times_delivered"]) if rows else 0
        payload = {_s(k): _s(v) for k, v in (fields or {}).items()}
        r.xadd(self.deadletter, {"source": self.stream, "group": self.group, "id": eid,
                                 "deliveries": deliveries, "reason": reason[:300], "consumer": consumer,
                                 "payload": repr(payload)[:500]})
        with self._lock:
            self.counts["deadlettered"] += 1
            self.deadletter_ids.add(eid)
        self.log(f"Dead-lettered {eid} after {deliveries} deliveries: {reason}.")

    # -- the supervisor
    def _chaos_delay(self) -> float:
        lo, hi = self.chaos_every
        return self.rng.uniform(lo, hi)

    def _supervise_loop(self) -> None:
        while not self._stop.wait(self.supervise_every):
            try:
                now = time.monotonic()
                self._maintain(now)
                if self.chaos and now >= self._next_chaos:
                    self._next_chaos = now + self._chaos_delay()
                    victim = self.kill()
                    if victim:
                        self.log(f"Chaos killed {victim}.")
                self.supervise_once()
                with self._lock:
                    self.history.append((now - self.started_at, self.counts["done"]))
                    del self.history[:-600]
            except redis.RedisError as exc:
                msg = str(connection.explain(exc, self.target))
                self.errors.append(f"supervisor: {msg}")
                self.log(f"supervisor: {msg}")
            except Exception as exc:  # keep supervising; report it
                self.errors.append(f"supervisor: {type(exc).__name__}: {exc}")
                self.log(f"supervisor error: {type(exc).__name__}: {exc}")

    def _maintain(self, now: float) -> None:
        """Restart killed workers (same consumer name) once ``restart_after`` has passed."""
        for i in range(1, self.desired + 1):
            name = f"{self.name_prefix}{i}"
            w = self.workers.get(name)
            if w is None:
                self._spawn(name)
            elif w.state == "killed" and not (w.thread and w.thread.is_alive()) \
                    and now - (w.killed_at or now) >= self.restart_after:
                self._add("restarted")
                self._spawn(name)
                self.log(f"Restarted {name} (it first replays its own pending entries).")

    def supervise_once(self) -> dict:
        """One supervisor pass: dead-letter poison pills, then XAUTOCLAIM the rest to healthy workers."""
        r = self._r
        out = {"deadlettered": 0, "claimed": 0, "deleted": 0, "rounds": 0}
        # 1. Entries delivered more than K times and idle: dead letters.
        for row in pending_entries(r, self.stream, self.group, idle_ms=self.claim_idle_ms):
            n = int(row["times_delivered"])
            if n <= self.deadletter_after:
                continue
            eid = _s(row["message_id"])
            found = r.xrange(self.stream, eid, eid)
            fields = found[0][1] if found else None
            # Take ownership first: only if it is *still* idle (nobody re-delivered or acked it meanwhile).
            got = r.xclaim(self.stream, self.group, DEADLETTER_CONSUMER, self.claim_idle_ms, [eid], justid=True)
            if not got and found:
                continue
            reason = (f"delivered {n} times (more than {self.deadletter_after})" if found else
                      "trimmed: deleted from the stream while pending")
            self._deadletter(r, eid, n, reason, _s(row["consumer"]), fields)
            r.xack(self.stream, self.group, eid)
            out["deadlettered"] += 1
        # 2. Everything else idle too long: to a healthy worker.
        # Healthy = alive and done replaying its own list (else a claimed entry could be replayed too).
        healthy = [w for w in self.live_workers() if w.state == "running"]
        if not healthy:
            return out
        cursor = "0-0"
        while True:
            w = min(healthy, key=lambda x: len(x.inbox))
            res = r.xautoclaim(self.stream, self.group, w.name, self.claim_idle_ms, cursor, count=PAGE)
            out["rounds"] += 1
            cursor = _s(res[0])
            for eid, fields in res[1]:
                if not fields:             # a trimmed entry reported as (id, {}) / (id, None)
                    self._deadletter(r, _s(eid), None, "trimmed: deleted from the stream while pending", w.name)
                    r.xack(self.stream, self.group, eid)
                    self._add("trimmed")
                else:
                    w.inbox.append((eid, fields))
                    out["claimed"] += 1
            for eid in (res[2] if len(res) > 2 else []):   # Redis 7: already removed from the PEL
                self._deadletter(r, _s(eid), 0, "trimmed: deleted from the stream while pending "
                                 "(XAUTOCLAIM deleted IDs)", "")
                self._add("trimmed")
                out["deleted"] += 1
            if cursor == "0-0":
                break
        if out["claimed"]:
            self._add("claimed", out["claimed"])
            self.log(f"XAUTOCLAIM moved {out['claimed']} idle entries to healthy workers "
                     f"({out['rounds']} call(s)).")
        self._add("claim_rounds", out["rounds"])
        return out

    # -- observing
    def drained(self) -> bool:
        """All entries delivered, none pending, no claimed entry waiting in an inbox."""
        info = group_info(self._r, self.stream, self.group)
        if info is None:
            return False
        last = _s(self._r.xinfo_stream(self.stream)["last-generated-id"])
        return (int(info["pending"]) == 0 and _s(info["last-delivered-id"]) == last
                and not any(w.inbox for w in list(self.workers.values())))

    def wait_drained(self, timeout: float = 60.0, poll: float = 0.05) -> bool:
        """Block until :meth:`drained` (True) or ``timeout`` (False)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.drained():
                return True
            time.sleep(poll)
        return False

    def throughput(self, window: float = 1.0) -> float:
        """Entries acknowledged per second over the last ``window`` seconds."""
        with self._lock:
            h = list(self.history)
        if len(h) < 2:
            return 0.0
        t1, d1 = h[-1]
        t0, d0 = next(((t, d) for t, d in reversed(h) if t1 - t >= window), h[0])
        return (d1 - d0) / (t1 - t0) if t1 > t0 else 0.0

    def consumers(self) -> list[dict]:
        """XINFO CONSUMERS joined with each worker's state in this process."""
        rows = consumers_table(self._r, self.stream, self.group)
        for row in rows:
            w = self.workers.get(row["name"])
            row["state"] = w.state if w else "-"
            row["done"] = w.done if w else 0
        return rows

    def status(self) -> dict:
        with self._lock:
            counts = dict(self.counts)
            labels = dict(self.labels)
        return {"stream": self.stream, "group": self.group, "running": self.running,
                "workers": {n: w.state for n, w in list(self.workers.items())}, "live": len(self.live_workers()),
                "chaos": self.chaos, **counts, "labels": labels, "errors": list(self.errors)}

    def audit(self) -> dict:
        """Check the invariant for every entry now in the stream (needs ``track_ids``)."""
        return audit(self._r, self.stream, self.group, self.deadletter, self.done_ids)


def deadletters(r: redis.Redis, deadletter: str, source: str | None = None) -> list[dict]:
    """The dead-letter stream's records (optionally only those from ``source``), oldest first."""
    out = []
    for eid, f in r.xrange(deadletter):
        row = {_s(k): _s(v) for k, v in f.items()}
        if source is None or row.get("source") == source:
            row["deadletter_id"] = _s(eid)
            out.append(row)
    return out


def audit(r: redis.Redis, stream: str, group: str, deadletter: str, done_ids: set[str]) -> dict:
    """Every entry of ``stream`` must be acknowledged after work or dead-lettered, and none pending.

    Returns the counts; ``ok`` is True only if ``lost == 0 and pending == 0``.
    """
    ids, start = [], "-"
    while True:
        page = r.xrange(stream, start, "+", count=5000)
        ids += [_s(e[0]) for e in page]
        if len(page) < 5000:
            break
        start = "(" + ids[-1]
    dl = {row["id"] for row in deadletters(r, deadletter, stream)}
    entries = set(ids)
    lost = entries - done_ids - dl
    pending = pending_count(r, stream, group)
    return {"entries": len(entries), "acked_after_work": len(entries & done_ids),
            "deadlettered": len(entries & dl), "both": len(entries & done_ids & dl),
            "pending": pending, "lost": len(lost), "lost_ids": sorted(lost)[:10],
            "ok": not lost and pending == 0}
