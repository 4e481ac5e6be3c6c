"""Redis Cluster: the local cluster CLI, detection, key placement, key-space operations,
the one-line errors, and the failover helpers the pipeline's failover tests build on.

Every cluster here is real: Debian's redis-server 7.0 (tests/cluster_fixtures.py),
or the embedded binary for ``python -m labkit cluster``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis
from redis.cluster import RedisCluster
from redis.crc import key_slot

from labkit.servers import cluster, connection
from labkit.errors import LabkitError
from labkit.core.keys import Keys
from labkit.core.keyspace import by_slot, delete_keys, delete_namespace, list_partitions, scan_keys
from tests.conftest import ROOT


def slot(name: str) -> int:
    return key_slot(name.encode())


# ---------------------------------------------------------------- pure: names, layout, parsing, messages

@pytest.mark.parametrize("namespace", ["", "alice"])
def test_keys_committed_with_the_averages_share_its_slot_on_a_cluster(namespace):
    single, clustered = Keys(namespace), Keys(namespace, cluster=True)
    for k in (single, clustered):  # the course names stay
        assert k.averages == k.key("temps:averages")
        assert k.partition_prefix == k.key("temps:")
        assert k.averages_state == k.key("averages_consumer_state")
    assert (single.aggregating_state, single.deadletter, single.aggregating_lease) == (
        single.key("aggregating_consumer_state"), single.key("temps:deadletter"),
        single.key("aggregating_consumer_lease"))
    # Untagged, they would land in other slots, and one MULTI/EXEC could not span them.
    assert slot(single.aggregating_state) != slot(single.averages)
    for name in (clustered.aggregating_state, clustered.deadletter, clustered.aggregating_lease):
        assert slot(name) == slot(clustered.averages), name
        assert name.startswith("{" + clustered.averages + "}")
    assert clustered.aggregating_state == "{%s}aggregating_consumer_state" % clustered.averages


def test_namespace_patterns_cover_tagged_keys():
    import fnmatch
    k = Keys("alice", cluster=True)
    names = [k.averages, k.aggregating_state, k.deadletter, k.partition_prefix + "20250101"]
    assert all(any(fnmatch.fnmatchcase(n, p) for p in k.namespace_patterns) for n in names)
    bob = Keys("bob", cluster=True)
    assert not any(fnmatch.fnmatchcase(n, p) for p in k.namespace_patterns
                   for n in (bob.averages, bob.aggregating_state, bob.partition_prefix + "20250101"))
    assert not any(fnmatch.fnmatchcase("{alicex:temps:averages}x", p) or fnmatch.fnmatchcase("alicex:temps:1", p)
                   for p in k.namespace_patterns)


@pytest.mark.parametrize("shards", range(1, cluster.MAX_SHARDS + 1))
def test_slot_ranges_cover_every_slot_once(shards):
    ranges = cluster.slot_ranges(shards)
    assert len(ranges) == shards and ranges[0][0] == 0 and ranges[-1][1] == cluster.SLOTS - 1
    assert all(b + 1 == c for (_, b), (c, _) in zip(ranges, ranges[1:]))
    sizes = [b - a + 1 for a, b in ranges]
    assert max(sizes) - min(sizes) <= 1


def test_layout_gives_each_master_its_replicas():
    roles = cluster.layout([1, 2, 3, 4, 5, 6, 7, 8, 9], 3, 2)
    assert [p for p, m in roles.items() if m is None] == [1, 2, 3]
    assert {p: m for p, m in roles.items() if m} == {4: 1, 5: 2, 6: 3, 7: 1, 8: 2, 9: 3}


def test_parse_cluster_nodes():
    from labkit.servers.replies import parse_nodes
    text = ("07c3 127.0.0.1:30004@40004 slave e7d1 0 1426238317239 4 connected\n"
            "e7d1 127.0.0.1:30001@40001 myself,master - 0 0 1 connected 0-5460 5470\n"
            "6ec2 127.0.0.1:30002@40002 master,fail - 1426238316232 1426238315000 2 disconnected "
            "5461-10922 [5463->-e7d1]\n")
    nodes = {n["port"]: n for n in parse_nodes(text)}
    assert nodes[30004]["master"] == "e7d1" and nodes[30004]["slots"] == []
    assert nodes[30001]["slots"] == [(0, 5460), (5470, 5470)] and "myself" in nodes[30001]["flags"]
    assert "fail" in nodes[30002]["flags"] and nodes[30002]["slots"] == [(5461, 10922)]
    assert cluster.format_ranges([(0, 5460), (5470, 5470)]) == "0-5460,5470"
    assert nodes[30004]["address"] == "127.0.0.1:30004" and parse_nodes(text.encode()) == parse_nodes(text)
    [gone] = parse_nodes("a1b2 :0@0 master,noaddr - 0 0 0 disconnected\n")   # no address known (yet)
    assert gone["port"] == 0 and gone["address"] == "127.0.0.1:0" and "noaddr" in gone["flags"]


T = connection.Target("redis://:pw@127.0.0.1:7100", embedded=False)


@pytest.mark.parametrize("exc, says", [
    (redis.exceptions.MovedError("16230 127.0.0.1:7103"), "(MOVED 16230 127.0.0.1:7103)"),
    (redis.ResponseError("MOVED 16230 127.0.0.1:7103"), "(MOVED 16230 127.0.0.1:7103)"),  # the raw pipe's form
    (redis.exceptions.AskError("3999 127.0.0.1:7101"), "(ASK 3999 127.0.0.1:7101)"),
    (redis.exceptions.ClusterCrossSlotError("Keys in request don't hash to the same slot"), "CROSSSLOT"),
    *([(redis.exceptions.CrossSlotTransactionError("All keys involved in a cluster transaction must map to the "
                                                   "same slot"), "CROSSSLOT")]
      if hasattr(redis.exceptions, "CrossSlotTransactionError") else []),    # redis-py 6+
    (redis.exceptions.RedisClusterException("MGET - all keys must map to the same key slot"), "CROSSSLOT"),
    (redis.exceptions.TryAgainError("Multiple keys request during rehashing of slot"), "TRYAGAIN"),
    (redis.exceptions.ClusterDownError("The cluster is down"), "is down"),
    (redis.exceptions.MasterDownError("Link with MASTER is down and replica-serve-stale-data is set to 'no'."),
     "is down"),
    (redis.exceptions.SlotNotCoveredError('Slot "5" is not covered by the cluster.'), "is down"),
    (redis.exceptions.ClusterError("TTL exhausted."), "kept redirecting"),
    (redis.exceptions.RedisClusterException("A ``db`` querystring option can only be 0 in cluster mode"),
     "only database 0"),
    (redis.exceptions.RedisClusterException("Redis Cluster cannot be connected. Please provide at least one "
                                            "reachable node: Connection refused"), "cannot reach"),
])
def test_cluster_errors_become_one_line_with_a_hint(exc, says):
    err = connection.explain(exc, T)
    assert isinstance(err, LabkitError) and err.hint
    assert says in err.message and "\n" not in str(err)
    assert "answered an error" not in err.message  # not the generic fallback


# ---------------------------------------------------------------- detection

def test_keys_are_named_for_the_server_a_client_talks_to(redis_cluster, r):
    from labkit.core.keyspace import keys_for
    c = connection.connect(connection.Target(redis_cluster.url, embedded=False))
    try:
        assert keys_for(c, Keys("alice")) == Keys("alice", cluster=True)
        assert keys_for(r, Keys("alice")) == Keys("alice")
        assert keys_for(c, Keys("alice", cluster=True)).aggregating_state == "{alice:temps:averages}aggregating_consumer_state"
    finally:
        c.close()


def test_a_masters_replica_confirms_a_write(redis_cluster):
    c = connection.connect(connection.Target(redis_cluster.url, embedded=False))
    key = f"confirm{os.getpid()}"
    try:
        c.set(key, "x")
        assert connection.confirm_replicas(c, key, int(time.time() * 1000) + 60_000, 10_000) == (1, 1)
    finally:
        c.delete(key)
        c.close()


def test_a_context_names_the_keys_once_for_its_server(redis_cluster, target):
    from labkit.core.context import Context
    with Context.open(Keys("alice"), connection.Target(redis_cluster.url, embedded=False)) as ctx:
        assert ctx.cluster and connection.is_cluster(ctx.r)
        assert ctx.keys.aggregating_state == "{alice:temps:averages}aggregating_consumer_state"
        assert ctx.using(Keys("bob")).keys == Keys("bob", cluster=True) and ctx.using(Keys("bob")).r is ctx.r
    with Context.open(Keys("alice"), target) as single:
        assert not single.cluster and single.keys == Keys("alice")
        assert single.keys.aggregating_state == "alice:aggregating_consumer_state"


def test_connect_returns_a_cluster_client_for_a_cluster(redis_cluster, one_node_cluster, r):
    for info in (redis_cluster, one_node_cluster):
        c = connection.connect(connection.Target(info.url, embedded=False))
        try:
            assert isinstance(c, RedisCluster) and connection.is_cluster(c)
            assert len(c.get_primaries()) == info.shards
            # The same timeouts as a single-server client.
            kw = c.get_primaries()[0].redis_connection.connection_pool.connection_kwargs
            assert kw["socket_timeout"] == connection.SOCKET_TIMEOUT_S
            c.set("{probe}a", 1)
            assert c.get("{probe}a") == b"1"
            c.delete("{probe}a")
        finally:
            c.close()
    # The single-server path is unchanged.
    assert type(r) is redis.Redis and not connection.is_cluster(r)


def test_a_cluster_url_with_a_database_number_is_one_line(redis_cluster):
    with pytest.raises(LabkitError, match="only database 0") as e:
        connection.connect(connection.Target(redis_cluster.url + "/3", embedded=False))
    assert e.value.hint and "/N" in e.value.hint


# ---------------------------------------------------------------- key-space operations on every master

def _per_master(info, keys: list[str]) -> dict[int, set[str]]:
    """What each master's own SCAN sees (one node sees only its slots)."""
    out = {}
    for port in cluster.masters(info):
        with redis.Redis(port=port, password=info.password) as c:
            out[port] = {k.decode() for k in c.scan_iter(count=1000)} & set(keys)
    return out


