"""``python -m labkit bench``: how fast, against the course's one-message-at-a-time pattern.

Runs in its own key namespace (``<LABKIT_NAMESPACE>-bench``, or ``labkit-bench``) and deletes only those keys
afterwards, so a learner's dataset is untouched.
"""

from __future__ import annotations

import threading
import time

from ..core import keyspace, producer
from ..core.aggregating import AggregatingConsumer
from ..core.keys import Keys
from ..core.partition import HOUR_MS, id_ms, next_partition
from ..core.runner import delete_namespace, prepare
from ..log import LogLine, TerminalSink, null_sink
from ..servers import connection

TARGETS = {"produce": 430_000, "aggregate": 290_000, "ratio": 50}


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


def run_bench(days: float = 10, baseline_readings: int = 20_000) -> int:
    out = TerminalSink()
    keys = Keys.for_tool("bench")
    t = connection.target()
    r = connection.connect(t)
    keys = keyspace.keys_for(r, keys)   # on a cluster: the state is hash-tagged
    out(LogLine("bench", f"Redis: {t}; keys under {keys.namespace}:"))
    try:
        data = producer.Dataset(producer.parse_start(producer.DEFAULT_START), days)
        res = producer.produce(r, data, keys)
        produce_rate = res["rate"]
        out(LogLine("bench", f"produce:   {res['readings']:,} readings in {res['seconds']:.2f} s "
                             f"= {produce_rate:,.0f} readings/s"))

        first = data.partitions(keys)[0]
        hours = len({(data.start_ms + i * data.interval_ms) // HOUR_MS for i in range(0, data.count, 1000)}
                    | {(data.end_ms - 1) // HOUR_MS})
        prepare(r, keys, first)
        agg = AggregatingConsumer(connection.connect(t), keys, null_sink, averages_maxlen=0)
        stop, crash = threading.Event(), threading.Event()
        th = threading.Thread(target=agg.run, args=(stop, crash), daemon=True)
        t0 = time.perf_counter()
        th.start()
        while agg.published < hours and th.is_alive():
            time.sleep(0.001)
        seconds = time.perf_counter() - t0
        stop.set()
        th.join()
        agg_rate = agg.readings / seconds
        out(LogLine("bench", f"aggregate: {agg.readings:,} readings into {agg.published} hours in {seconds:.2f} s "
                             f"= {agg_rate:,.0f} readings/s"))

        n = min(baseline_readings, data.count)
        base_rate = baseline(r, keys, first, n)
        ratio = agg_rate / base_rate
        out(LogLine("bench", f"baseline:  one message per XREAD + state per message: {n:,} readings "
                             f"= {base_rate:,.0f} readings/s (would take {data.count / base_rate:,.0f} s for all)"))
        out(LogLine("bench", f"ratio:     batched aggregation is {ratio:,.0f}x the baseline"))
        met = {"produce": produce_rate >= TARGETS["produce"], "aggregate": agg_rate >= TARGETS["aggregate"],
               "ratio": ratio >= TARGETS["ratio"]}
        out(LogLine("bench", "targets (10 days): produce >= 430k/s {}, aggregate >= 290k/s {}, ratio >= 50x {}".format(
            *("met" if met[k] else "NOT met" for k in ("produce", "aggregate", "ratio")))))
    finally:
        delete_namespace(r, keys)
    return 0
