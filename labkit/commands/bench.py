"""``python -m labkit bench``: how fast, against the limits of this server and the course's pattern.

It measures, on the same server in the same run:

- the **XADD ceiling**: readings shaped like the producer's (``XADD key <ms>-0
  temp_f <t>``), pre-encoded and sent 1,000 per round trip down one connection
  (like ``redis-benchmark -c 1 -P 1000``), into a scratch key deleted afterwards;
- the **read ceiling**: every partition read with ``XRANGE ... COUNT 50000``
  (and with the consumer's batch size, if that is faster) over a plain
  socket, replies parsed by hiredis, no work per entry;

and prints labkit's produce rate, the aggregating consumer's time and the
wall time of the whole ``python -m labkit verify`` command (start-up
included) as ratios to them, besides the course's one-message-at-a-time
consumer.  The consumer runs twice on its fast path, then once on its plain
path (``fast=False``), and all three must publish the same averages; verify
runs twice and must find every hour matched.  It runs in its own key namespace
(``<LABKIT_NAMESPACE>-bench``, or ``labkit-bench``) and deletes only those keys afterwards, so a learner's dataset
is untouched.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import threading
import time

import redis

from ..core import producer
from ..core.aggregating import BATCH, AggregatingConsumer
from ..core.context import Context
from ..core.batches import paused_gc
from ..core.keys import Keys
from ..core.partition import HOUR_MS, id_ms, next_partition
from ..core.keyspace import claim_scratch
from ..core.runner import delete_namespace, prepare
from ..core.truth import load_averages
from ..errors import LabkitError
from ..log import LogLine, TerminalSink, null_sink
from ..servers import connection

TARGETS = {"produce": 430_000, "aggregate": 290_000, "ratio": 50}
#: produce / XADD ceiling at least; aggregate / read time and verify (the whole command) / read time at most
LIMIT_TARGETS = {"produce": 0.9, "aggregate": 1.5, "verify": 2.0}
XADD_PER_TRIP = 1000
XADD_CEILING_MAX = 1_000_000     # readings written for the XADD ceiling (they are pre-encoded in memory)
READ_COUNT = 50_000      # the read ceiling: XRANGE COUNT 50000


def server_name(r: redis.Redis) -> str:
    """``valkey 9.1.2`` or ``redis 7.0.15``."""
    info = r.info("server")
    name = info.get("server_name") or "redis"
    return f"{name} {info.get(f'{name}_version') or info.get('redis_version')}"


@contextlib.contextmanager
def _raw_socket(r: redis.Redis):
    """The socket of a pooled connection of a plain client (on a cluster: a node's, see
    :func:`labkit.servers.connection.node_client`), to time bytes in and out; the connection is dropped on any error."""
    conn = connection.pooled_connection(r)
    try:
        yield conn._sock
    except BaseException:
        conn.disconnect()
        raise
    finally:
        r.connection_pool.release(conn)


def _recv(sock) -> bytes:
    chunk = sock.recv(1 << 20)
    if not chunk:
        raise redis.ConnectionError("the server closed the connection")
    return chunk


def _xadd_trip(key: bytes, ms, temps) -> tuple[bytes, bytes]:
    """The producer's encoding of ``XADD key NOMKSTREAM <ms>-0 temp_f <t>`` for each reading, and the replies
    (each entry's ID) the server will send."""
    return producer.encode_xadds(key, ms, temps)


def xadd_ceiling(r: redis.Redis, key: str, ms, temps) -> float:
    """Readings/s the server accepts from one connection, 1,000 XADDs per round trip.

    The commands and their expected replies are encoded before the clock
    starts; the timed loop only sends, receives and compares bytes.  ``key`` is
    deleted before and after.
    """
    trips = [_xadd_trip(key.encode(), ms[b:b + XADD_PER_TRIP], temps[b:b + XADD_PER_TRIP])
             for b in range(0, len(ms), XADD_PER_TRIP)]
    r.unlink(key)
    r.xadd(key, {"temp_f": 0}, id="0-1")    # the producer's XADDs are NOMKSTREAM: the key must exist
    try:
        with _raw_socket(connection.node_client(r, key)) as sock:
            t0 = time.perf_counter()
            for payload, expect in trips:
                sock.sendall(payload)
                got = _recv(sock)
                while len(got) < len(expect):
                    got += _recv(sock)
                if got != expect:
                    raise redis.ResponseError(f"XADD ceiling: unexpected reply {got[:80]!r}")
            seconds = time.perf_counter() - t0
    finally:
        r.unlink(key)
    return len(ms) / seconds


def read_ceiling(r: redis.Redis, partitions: list[str], count: int = READ_COUNT, pause_gc: bool = True
                 ) -> tuple[int, float]:
    """Read every entry of ``partitions``: plain socket, hiredis, no work per entry.  Returns (entries, seconds).

    The next batch is asked for as soon as this one's last ID is known.

    With ``pause_gc`` Python's cyclic garbage collector is paused while a reply
    is parsed, as :class:`~labkit.core.batches.BatchReader` does (hiredis builds
    five objects per entry, and collection passes over them cost more than the
    parsing).
    """
    import hiredis
    n = 0
    nodes = {key: connection.node_client(r, key) for key in partitions}   # on one server: r, once
    with contextlib.ExitStack() as stack:
        socks = {}
        for node in nodes.values():
            if id(node) not in socks:
                socks[id(node)] = stack.enter_context(_raw_socket(node))
        t0 = time.perf_counter()
        for key in partitions:
            sock = socks[id(nodes[key])]
            sock.sendall(producer.encode_command(b"XRANGE", key.encode(), b"-", b"+", b"COUNT", b"%d" % count))
            while True:
                reader = hiredis.Reader()
                with paused_gc() if pause_gc else contextlib.nullcontext():
                    while (reply := reader.gets()) is False:
                        reader.feed(_recv(sock))
                    if isinstance(reply, Exception):
                        raise redis.ResponseError(str(reply))
                    got = len(reply)
                    if got == count:    # ask for the next batch before this one is freed
                        sock.sendall(producer.encode_command(b"XRANGE", key.encode(), b"(" + reply[-1][0], b"+",
                                                   b"COUNT", b"%d" % count))
                    del reply
                n += got
                if got < count:
                    break
        seconds = time.perf_counter() - t0
    return n, seconds


def baseline(r, keys: Keys, partition: str, limit: int) -> float:
    """The course's consumer loop: one XREAD per message, one HSET of state per message. Returns readings/s."""
    stream, last, total, count, hour = partition, "0", 0, 0, None
    state = keys.aggregating_state + ":baseline"
    t0 = time.perf_counter()
    for _ in range(limit):
        resp = r.xread({stream: last}, count=1)
        if not resp:
            stream, last = next_partition(stream, keys.partition_prefix), "0"
            continue
        eid, fields = resp[0][1][0]
        last = eid.decode()
        h = id_ms(last) // HOUR_MS
        if hour is not None and h != hour:
            r.xadd(keys.averages + ":baseline", {"average_temp_f": total // count, "num_observations": count})
            total = count = 0
        hour = h
        total += int(fields[b"temp_f"])
        count += 1
        r.hset(state, mapping={"current_stream_key": stream, "last_message_id": last,
                               "current_hourly_total": total, "current_hourly_count": count})
    return limit / (time.perf_counter() - t0)


class _Published:
    """A stop event for :meth:`AggregatingConsumer.run` that is set once the consumer has published ``hours``
    (or ``seconds`` have passed), so the bench runs the consumer in its own thread, with no watcher beside it."""

    def __init__(self, agg: AggregatingConsumer, hours: int, seconds: float = 600):
        self.agg, self.hours, self.deadline = agg, hours, time.monotonic() + seconds

    def is_set(self) -> bool:
        return self.agg.published >= self.hours or time.monotonic() > self.deadline


def consumer_seconds(ctx: Context, first: str, hours: int, fast: bool = True) -> tuple[AggregatingConsumer, float]:
    """Run the aggregating consumer (``AggregatingConsumer.run``, default batch) from ``first`` until it has
    published ``hours``, on its own connection; its object and the seconds."""
    r = ctx.connect()
    try:
        prepare(r, ctx.keys, first)
        agg = AggregatingConsumer(r, ctx.keys, null_sink, averages_maxlen=0, fast=fast)
        t0 = time.perf_counter()
        agg.run(_Published(agg, hours), threading.Event())
        seconds = time.perf_counter() - t0
    finally:
        r.close()
    if agg.published < hours:
        raise LabkitError(f"the aggregating consumer published {agg.published} of {hours} hours",
                          "run python -m labkit bench again; if it repeats, report it")
    return agg, seconds


def verify_seconds(keys: Keys, hours: int) -> tuple[float, float]:
    """Wall time and CPU time (user + system) of ``python -m labkit verify`` in a new process (start-up
    included), on ``keys``' namespace, the server it finds as any learner's command would (``REDIS_URL``
    or the embedded one).  It must report ``hours`` hours compared, all matched."""
    env = dict(os.environ, LABKIT_NAMESPACE=keys.namespace)
    before = os.times()     # children's CPU: 0 where the platform does not count it (Windows)
    t0 = time.perf_counter()
    res = subprocess.run([sys.executable, "-m", "labkit", "verify"], env=env, capture_output=True, text=True,
                         timeout=600)
    seconds = time.perf_counter() - t0
    after = os.times()
    cpu = after.children_user - before.children_user + after.children_system - before.children_system
    if res.returncode != 0 or not re.search(rf"\b{hours} hours compared: {hours} matched\b", res.stdout):
        last = (res.stdout.strip() or res.stderr.strip()).splitlines()[-1:] or ["no output"]
        raise LabkitError(f"python -m labkit verify did not confirm the {hours} hours the consumer published: "
                          f"{last[0]}", "run python -m labkit bench again; if it repeats, report it")
    return seconds, cpu


def _settle(r: redis.Redis, seconds: float = 10.0) -> None:
    """Wait until the server has freed what was deleted (it may do that in a background thread)."""
    deadline = time.monotonic() + seconds
    while int(r.info("memory").get("lazyfree_pending_objects", 0)) and time.monotonic() < deadline:
        time.sleep(0.01)


def _met(ok: bool) -> str:
    return "met" if ok else "NOT met"


def run_bench(days: float = 10, baseline_readings: int = 20_000) -> int:
    out = TerminalSink()

    def say(text: str) -> None:
        out(LogLine("bench", text))

    if not days > 0 or baseline_readings < 1:
        raise LabkitError("--days and --baseline-readings must be above 0", "e.g. --days 10 --baseline-readings 20000")
    ctx = Context.open(Keys.for_tool("bench"))
    r, keys = ctx.r, ctx.keys
    say(f"Redis: {ctx.target}, {server_name(r)}; keys under {keys.namespace}:")
    claim_scratch(r, keys, "bench")     # before the try: a namespace that is not ours is never deleted
    try:
        data = producer.Dataset(producer.parse_start(producer.DEFAULT_START), days)
        n = min(data.count, XADD_CEILING_MAX)
        sample_ms = range(data.start_ms, data.start_ms + n * data.interval_ms, data.interval_ms)
        sample_temps = producer.Walk(data.seed)(n)
        scratch = keys.key("scratch:xadd-ceiling")
        ceilings, runs = [], []
        for _ in range(2):      # alternated, so both see the same server state; the best of each counts
            ceilings.append(xadd_ceiling(r, scratch, sample_ms, sample_temps))
            _settle(r)
            r.delete(*data.partitions(keys))
            _settle(r)
            runs.append(producer.produce(r, data, keys))
        del sample_ms, sample_temps
        res = max(runs, key=lambda x: x["rate"])
        produce_rate, xadd_limit = res["rate"], max(ceilings)
        say(f"produce:   {res['readings']:,} readings in {res['seconds']:.2f} s = {produce_rate:,.0f} readings/s "
            f"(best of {len(runs)}; " + ", ".join(f"{x['rate']:,.0f}/s" for x in runs) + ")")
        say(f"XADD ceiling: the same readings, {XADD_PER_TRIP:,} XADDs per round trip on one connection, "
            f"into a scratch key: {xadd_limit:,.0f}/s (best of {len(ceilings)}; "
            + ", ".join(f"{c:,.0f}/s" for c in ceilings) + ")"
            + (f"; the first {n:,} readings" if n < data.count else ""))
        say(f"produce:   {produce_rate / xadd_limit:.2f}x the XADD ceiling")

        partitions = data.partitions(keys)
        reads = {c: min(read_ceiling(r, partitions, c)[1] for _ in range(2)) for c in (READ_COUNT, BATCH)}
        read_s = min(reads.values())
        read_gc_s = read_ceiling(r, partitions, READ_COUNT, pause_gc=False)[1]
        say(f"read ceiling: XRANGE over {len(partitions)} partition(s), plain socket + hiredis, no work per entry: "
            f"{read_s:.2f} s (best of 2 each: " + ", ".join(f"COUNT {c:,} {sec:.2f} s" for c, sec in reads.items())
            + f"; COUNT {READ_COUNT:,} with the cyclic GC running {read_gc_s:.2f} s)")

        first = partitions[0]
        hours = len({(data.start_ms + i * data.interval_ms) // HOUR_MS for i in range(0, data.count, 1000)}
                    | {(data.end_ms - 1) // HOUR_MS})
        runs_agg, same, fast_hours = [], True, None
        for _ in range(2):
            runs_agg.append(consumer_seconds(ctx, first, hours))
            got, _ = load_averages(r, keys)
            same = same and len(got) == hours and (len(runs_agg) == 1 or got.equals(fast_hours))
            fast_hours = got
        agg, seconds = min(runs_agg, key=lambda x: x[1])
        agg_rate = agg.readings / seconds
        say(f"aggregate: {agg.readings:,} readings into {agg.published} hours in {seconds:.2f} s "
            f"= {agg_rate:,.0f} readings/s = {seconds / read_s:.2f}x the read time (best of {len(runs_agg)}; "
            + ", ".join(f"{x[1]:.2f} s" for x in runs_agg) + ")")
        plain, plain_s = consumer_seconds(ctx, first, hours, fast=False)
        plain_hours, _ = load_averages(r, keys)
        same = same and plain_hours.equals(fast_hours) and plain.readings == agg.readings
        say(f"aggregate (plain path, fast=False): {plain.readings:,} readings into {plain.published} hours in "
            f"{plain_s:.2f} s = {plain_s / read_s:.2f}x the read time; "
            + ("the same averages as the fast path" if same else "AVERAGES DIFFER from the fast path's"))

        verifies = [verify_seconds(keys, hours) for _ in range(2)]
        verify_s = min(v[0] for v in verifies)
        say(f"verify:    python -m labkit verify, the whole command (start-up included): {hours} hours, all matched, "
            f"in {verify_s:.2f} s = {verify_s / read_s:.2f}x the read time (best of {len(verifies)}; "
            + ", ".join(f"{v[0]:.2f} s" for v in verifies) + "; CPU "
            + ", ".join(f"{v[1]:.2f} s" for v in verifies) + ")")

        nb = min(baseline_readings, data.count)
        base_rate = baseline(r, keys, first, nb)
        ratio = agg_rate / base_rate
        say(f"baseline:  one message per XREAD + state per message: {nb:,} readings "
            f"= {base_rate:,.0f} readings/s (would take {data.count / base_rate:,.0f} s for all)")
        say(f"ratio:     batched aggregation is {ratio:,.0f}x the baseline")
        met = {"produce": produce_rate >= TARGETS["produce"], "aggregate": agg_rate >= TARGETS["aggregate"],
               "ratio": ratio >= TARGETS["ratio"]}
        say("targets (10 days): produce >= 430k/s {}, aggregate >= 290k/s {}, ratio >= 50x {}".format(
            *(_met(met[k]) for k in ("produce", "aggregate", "ratio"))))
        # verify's start-up (imports, connection: about 0.15 s) is the same for any size, so on fewer days
        # than the limit was set for it weighs more, and the line says so.
        fewer = "" if days >= 10 else " (set for 10 days: start-up weighs more on fewer)"
        say("limits: produce >= {:g}x XADD ceiling {}; aggregate <= {:g}x read time {}; verify <= {:g}x read time{} {}"
            .format(LIMIT_TARGETS["produce"], _met(produce_rate / xadd_limit >= LIMIT_TARGETS["produce"]),
                    LIMIT_TARGETS["aggregate"], _met(seconds / read_s <= LIMIT_TARGETS["aggregate"] and same),
                    LIMIT_TARGETS["verify"], fewer, _met(verify_s / read_s <= LIMIT_TARGETS["verify"])))
    finally:
        delete_namespace(r, keys)
    return 0