def test_list_partitions_and_delete_namespace_span_every_master(redis_cluster):
    r = connection.connect(connection.Target(redis_cluster.url, embedded=False))
    k, other = Keys("spread", cluster=True), Keys("spreadother", cluster=True)
    parts = [f"{k.partition_prefix}2025010{d}" for d in range(1, 10)]
    try:
        for name in parts + [f"{other.partition_prefix}20250101"]:
            r.xadd(name, {"temp_f": 50}, id="1735689600000-0")
        r.set(k.key("temps:watermark"), 1)            # not a stream: not a partition
        r.xadd(k.averages, {"x": 1})
        r.hset(k.aggregating_state, "stream", parts[0])
        r.xadd(k.deadletter, {"x": 1})
        seen = _per_master(redis_cluster, parts)
        assert sum(1 for s in seen.values() if s) >= 2, "the partitions must span masters for this test"
        assert all(s != set(parts) for s in seen.values()), "no single node sees every partition"
        assert list_partitions(r, k) == parts
        assert delete_namespace(r, k) == len(parts) + 4
        assert scan_keys(r, "spread:*") == [] and scan_keys(r, "{spread:*") == []
        assert list_partitions(r, other) == [f"{other.partition_prefix}20250101"]  # another namespace untouched
    finally:
        delete_namespace(r, k)
        delete_namespace(r, other)
        r.close()


