"""The whole pipeline on a real server: producer → partitions → consumers → temps:averages."""

from __future__ import annotations

import threading
import time
import tracemalloc

import pytest

from labkit.servers import connection
from labkit.core import manifest
from labkit.core.aggregating import AggregatingConsumer
from labkit.core.averages import AveragesConsumer
from labkit.log import ListSink
from labkit.core.partition import HOUR_MS
from labkit.core.runner import prepare, start_consumers
from tests.helpers import T0, check, produce


def run_until_idle(target, keys, partition, timeout=60, **kw):
    sink = ListSink()
    h = start_consumers(partition, sink=sink, keys=keys, target=target, **kw)
    assert h.wait_idle(0.3, timeout=timeout), h.status()
    h.stop()
    assert h.error is None and not h.running
    return h, sink


def printed(h, n: int, deadline: float) -> int:
    """How many averages the averages consumer has printed, once that reaches ``n`` or ``deadline`` passes."""
    while h.status()["averages_printed"] < n and time.monotonic() < deadline:
        time.sleep(0.02)
    return h.status()["averages_printed"]


def idle(h, deadline: float) -> bool:
    """Whether the aggregating consumer has gone idle (blocked with nothing to read) before ``deadline``."""
    while h.agg.idle_since is None and time.monotonic() < deadline:
        time.sleep(0.02)
    return h.agg.idle_since is not None


def test_two_days_every_hour_exact_including_the_final_one(r, keys, target):
    produce(r, keys, days=2)
    first = keys.partition_prefix + "20250101"
    h, sink = run_until_idle(target, keys, first, averages_maxlen=0)
    rep, averages, truth = check(r, keys)
    assert rep.ok and rep.matched == 48 == len(averages) == len(truth)
    assert averages["ms"].tolist() == [T0 + i * HOUR_MS for i in range(48)]
    agg, avg = sink.texts("agg"), sink.texts("avg")
    assert agg[0] == f"agg: Starting aggregating consumer in stream {first} at message 0."
    assert f"agg: Changing partition to consume stream: {keys.partition_prefix}20250102" in agg
    assert agg[-1] == f"agg: Waiting for new messages in stream {keys.partition_prefix}20250102, or new stream partition."
    assert avg[0] == f"avg: Starting averages consumer in stream {keys.averages} at message 0."
    printed = [l for l in avg if l.startswith("avg: Average temperature")]
    assert len(printed) == 48 and printed[-1].startswith("avg: Average temperature for 2025/01/02 at 23 was ")
    assert printed[0].endswith("F (3600 observations).")
    st = h.status()
    assert st["hours_published"] == 48 and st["readings"] == 2 * 86400 and st["averages_printed"] == 48
    assert r.hgetall(keys.averages_state)[b"last_message_id"] == averages["id"].iloc[-1].encode()


def test_start_at_a_later_partition(r, keys, target):
    produce(r, keys, days=3, interval_ms=10_000)
    run_until_idle(target, keys, keys.partition_prefix + "20250102", averages_maxlen=0)
    rep, averages, _ = check(r, keys)
    assert rep.ok and rep.matched == 48 and not rep.missing
    assert averages["date"].iloc[0] == "2025/01/02" and averages["hour"].iloc[0] == "0"


def test_start_mid_day_and_partial_final_hour(r, keys, target):
    produce(r, keys, start="2025-01-01T10:30", days=1, interval_ms=5000)
    run_until_idle(target, keys, keys.partition_prefix + "20250101", averages_maxlen=0)
    rep, averages, truth = check(r, keys)
    # 10:30-11:00 (half an hour) … 2025-01-02 10:00-10:30 (half an hour): 25 hours
    assert rep.ok and rep.matched == 25 == len(truth)
    assert averages["num_observations"].iloc[0] == "360" and averages["num_observations"].iloc[-1] == "360"


def test_partition_switch_does_not_wait_for_a_block_timeout(r, keys, target):
    produce(r, keys, days=4, interval_ms=60_000)
    t = time.monotonic()
    # With a 7 s block, any wait at a boundary would blow the 5 s bound below.
    h = start_consumers(keys.partition_prefix + "20250101", sink=ListSink(), keys=keys, target=target,
                        averages_maxlen=0, block_ms=7_000)
    try:
        while h.status()["averages_printed"] < 96 and time.monotonic() - t < 5:
            time.sleep(0.02)
        assert h.status()["averages_printed"] == 96, h.status()
    finally:
        h.stop(timeout=25)


