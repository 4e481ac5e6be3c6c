"""Test fixtures: a real server for the whole run, a private key namespace per test; the tests' kinds.

With ``REDIS_URL`` set the suite uses that server (CI runs it against Debian's
redis-server and two clusters).  Otherwise it starts labkit's embedded server in a
temporary ``LABKIT_HOME`` (never the learner's ``~/.labkit``) and stops it by
PID at the end; under pytest-xdist each worker has its own ``LABKIT_HOME`` and
server.  Every test gets its own ``LABKIT_NAMESPACE``, and only that namespace's
keys are deleted afterwards: no FLUSHDB, ever.

Every test gets exactly one kind marker from the fixtures it uses (see
:data:`KINDS`), so CI selects by kind (``-m integration``) and a new test file
needs no list edited anywhere.  The workers take whole files (``--dist
loadfile``), so a module's shared set-up and its tests' order hold.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.cluster_fixtures import one_node_cluster, own, own_cluster, redis_cluster  # noqa: F401 - fixtures

ROOT = Path(__file__).resolve().parents[1]

# ---------------------------------------------------------------- tests by kind

#: Each kind and the fixtures that put a test in it; the first kind that matches wins, and a test that uses
#: none of them is ``unit`` (no Redis).  A kind marker written on a test itself (notebook 13's test, which
#: forms its clusters inside the notebook) overrides this.
KINDS = {
    "browser": {"browser", "chromium", "jupyter_lab"},                # a real Chromium drives JupyterLab
    "cluster": {"redis_cluster", "one_node_cluster", "own_cluster", "own", "cluster_cli"},  # forms its own cluster
    "notebooks": {"kernel_dir"},                                      # executes a notebook in a kernel
    "integration": {"target", "own_server"},                          # a real server: the suite's or its own
}
#: Fixtures whose keys every client of a server shares: the course's own key names.
SHARED_NAMES = {"course_keys"}


def pytest_collection_modifyitems(config, items):
    """Mark each test with its kind (and with what CI must know besides)."""
    for item in items:
        used = set(item.fixturenames)
        if not any(item.get_closest_marker(kind) for kind in (*KINDS, "unit")):
            kind = next((k for k, fixtures in KINDS.items() if fixtures & used), "unit")
            item.add_marker(kind)
        if "own_server" in used:
            item.add_marker("own_server")
        if used & SHARED_NAMES:
            item.add_marker("server_wide")


@pytest.fixture(scope="session")
def lab_home(tmp_path_factory):
    home = tmp_path_factory.mktemp("labkit-home")
    old = os.environ.get("LABKIT_HOME")
    os.environ["LABKIT_HOME"] = str(home)
    yield home
    if old is None:
        os.environ.pop("LABKIT_HOME", None)
    else:
        os.environ["LABKIT_HOME"] = old


@pytest.fixture(scope="session")
def target(lab_home):
    from labkit.servers import connection, embedded as server
    if os.environ.get("REDIS_URL"):
        yield connection.target()
        return
    info, _ = server.start(lab_home)
    try:
        yield connection.Target(info.url, embedded=True)
    finally:
        server.stop(lab_home)


@pytest.fixture
def r(target):
    from labkit.servers import connection
    client = connection.connect(target)
    yield client
    client.close()


@pytest.fixture
def two_learners(r, target):
    """Two class learners, alice… and bob…, with ACL users on the test server: ``{namespace: their REDIS_URL}``.
    Afterwards their users are removed and every key of theirs is deleted (``cohort.learner_names``)."""
    from labkit.classroom import cohort, fence
    from labkit.core import keyspace
    tag = uuid.uuid4().hex[:6]
    names = [f"alice{tag}", f"bob{tag}"]
    urls = {n: fence.learner_url(target.url, n, fence.ensure_learner(r, n)) for n in names}
    yield urls
    for n in names:
        fence.remove_learner(r, n)
        keyspace.delete_keys(r, cohort.learner_names(r, n))


def _delete_namespace(r, keys) -> None:
    """Delete a test namespace's keys, or (no namespace) exactly the course-named keys labkit owns."""
    from labkit.core.keyspace import delete_keys, delete_namespace, scan_keys
    if keys.namespace:
        delete_namespace(r, keys)
        return
    owned = ("temps:*", "{temps:averages}*", "aggregating_consumer_state", "aggregating_consumer_lease",
             "averages_consumer_state")
    delete_keys(r, {k for pattern in owned for k in scan_keys(r, pattern)})


@pytest.fixture
def own_server(tmp_path):
    """A private embedded server this test may stop, empty and restart (never the session's).

    Yields ``(home, target)``.  What such a test checks does not depend on ``REDIS_URL``, so CI runs it once.
    """
    from labkit.servers import connection, embedded as server
    home = tmp_path / "home"
    info, _ = server.start(home)
    yield home, connection.Target(info.url, embedded=True)
    server.stop(home)


@pytest.fixture
def keys(r):
    """A fresh namespace for this test; its keys are deleted afterwards."""
    from labkit.core.keys import Keys
    from labkit.core.keyspace import keys_for
    k = keys_for(r, Keys("t" + uuid.uuid4().hex[:10]))   # hash-tagged when REDIS_URL names a cluster
    yield k
    _delete_namespace(r, k)


@pytest.fixture(autouse=True)
def _no_attached_learner():
    """A notebook set-up call in one test attaches its learner for progress records; the next test starts without."""
    yield
    from labkit.core import progress
    progress.attach(None, None)


@pytest.fixture
def course_keys(r):
    """The course's own key names (no namespace), cleaned before and after."""
    from labkit.core.keys import Keys
    from labkit.core.keyspace import keys_for
    k = keys_for(r, Keys(""))
    _delete_namespace(r, k)
    yield k
    _delete_namespace(r, k)


@pytest.fixture
def cli(target, lab_home):
    """Run ``python -m labkit …`` in a subprocess against the test server."""
    def run(*args, namespace: str = "", env: dict | None = None, timeout: float = 120, input: str | None = None):
        e = {k: v for k, v in os.environ.items() if k not in ("LABKIT_NAMESPACE", "NO_COLOR")}
        e.update(LABKIT_HOME=str(lab_home), PYTHONPATH=str(ROOT))
        if not target.embedded:
            e["REDIS_URL"] = target.url
        if namespace:
            e["LABKIT_NAMESPACE"] = namespace
        e.update(env or {})
        return subprocess.run([sys.executable, "-m", "labkit", *args], capture_output=True, text=True,
                              env=e, timeout=timeout, input=input, cwd=ROOT)
    return run


@pytest.fixture(scope="session")
def kernel_dir(tmp_path_factory):
    """A kernelspec named python3 that runs *this* interpreter, whatever else is installed."""
    d = tmp_path_factory.mktemp("kernels")
    (d / "python3").mkdir()
    (d / "python3" / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (labkit tests)", "language": "python"}))
    return d


@pytest.fixture
def panels(keys, target):
    """Make consumer panels (``panels(**options)``) on the test server; all are closed afterwards."""
    from labkit.notebook.panel import ConsumerPanel
    made = []

    def make(**kw):
        p = ConsumerPanel(keys=keys, target=target, interval=0.1, **kw)
        made.append(p)
        return p
    yield make
    for p in made:
        p.close()