@pytest.mark.parametrize("which", ["redis_cluster", "one_node_cluster"])
def test_delete_keys_groups_by_slot_where_multi_key_unlink_is_refused(which, request):
    info = request.getfixturevalue(which)
    r = connection.connect(connection.Target(info.url, embedded=False))
    names = [f"dk:{i}" for i in range(40)]
    try:
        for n in names:
            r.set(n, 1)
        assert len(by_slot(names)) > 1
        with redis.Redis(port=info.nodes[0].port, password=info.password) as plain:
            mine = [n for n in names if r.get_node_from_key(n).port == info.nodes[0].port]
            # The server itself refuses one UNLINK over several slots, even when it owns them all.
            with pytest.raises(redis.exceptions.ResponseError) as e:   # ClusterCrossSlotError on redis-py 6+
                plain.unlink(*mine)
            assert "CROSSSLOT" in str(connection.explain(e.value, T))
        assert delete_keys(r, names + ["dk:absent"]) == len(names)
        assert scan_keys(r, "dk:*") == []
    finally:
        delete_keys(r, names)
        r.close()


def test_one_node_cluster_lists_and_deletes(one_node_cluster):
    r = connection.connect(connection.Target(one_node_cluster.url, embedded=False))
    k = Keys("solo", cluster=True)
    try:
        parts = [f"{k.partition_prefix}2025010{d}" for d in range(1, 4)]
        for name in parts:
            r.xadd(name, {"temp_f": 50})
        r.hset(k.aggregating_state, "stream", parts[0])
        assert list_partitions(r, k) == parts
        assert delete_namespace(r, k) == 4
        assert list_partitions(r, k) == []
    finally:
        delete_namespace(r, k)
        r.close()