def test_the_consumers_run_the_fast_path_by_default(r, keys, target):
    """What consume, the panel and the notebooks start: the fast path (XRANGE one batch ahead, the bulk fold),
    on one server and on a cluster, where the partition's own master answers the XRANGEs."""
    produce(r, keys, days=1)
    partition = keys.partition_prefix + "20250101"
    node = connection.node_client(r, partition)    # on one server: r

    def xrange_calls() -> int:
        return int(node.info("commandstats").get("cmdstat_xrange", {}).get("calls", 0))
    before = xrange_calls()
    h, _ = run_until_idle(target, keys, partition, averages_maxlen=0)
    assert h.agg.fast
    assert xrange_calls() - before >= 86_400 // h.agg.batch, "the consumer did not read with the fast path"
    assert check(r, keys)[0].matched == 24


def test_the_final_hour_closes_soon_after_its_partition_is_marked_complete(r, keys, target):
    """A consumer that drained a partition still being written blocks on it; the producer then marks it
    complete (a hash field, not a stream entry, so nothing wakes that read).  The final hour must not wait
    for the whole block timeout (seen in CI on a cluster: 7 s)."""
    day = keys.partition_prefix + "20250101"
    ids = [T0 + i * 60_000 for i in range(24 * 60)]
    manifest.mark_writing(r, keys, [day], "run1")
    p = r.pipeline(transaction=False)
    for ms in ids:
        p.xadd(day, {"temp_f": "70"}, id=f"{ms}-0")
    p.execute()
    h = start_consumers(day, sink=ListSink(), keys=keys, target=target, averages_maxlen=0, block_ms=7_000)
    try:
        deadline = time.monotonic() + 15
        assert printed(h, 23, deadline) == 23         # the final hour stays open while the day is written
        assert idle(h, deadline)
        t = time.monotonic()
        manifest.mark_complete(r, keys, day, "run1", len(ids), ids[-1])
        assert printed(h, 24, deadline) == 24
        assert time.monotonic() - t < 2, "the final hour waited for the 7 s block to time out"
    finally:
        h.stop(timeout=25)
    rep, _, _ = check(r, keys)
    assert rep.ok and rep.matched == 24


def test_waits_for_the_next_partition_and_wakes_when_it_appears(r, keys, target):
    produce(r, keys, days=1, interval_ms=60_000)
    sink = ListSink()
    h = start_consumers(keys.partition_prefix + "20250101", sink=sink, keys=keys, target=target,
                        averages_maxlen=0, block_ms=7_000)
    try:
        deadline = time.monotonic() + 15
        assert printed(h, 24, deadline) == 24
        assert idle(h, deadline)  # blocked on the next partition (one stream: no cross-slot XREAD)
        t = time.monotonic()
        produce(r, keys, start="2025-01-02", days=1, interval_ms=60_000)   # the next day arrives
        assert printed(h, 48, deadline) == 48
        assert time.monotonic() - t < 5, "woke only when the 7 s block timed out"
    finally:
        h.stop(timeout=25)
    rep, _, _ = check(r, keys)
    assert rep.ok and rep.matched == 48


def test_simulated_crash_mid_hour_then_resume_loses_and_repeats_nothing(r, keys, target):
    produce(r, keys, days=2)
    h = start_consumers(keys.partition_prefix + "20250101", sink=ListSink(), keys=keys, target=target,
                        averages_maxlen=0, batch=777)
    while h.status()["readings"] < 30_000:     # far from the end (172,800), however late this loop wakes
        time.sleep(0.001)
    h.crash()
    state = r.hgetall(keys.aggregating_state)
    assert int(state[b"current_hourly_count"]) > 0      # it died with an hour open
    sink = ListSink()
    h2 = start_consumers(None, sink=sink, keys=keys, target=target, averages_maxlen=0)
    assert h2.wait_idle(0.3, timeout=60)
    h2.stop()
    assert sink.texts("agg")[0] == (f"agg: Starting aggregating consumer in stream {state[b'current_stream_key'].decode()}"
                                    f" at message {state[b'last_message_id'].decode()}.")
    rep, averages, _ = check(r, keys)
    assert rep.ok and rep.matched == 48 and rep.duplicates == 0 and len(averages) == 48


