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
import sys
import uuid
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
NAMES = ["07-consumer-groups", "08-workers", "09-pending-and-recovery", "10-poison-pills",
         "11-memory-and-capping", "12-performance"]
MINE = [NOTEBOOKS / f"{n}.ipynb" for n in NAMES]
DAYS = os.environ.get("LABKIT_TEST_DAYS", "1.5")   # two partitions, one of them full
CELL_TIMEOUT = 120


def test_the_companion_notebooks_exist():
    assert [p.name for p in MINE if p.is_file()] == [f"{n}.ipynb" for n in NAMES]


@pytest.fixture(scope="module")
def kernel_dir(tmp_path_factory):
    """A kernelspec named python3 that runs *this* interpreter, whatever else is installed."""
    d = tmp_path_factory.mktemp("kernels")
    spec = d / "python3"
    spec.mkdir()
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (labkit tests)", "language": "python"}))
    return d


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.parametrize("path", MINE, ids=[p.stem for p in MINE])
def test_notebook_runs_top_to_bottom(path, target, lab_home, kernel_dir, r):
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import KernelManager
    from nbclient import NotebookClient

    from labkit import groups
    from labkit.keys import Keys

    namespace = "nb" + uuid.uuid4().hex[:8]
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "LABKIT_NAMESPACE", "MPLBACKEND")}
    env.update(LABKIT_HOME=str(lab_home), LABKIT_NAMESPACE=namespace, LABKIT_DAYS=DAYS,
               PYTHONPATH=os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep))
    if not target.embedded:
        env["REDIS_URL"] = target.url
    nb = nbformat.read(path, as_version=4)
    ksm = KernelSpecManager(kernel_dirs=[str(kernel_dir)], ensure_native_kernel=False)
    km = KernelManager(kernel_name="python3", kernel_spec_manager=ksm)
    client = NotebookClient(nb, km=km, timeout=CELL_TIMEOUT, allow_errors=False,
                            resources={"metadata": {"path": str(NOTEBOOKS)}})
    try:
        client.execute(env=env)
    finally:
        if km.has_kernel:  # nbclient leaves a kernel it was handed running: stop it
            km.shutdown_kernel(now=True)
        leftovers = [k for k in r.scan_iter(match=f"{namespace}*", count=1000)]
        if leftovers:  # a failed run: clean up the namespaces it used, never anything else
            for ns in {k.decode().split(":", 1)[0] for k in leftovers}:
                groups.delete_keys(r, Keys(ns))
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
                   if o.get("output_type") == "stream")
    assert "checks passed" in text
    assert not leftovers, f"the notebook left keys behind: {leftovers[:5]}"


@pytest.mark.parametrize("path", MINE, ids=[p.stem for p in MINE])
def test_notebook_is_stored_clean(path):
    nb = json.loads(path.read_text())
    assert nb["metadata"]["kernelspec"]["name"] == "python3"
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            assert cell.get("outputs") == [] and cell.get("execution_count") is None, path.name
        src = "".join(cell["source"])
        assert not re.search(r"redis://|rediss://|127\.0\.0\.1|localhost|password\s*=", src), path.name
    code = "".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code")
    assert "connection.connect()" in code and "groups.lab_keys(" in code
    assert "FLUSHDB" not in code.upper().replace(" ", "") and "FLUSHALL" not in code.upper()
    assert nb["cells"][-1]["cell_type"] == "code" and "assert" in "".join(nb["cells"][-1]["source"])