# ---------------------------------------------------------------- errors from a client that is not cluster-aware

def test_moved_and_crossslot_from_a_plain_client_are_one_line(redis_cluster):
    first = redis_cluster.nodes[0].port
    key = next(f"m{i}" for i in range(1000)
               if not cluster.slot_ranges(3)[0][0] <= slot(f"m{i}") <= cluster.slot_ranges(3)[0][1])
    with redis.Redis(port=first, password=redis_cluster.password) as plain:
        with pytest.raises(redis.exceptions.MovedError) as moved:
            plain.get(key)
        with pytest.raises(redis.exceptions.ClusterCrossSlotError) as cross:
            plain.execute_command("MGET", "temps:averages", "aggregating_consumer_state")
    t = connection.Target(redis_cluster.url, embedded=False)
    m = connection.explain(moved.value, t)
    assert f"MOVED {slot(key)} 127.0.0.1:" in m.message and "not serve" in m.message and m.hint
    c = connection.explain(cross.value, t)
    assert "CROSSSLOT" in c.message and "hash tag" in c.hint


def test_a_cross_slot_transaction_on_a_cluster_client_is_one_line_in_the_cli(redis_cluster, tmp_path):
    """The CLI turns RedisCluster's client-side errors (not RedisError subclasses) into one line too."""
    code = ("import sys; from labkit.commands import cli; from labkit.servers import connection\n"
            "def boom(args):\n"
            "    r = connection.connect(); p = r.pipeline(transaction=True)\n"
            "    p.set('temps:averages', 1); p.set('aggregating_consumer_state', 1); p.execute()\n"
            "cli.cmd_verify = boom\n"
            "p = cli.build_parser(); sys.exit(cli.main(['verify']))\n")
    env = {**os.environ, "REDIS_URL": redis_cluster.url, "LABKIT_HOME": str(tmp_path), "PYTHONPATH": str(ROOT)}
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert res.returncode == 1 and "Traceback" not in res.stderr, res.stderr
    (line,) = res.stderr.strip().splitlines()
    assert line.startswith("labkit: error: ") and "CROSSSLOT" in line and "hint:" in line


# ---------------------------------------------------------------- failures, staged

def _write_replicated(r, info, key: str, value: str) -> int:
    """SET ``key`` and wait until its master's replica has it; returns the master's port."""
    r.set(key, value)
    master = cluster.master_for(info, key)
    assert r.execute_command("WAIT", 1, 2000, target_nodes=r.get_node(port=master)) == 1
    return master


def test_takeover_after_a_cut_loses_the_newest_writes_then_the_old_master_rejoins(own):
    info, r = own
    key = "{failover}x"
    master = _write_replicated(r, info, key, "replicated")
    (replica,) = cluster.cut_replication(info, master)
    r.set(key, "only on the master")
    cluster.kill(info, master)
    assert cluster.failover(info, master) == replica and cluster.master_for(info, key) == replica
    # The same labkit client follows the new master; the write made after the cut is gone.
    assert r.get(key) == b"replicated"
    cluster.restart_node(info, master)
    assert cluster.masters(info)[replica] == [master]   # back, as the new master's replica
    assert cluster.read_info(Path(info.home)).nodes == info.nodes  # its new PID is saved: a stop stops it
    assert r.get(key) == b"replicated"


def test_automatic_failover_promotes_the_replica(own):
    info, r = own
    key = "{auto}y"
    master = _write_replicated(r, info, key, "v")
    (replica,) = cluster.masters(info)[master]
    cluster.kill(info, master)
    assert cluster.failover(info, master, takeover=False) == replica
    assert r.get(key) == b"v"


