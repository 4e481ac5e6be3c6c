"""Shared test helpers (not fixtures): small datasets and full verification."""

from __future__ import annotations

import os
import shutil
import time

import pytest

from labkit.core import producer
from labkit.core.keys import Keys
from labkit.core.truth import check as truth_check

T0 = 1735689600000  # 2025-01-01 00:00 UTC


def need_program(name: str, install: str) -> str:
    """The path of a program a test drives (a browser, a proxy).  Missing on a developer's machine: the test is
    skipped with the command that installs it.  Missing in CI (``CI=true``): the test fails, so a green CI
    never hides an install step that did not run."""
    path = shutil.which(name)
    if path:
        return path
    why = f"{name} is not installed ({install})"
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(why + ": CI must install it (.ci/run)")
    pytest.skip(why)


def wait_for(cond, timeout=30.0) -> None:
    """Wait until ``cond()`` holds; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def produce(r, keys: Keys, start: str = "2025-01-01", days: float = 2, interval_ms: int = 1000, seed: int = 0):
    data = producer.Dataset(producer.parse_start(start), days, interval_ms, seed)
    producer.produce(r, data, keys)
    return data


def check(r, keys: Keys):
    """Verify temps:averages against ground truth from every partition; returns the report."""
    return truth_check(r, keys)


def execute_notebook(path, target, lab_home, kernel_dir, namespace: str, days: str, timeout: int = 300,
                     env_extra: dict | None = None):
    """Run a notebook top to bottom in a kernel of this interpreter pointed at the test server.

    The kernel gets the server through ``REDIS_URL`` or ``LABKIT_HOME``, a private
    ``LABKIT_NAMESPACE`` and ``LABKIT_DAYS``; it is shut down afterwards (nbclient leaves
    a kernel it was handed running).  ``env_extra`` adds variables (e.g. ``LABKIT_SOLUTIONS``).
    Returns the executed notebook and the seconds taken.
    """
    import os
    import time
    from pathlib import Path

    import nbformat
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import KernelManager
    from nbclient import NotebookClient

    root = Path(__file__).resolve().parents[1]
    env = {k: v for k, v in os.environ.items()
           if k not in ("REDIS_URL", "LABKIT_NAMESPACE", "MPLBACKEND", "LABKIT_SOLUTIONS", "LABKIT_AUTORUN")}
    env.update(LABKIT_HOME=str(lab_home), LABKIT_NAMESPACE=namespace, LABKIT_DAYS=days,
               PYTHONPATH=os.pathsep.join([str(root), env.get("PYTHONPATH", "")]).rstrip(os.pathsep))
    if not target.embedded:
        env["REDIS_URL"] = target.url
    env.update(env_extra or {})
    nb = nbformat.read(path, as_version=4)
    km = KernelManager(kernel_name="python3",
                       kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(kernel_dir)], ensure_native_kernel=False))
    client = NotebookClient(nb, km=km, timeout=timeout, allow_errors=False, iopub_timeout=60,   # see test_learner
                            resources={"metadata": {"path": str(Path(path).parent)}})
    t0 = time.perf_counter()
    try:
        client.execute(env=env)
    finally:
        if km.has_kernel:
            km.shutdown_kernel(now=True)
    return nb, time.perf_counter() - t0
