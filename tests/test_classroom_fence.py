"""A learner fenced in by a Redis ACL user: the pure rule builder, then the fence on a real server and cluster."""

from __future__ import annotations

import fnmatch
import uuid

import pytest
import redis

from labkit.classroom import fence
from labkit.core.keys import Keys
from labkit.errors import LabkitError
from labkit.labs.names import lab_keys
from labkit.servers import connection

pytestmark = pytest.mark.classroom


# ---------------------------------------------------------------- pure

def test_plain_user_names_are_their_namespace_others_map_apart():
    assert fence.namespace_for("alice") == "alice"
    assert fence.namespace_for("learner_07") == "learner_07"
    a, b = fence.namespace_for("Jane.Doe"), fence.namespace_for("jane-doe")
    assert a != b and a.startswith("jane_doe_") and b.startswith("jane_doe_")
    for mapped in (a, b, fence.namespace_for("x" * 80), fence.namespace_for("élise@example.org")):
        assert fence.is_learner_namespace(mapped), mapped
        Keys(mapped)  # a valid labkit namespace too
    with pytest.raises(LabkitError, match="empty user name"):
        fence.namespace_for("  ")


def test_rules_fence_keys_and_commands():
    rules = fence.acl_rules("alice", "s3cret")
    assert rules[:4] == ["reset", "on", ">s3cret", "resetchannels"]
    assert rules.index("-@dangerous") > rules.index("+@all")
    for c in ("flushall", "flushdb", "config", "keys", "debug", "shutdown", "acl", "module"):
        assert f"-{c}" in rules and rules.index(f"-{c}") > rules.index("-@dangerous")
    assert "+info" in rules and "+client|unblock" in rules
    assert not any(r.startswith("+@") and r != "+@all" for r in rules)
    with pytest.raises(LabkitError):
        fence.acl_rules("alice:x", "p")
    with pytest.raises(ValueError):
        fence.acl_rules("alice", "")


def test_patterns_cover_every_key_labkit_writes_for_a_learner_and_nobody_elses():
    pats = fence.key_patterns("alice")
    mine = []
    for cluster in (False, True):
        k = Keys("alice", cluster=cluster)
        mine += [k.averages, k.aggregating_state, k.aggregating_lease, k.deadletter, k.averages_state,
                 k.manifest, k.producer_lease, k.progress, k.partition_prefix + "20250101"]
        for lab in ("groups07", "pool08"):
            lk = lab_keys(lab, k)
            mine += [lk.key("groups:stream"), lk.progress]
        mine += [Keys("alice-chaos", cluster=cluster).averages, Keys("alice-chaos", cluster=cluster).aggregating_state]
    for name in mine:
        assert any(fnmatch.fnmatchcase(name, p) for p in pats), name
    others = []
    for ns in ("bob", "alice_b", "alicex", "bob_alice"):
        for cluster in (False, True):
            k = Keys(ns, cluster=cluster)
            others += [k.averages, k.aggregating_state, k.progress, lab_keys("groups07", k).key("groups:s")]
    others += ["temps:20250101", "{temps:averages}aggregating_consumer_state", "alice", "xalice:temps:1"]
    for name in others:
        assert not any(fnmatch.fnmatchcase(name, p) for p in pats), name


def test_learner_url_keeps_the_address_and_swaps_the_credentials():
    url = fence.learner_url("redis://:adminpw@10.0.0.5:6380/0", "alice", "p/w+")
    assert url == "redis://labkit-alice:p%2Fw%2B@10.0.0.5:6380/0"
    assert fence.learner_url("rediss://default:x@redis.class", "bob", "pw") == "rediss://labkit-bob:pw@redis.class"


# ---------------------------------------------------------------- a real server, a real cluster

