"""``python -m labkit lab``: JupyterLab on the lab's notebooks, with what this machine needs, and its URL.

Run as root (containers, cloud shells), ``jupyter lab`` refuses to start without
``--allow-root``; this adds it there.  It listens on 127.0.0.1 only, on a free
port (or ``--port``), with a generated token, and prints the URL to open once the
server answers.  Ctrl+C (or SIGTERM) stops JupyterLab and its kernels.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from ..errors import LabkitError
from ..servers.embedded import free_port
from ..log import LogLine, TerminalSink

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"


def command(port: int, token: str, notebooks: Path, browser: bool, is_root: bool) -> list[str]:
    """The ``jupyter lab`` command line for this machine (pure, so it is tested without starting anything)."""
    argv = [sys.executable, "-m", "jupyterlab", "--ip", "127.0.0.1", "--port", str(port),
            "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={notebooks}"]
    if not browser:
        argv.append("--no-browser")
    if is_root:
        argv.append("--allow-root")
    return argv


def _answers(url: str) -> bool:
    try:
        urllib.request.urlopen(url, timeout=2).read()
        return True
    except OSError:
        return False


def run_lab(port: int | None = None, browser: bool = True, notebooks: Path = NOTEBOOKS, timeout: float = 120) -> int:
    """Start JupyterLab on ``notebooks``, print its URL when it answers, and wait until it ends."""
    out = TerminalSink()
    if not (notebooks / "00-start-here.ipynb").is_file():
        raise LabkitError(f"the notebooks are not in {notebooks}",
                          "run this from a clone of the labkit repository (python -m labkit lab)")
    try:
        import jupyterlab  # noqa: F401
    except ImportError:
        raise LabkitError("JupyterLab is not installed in this environment",
                          "pip install -r requirements.txt, then run python -m labkit lab again") from None
    port = port or free_port()
    token = secrets.token_hex(24)
    is_root = hasattr(os, "geteuid") and os.geteuid() == 0
    argv = command(port, token, notebooks, browser, is_root)
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while not _answers(f"{base}/api/status?token={token}"):
            if proc.poll() is not None:
                tail = (proc.stderr.read() or "").strip().splitlines()[-1:] or ["(no output)"]
                raise LabkitError(f"JupyterLab did not start: {tail[0]}",
                                  "try another --port, or run jupyter lab yourself to see its whole log")
            if time.monotonic() > deadline:
                raise LabkitError(f"JupyterLab did not answer within {timeout:g} s", "run it again")
            time.sleep(0.3)
        out(LogLine("lab", f"JupyterLab on {notebooks}" + (" (running as root: --allow-root)" if is_root else "")))
        out(LogLine("lab", f"open {base}/lab/tree/00-start-here.ipynb?token={token}"))
        out(LogLine("lab", "Ctrl+C stops it (and its kernels)"))
        sys.stdout.flush()
        while proc.poll() is None:      # its log is not ours to show; keep draining it so it never blocks
            proc.stderr.readline()
        return proc.returncode
    finally:
        _stop(proc)


def _stop(proc: subprocess.Popen) -> None:
    """Stop JupyterLab and everything it started (its process group), politely first."""
    if proc.poll() is not None:
        return
    import signal
    for sig, wait in ((signal.SIGINT, 10), (signal.SIGTERM, 10), (signal.SIGKILL, 5)):
        try:
            os.killpg(proc.pid, sig)
            if sig == signal.SIGINT:       # JupyterLab asks "Shutdown this Jupyter server (y/[n])?" on one Ctrl+C
                time.sleep(0.2)
                os.killpg(proc.pid, sig)
            proc.wait(timeout=wait)
            return
        except ProcessLookupError:
            return
        except subprocess.TimeoutExpired:
            continue
