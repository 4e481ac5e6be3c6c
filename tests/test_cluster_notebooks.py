"""What the notebooks rely on, on a real Redis Cluster (3 masters + 1 replica each, formed by the test itself).

The notebooks themselves run against a cluster in CI's cluster run (``REDIS_URL`` set: tests/test_notebooks.py
and tests/test_group_notebooks.py); these tests pin the pieces of labkit those runs found broken, whatever
server the rest of the suite uses.
"""

from __future__ import annotations

import uuid

import pytest
from redis.crc import key_slot

from labkit.servers import connection
from labkit.labs import groups
from labkit.core.keys import Keys
from labkit.core.keyspace import delete_namespace


@pytest.fixture
def on_cluster(redis_cluster, monkeypatch):
    """A cluster client, ``REDIS_URL`` pointing at the cluster, and a namespace deleted afterwards."""
    ns = "cn" + uuid.uuid4().hex[:8]
    monkeypatch.setenv("REDIS_URL", redis_cluster.url)
    monkeypatch.setenv("LABKIT_NAMESPACE", ns)
    t = connection.Target(redis_cluster.url, embedded=False)
    r = connection.connect(t)
    yield r, t, ns
    for k in (Keys(ns), groups.lab_keys("groups99", Keys(ns))):
        delete_namespace(r, k)
    r.close()


def test_setup_names_the_keys_for_a_cluster(on_cluster):
    """The notebooks read ``keys.aggregating_state``: on a cluster that is the hash-tagged key the consumer writes."""
    from labkit import notebook as nbk
    r, _, ns = on_cluster
    lab = nbk.setup(produce_if_missing=False)
    assert lab.keys.cluster and lab.keys.aggregating_state == f"{{{ns}:temps:averages}}aggregating_consumer_state"
    lab.r.close()


def test_keys_committed_together_share_a_slot_on_a_cluster_only():
    for k in (Keys("nb1", cluster=True), Keys(cluster=True)):
        anchor = k.key("temps:practice:averages")
        state = k.with_key(anchor, "temps:practice:aggregating_consumer_state")
        assert key_slot(state.encode()) == key_slot(anchor.encode()) and state.startswith("{")
        assert k.with_averages("x") == k.with_key(k.averages, "x")
    # On one server the names stay the course's.
    assert Keys("nb1").with_key("nb1:temps:practice:averages", "temps:practice:s") == "nb1:temps:practice:s"
    assert Keys().with_key("temps:practice:averages", "temps:practice:s") == "temps:practice:s"


def test_pool_audit_works_after_the_pool_stopped(on_cluster):
    """Notebooks 08 and 10 audit a pool after ``with pool:`` has stopped it (and closed its connection)."""
    r, t, ns = on_cluster
    keys = groups.lab_keys("groups99", Keys(ns))
    stream = groups.key(keys, "s")
    p = r.pipeline(transaction=False)
    for i in range(1, 51):
        p.xadd(stream, {"temp_f": str(i)}, id=f"{i}-0")
    p.execute()
    pool = groups.Pool(stream, keys=keys, target=t, workers=2, block_ms=50, supervise_every=0.05)
    with pool:
        assert pool.wait_drained(timeout=30)
    a = pool.audit()
    assert a["ok"] and a["entries"] == 50 and a["acked_after_work"] == 50
    assert [row["name"] for row in pool.consumers()] == ["w1", "w2"]