def assert_fenced(r_alice, alice: Keys, bob: Keys, admin) -> None:
    """Alice's own keys (plain, hash-tagged, companion, scratch) work; bob's keys and admin commands answer NOPERM."""
    r_alice.xadd(alice.partition_prefix + "20250101", {"temp_f": "70"})
    r_alice.hset(alice.aggregating_state, "x", "1")
    r_alice.hset(alice.progress, "exercise:x", "{}")
    r_alice.set(lab_keys("groups07", alice).key("groups:x"), "1")
    r_alice.set(Keys(f"{alice.namespace}-chaos", cluster=alice.cluster).aggregating_state, "1")
    assert r_alice.hget(alice.aggregating_state, "x") == b"1"
    assert r_alice.xlen(alice.partition_prefix + "20250101") == 1
    for call in (lambda: r_alice.get(bob.averages), lambda: r_alice.set(bob.aggregating_state, "x"),
                 lambda: r_alice.hgetall(bob.progress), lambda: r_alice.delete(bob.partition_prefix + "20250101"),
                 lambda: r_alice.set("temps:averages", "x")):
        with pytest.raises(redis.exceptions.NoPermissionError):
            call()
    node = fence.nodes(r_alice)[0] if connection.is_cluster(r_alice) else r_alice
    for cmd in (("FLUSHALL",), ("FLUSHDB",), ("CONFIG", "GET", "maxmemory"), ("CONFIG", "SET", "maxmemory", "1"),
                ("KEYS", "*"), ("ACL", "LIST"), ("ACL", "SETUSER", "x"), ("SLOWLOG", "GET"), ("CLIENT", "LIST")):
        with pytest.raises(redis.exceptions.NoPermissionError):
            node.execute_command(*cmd)
    # Never tried for real (a broken fence would stop the test server): the server's own dry run answers.
    user = fence.acl_user(alice.namespace)
    admin_node = fence.nodes(admin)[0]
    for cmd in (("SHUTDOWN",), ("DEBUG", "SLEEP", "0"), ("MODULE", "LIST")):
        assert "no permissions" in admin_node.execute_command("ACL", "DRYRUN", user, *cmd).decode(), cmd
    assert admin_node.execute_command("ACL", "DRYRUN", user, "XADD", alice.averages, "*", "a", "1") == b"OK"


def test_a_learner_reaches_her_keys_only(r, two_learners):
    alice, bob = two_learners
    r_alice = connection.connect(connection.Target(two_learners[alice], embedded=False))
    try:
        from labkit.core.keyspace import keys_for
        assert_fenced(r_alice, keys_for(r_alice, Keys(alice)), keys_for(r_alice, Keys(bob)), r)
    finally:
        r_alice.close()


def test_a_new_spawn_gets_a_new_password(r, two_learners, target):
    alice = next(iter(two_learners))
    new_url = fence.learner_url(target.url, alice, fence.ensure_learner(r, alice))
    with pytest.raises(LabkitError, match="refused the credentials"):
        connection.connect(connection.Target(two_learners[alice], embedded=False))
    connection.connect(connection.Target(new_url, embedded=False)).close()
    assert alice in fence.learners(r)


@pytest.mark.cluster
def test_the_same_fence_on_a_3_master_cluster(redis_cluster):
    from labkit.core.keyspace import delete_namespace
    admin = connection.connect(connection.Target(redis_cluster.url, embedded=False))
    tag = uuid.uuid4().hex[:6]
    alice, bob = f"alice{tag}", f"bob{tag}"
    try:
        url = fence.learner_url(redis_cluster.url, alice, fence.ensure_learner(admin, alice))
        fence.ensure_learner(admin, bob)
        for node in redis_cluster.nodes:  # ACLs are per node: every master and replica knows her
            c = redis.Redis(host=redis_cluster.host, port=node.port, password=redis_cluster.password)
            assert c.acl_getuser(fence.acl_user(alice)) is not None, node.port
            c.close()
        r_alice = connection.connect(connection.Target(url, embedded=False))
        assert connection.is_cluster(r_alice)
        k = Keys(alice, cluster=True)
        for day in range(2, 12):  # partitions spread over the masters
            r_alice.xadd(f"{k.partition_prefix}202501{day:02d}", {"temp_f": "70"})
        assert_fenced(r_alice, k, Keys(bob, cluster=True), admin)
        for node in fence.nodes(r_alice):
            with pytest.raises(redis.exceptions.NoPermissionError):
                node.execute_command("FLUSHALL")
        r_alice.close()
        assert {alice, bob} <= set(fence.learners(admin))
    finally:
        for n in (alice, bob):
            fence.remove_learner(admin, n)
            for ns in (n, f"{n}.groups07", f"{n}-chaos"):
                delete_namespace(admin, Keys(ns, cluster=True))
        admin.close()


def test_a_notebook_says_what_the_class_setting_allows():
    assert fence.in_class("redis://labkit-alice:pw@h:1/0") and not fence.in_class("redis://:pw@h:1/0")
    assert not fence.in_class("redis://default:pw@h:1") and not fence.in_class("")
    line = fence.skipped("CONFIG SET maxmemory", url="redis://labkit-alice:pw@h:1/0")
    assert "class" in line and "CONFIG SET maxmemory" in line and "\n" not in line
    assert fence.skipped("CONFIG", url="redis://h:1") == "CONFIG is not available on this server: skipping this demo."
