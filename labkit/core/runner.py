"""Running both consumers in background threads of one process.

:func:`start_consumers` is what the CLI's ``consume`` and the notebooks call.
It returns a :class:`Consumers` handle: ``stop()`` (clean, state saved),
``crash()`` (a simulated crash: threads drop what they hold, nothing saved
since their last commit), ``status()``, ``wait_idle()`` and ``join()``.
Each consumer has its own connection, since a blocking read holds one.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from ..errors import LabkitError, SimulatedCrash
from ..log import LogLine, Sink, TerminalSink
from ..servers import connection
from ..servers.replies import text, text_fields
from . import eviction
from .aggregating import (
    BATCH,
    BLOCK_MS,
    DEFAULT_MAXLEN,
    AggregatingConsumer,
)
from .averages import AveragesConsumer
from .context import Context
from .keys import Keys
from .keyspace import delete_namespace, list_partitions  # noqa: F401 - re-exported: callers import them from here
from .lease import Holder, Lease
from .partition import day_start_ms, id_ms, parse_partition
from .state import AggregatingState, AveragesState

RECONNECT_S = connection.RECONNECT_S
#: The largest ``temps:averages`` cap taken (the commit script reads it as a Lua number: exact to 2**53).
MAX_MAXLEN = 1_000_000_000

#: The pairs this process runs, by (server address, lease key): a notebook panel made again finds them
#: (:func:`running_here`) instead of leaving them running with no button to stop them.
_RUNNING: dict[tuple[str, str], "Consumers"] = {}
_RUNNING_LOCK = threading.Lock()


def running_here(target: connection.Target, keys: Keys) -> "Consumers | None":
    """The consumers this process runs for ``keys``' namespace on ``target``, if any are running."""
    with _RUNNING_LOCK:
        h = _RUNNING.get((target.address, keys.aggregating_lease))
    return h if h is not None and h.running else None


def _partitions_hint(r: redis.Redis, keys: Keys) -> str:
    names = list_partitions(r, keys)
    if not names:
        return "there are no partitions yet: run python -m labkit produce"
    shown = ", ".join(names[:12]) + (f", … ({len(names)} in all)" if len(names) > 12 else "")
    return f"existing partitions: {shown}"


def _check_type(r: redis.Redis, key: str, want: bytes) -> None:
    got = r.type(key)
    if got not in (b"none", want):
        raise LabkitError(f"{key} holds a {got.decode()}, not a {want.decode()}",
                          f"delete it (DEL {key}) or set LABKIT_NAMESPACE to use other key names")


def acquire_consumer_lease(r: redis.Redis, keys: Keys) -> Lease:
    """The namespace's aggregating-consumer lease, or a one-line error naming who holds it."""
    return Lease(r, keys.aggregating_lease, Holder.here("consumers", "consume")).acquire(
        "only one pair of consumers runs per namespace: stop the other one (its panel's Stop, or Ctrl+C "
        "in its terminal), or set LABKIT_NAMESPACE to run a separate copy of the lab")


def prepare(r: redis.Redis, keys: Keys, partition: str | None) -> AggregatingState:
    """Validate everything, then (with a partition) reset both states and the averages stream.

    Nothing is changed in Redis unless every check passes.  The caller holds the lease.
    ``keys`` are named for ``r``'s server (see :class:`labkit.core.context.Context`).
    """
    _check_type(r, keys.averages, b"stream")
    _check_type(r, keys.aggregating_state, b"hash")
    _check_type(r, keys.averages_state, b"hash")
    if partition is None:
        s = AggregatingState.load(r, keys)
        if s is None:
            raise LabkitError("there is no saved state to resume from",
                              f"start from a partition, e.g. python -m labkit consume {keys.partition_prefix}YYYYMMDD; "
                              + _partitions_hint(r, keys))
        AveragesState.load(r, keys)  # validates
        return s
    parse_partition(partition, keys.partition_prefix)
    kind = r.type(partition)
    if kind == b"none":
        raise LabkitError(f"partition {partition} does not exist", _partitions_hint(r, keys))
    if kind != b"stream":
        raise LabkitError(f"{partition} holds a {kind.decode()}, not a stream",
                          f"delete it (DEL {partition}) or run python -m labkit produce")
    s = AggregatingState(partition, start_stream=partition)
    if connection.is_cluster(r):
        # One transaction per slot: the averages consumer's state commits alone; the
        # averages and the aggregating state share temps:averages' slot (and node).
        r.delete(keys.averages_state)
        p = connection.node_client(r, keys.averages).pipeline(transaction=True)
        p.delete(keys.averages, keys.aggregating_state)
    else:
        p = r.pipeline(transaction=True)
        p.delete(keys.averages, keys.averages_state, keys.aggregating_state)
    p.hset(keys.aggregating_state, mapping=s.fields())
    p.execute()
    return s


