"""The pipeline through failovers that lose the newest writes (asynchronous replication).

Each test has its own 3-master + 3-replica cluster of Debian's redis-server
(tests/cluster_fixtures.py).  Replication from one master is cut first, so
what it acknowledges afterwards exists only on it; then it is killed and its
replica takes over: the acknowledged writes are gone, as they can be in production.
"""

from __future__ import annotations

import threading
import time

import pytest

from labkit.servers import cluster, connection
from labkit.core import producer
from labkit.core.keys import Keys
from labkit.core.keyspace import keys_for
from labkit.log import ListSink
from labkit.core.runner import start_consumers
from labkit.core.truth import check, load_readings

pytestmark = pytest.mark.slow


def _namespace_apart(r, info, days: list[str]) -> Keys:
    """Keys of a namespace whose partitions ``days`` live on other masters than its ``temps:averages``."""
    for i in range(500):
        keys = keys_for(r, Keys(f"fo{i}"))
        avg = cluster.master_for(info, keys.averages)
        if all(cluster.master_for(info, keys.partition_prefix + d) != avg for d in days):
            return keys
    raise AssertionError("no such namespace")


def _replicated(info, master: int, timeout: float = 10) -> None:
    """Wait until ``master``'s replica has everything the master has."""
    (replica,) = cluster.masters(info)[master]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        m = cluster.node_info(info, master, "replication")
        rp = cluster.node_info(info, replica, "replication")
        if int(rp.get("slave_repl_offset", -1)) >= int(m["master_repl_offset"]):
            return
        time.sleep(0.02)
    raise AssertionError("the replica did not catch up")


def test_a_failover_that_loses_published_hours_and_state_ends_exact(own):
    """The averages' master loses a whole day of published hours *and* the state that recorded them.

    State, averages, lease and dead letters share a slot, so the promoted
    replica holds a consistent prefix of all of them: the consumer, running
    throughout, reconnects, resumes from the older state and republishes the
    lost day; no hour is missing and none is published twice.  (With the state
    on another shard it would survive while the hours are lost, and the
    consumer would resume after them: 24 of 48 hours gone.)
    """
    info, r = own
    t = connection.Target(info.url, embedded=False)
    keys = _namespace_apart(r, info, ["20250101", "20250102"])   # only the averages' shard fails
    avg_master = cluster.master_for(info, keys.averages)
    assert cluster.master_for(info, keys.aggregating_state) == avg_master   # the point of the hash tag

    producer.produce(r, producer.Dataset(producer.parse_start("2025-01-01"), 1, 10_000, seed=3), keys)
    sink = ListSink()
    h = start_consumers(keys.partition_prefix + "20250101", averages_maxlen=0, sink=sink, keys=keys, target=t,
                        reconnect_s=60)
    try:
        assert h.wait_idle(0.3, timeout=60) and r.xlen(keys.averages) == 24
        _replicated(info, avg_master)
        cluster.cut_replication(info, avg_master)        # from now on, temps:averages' writes exist only there
        producer.produce(r, producer.Dataset(producer.parse_start("2025-01-02"), 1, 10_000, seed=4), keys)
        deadline = time.monotonic() + 60
        while r.xlen(keys.averages) < 48 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert r.xlen(keys.averages) == 48               # day 2 published, acknowledged, on the master only
        (replica,) = cluster.masters(info)[avg_master]
        on_replica = cluster.client_of(info, replica)
        on_replica.execute_command("READONLY")
        assert on_replica.xlen(keys.averages) in range(24, 48)   # what the failover will lose
        on_replica.close()
        cluster.kill(info, avg_master)
        cluster.failover(info, avg_master)               # its replica takes over: day 2's hours are gone
        # (not read again here: the consumers, running throughout, may already be republishing them)
        deadline = time.monotonic() + 60
        while r.xlen(keys.averages) < 48 and time.monotonic() < deadline and h.running:
            time.sleep(0.05)
        assert h.wait_idle(0.5, timeout=60), h.status()
    finally:
        h.stop()
    st = h.status()
    assert st["error"] is None and st["reconnects"] >= 1, st
    assert any("lost the connection" in line for line in sink.texts())
    rep, averages, _ = check(r, keys)
    assert rep.ok and rep.matched == 48 and rep.duplicates == 0 and len(averages) == 48, rep.summary()
    assert st["hours_published"] > 48      # the lost hours were published again, after the failover


def test_complete_means_on_the_replicas_too_or_the_producer_says_so(own):
    """A partition is marked complete once its master's replicas confirm every reading (WAIT); a replica that
    cannot confirm is named, so a failover that shortens a "complete" partition never comes unannounced.

    Healthy: the replica holds the whole day the moment produce returns (then a failover loses nothing).
    Replication cut: produce still finishes, and says which partition its replica did not confirm.
    """
    info, r = own
    keys = keys_for(r, Keys("fowait"))
    day = keys.partition_prefix + "20250101"
    master = cluster.master_for(info, day)
    (replica,) = cluster.masters(info)[master]
    data = producer.Dataset(producer.parse_start("2025-01-01"), 1, 10_000, seed=6)

    sink = ListSink()
    producer.produce(r, data, keys, sink)
    on_replica = cluster.client_of(info, replica)
    on_replica.execute_command("READONLY")
    assert on_replica.xlen(day) == 8_640               # read at once: nothing left in flight
    on_replica.close()
    assert not any("replica" in line for line in sink.texts()), sink.texts()

    cluster.cut_replication(info, master)
    sink = ListSink()
    t = time.monotonic()
    producer.produce(r, data, keys, sink, replica_wait_ms=1000)
    assert time.monotonic() - t < 10
    assert any(f"{day}: 0 of 1 replica(s) confirmed it within 1 s" in line for line in sink.texts()), sink.texts()


