"""The companion notebooks (07 onwards) run top to bottom on the test server, and are stored clean.

Each notebook ends by asserting its own checks, so executing it is the test.  The
kernel is this test run's Python (a temporary kernelspec pointing at
``sys.executable``), and gets the test server through ``REDIS_URL`` or
``LABKIT_HOME``, a private ``LABKIT_NAMESPACE`` and a small ``LABKIT_DAYS``.
"""

from __future__ import annotations

import json
import os
import re
import uuid
from pathlib import Path

import pytest

from tests.helpers import execute_notebook

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
NAMES = ["07-consumer-groups", "08-workers", "09-pending-and-recovery", "10-poison-pills",
         "11-memory-and-capping", "12-performance"]
MINE = [NOTEBOOKS / f"{n}.ipynb" for n in NAMES]
DAYS = os.environ.get("LABKIT_TEST_DAYS", "1.5")   # two partitions, one of them full
CELL_TIMEOUT = 120


def test_the_companion_notebooks_exist():
    assert [p.name for p in MINE if p.is_file()] == [f"{n}.ipynb" for n in NAMES]


def test_the_companion_notebooks_have_no_exercises_or_quizzes():
    """So ``LABKIT_SOLUTIONS=1`` changes nothing in them but whether a failed final check raises, and the
    run below, which requires every check to pass, covers both ways at once.  A notebook that gains an
    exercise or a quiz must run both ways again, as the lab's do (tests/test_notebooks.py)."""
    for path in MINE:
        code = "".join("".join(c["source"]) for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code")
        assert not re.search(r"\bex\.check\(|exercises|quiz|solutions", code), path.name


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.parametrize("path", [
    # 11 sets maxmemory on its server for a moment (every client's writes are refused meanwhile); 12 reads the
    # server's command counters and slow log, which must count its own calls only.
    pytest.param(p, id=p.stem, marks=[pytest.mark.server_wide] if p.name[:2] in ("11", "12") else []) for p in MINE])
def test_notebook_runs_top_to_bottom(path, target, lab_home, kernel_dir, r):
    """Top to bottom as shipped; every final check must pass (which LABKIT_SOLUTIONS=1 would only enforce)."""
    from labkit.labs import groups
    from labkit.core.keys import Keys

    namespace = "nb" + uuid.uuid4().hex[:8]
    try:
        nb, _ = execute_notebook(path, target, lab_home, kernel_dir, namespace, DAYS, CELL_TIMEOUT)
    finally:
        # Hash-tagged keys (a cluster's) start with "{<namespace>".
        # The learner's progress (the notebook's outcome, kept on purpose) is the one key that stays.
        progress = Keys(namespace).progress
        recorded = r.hgetall(progress)
        r.delete(progress)
        leftovers = [k for k in r.scan_iter(match=f"*{namespace}*", count=1000)]
        if leftovers:  # a failed run: clean up the namespaces it used, never anything else
            for ns in {k.decode().lstrip("{").split(":", 1)[0] for k in leftovers}:
                groups.delete_keys(r, Keys(ns))
    from tests.test_notebooks import stream_text
    text = stream_text(nb)          # printed, and the final checks (nbk.Checks) as displayed
    assert re.search(rf"^{path.name[:2]} .*: all checks passed$", text, re.M), text[-2000:]
    assert not leftovers, f"the notebook left keys behind: {leftovers[:5]}"
    assert any(path.stem.encode() in k for k in recorded), recorded     # its outcome, in the learner's progress


@pytest.mark.parametrize("path", MINE, ids=[p.stem for p in MINE])
def test_notebook_is_stored_clean(path):
    nb = json.loads(path.read_text())
    assert nb["metadata"]["kernelspec"]["name"] == "python3"
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            assert cell.get("outputs") == [] and cell.get("execution_count") is None, path.name
        src = "".join(cell["source"])
        assert not re.search(r"redis://|rediss://|127\.0\.0\.1|localhost|password\s*=", src), path.name
    code_cells = ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"]
    code = "".join(code_cells)
    assert "nbk.setup_companion(" in code_cells[0] and "nbk.setup_companion(" not in "".join(code_cells[1:])
    assert "FLUSHDB" not in code.upper().replace(" ", "") and "FLUSHALL" not in code.upper()
    assert "for claim, ok in checks.items():" in code_cells[-1] and "final.done()" in code_cells[-1], \
        "the last code cell checks every claim (nbk.Checks)"
    assert "## Recap" in "".join(nb["cells"][-1]["source"]), "it ends with a recap and the next link"