@dataclass
class _Worker:
    name: str
    consumer: object
    thread: threading.Thread | None = None
    error: BaseException | None = None
    crashed: bool = False
    reconnects: int = 0


class Consumers:
    """Handle on the two running consumers."""

    def __init__(self, target: connection.Target, keys: Keys, sink: Sink, averages_maxlen: int,
                 batch: int = BATCH, block_ms: int = BLOCK_MS, reconnect_s: float = RECONNECT_S,
                 lease: Lease | None = None, pace_ms: int = 0):
        self.target, self.keys = target, keys
        self._sink = sink
        self.reconnect_s = reconnect_s
        self._ended = threading.Lock()
        self._left = 2          # threads still running; the last one to end lets go of the lease
        self._stop = threading.Event()
        self._crash = threading.Event()
        # No silent client-level retries: the runner reconnects, says so, and reloads state.
        self._clients = [connection.connect(target, retry=Retry(NoBackoff(), 0)) for _ in range(2)]
        self.lease = lease and Lease(self._clients[0], lease.key, lease.holder, lease.ttl_ms)
        self.agg = AggregatingConsumer(self._clients[0], keys, self.sink, averages_maxlen, batch, block_ms,
                                       self.lease, pace_ms=pace_ms)
        self.avg = AveragesConsumer(self._clients[1], keys, self.sink, block_ms)
        self._workers = [_Worker("agg", self.agg), _Worker("avg", self.avg)]
        self.started_at = time.monotonic()
        self.panel = None       # the notebook panel showing them, if any (a panel made again takes them over)

    def sink(self, line: LogLine) -> None:
        """Where both consumers' lines go (:meth:`redirect` changes it while they run)."""
        self._sink(line)

    def redirect(self, sink: Sink) -> None:
        """Send the consumers' lines to ``sink`` from now on (a new notebook panel taking them over)."""
        self._sink = sink

    def _run(self, w: _Worker) -> None:
        try:
            self._work(w)
        finally:
            with self._ended:
                self._left -= 1
                last = self._left == 0
            if last:
                self._let_go()

    def _let_go(self) -> None:
        """Both threads have ended: give up the lease (a simulated crash leaves it in Redis, as a real one
        would; this process forgets it, so a resume here can take it over at once)."""
        with _RUNNING_LOCK:
            if _RUNNING.get((self.target.address, self.keys.aggregating_lease)) is self:
                del _RUNNING[(self.target.address, self.keys.aggregating_lease)]
        if self.lease:
            self.lease.forget() if self._crash.is_set() else self.lease.release()

    def _work(self, w: _Worker) -> None:
        try:
            while True:
                try:
                    w.consumer.run(self._stop, self._crash)
                    w.crashed = self._crash.is_set()  # it may have been between steps when the crash came
                    return
                except redis.RedisError as exc:
                    # Everything that matters is in Redis (state is committed with each
                    # batch), so after a reconnect the consumer simply starts over from it.
                    # CLUSTERDOWN: a master failed and its replica is not promoted yet (the
                    # cluster's own failover leaves that window; a TAKEOVER does not).
                    # UNBLOCKED: a planned failover made the master we blocked on a replica.
                    if not connection.is_lost(exc):
                        raise           # a real refusal: handled below, the consumer stops
                    if self._stop.is_set():
                        return
                    if not self._reconnect(w, exc):
                        if self._stop.is_set():
                            return
                        raise
        except SimulatedCrash:
            w.crashed = True
        except BaseException as exc:  # surfaced through .error and status(), never lost
            failed = connection.failure(exc, self.target)
            w.error = failed.error
            self.sink(LogLine(w.name, failed.said("stopped")))
            self._stop.set()
            self._unblock()     # the other one, blocked in XREAD, ends now rather than after its block

    def _reconnect(self, w: _Worker, exc: Exception) -> bool:
        """Wait for the server (see :func:`labkit.servers.connection.reconnect`); False once ``reconnect_s`` has passed."""
        w.consumer.idle_since = None
        ok = connection.reconnect(w.consumer.r, lambda text: self.sink(LogLine(w.name, text)), exc,
                                  self.reconnect_s, self._stop, self.target.address)
        w.reconnects += ok
        return ok

    def start(self) -> "Consumers":
        with _RUNNING_LOCK:
            _RUNNING[(self.target.address, self.keys.aggregating_lease)] = self
        for w in self._workers:
            w.thread = threading.Thread(target=self._run, args=(w,), name=f"labkit-{w.name}", daemon=True)
            w.thread.start()
            if w.consumer is self.agg:
                # The course's console starts with the aggregating consumer's line, then the averages one's.
                while not self.agg.started.wait(0.05) and w.thread.is_alive():
                    pass
        return self

    @property
    def running(self) -> bool:
        return any(w.thread and w.thread.is_alive() for w in self._workers)

    @property
    def error(self) -> BaseException | None:
        return next((w.error for w in self._workers if w.error), None)

    def join(self, timeout: float | None = None) -> None:
        deadline = None if timeout is None else time.monotonic() + timeout
        for w in self._workers:
            if w.thread:
                w.thread.join(None if deadline is None else max(0, deadline - time.monotonic()))
        if not self.running:
            for c in self._clients:
                c.close()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop cleanly: each consumer finishes its current step (its state is saved with every batch)."""
        self._stop.set()
        self._unblock()
        self.join(timeout)

    def crash(self, timeout: float = 5.0) -> None:
        """Simulate a crash: threads stop where they are, without saving what they hold."""
        self._crash.set()
        self._stop.set()
        self._unblock()
        self.join(timeout)

    def _unblock(self) -> None:
        """End blocked XREADs now (CLIENT UNBLOCK) instead of waiting out their timeout."""
        alive = [w.consumer for w in self._workers if w.thread and w.thread.is_alive() and w.consumer.client_id]
        if any(c.blocker is not None for c in alive):   # a cluster: each read blocks on its key's node
            for c in alive:
                try:
                    c.blocker.client_unblock(c.client_id)
                except (redis.RedisError, AttributeError):
                    pass  # the block times out by itself within block_ms
            return
        ids = [c.client_id for c in alive]
        if not any(ids):
            return
        try:
            r = connection.client(self.target)
            for cid in filter(None, ids):
                r.client_unblock(cid)
            r.close()
        except redis.RedisError:
            pass  # the block times out by itself within block_ms

    def idle_for(self) -> float:
        """Seconds both consumers have had nothing to do (0 if either is busy)."""
        now = time.monotonic()
        since = [w.consumer.idle_since for w in self._workers]
        return 0.0 if any(s is None for s in since) else now - max(since)

    def wait_idle(self, seconds: float, timeout: float | None = None) -> bool:
        """Block until both have been idle ``seconds`` (True), or a thread died / timeout (False)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.running:
            if self.idle_for() >= seconds:
                return True
            if deadline is not None and time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return False

    def status(self) -> dict:
        a, v = self.agg, self.avg
        st = a.state
        return {
            "running": self.running,
            "crashed": any(w.crashed for w in self._workers),
            "error": str(self.error) if self.error else None,
            "partition": st.stream if st else None,
            "last_message_id": st.last_id if st else None,
            "readings": a.readings,
            "hours_published": a.published,
            "hours_replayed": a.replayed,
            "dead_letters": a.dead_letters,
            "losses": a.losses,
            "last_average": a.last_average.fields() if a.last_average else None,
            "averages_printed": v.printed,
            "averages_missed": v.missed,
            "averages_last_id": v.state.last_id,
            "idle_seconds": round(self.idle_for(), 1),
            "reconnects": sum(w.reconnects for w in self._workers),
            "averages_malformed": v.malformed,
        }