def test_replayed_batch_is_published_once(r, keys, target):
    """Where publish and state cannot share a transaction (Cluster), the hour-start ID makes a replay harmless."""
    produce(r, keys, days=1)
    h, _ = run_until_idle(target, keys, keys.partition_prefix + "20250101", averages_maxlen=0, batch=5000)
    # Pretend the last state saves were lost: roll state back to the start of the partition.
    r.hset(keys.aggregating_state, mapping={"last_message_id": "0", "current_hourly_total": "0",
                                            "current_hourly_count": "0"})
    h2, _ = run_until_idle(target, keys, None, averages_maxlen=0)
    st = h2.status()
    assert st["hours_published"] == 0 and st["hours_replayed"] == 24
    rep, averages, _ = check(r, keys)
    assert rep.ok and len(averages) == 24


def test_a_different_average_already_at_an_hours_id_stops_the_consumer_loudly(r, keys, target):
    """A refused publish is a replay only if the stored entry is identical; anything else is a conflict."""
    produce(r, keys, days=1)
    h, _ = run_until_idle(target, keys, keys.partition_prefix + "20250101", averages_maxlen=0, batch=5000)
    r.hset(keys.aggregating_state, mapping={"last_message_id": "0", "current_hourly_total": "0",
                                            "current_hourly_count": "0"})
    first = r.xrange(keys.averages, count=1)[0][0]
    r.delete(keys.averages)
    r.xadd(keys.averages, {"hour": "0", "date": "2025/01/01", "average_temp_f": "99.00", "num_observations": "1",
                           "sum_temp_f": "99"}, id=first)
    before = r.xlen(keys.averages)
    sink = ListSink()
    h2 = start_consumers(None, sink=sink, keys=keys, target=target, averages_maxlen=0)
    h2.join(timeout=10)
    h2.stop()
    assert h2.error is not None and "already holds a different average" in str(h2.error)
    assert r.xlen(keys.averages) == before


def test_slow_averages_consumer_reports_what_the_cap_trimmed(r, keys, target):
    produce(r, keys, days=10, interval_ms=60_000)
    prepare(r, keys, keys.partition_prefix + "20250101")
    stop, crash = threading.Event(), threading.Event()
    agg = AggregatingConsumer(r, keys, ListSink(), averages_maxlen=120)
    t = threading.Thread(target=agg.run, args=(stop, crash))
    t.start()
    while agg.published < 240:
        time.sleep(0.01)
    stop.set()
    t.join()
    length = r.xlen(keys.averages)
    assert 120 <= length < 240          # MAXLEN ~ trims whole nodes only
    sink = ListSink()
    avg = AveragesConsumer(r, keys, sink)
    stop2 = threading.Event()
    t2 = threading.Thread(target=avg.run, args=(stop2, threading.Event()))
    t2.start()
    while avg.printed < length:
        time.sleep(0.01)
    stop2.set()
    t2.join()
    assert avg.missed == 240 - length
    assert f"avg: Missed {240 - length} entries of {keys.averages}: trimmed by MAXLEN before they were read." in sink.texts()
    rep, _, _ = check(r, keys)
    assert rep.ok and rep.trimmed == 240 - length and rep.matched == length


