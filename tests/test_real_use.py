"""Real use, on a real server: two consumers at once, partitions that expire or never arrive, strays,
re-runs of produce, a server that comes back empty.  The rule under test: never publish a number that
is not the exact mean of that hour's full data; never lose an hour without naming it; never hang
without saying what for.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time

import pytest

from labkit.servers import connection, embedded as server
from labkit.core import lease, manifest, producer
from labkit.errors import LabkitError
from labkit.core.keys import Keys
from labkit.log import ListSink
from labkit.core.partition import DAY_MS, HOUR_MS
from labkit.core.runner import start_consumers
from tests.helpers import T0, check, produce, wait_for

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def consume_until_idle(target, keys, partition, timeout=60, **kw):
    sink = ListSink()
    h = start_consumers(partition, sink=sink, keys=keys, target=target, averages_maxlen=0, **kw)
    assert h.wait_idle(0.5, timeout=timeout), h.status()
    h.stop()
    assert not h.running
    return h, sink


def hours_of(averages) -> list[int]:
    return sorted(int(x) for x in averages["ms"])


def partial_partition(r, keys, day: int, upto_ms: int, seed: int = 5) -> int:
    """Write a day's readings (1 a second) up to ``upto_ms`` and leave it 'writing', as a producer
    killed mid-day does.  Returns how many readings were written."""
    name = keys.partition_prefix + f"202501{day:02d}"
    start = T0 + (day - 1) * DAY_MS
    rnd = random.Random(seed)
    manifest.mark_writing(r, keys, [name], "dead-run")
    p = r.pipeline(transaction=False)
    n = 0
    for ms in range(start, upto_ms, 1000):
        p.xadd(name, {"temp_f": rnd.randint(0, 100)}, id=f"{ms}-0")
        n += 1
    p.execute()
    return n


# ---------------------------------------------------------------------------- 1. two consumers at once

def test_a_second_consumer_is_refused_with_the_holder_named(r, keys, target, cli):
    produce(r, keys, days=2, interval_ms=60_000)
    first = keys.partition_prefix + "20250101"
    h = start_consumers(first, sink=ListSink(), keys=keys, target=target, averages_maxlen=0)
    try:
        assert h.wait_idle(0.3, timeout=30)
        # in the same process (a second panel), from a partition or resuming
        for part in (first, None):
            with pytest.raises(LabkitError, match="is held by .*pid %d" % os.getpid()) as exc:
                start_consumers(part, sink=ListSink(), keys=keys, target=target)
            assert exc.value.hint and "stop the other one" in exc.value.hint
        # from a terminal
        res = cli("consume", first, namespace=keys.namespace, timeout=60)
        assert res.returncode != 0 and "Traceback" not in res.stderr
        err = res.stderr.strip().splitlines()
        assert len(err) == 1 and "is held by" in err[0] and f"pid {os.getpid()}" in err[0], err
        assert h.running and h.error is None
    finally:
        h.stop()
    rep, averages, _ = check(r, keys)
    assert rep.ok and rep.matched == 48 and rep.duplicates == 0
    # the lease was released on stop: a terminal may resume now
    res = cli("consume", "--idle-exit", "0.5", namespace=keys.namespace, timeout=60)
    assert res.returncode == 0, res.stderr


def test_second_starts_at_random_moments_lose_and_repeat_nothing(r, keys, target):
    produce(r, keys, days=3, interval_ms=5000)
    first = keys.partition_prefix + "20250101"
    h = start_consumers(first, sink=ListSink(), keys=keys, target=target, averages_maxlen=0, batch=200)
    refused = 0
    rnd = random.Random(11)
    try:
        while h.status()["hours_published"] < 72 and h.running:
            time.sleep(rnd.uniform(0, 0.05))
            with pytest.raises(LabkitError, match="is held by"):
                start_consumers(rnd.choice([first, None]), sink=ListSink(), keys=keys, target=target)
            refused += 1
        assert h.wait_idle(0.3, timeout=30)
    finally:
        h.stop()
    assert refused >= 5 and h.error is None
    rep, averages, _ = check(r, keys)
    assert rep.ok and rep.matched == 72 and len(averages) == 72 and not rep.missing


def test_crash_then_resume_in_the_same_process_takes_over_at_once(r, keys, target):
    produce(r, keys, days=1, interval_ms=60_000)
    h = start_consumers(keys.partition_prefix + "20250101", sink=ListSink(), keys=keys, target=target,
                        averages_maxlen=0)
    h.crash()
    assert r.exists(keys.aggregating_lease)      # a crash leaves its lease behind, as a real one would
    t = time.monotonic()
    h2 = start_consumers(None, sink=ListSink(), keys=keys, target=target, averages_maxlen=0)
    waited = time.monotonic() - t
    assert waited < lease.TTL_MS / 2000, waited  # did not wait for the dead holder's lease to expire
    assert h2.wait_idle(0.3, timeout=30)
    h2.stop()
    rep, _, _ = check(r, keys)
    assert rep.ok and rep.matched == 24


def test_a_consumer_whose_lease_was_taken_stops_without_writing(r, keys, target):
    produce(r, keys, days=1, interval_ms=60_000)
    sink = ListSink()
    h = start_consumers(keys.partition_prefix + "20250101", sink=sink, keys=keys, target=target, averages_maxlen=0)
    assert h.wait_idle(0.3, timeout=30)
    # another consumer took the lease (say this one's process was suspended past the TTL)
    r.set(keys.aggregating_lease, lease.Holder(what="another consumer", host="elsewhere", pid=4242).encode())
    published = r.xlen(keys.averages)
    produce(r, keys, start="2025-01-02", days=1, interval_ms=60_000)
    h.join(timeout=lease.TTL_MS / 1000 + 5)
    h.stop()
    assert isinstance(h.error, LabkitError) and "lost" in str(h.error) and "pid 4242 on elsewhere" in str(h.error)
    assert r.xlen(keys.averages) == published
    assert any("stopped: this consumer lost" in t for t in sink.texts("agg"))


def test_a_field_added_to_the_state_is_committed_and_loaded_with_no_change_to_the_script(r, keys):
    from dataclasses import dataclass, replace
    from labkit.core.aggregating import AggregatingConsumer
    from labkit.core.state import AggregatingState, named
    from labkit.core.window import HourAverage

    @dataclass
    class Capped(AggregatingState):
        cap: int = named("averages_maxlen_ran_with", 0)
        note: str = ""
        rate: float = 0.0

    first = keys.partition_prefix + "20250101"
    old = Capped(first, start_stream=first)
    r.hset(keys.aggregating_state, mapping=old.fields())
    c = AggregatingConsumer(r, keys, ListSink(), averages_maxlen=0)
    hour = HourAverage(T0, 150, 3)
    new = replace(old, last_id=f"{T0 + HOUR_MS}-0", cap=120, note="two words", rate=2.5)
    c._commit([hour], [], new, old)
    saved = r.hgetall(keys.aggregating_state)
    assert saved[b"averages_maxlen_ran_with"] == b"120" and saved[b"note"] == b"two words"
    assert Capped.load(r, keys) == new
    [(eid, fields)] = r.xrange(keys.averages)
    assert eid == hour.entry_id.encode()
    assert list(fields.items()) == [(k.encode(), v.encode()) for k, v in hour.fields().items()]   # in order
    with pytest.raises(LabkitError, match=f"changed by someone else \\(now at {first} {T0 + HOUR_MS}-0\\)"):
        c._commit([], [], new, old)                  # the saved position is no longer ``old``'s
    assert Capped.load(r, keys) == new
    r.hset(keys.aggregating_state, "averages_maxlen_ran_with", "many")
    with pytest.raises(LabkitError, match="is corrupt"):
        Capped.load(r, keys)


# ---------------------------------------------------------------------------- 2. partitions that vanish

def test_a_partition_that_vanishes_mid_read_is_named_and_its_partial_hour_not_published(r, keys, target):
    day1, day2 = keys.partition_prefix + "20250101", keys.partition_prefix + "20250102"
    writer = lease.Lease(r, keys.producer_lease, lease.Holder(what="test producer", first=day1, last=day2),
                         ttl_ms=600_000).acquire("")   # held for the whole test, however slow the machine
    cut = T0 + 8 * HOUR_MS + 20 * 60_000               # 08:20 on day 1
    partial_partition(r, keys, 1, cut)
    sink = ListSink()
    h = start_consumers(day1, sink=sink, keys=keys, target=target, averages_maxlen=0)
    try:
        assert h.wait_idle(0.3, timeout=30)
        assert any("test producer is writing it" in t for t in sink.texts("agg"))
        assert r.xlen(keys.averages) == 8           # 00:00-07:00; 08:00 is still open
        r.delete(day1)                               # expired (or deleted) under the consumer
        writer.release()
        produce(r, keys, start="2025-01-02", days=1)
        wait_for(lambda: r.xlen(keys.averages) == 8 + 24 or not h.running)
    finally:
        h.stop()
    assert h.error is None
    agg = sink.texts("agg")
    assert any(f"{day1} vanished after 2025/01/01 08:19:59" in t and "08:00" not in t and "8:00 (1200 readings) is "
               "not published" in t for t in agg), agg
    assert f"agg: Changing partition to consume stream: {day2}" in agg
    rep, averages, _ = check(r, keys)
    day1_hours = [m for m in hours_of(averages) if m < T0 + DAY_MS]
    assert day1_hours == [T0 + i * HOUR_MS for i in range(8)]        # never the partial 08:00
    assert (averages["num_observations"] == "3600").all()
    assert rep.matched == 24 and rep.no_raw_data == 8 and not rep.mismatched
    assert any(b"vanished" in e[1][b"reason"] for e in r.xrange(keys.deadletter))


def test_resuming_after_the_partition_expired_moves_on_and_says_what_was_lost(r, keys, target):
    produce(r, keys, days=2, interval_ms=1000)
    day1 = keys.partition_prefix + "20250101"
    h = start_consumers(day1, sink=ListSink(), keys=keys, target=target, averages_maxlen=0, batch=1000)
    while r.xlen(keys.averages) < 3:
        time.sleep(0.001)
    h.crash()
    state = {k.decode(): v.decode() for k, v in r.hgetall(keys.aggregating_state).items()}
    assert state["current_stream_key"] == day1
    r.delete(day1)                                   # the learner came back after it expired
    h, sink = consume_until_idle(target, keys, None)
    assert h.error is None
    agg = sink.texts("agg")
    assert any(f"{day1} lost readings after" in t and "expired or was deleted" in t for t in agg), agg
    rep, averages, _ = check(r, keys)
    day2_hours = [m for m in hours_of(averages) if m >= T0 + DAY_MS]
    assert len(day2_hours) == 24 and rep.matched == 24 and not rep.mismatched and rep.duplicates == 0
    assert (averages["num_observations"] == "3600").all()              # no partial hour of day 1


# ---------------------------------------------------------------------------- 3/4. what a reading is

def test_readings_filed_in_the_wrong_partition_are_dead_lettered_and_lose_no_day(r, keys, target):
    produce(r, keys, days=2, interval_ms=10_000)
    day1 = keys.partition_prefix + "20250101"
    r.xadd(day1, {"temp_f": "50"}, id=f"{T0 + DAY_MS + 500}-0")         # 00:00:00.5 of the next day
    r.xadd(day1, {"temp_f": "50"}, id="1900000000000-0")                 # 2030
    h, sink = consume_until_idle(target, keys, day1)
    assert h.error is None and h.status()["dead_letters"] == 2
    reasons = [e[1][b"reason"] for e in r.xrange(keys.deadletter)]
    assert reasons == [b"reading time outside its partition's UTC day"] * 2
    rep, averages, _ = check(r, keys)
    assert rep.ok and rep.matched == 48 and len(averages) == 48


def test_one_validity_rule_for_the_consumer_and_ground_truth(r, keys, target):
    day1 = keys.partition_prefix + "20250101"
    produce(r, keys, days=1, interval_ms=60_000)
    r.delete(day1)
    odd = {"4_2", "1.0", " 42", "+42", "٤٢"}
    p = r.pipeline(transaction=False)
    rnd = random.Random(2)
    for i in range(1440):
        p.xadd(day1, {"temp_f": rnd.choice(sorted(odd)) if i % 7 == 0 else str(rnd.randint(0, 100))},
               id=f"{T0 + i * 60_000}-0")
    p.execute()
    manifest.mark_complete(r, keys, day1, "test", 1440, T0 + 1439 * 60_000)
    h, _ = consume_until_idle(target, keys, day1)
    bad = sum(1 for i in range(1440) if i % 7 == 0)
    assert h.status()["dead_letters"] == bad
    rep, averages, truth = check(r, keys)
    assert rep.ok and rep.matched == 24
    assert int(truth["count"].sum()) == 1440 - bad


# ---------------------------------------------------------------------------- 5. completeness per partition

def test_re_producing_an_earlier_day_never_hides_a_later_days_final_hour(r, keys, target):
    produce(r, keys, days=2, interval_ms=10_000)
    produce(r, keys, days=1, interval_ms=10_000)          # re-run for day 1 only
    h, _ = consume_until_idle(target, keys, keys.partition_prefix + "20250101")
    rep, averages, _ = check(r, keys)
    assert rep.ok and rep.matched == 48 and len(averages) == 48


def test_a_half_written_partition_is_never_closed_as_complete(r, keys, target):
    produce(r, keys, days=1, interval_ms=10_000)
    cut = T0 + DAY_MS + 5 * HOUR_MS + 1_758_000          # the producer died at 05:29:18 of day 2
    partial_partition(r, keys, 2, cut)
    produce(r, keys, start="2025-01-03", days=1, interval_ms=10_000)   # a later run, after the crash
    h, sink = consume_until_idle(target, keys, keys.partition_prefix + "20250101")
    assert h.error is None
    day2 = keys.partition_prefix + "20250102"
    agg = sink.texts("agg")
    assert any(f"{day2} is incomplete: its producer stopped after 2025/01/02 05:29:17" in t
               and "5:00 (1758 readings) is not published" in t for t in agg), agg
    rep, averages, _ = check(r, keys)
    assert (averages["num_observations"] != "1758").all()
    assert rep.missing == [T0 + DAY_MS + 5 * HOUR_MS]      # verify names the one hour not published
    assert rep.matched == 24 + 5 + 24 and not rep.mismatched


def test_a_re_run_of_produce_under_the_consumer_stops_it_loudly(r, keys, target):
    produce(r, keys, days=1, interval_ms=60_000)
    sink = ListSink()
    h = start_consumers(keys.partition_prefix + "20250101", sink=sink, keys=keys, target=target, averages_maxlen=0)
    assert h.wait_idle(0.3, timeout=30)
    produce(r, keys, days=1, interval_ms=60_000, seed=9)
    h.join(timeout=10)
    h.stop()
    assert isinstance(h.error, LabkitError) and "was rewritten by another produce run" in str(h.error)


def test_live_mode_then_a_dataset_never_mixes_their_completeness(r, keys, target):
    from labkit.core.live import run_live
    run_live(r, keys, rate=50, duration=1.0)                       # today's partition, left 'writing'
    produce(r, keys, days=1, interval_ms=60_000)
    h, sink = consume_until_idle(target, keys, keys.partition_prefix + "20250101")
    assert h.error is None
    rep, averages, _ = check(r, keys)
    day1 = averages[averages["ms"] < T0 + DAY_MS]
    assert len(day1) == 24 and (day1["num_observations"] == "60").all()
    assert not rep.mismatched and rep.matched == len(averages)
    assert any("are missing" in t for t in sink.texts("agg"))     # the days between, named


def test_out_of_memory_names_the_half_written_partition(own_server):
    _, t = own_server
    r = connection.connect(t)
    keys = Keys("oom")
    r.config_set("maxmemory", str(int(r.info("memory")["used_memory"]) + 2_000_000))
    with pytest.raises(LabkitError, match=r"out of memory .* while writing oom:temps:2025010\d, which is left "
                                          r"half written and marked incomplete") as exc:
        producer.produce(r, producer.Dataset(producer.parse_start("2025-01-01"), 3), keys)
    assert "troubleshooting" in exc.value.hint
    name = str(exc.value).split("while writing ")[1].split(",")[0]
    assert manifest.read(r, keys)[name].status == manifest.WRITING
    assert not r.exists(keys.producer_lease)                     # released on the way out


# ---------------------------------------------------------------------------- 6. a missing day

def test_a_missing_day_is_named_and_skipped_once_it_cannot_arrive(r, keys, target):
    produce(r, keys, days=2, interval_ms=60_000)
    produce(r, keys, start="2025-01-04", days=2, interval_ms=60_000)
    h, sink = consume_until_idle(target, keys, keys.partition_prefix + "20250101")
    assert h.error is None
    missing = keys.partition_prefix + "20250103"
    assert any(f"{missing} is missing" in t for t in sink.texts("agg")), sink.texts("agg")
    rep, averages, _ = check(r, keys)
    assert rep.ok and rep.matched == 96 and len(averages) == 96


def test_while_a_missing_day_may_still_arrive_the_consumer_says_what_it_waits_for(r, keys, target):
    produce(r, keys, days=1, interval_ms=60_000)
    produce(r, keys, start="2025-01-03", days=1, interval_ms=60_000)
    day2 = keys.partition_prefix + "20250102"
    writer = lease.Lease(r, keys.producer_lease, lease.Holder(what="a backfill", first=day2, last=day2),
                         ttl_ms=600_000).acquire("")   # held for the whole test, however slow the machine
    sink = ListSink()
    h = start_consumers(keys.partition_prefix + "20250101", sink=sink, keys=keys, target=target, averages_maxlen=0)
    try:
        assert h.wait_idle(0.5, timeout=30)
        assert f"agg: Waiting for stream partition {day2} (a backfill is writing it)." in sink.texts("agg")
        assert r.xlen(keys.averages) == 24
        # The backfill writes the day, marks it complete, and only then lets go of its lease.
        n = partial_partition(r, keys, 2, T0 + 2 * DAY_MS, seed=3)
        manifest.mark_complete(r, keys, day2, "dead-run", n, T0 + 2 * DAY_MS - 1000)
        writer.release()
        wait_for(lambda: r.xlen(keys.averages) == 72 or not h.running)
    except AssertionError as exc:
        raise AssertionError(f"{exc}; the consumer said:\n" + "\n".join(sink.texts("agg")[-12:])) from None
    finally:
        h.stop()
    rep, averages, _ = check(r, keys)
    assert rep.ok and rep.matched == 72


# ---------------------------------------------------------------------------- 7. the server comes back empty

def test_a_server_that_restarts_empty_is_reported_not_silently_restarted(own_server):
    home, t = own_server
    info = server.read_info(home)
    r = connection.connect(t)
    keys = Keys("empty")
    producer.produce(r, producer.Dataset(producer.parse_start("2025-01-01"), 1, 60_000), keys)
    sink = ListSink()
    h = start_consumers(keys.partition_prefix + "20250101", averages_maxlen=0, sink=sink, keys=keys, target=t,
                        reconnect_s=30)
    try:
        assert h.wait_idle(0.3, timeout=30)
        server.stop(home)
        shutil.rmtree(info.data_dir)                   # no persistence: it comes back empty
        server.start(home)
        h.join(timeout=40)
        assert not h.running
    finally:
        h.stop()
    assert isinstance(h.error, LabkitError) and "gone from Redis" in str(h.error)
    assert any("stopped:" in t and "gone from Redis" in t for t in sink.texts()), sink.texts()


# ---------------------------------------------------------------------------- 9. smaller ones

def test_a_blank_namespace_is_refused(cli):
    res = cli("verify", env={"LABKIT_NAMESPACE": "   "})
    assert res.returncode == 2 and "LABKIT_NAMESPACE is set but blank" in res.stderr
    assert "Traceback" not in res.stderr


def test_a_second_producer_is_refused_with_the_holder_named(r, keys, cli):
    writer = lease.Lease(r, keys.producer_lease, lease.Holder(what="a live producer"), ttl_ms=600_000).acquire("")
    try:
        res = cli("produce", "--days", "1", "--no-progress", namespace=keys.namespace)
        assert res.returncode == 2 and "held by a live producer" in res.stderr and "Traceback" not in res.stderr
        res = cli("produce", "--live", "--duration", "1", namespace=keys.namespace)
        assert res.returncode == 2 and "held by a live producer" in res.stderr
    finally:
        writer.release()
    assert not r.exists(keys.partition_prefix + "20250101")


def test_sigterm_stops_consume_cleanly_with_exit_143(r, keys, target, lab_home):
    produce(r, keys, days=1, interval_ms=60_000)
    env = dict(os.environ, LABKIT_HOME=str(lab_home), PYTHONPATH=ROOT, LABKIT_NAMESPACE=keys.namespace)
    env.pop("REDIS_URL", None)
    if not target.embedded:
        env["REDIS_URL"] = target.url
    p = subprocess.Popen([sys.executable, "-m", "labkit", "consume", keys.partition_prefix + "20250101"], env=env,
                         cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while r.xlen(keys.averages) < 24 and time.monotonic() < deadline:
        time.sleep(0.02)
    p.send_signal(signal.SIGTERM)
    out, err = p.communicate(timeout=10)
    assert p.returncode == 143 and "Traceback" not in err
    assert not r.exists(keys.aggregating_lease)          # released on the way out


def test_chaos_and_soak_namespaces_follow_labkit_namespace(monkeypatch):
    monkeypatch.setenv("LABKIT_NAMESPACE", "alice")
    assert Keys.for_tool("chaos").namespace == "alice-chaos"
    monkeypatch.delenv("LABKIT_NAMESPACE")
    assert Keys.for_tool("chaos").namespace == "labkit-chaos"


def test_consumers_stopped_by_an_error_let_go_of_their_lease_at_once(r, keys, target):
    """A pair that stops by itself (here: its partition rewritten under it) releases the namespace's lease as
    it ends, so Start right after works; it used to be refused until the lease expired (about 10 s)."""
    produce(r, keys, days=1, interval_ms=60_000)
    day1 = keys.partition_prefix + "20250101"
    h = start_consumers(day1, sink=ListSink(), keys=keys, target=target, averages_maxlen=0)
    assert h.wait_idle(0.3, timeout=30)
    produce(r, keys, days=1, interval_ms=60_000, seed=9)
    wait_for(lambda: not h.running, timeout=10)
    assert h.error is not None
    h2 = start_consumers(day1, sink=ListSink(), keys=keys, target=target, averages_maxlen=0)   # no join, no stop
    try:
        assert h2.wait_idle(0.3, timeout=30)
    finally:
        h2.stop()
    rep, _, _ = check(r, keys)
    assert rep.ok and rep.matched == 24


def test_slow_motion_pauses_between_batches_and_changes_no_result(r, keys, target):
    """``pace_ms``: a pause after each full batch, so a person can press Stop or Simulate crash mid-run."""
    produce(r, keys, days=1, interval_ms=60_000)            # 1,440 readings: 15 batches of 100
    t = time.monotonic()
    h = start_consumers(keys.partition_prefix + "20250101", sink=ListSink(), keys=keys, target=target,
                        averages_maxlen=0, batch=100, pace_ms=40)
    try:
        assert h.wait_idle(0.3, timeout=30)
    finally:
        h.stop()
    assert time.monotonic() - t >= 14 * 0.040 + 0.3
    rep, _, _ = check(r, keys)
    assert rep.ok and rep.matched == 24
    with pytest.raises(LabkitError, match="pace"):
        start_consumers(None, keys=keys, target=target, pace_ms=-1)


def test_readings_trimmed_under_the_consumer_never_make_a_partial_hour_look_whole(r, keys, target):
    """An XTRIM (or eviction) takes readings the consumer has not read yet, in the middle of its partition: the
    hours it cut are named and not published (they were published as whole, from 400 of 3,600 readings), and the
    partition's last hour, whole, is published (it was withheld for the partition's shortfall)."""
    produce(r, keys, days=1, interval_ms=10_000)                         # 360 readings an hour
    day1 = keys.partition_prefix + "20250101"
    sink = ListSink()
    h = start_consumers(day1, sink=sink, keys=keys, target=target, averages_maxlen=0, batch=100, pace_ms=50)
    try:
        wait_for(lambda: h.status()["readings"] >= 500, timeout=30)
        assert h.status()["readings"] < 12 * 360, "the consumer passed 12:00 before the trim: machine too slow?"
        r.xtrim(day1, minid=T0 + 12 * HOUR_MS + 30 * 60_000)              # everything before 12:30 goes
        assert h.wait_idle(0.5, timeout=60)
    finally:
        h.stop()
    rep, averages, _ = check(r, keys)
    assert (averages["num_observations"] == "360").all(), averages[["hour", "num_observations"]]
    published = set(averages["ms"])
    assert {T0 + k * HOUR_MS for k in range(13, 24)} <= published                # 13:00-23:00, whole, all there
    assert T0 + 12 * HOUR_MS not in published                                     # 12:30-13:00 only: withheld
    agg = sink.texts("agg")
    assert any(f"{day1} lost readings of the hour 2025/01/01 12:00" in t and "180 of the 360" in t for t in agg), agg
    # lost: the hours cut; unchecked: hours published whole before the trim took their readings
    assert not rep.mismatched and {p.kind for p in rep.problems} <= {"lost", "unchecked"}, rep.problems
    noon = next(p for p in rep.problems if p.hour_ms == T0 + 12 * HOUR_MS)
    assert noon.kind == "lost" and "lost readings of the hour 2025/01/01 12:00" in noon.detail, noon   # its own words
    cut = [p for p in rep.problems if p.kind == "lost" and "lost readings of the hour" in p.detail]
    assert all(f" {utc_hour(p.hour_ms)}:00 " in p.detail for p in cut), cut     # each hour, its own loss


def utc_hour(ms: int) -> str:
    """``2025/01/01 12`` for an hour start: how the consumer names an hour in its log."""
    import datetime as dt
    t = dt.datetime.fromtimestamp(ms / 1000, dt.timezone.utc)
    return f"{t:%Y/%m/%d} {t.hour}"
