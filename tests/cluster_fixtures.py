"""Real Redis Clusters for the tests, from Debian's ``redis-server`` (7.0).

Each fixture forms its cluster with :mod:`labkit.servers.cluster` (the code behind
``python -m labkit cluster start``, pointed at another binary) on free
127.0.0.1 ports with a generated password, waits for ``cluster_state:ok``,
yields it, and stops every node by PID.  ``cluster-node-timeout`` is short, so
an automatic failover happens in seconds.  No data is written to disk.
"""

from __future__ import annotations

import os

import pytest

#: Debian's server; CI installs it (.ci/run) and the second CI run uses it as REDIS_URL too.
REDIS_SERVER = "/usr/bin/redis-server"
TEST_NODE_TIMEOUT_MS = 2000


def _form(home, shards: int, replicas: int):
    from labkit.servers import cluster
    if not os.path.exists(REDIS_SERVER):
        pytest.fail(f"{REDIS_SERVER} is missing: apt-get install redis-server (the cluster tests need it)")
    info, _ = cluster.start(home, shards, replicas, binary=REDIS_SERVER, node_timeout_ms=TEST_NODE_TIMEOUT_MS,
                            persist=False, timeout=30)
    return info


def _stop(info) -> None:
    from labkit.servers import cluster
    cluster.stop_pids([n.pid for n in info.nodes], timeout=5)


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory):
    """3 masters + 3 replicas, shared by the tests that do not break it (they use their own namespace)."""
    info = _form(tmp_path_factory.mktemp("cluster-3x1"), 3, 1)
    yield info
    _stop(info)


@pytest.fixture(scope="session")
def one_node_cluster(tmp_path_factory):
    """One master with all 16,384 slots, as some hosted offerings expose a cluster."""
    info = _form(tmp_path_factory.mktemp("cluster-1"), 1, 0)
    yield info
    _stop(info)


@pytest.fixture
def own_cluster(tmp_path):
    """A 3 x 1 cluster of this test's own, to kill nodes of."""
    info = _form(tmp_path, 3, 1)
    yield info
    _stop(info)


@pytest.fixture
def own(own_cluster):
    """This test's own 3 x 1 cluster and a labkit client on it."""
    from labkit.servers import connection
    r = connection.connect(connection.Target(own_cluster.url, embedded=False))
    yield own_cluster, r
    r.close()