def test_dead_letters_bad_readings_and_keeps_averages_exact(r, keys, target):
    part = keys.partition_prefix + "20250101"
    poison = {T0 + 1: {"temp_f": "NaN"}, T0 + 3_600_001: {"temp_f": ""}, T0 + 7_200_001: {"temp": "50"},
              T0 + 7_200_002: {"temp_f": "51.5"}, T0 + 7_200_003: {"temp_f": "1000"}}
    entries = {T0 + i * 10_000: {"temp_f": str(i % 90)} for i in range(8640)} | poison
    p = r.pipeline(transaction=False)
    for ms in sorted(entries):
        p.xadd(part, entries[ms], id=f"{ms}-0")
    p.execute()
    manifest.mark_complete(r, keys, part, "test", len(entries), max(entries))
    h, sink = run_until_idle(target, keys, part, averages_maxlen=0)
    assert h.status()["dead_letters"] == 5 and r.xlen(keys.deadletter) == 5
    dl = r.xrange(keys.deadletter)
    assert dl[0][1][b"source"] == part.encode() and dl[0][1][b"id"] == f"{T0 + 1}-0".encode()
    rep, averages, _ = check(r, keys)
    assert rep.ok and rep.matched == 24 and averages["num_observations"].iloc[0] == "360"


@pytest.mark.slow
def test_consumer_memory_stays_flat_as_days_grow(r, keys, target):
    peaks = {}
    for days in (1, 4):
        produce(r, keys, days=days, interval_ms=2000)
        prepare(r, keys, keys.partition_prefix + "20250101")
        agg = AggregatingConsumer(r, keys, ListSink(), averages_maxlen=0)
        stop = threading.Event()
        tracemalloc.start()
        t = threading.Thread(target=agg.run, args=(stop, threading.Event()))
        t.start()
        while agg.published < days * 24:
            time.sleep(0.01)
        stop.set()
        t.join()
        peaks[days] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert peaks[4] < 1.5 * peaks[1], peaks


def test_malformed_average_is_dead_lettered_not_fatal(r, keys, target):
    produce(r, keys, days=1, interval_ms=60_000)
    h, _ = run_until_idle(target, keys, keys.partition_prefix + "20250101", averages_maxlen=0)
    r.xadd(keys.averages, {"hour": "x", "date": "2025/01/02"}, id="1900000000000-0")
    r.xadd(keys.averages, {"hour": "1", "date": "2030/01/01", "average_temp_f": "50.00",
                           "num_observations": "1", "sum_temp_f": "50"}, id="1900000000001-0")
    h2, sink = run_until_idle(target, keys, None)
    st = h2.status()
    assert st["averages_malformed"] == 1 and st["averages_printed"] == 1
    assert "avg: Average temperature for 2030/01/01 at 1 was 50F (1 observations)." in sink.texts()
    dl = r.xrange(keys.deadletter)
    assert len(dl) == 1 and dl[0][1][b"source"] == keys.averages.encode() and dl[0][1][b"id"] == b"1900000000000-0"


@pytest.mark.server_wide     # every key outside its two namespaces must stay as it was
def test_two_namespaces_share_one_server_without_interfering(r, target):
    from labkit.core.keys import Keys
    from tests.conftest import _delete_namespace
    from labkit.core.keyspace import keys_for, scan_keys
    alice, bob = keys_for(r, Keys("alice-t")), keys_for(r, Keys("bob-t"))

    def others():   # every master's keys on a cluster; hash-tagged ones start with "{alice-t:"
        return {k: r.type(k) for k in scan_keys(r, "*")
                if not k.startswith(("alice-t:", "bob-t:", "{alice-t:", "{bob-t:"))}
    before = others()
    try:
        produce(r, alice, days=2, interval_ms=30_000, seed=1)
        produce(r, bob, days=1, interval_ms=30_000, seed=2)
        ha = start_consumers(alice.partition_prefix + "20250101", sink=ListSink(), keys=alice, target=target,
                             averages_maxlen=0)
        hb = start_consumers(bob.partition_prefix + "20250101", sink=ListSink(), keys=bob, target=target,
                             averages_maxlen=0)
        assert ha.wait_idle(0.3, timeout=60) and hb.wait_idle(0.3, timeout=60)
        ha.stop(), hb.stop()
        ra, avg_a, _ = check(r, alice)
        rb, avg_b, _ = check(r, bob)
        assert ra.ok and ra.matched == 48 and rb.ok and rb.matched == 24
        assert avg_a["sum_temp_f"].iloc[0] != avg_b["sum_temp_f"].iloc[0]   # different seeds, separate data
        assert others() == before          # nothing outside the two namespaces was touched
    finally:
        _delete_namespace(r, alice)
        _delete_namespace(r, bob)