def read_status(r: redis.Redis, keys: Keys, handle: Consumers | None = None, newest: str | None = None,
                crashed: bool = False) -> dict:
    """:meth:`Consumers.status` completed with what Redis holds: one status, running or not.

    Where no handle runs, the position comes from the saved state.  Added from
    Redis: ``open_hour_count`` (readings in the open hour), ``hours_ever_added``
    (every average ever added to ``temps:averages``, all runs; ``hours_this_run``
    is this handle's), ``averages_len``, ``averages_stream_last_id``,
    ``last_average`` (the stream's newest entry), ``averages_unread``, and with
    ``newest`` (the newest partition) ``lag_ms``: how far, in readings' time, the
    aggregating consumer is behind it.  ``crashed`` marks a stop the caller
    caused with :meth:`Consumers.crash` (a thread between steps just returns).
    """
    p = r.pipeline(transaction=False)
    p.hgetall(keys.aggregating_state)
    p.xinfo_stream(keys.averages)
    p.xrevrange(keys.averages, count=1)
    saved_state, info, last = p.execute(raise_on_error=False)
    h = handle.status() if handle else {}
    st = dict(h)
    st["running"] = handle is not None and handle.running
    st["crashed"] = bool(h.get("crashed")) or (crashed and not st["running"])
    st["error"] = h.get("error")
    saved = text_fields(saved_state) if isinstance(saved_state, dict) else {}
    st["partition"] = h.get("partition") or saved.get("current_stream_key")
    st["last_message_id"] = h.get("last_message_id") or saved.get("last_message_id")
    st["open_hour_count"] = int(saved.get("current_hourly_count", 0) or 0)
    if isinstance(info, Exception):
        st["hours_ever_added"], st["averages_len"], st["averages_stream_last_id"] = 0, 0, None
    else:
        st["hours_ever_added"] = int(info.get("entries-added", 0))
        st["averages_len"] = int(info.get("length", 0))
        st["averages_stream_last_id"] = text(info.get("last-generated-id"))
    st["hours_this_run"] = h.get("hours_published", 0)
    st["averages_printed"] = h.get("averages_printed", 0)
    st["last_average"] = text_fields(last[0][1]) if isinstance(last, list) and last else None
    st["lag_ms"] = None
    if newest and st["partition"]:
        tail = r.xrevrange(newest, count=1)
        if tail:
            lid = st["last_message_id"]
            try:
                pos = (day_start_ms(parse_partition(st["partition"], keys.partition_prefix)) - 1
                       if lid in (None, "0", "0-0") else id_ms(lid))
                st["lag_ms"] = max(0, id_ms(tail[0][0]) - pos)
            except (LabkitError, ValueError):
                pass
    st["averages_unread"] = max(0, st["hours_this_run"] - st["averages_printed"]) if handle else 0
    return st


