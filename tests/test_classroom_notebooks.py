"""Every notebook (00-13, the quizzes too) runs top to bottom as a class learner: ``LABKIT_NAMESPACE`` and the ``REDIS_URL`` of
the learner's own fenced ACL user, in lab order, one learner for the whole course as in a class.  Where a
notebook needs an admin command (CONFIG, SLOWLOG, a cluster's own nodes) it must say what the class setting
allows and go on, never stop on NOPERM."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from labkit.classroom import cohort, fence
from labkit.servers import connection
from tests.helpers import execute_notebook

pytestmark = [pytest.mark.classroom, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[1]
ALL = sorted((ROOT / "notebooks").glob("*.ipynb"))
DAYS = "1.5"


@pytest.fixture(scope="module")
def learner(target, r_module):
    ns = "nb" + uuid.uuid4().hex[:8]
    url = fence.learner_url(target.url, ns, fence.ensure_learner(r_module, ns))
    yield ns, url
    fence.remove_learner(r_module, ns)
    from labkit.core.keyspace import delete_keys
    delete_keys(r_module, cohort.learner_names(r_module, ns))


@pytest.fixture(scope="module")
def r_module(target):
    from labkit.servers import connection
    client = connection.connect(target)
    yield client
    client.close()


def output_text(nb) -> str:
    """Everything the notebook printed or displayed as text."""
    return "".join(o.get("text", "") + o.get("data", {}).get("text/plain", "")
                   for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))


@pytest.mark.timeout(900)
@pytest.mark.parametrize("path", ALL, ids=[p.stem.split("-")[0] for p in ALL])
def test_notebook_runs_as_a_fenced_learner(path, learner, target, lab_home, kernel_dir, r_module):
    ns, url = learner
    nb, _ = execute_notebook(path, target, lab_home, kernel_dir, ns, DAYS, 300, {"REDIS_URL": url})
    text = output_text(nb)
    assert "Traceback" not in text and "NOPERM" not in text
    clustered = connection.is_cluster(r_module)
    if path.stem.startswith("13"):   # never the shared cluster's failover: a cluster of the learner's own
        assert ("so this notebook started a cluster of your own" if clustered else
                "REDIS_URL names a single server, not a cluster, so this notebook started its own") in text
    for line in SAYS.get(path.stem.split("-")[0], []):   # the admin parts: one line on what the class setting allows
        assert line in text, line


SAYS = {"11": ["In a class your Redis user may not run CONFIG SET stream-node-max-entries",
               "In a class your Redis user may not run CONFIG SET maxmemory"],
        "12": ["In a class your Redis user may not run SLOWLOG and CONFIG GET"]}