def test_a_partition_master_killed_mid_produce_then_everything_exact(own):
    """The master of a partition being written dies with unreplicated writes; its replica takes over.

    The producer treats it like a dropped connection: it rereads the layout and
    resumes that partition after the last reading the new master holds.  Every
    partition ends with exactly its readings (the seeded walk, reading by
    reading), and the consumers then verify every hour.
    """
    info, r = own
    t = connection.Target(info.url, embedded=False)
    keys = keys_for(r, Keys("fomid"))
    data = producer.Dataset(producer.parse_start("2025-01-01"), 6, 1000, seed=5)
    names = data.partitions(keys)
    killed: list[int] = []
    sink = ListSink()

    def progress(n: int) -> None:
        if killed or n < data.count // 3:
            return
        for p in names:
            if 0 < r.xlen(p) < 86_400:                     # being written now
                master = cluster.master_for(info, p)
                _replicated(info, master)
                cluster.cut_replication(info, master)
                killed.append(master)
                cluster.kill(info, master)
                threading.Thread(target=cluster.failover, args=(info, master), daemon=True).start()
                return

    res = producer.produce(r, data, keys, sink, progress=progress, reconnect_s=60)
    assert killed, "no partition was caught mid-write"
    assert res["readings"] == data.count
    assert any("resuming" in line for line in sink.texts()), sink.texts()
    for p in names:
        assert r.xlen(p) == 86_400, p
    readings = load_readings(r, names, prefix=keys.partition_prefix)
    assert readings["temp_f"].astype(int).tolist() == producer.Walk(5)(data.count)
    assert readings["ms"].tolist() == [data.start_ms + i * 1000 for i in range(data.count)]
    h = start_consumers(names[0], averages_maxlen=0, sink=ListSink(), keys=keys, target=t)
    assert h.wait_idle(0.5, timeout=120)
    h.stop()
    rep, _, _ = check(r, keys)
    assert rep.ok and rep.matched == 6 * 24, rep.summary()


def test_reconnected_means_every_slot_answers_again(own):
    """After a master dies, "reconnected" is said only once every slot has a master that answers: said
    earlier (when any node answered a PING), each following command failed again, and a failover under
    the cluster's own timeout filled the log with "lost the connection / reconnected" pairs."""
    info, r = own
    key = "reconnect-probe"
    m = cluster.master_for(info, key)
    r.set(key, "1")
    _replicated(info, m)
    cluster.kill(info, m)
    lines: list[str] = []
    t = threading.Thread(target=cluster.failover, args=(info, m), kwargs={"takeover": False}, daemon=True)
    t.start()                                       # the cluster's own failover: seconds, not at once
    assert connection.reconnect(r, lines.append, ConnectionError("test"), seconds=60)
    assert r.get(key) == b"1"                        # at once: the slot has a live master again
    assert lines[-1].startswith("reconnected") and len(lines) == 2, lines
    t.join(60)


def test_consumers_blocked_on_a_master_that_becomes_a_replica_carry_on(own):
    """A planned failover (CLUSTER FAILOVER on the replica, the master alive) turns the master into a replica,
    which ends every blocked read on it with "UNBLOCKED … instance state changed (master -> replica?)".
    The consumers, idle and blocked, must treat that as a changed layout and carry on, not stop."""
    info, r = own
    t = connection.Target(info.url, embedded=False)
    keys = keys_for(r, Keys("foplanned"))
    producer.produce(r, producer.Dataset(producer.parse_start("2025-01-01"), 1, 60_000, seed=7), keys)
    sink = ListSink()
    h = start_consumers(keys.partition_prefix + "20250101", averages_maxlen=0, sink=sink, keys=keys, target=t,
                        block_ms=5_000, reconnect_s=60)
    try:
        assert h.wait_idle(0.5, timeout=60) and r.xlen(keys.averages) == 24
        time.sleep(0.5)                                   # both consumers are inside a 5 s XREAD BLOCK now
        for m in {cluster.master_for(info, keys.averages), cluster.master_for(info, keys.partition_prefix + "20250102")}:
            (replica,) = cluster.masters(info)[m]
            _replicated(info, m)
            cluster.call(info, replica, "CLUSTER", "FAILOVER")
            cluster.wait_until("planned failover",
                               lambda p=replica: cluster.node_info(info, p, "replication")["role"] == "master", 30, "")
        cluster.wait_ok(info)
        producer.produce(r, producer.Dataset(producer.parse_start("2025-01-02"), 1, 60_000, seed=8), keys)
        deadline = time.monotonic() + 60
        while h.status()["averages_printed"] < 48 and h.running and time.monotonic() < deadline:
            time.sleep(0.05)
        st = h.status()
        assert st["error"] is None and st["averages_printed"] == 48, (st, sink.texts()[-10:])
    finally:
        h.stop()
    rep, _, _ = check(r, keys)
    assert rep.ok and rep.matched == 48 and rep.duplicates == 0, rep.summary()