def test_a_shard_with_no_live_node_is_clusterdown_in_one_line(own_cluster):
    info = own_cluster
    victim = info.nodes[1].port
    (replica,) = cluster.masters(info)[victim]
    cluster.kill(info, replica)
    cluster.kill(info, victim)
    first = info.nodes[0].port
    deadline = time.monotonic() + 20
    with redis.Redis(port=first, password=info.password) as plain:
        own_key = next(f"d{i}" for i in range(1000) if cluster.slot_ranges(3)[0][0] <= slot(f"d{i}")
                       <= cluster.slot_ranges(3)[0][1])
        while True:
            try:
                plain.get(own_key)
            except redis.exceptions.ClusterDownError as exc:
                err = connection.explain(exc, connection.Target(info.url, embedded=False))
                break
            assert time.monotonic() < deadline, "the cluster never noticed that a shard was gone"
            time.sleep(0.1)
    assert "is down" in err.message and "cluster status" in err.hint


# ---------------------------------------------------------------- the CLI, on the embedded binary

@pytest.fixture
def cluster_cli(tmp_path):
    """``python -m labkit cluster …`` in a private LABKIT_HOME; whatever it started is stopped by PID afterwards."""
    base = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    base.update(LABKIT_HOME=str(tmp_path), PYTHONPATH=str(ROOT))

    def cli(*args, env: dict | None = None):
        return subprocess.run([sys.executable, "-m", "labkit", "cluster", *args], capture_output=True, text=True,
                              env={**base, **(env or {})}, timeout=120, cwd=ROOT)
    yield cli
    info = cluster.read_info(tmp_path)
    if info:
        cluster.stop_pids([n.pid for n in info.nodes], timeout=5)

def test_cluster_cli_start_status_stop_restart(cluster_cli, tmp_path):
    cli = cluster_cli
    res = cli("start", "--shards", "3", "--replicas", "1")
    assert res.returncode == 0, res.stderr
    info = cluster.read_info(tmp_path)
    assert info.binary.endswith("valkey-server") and len(info.nodes) == 6
    assert info.password not in res.stdout + res.stderr and "redis://default:***@127.0.0.1:" in res.stdout
    assert all(n.port + cluster.BUS_OFFSET < 65536 for n in info.nodes)
    url = cli("url", "--reveal").stdout.strip()
    assert url == info.url and info.password in url
    assert "REDIS_URL" in res.stdout and cli("start").stdout.startswith("already running")

    st = cli("status")
    assert st.returncode == 0 and "cluster_state ok" in st.stdout, st.stdout + st.stderr
    assert "labkit uses: the embedded server" in st.stdout
    assert "labkit uses: this cluster (REDIS_URL)" in cli("status", env={"REDIS_URL": info.url_of(info.nodes[4].port)}).stdout
    assert st.stdout.count(" master  slots ") == 3 and st.stdout.count(" replica of ") == 3

    r = connection.connect(connection.Target(url, embedded=False))
    assert isinstance(r, RedisCluster) and len(r.get_primaries()) == 3
    for i in range(30):
        r.set(f"kept:{i}", i)
    r.close()
    pids = [n.pid for n in info.nodes]
    assert cli("stop").stdout.strip() == "stopped the local cluster"
    assert not any(cluster.server.is_alive(p) for p in pids)
    st = cli("status")
    assert st.returncode == 1 and st.stdout.count("down (pid") == 6

    # Started again: the same nodes, ports and data.
    res = cli("start")
    assert res.returncode == 0, res.stderr
    r = connection.connect(connection.Target(url, embedded=False))
    assert [r.get(f"kept:{i}") for i in range(30)] == [str(i).encode() for i in range(30)]
    r.close()

    bad = cli("start", "--shards", "2")
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "--fresh" in bad.stderr


def test_one_node_cli_cluster_and_bad_input(cluster_cli, tmp_path):
    cli = cluster_cli
    for args, says in [(("url",), "there is no local cluster"), (("start", "--shards", "0"), "out of range"),
                       (("start", "--shards", "10"), "out of range"),
                       (("start", "--replicas", "5"), "out of range"), (("stop", "--fresh"), "go with cluster start")]:
        res = cli(*args)
        assert res.returncode == 2 and res.stderr.startswith("labkit: error: ") and says in res.stderr, res.stderr
        assert res.stderr.count("\n") == 1 and "hint:" in res.stderr
    res = cli("start", "--shards", "1", "--replicas", "0")
    assert res.returncode == 0, res.stderr
    info = cluster.read_info(tmp_path)
    st = cli("status")
    assert st.returncode == 0 and "master  slots 0-16383" in st.stdout
    fresh = cli("start", "--fresh")
    assert fresh.returncode == 2 and "stop it first" in fresh.stderr
    assert cli("stop").returncode == 0 and not cluster.running(info)
