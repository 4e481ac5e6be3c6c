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

The group commands are in :mod:`.group_commands`, the work functions in
:mod:`.work`, the dead-letter layout in :mod:`labkit.core.deadletters` and the
invariant's check in :mod:`.audit`.  Library code never prints: everything goes
to a :class:`~labkit.log.Sink`.
"""

from __future__ import annotations

import collections
import enum
import random
import threading
import time
from dataclasses import dataclass, field

import redis

from ..core import deadletters
from ..core.keys import Keys
from ..servers.replies import text
from ..errors import LabkitError
from ..log import LogLine, Sink, null_sink
from ..servers import connection
from .audit import audit
from .group_commands import PAGE, consumers_table, create_group, group_info, pending_entries
from .names import DEFAULT_GROUP, deadletter_key
from .work import Work, classify_reading

#: Consumer name the supervisor claims poison pills under, just before dead-lettering them.
DEADLETTER_CONSUMER = "deadletter"


class _Killed(BaseException):
    """Raised inside a worker thread by chaos: the thread stops dead, acknowledging nothing."""


class WorkerState(str, enum.Enum):
    """Where a worker is in its life.  Members are strings (``WorkerState.RUNNING == "running"``)."""

    STARTING = "starting"      # thread started, no connection yet
    REPLAYING = "replaying"    # reading its own pending list (XREADGROUP … 0)
    RUNNING = "running"        # reading new entries; the supervisor may claim entries for it
    KILLED = "killed"          # stopped dead by chaos or kill(); restarted after restart_after
    STOPPED = "stopped"        # stopped cleanly (stop() or scaled down)
    ERROR = "error"            # stopped by an error (see Worker.error)

    def __str__(self) -> str:
        return self.value


#: The states of a worker that is (still) working.
LIVE_STATES = (WorkerState.STARTING, WorkerState.REPLAYING, WorkerState.RUNNING)


@dataclass
class Worker:
    """One worker: a thread reading as consumer ``name`` (``generation`` 1, then 2 after its first restart …)."""

    name: str
    generation: int = 1
    thread: threading.Thread | None = None
    state: WorkerState = WorkerState.STARTING
    kill_event: threading.Event = field(default_factory=threading.Event)
    stop_event: threading.Event = field(default_factory=threading.Event)
    inbox: collections.deque = field(default_factory=collections.deque)
    done: int = 0
    failed: int = 0
    holding: int = 0           # entries of its current batch not yet acknowledged or given up
    killed_at: float | None = None
    error: str | None = None

    @property
    def alive(self) -> bool:
        return self.state in LIVE_STATES and not self.kill_event.is_set()


class Pool:
    """N workers of one consumer group, a supervisor, and optional chaos (how they work: the module docstring).

    What to read and do:

    * ``stream``, ``group`` — the stream and its consumer group;
    * ``work`` — ``work(entry_id, fields)`` per entry (see :mod:`.work`); raising leaves the entry pending;
    * ``create`` — ``XGROUP CREATE … MKSTREAM`` at :meth:`start` from this ID (``"0"``: the whole history,
      ``"$"``: only new entries); ``None`` if the group exists already.

    Workers:

    * ``workers`` — how many to start (:meth:`set_workers` changes it later);
    * ``count`` — entries per ``XREADGROUP``;
    * ``block_ms`` — how long a read blocks; below the socket timeout (the read would time out first);
    * ``name_prefix`` — consumer names are ``<prefix>1`` … ``<prefix>N``; a restart keeps its name.

    Supervisor:

    * ``supervise_every`` — seconds between passes (:meth:`supervise_once`);
    * ``claim_idle_ms`` — an entry idle this long is claimed for a healthy worker (``XAUTOCLAIM``);
    * ``deadletter_after`` — K: an entry delivered more than K times is dead-lettered;
    * ``deadletter`` — the dead-letter stream (default ``groups:deadletter`` in ``keys``' namespace);
    * ``keys`` — the namespace (default ``LABKIT_NAMESPACE``).

    Chaos:

    * ``chaos`` — kill a random live worker every ``chaos_every`` = ``(low, high)`` seconds (uniform);
    * ``restart_after`` — seconds before a killed worker restarts under the same name;
    * ``seed`` — seeds the choices (victims, delays) for a repeatable run.

    Plumbing:

    * ``sink`` — where log lines go (:mod:`labkit.log`);
    * ``target`` — the server (default ``REDIS_URL`` or the embedded one); each worker opens its own connection;
    * ``track_ids`` — remember every acknowledged ID, for :meth:`audit` and the ``repeated`` counter
      (turn off for long runs: it grows with the stream).
    """

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
        self._conn = connection.connect(self.target)    # the supervisor's own connection (see _r)

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
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    @property
    def _r(self):
        """The supervisor's connection; after :meth:`stop` closed it, a new one (for :meth:`audit` and
        :meth:`consumers` after a stop: a closed cluster client cannot be used again, a plain one can)."""
        if self._conn is None:
            self._conn = connection.connect(self.target)
        return self._conn

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
            if name not in names and w.state in LIVE_STATES:
                w.stop_event.set()
        for name in names:
            w = self.workers.get(name)
            if w is None or w.state in (WorkerState.STOPPED, WorkerState.ERROR):
                self._spawn(name)
        self.log(f"Workers: {n}.")

    def set_chaos(self, on: bool) -> None:
        self.chaos = bool(on)
        self._next_chaos = time.monotonic() + self._chaos_delay()
        self.log(f"Chaos {'on' if on else 'off'}.")

    def kill(self, name: str | None = None) -> str | None:
        """Kill one worker; it restarts ``restart_after`` s later.

        By default a random live one, among those holding unacknowledged
        entries if any do: killing an idle worker would show nothing.
        """
        live = self.live_workers()
        if name is None:
            if not live:
                return None
            w = self.rng.choice([w for w in live if w.holding] or live)
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
            w.holding = 0
            r = connection.connect(self.target)
            w.state = WorkerState.REPLAYING
            # 1. Replay my own pending list (entries I was given but never acknowledged).
            last = "0"
            while not w.stop_event.is_set():
                self._check(w)
                resp = r.xreadgroup(self.group, w.name, {self.stream: last}, count=self.count)
                entries = resp[0][1] if resp else []
                if not entries:
                    break
                self._add("replayed", len(entries))
                self._work_through(r, w, entries)
                last = text(entries[-1][0])
            w.state = WorkerState.RUNNING  # only now may the supervisor claim entries for me
            # 2. New entries, plus whatever the supervisor claimed for me.
            while not w.stop_event.is_set() and not self._stop.is_set():
                self._check(w)
                claimed = []
                while w.inbox:                 # the supervisor may add to it meanwhile
                    claimed.append(w.inbox.popleft())
                self._work_through(r, w, claimed)
                resp = r.xreadgroup(self.group, w.name, {self.stream: ">"}, count=self.count,
                                    block=self.block_ms)
                self._work_through(r, w, resp[0][1] if resp else [])
            w.state = WorkerState.STOPPED
        except _Killed:
            w.state = WorkerState.KILLED
            w.inbox.clear()
            self._add("killed")
            self.log(f"{w.name} killed (holding its unacknowledged entries).")
        except BaseException as exc:  # never lost: reported through status()
            failed = connection.failure(exc, self.target)
            w.state, w.error = WorkerState.ERROR, failed.text
            self.errors.append(f"{w.name}: {w.error}")
            self.log(f"{w.name} {failed.said('stopped')}")
        finally:
            if r is not None:
                r.close()

    def _work_through(self, r: redis.Redis, w: Worker, entries: list) -> None:
        """Handle ``entries`` in order, counting down what ``w`` still holds (see :meth:`kill`)."""
        w.holding = len(entries)
        for eid, fields in entries:
            self._handle(r, w, eid, fields)
            w.holding -= 1

    def _handle(self, r: redis.Redis, w: Worker, eid, fields) -> None:
        eid = text(eid)
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
        r.xadd(self.deadletter, deadletters.record(self.stream, eid, reason, fields, group=self.group,
                                                   deliveries=deliveries, consumer=consumer))
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
            except Exception as exc:  # keep supervising; report it
                failed = connection.failure(exc, self.target)
                self.errors.append(f"supervisor: {failed.text}")
                self.log(f"supervisor: {failed.text}")

    def _maintain(self, now: float) -> None:
        """Restart killed workers (same consumer name) once ``restart_after`` has passed."""
        for i in range(1, self.desired + 1):
            name = f"{self.name_prefix}{i}"
            w = self.workers.get(name)
            if w is None:
                self._spawn(name)
            elif w.state == WorkerState.KILLED and not (w.thread and w.thread.is_alive()) \
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
            eid = text(row["message_id"])
            found = r.xrange(self.stream, eid, eid)
            fields = found[0][1] if found else None
            # Take ownership first: only if it is *still* idle (nobody re-delivered or acked it meanwhile).
            got = r.xclaim(self.stream, self.group, DEADLETTER_CONSUMER, self.claim_idle_ms, [eid], justid=True)
            if not got and found:
                continue
            reason = (f"delivered {n} times (more than {self.deadletter_after})" if found else
                      "trimmed: deleted from the stream while pending")
            self._deadletter(r, eid, n, reason, text(row["consumer"]), fields)
            r.xack(self.stream, self.group, eid)
            out["deadlettered"] += 1
        # 2. Everything else idle too long: to a healthy worker.
        # Healthy = alive and done replaying its own list (else a claimed entry could be replayed too).
        healthy = [w for w in self.live_workers() if w.state == WorkerState.RUNNING]
        if not healthy:
            return out
        cursor = "0-0"
        while True:
            w = min(healthy, key=lambda x: len(x.inbox))
            res = r.xautoclaim(self.stream, self.group, w.name, self.claim_idle_ms, cursor, count=PAGE)
            out["rounds"] += 1
            cursor = text(res[0])
            for eid, fields in res[1]:
                if not fields:             # a trimmed entry reported as (id, {}) / (id, None)
                    self._deadletter(r, text(eid), None, "trimmed: deleted from the stream while pending", w.name)
                    r.xack(self.stream, self.group, eid)
                    self._add("trimmed")
                else:
                    w.inbox.append((eid, fields))
                    out["claimed"] += 1
            for eid in (res[2] if len(res) > 2 else []):   # Redis 7: already removed from the PEL
                self._deadletter(r, text(eid), 0, "trimmed: deleted from the stream while pending "
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
        last = text(self._r.xinfo_stream(self.stream)["last-generated-id"])
        return (int(info["pending"]) == 0 and text(info["last-delivered-id"]) == last
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
        h = self.history_snapshot()
        if len(h) < 2:
            return 0.0
        t1, d1 = h[-1]
        t0, d0 = next(((t, d) for t, d in reversed(h) if t1 - t >= window), h[0])
        return (d1 - d0) / (t1 - t0) if t1 > t0 else 0.0

    def history_snapshot(self) -> list[tuple[float, int]]:
        """A copy of :attr:`history`, ``(seconds since start, acknowledged so far)`` per supervisor pass."""
        with self._lock:
            return list(self.history)

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
