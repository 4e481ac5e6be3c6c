"""The lab notebooks (01–06) run top to bottom on the test server; every notebook is stored clean.

Each notebook ends by asserting its own checks, so executing it is the test.
They run in lab order in one private namespace (02 produces, later ones
consume), on a small dataset; notebook 06 also runs on its own with the full
ten days in a second namespace, which checks both that it can stand alone and
the cap (``XLEN`` about 120, hours trimmed) that a small dataset never reaches.
The kernel is this test run's Python (a temporary kernelspec pointing at
``sys.executable``, never the user's kernels).  Only the namespaces' keys are
deleted afterwards.
"""

from __future__ import annotations

import json
import re
import sys
import uuid
from pathlib import Path

import nbformat
import pytest

from tests.helpers import execute_notebook

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
LAB = sorted(p for p in NOTEBOOKS.glob("*.ipynb") if re.match(r"0[1-6]-", p.name))
ALL = sorted(NOTEBOOKS.glob("*.ipynb"))
DAYS = "1.5"          # two partitions (a boundary to cross), 36 hours
CELL_TIMEOUT = 300


@pytest.fixture(scope="module")
def run_notebook(target, lab_home, kernel_dir):
    """Execute a notebook on the test server; afterwards delete the namespaces it used."""
    used: list[str] = []

    def run(path: Path, namespace: str, days: str = DAYS):
        used.append(namespace)
        return execute_notebook(path, target, lab_home, kernel_dir, namespace, days, CELL_TIMEOUT)

    yield run
    from labkit import connection
    from labkit.keys import Keys
    from labkit.runner import delete_namespace
    r = connection.connect(target)
    for ns in set(used):
        delete_namespace(r, Keys(ns))
    r.close()


def stream_text(nb) -> str:
    return "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code"
                   for o in c.get("outputs", []) if o.get("output_type") == "stream")


def last_cell_text(nb) -> str:
    return "".join(o.get("text", "") for o in nb.cells[-1].get("outputs", []) if o.get("output_type") == "stream")


@pytest.fixture(scope="module")
def lab_namespace():
    return "nb" + uuid.uuid4().hex[:10]


def test_the_lab_has_six_notebooks_in_order():
    assert [p.name[:3] for p in LAB] == ["01-", "02-", "03-", "04-", "05-", "06-"]


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.parametrize("path", LAB, ids=[p.stem for p in LAB])
def test_lab_notebook_runs_top_to_bottom(path, run_notebook, lab_namespace):
    nb, seconds = run_notebook(path, lab_namespace)
    print(f"{path.name}: {seconds:.1f} s")
    assert re.search(r"^0[1-6] .*: all checks passed$", last_cell_text(nb), re.M), last_cell_text(nb)
    text = stream_text(nb)
    assert "Traceback" not in text
    if path.name.startswith("01-"):
        # The kernel ran this interpreter and saw the test server, through the environment only.
        assert sys.executable in json.dumps([c.get("outputs") for c in nb.cells])
    if path.name.startswith("06-"):
        assert "36/36 hours verified" in text


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_averages_notebook_alone_on_the_full_dataset(run_notebook):
    """06 on its own (it produces the data itself), ten days: the cap trims and all 240 hours verify."""
    path = next(p for p in LAB if p.name.startswith("06-"))
    nb, seconds = run_notebook(path, "nb" + uuid.uuid4().hex[:10], days="10")
    print(f"{path.name} alone, 10 days: {seconds:.1f} s")
    text = stream_text(nb)
    assert "240/240 hours verified" in text
    m = re.search(r"XLEN \S+ = (\d+); entries-added = 240; trimmed = (\d+)", text)
    assert m and 120 <= int(m.group(1)) < 240 and int(m.group(1)) + int(m.group(2)) == 240, text
    assert "240 hours compared" in text and "0 mismatched, 0 missing" in text


# ---------------------------------------------------------------- hygiene (every notebook in notebooks/)

@pytest.mark.parametrize("path", ALL, ids=[p.stem for p in ALL])
def test_notebook_is_stored_clean(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3", f"{path.name}: kernel must be python3"
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            assert cell.outputs == [], f"{path.name} cell {i} has outputs: strip them " \
                                       f"(python -m labkit.notebook strip {path.relative_to(ROOT)})"
            assert cell.execution_count is None, f"{path.name} cell {i} has an execution count"
            assert not re.search(r"redis://|rediss://|127\.0\.0\.1|localhost|password\s*=", cell.source), \
                f"{path.name} cell {i} hard-codes a host or password"


def test_strip_tool_cleans_a_notebook(tmp_path):
    from labkit.notebook import strip_outputs
    nb = nbformat.read(LAB[0], as_version=4)
    code = next(c for c in nb.cells if c.cell_type == "code")
    code.outputs = [nbformat.v4.new_output("stream", name="stdout", text="hello\n")]
    code.execution_count = 7
    dirty = tmp_path / "dirty.ipynb"
    nbformat.write(nb, dirty)
    assert strip_outputs(str(dirty)) is True
    assert strip_outputs(str(dirty)) is False
    test_notebook_is_stored_clean(dirty)