def start_consumers(partition: str | None = None, *, averages_maxlen: int = DEFAULT_MAXLEN,
                    sink: Sink | None = None, keys: Keys | None = None,
                    target: connection.Target | None = None, batch: int = BATCH,
                    block_ms: int = BLOCK_MS, reconnect_s: float = RECONNECT_S,
                    context: Context | None = None, pace_ms: int = 0) -> Consumers:
    """Start both consumers in background threads and return their handle.

    With ``partition`` both states and ``temps:averages`` are reset and the
    aggregating consumer starts there; without, both resume from saved state.
    Where and which keys: ``context`` (its server and key names), else ``target``
    and ``keys`` (each by default from the environment).  ``pace_ms``: slow motion, a pause
    after each full batch so that a person can press Stop or Simulate crash mid-run (0: full speed).
    """
    if not 1 <= batch <= 1_000_000 or not 1 <= block_ms <= connection.SOCKET_TIMEOUT_S * 500:
        raise LabkitError(f"batch {batch} / block {block_ms} ms out of range",
                          "batch 1..1000000; block under half the socket timeout")
    if not 0 <= pace_ms <= 10_000:
        raise LabkitError(f"pace_ms {pace_ms} is out of range", "0 (full speed) to 10000 ms after each batch",
                          "pace_ms")
    if not 0 <= averages_maxlen <= MAX_MAXLEN:
        raise LabkitError(f"averages_maxlen {averages_maxlen} is " + ("negative" if averages_maxlen < 0 else
                          f"above {MAX_MAXLEN:,}"), "use 0 for uncapped, or e.g. 120", "averages_maxlen")
    ctx = context or Context.open(keys, target)
    lease = None
    try:
        eviction.check(ctx.r, sink or TerminalSink(), "consume")
        lease = acquire_consumer_lease(ctx.r, ctx.keys)
        prepare(ctx.r, ctx.keys, partition)
        handle = Consumers(ctx.target, ctx.keys, sink or TerminalSink(), averages_maxlen, batch, block_ms,
                           reconnect_s, lease, pace_ms)
    except redis.RedisError as exc:
        if lease:
            lease.release()
        raise ctx.explain(exc) from None
    except BaseException:
        if lease:
            lease.release()
        raise
    finally:
        if context is None:
            ctx.close()
    return handle.start()
