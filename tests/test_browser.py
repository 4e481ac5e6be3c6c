"""One real-browser test: JupyterLab in Debian's Chromium, driven by Playwright.

It starts ``jupyter lab`` in a temporary copy of the notebooks, opens notebook 4,
runs all its cells, then does what a learner does: chooses the second
partition in the panel's dropdown, clicks Start and waits for the yellow
``avg:`` lines of that day in the panel's Output area.  A screenshot goes to
``test-artifacts/``.  Playwright's own browser download is never used: the
test drives the ``chromium`` on ``PATH`` and skips only if there is none.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"
NOTEBOOK = "04-running-the-consumers.ipynb"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop(proc: subprocess.Popen, base: str, token: str) -> None:
    """Ask the server to shut down (it stops its kernels), then make sure by PID."""
    try:
        req = urllib.request.Request(f"{base}/api/shutdown", method="POST",
                                     headers={"Authorization": f"token {token}"})
        urllib.request.urlopen(req, timeout=5).read()
    except OSError:
        pass
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


@pytest.fixture
def jupyter_lab(tmp_path, target, lab_home):
    """A JupyterLab server in a temporary copy of the notebooks, isolated from the user's Jupyter settings."""
    work = tmp_path / "lab"
    work.mkdir()
    shutil.copy(ROOT / "notebooks" / NOTEBOOK, work / NOTEBOOK)
    namespace = "br" + uuid.uuid4().hex[:10]
    port, token = _free_port(), secrets.token_hex(16)
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "LABKIT_NAMESPACE", "MPLBACKEND")}
    env.update(LABKIT_HOME=str(lab_home), LABKIT_NAMESPACE=namespace, LABKIT_DAYS="1.5",
               PYTHONPATH=os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep),
               JUPYTER_CONFIG_DIR=str(tmp_path / "jconfig"), JUPYTER_RUNTIME_DIR=str(tmp_path / "jruntime"),
               JUPYTERLAB_SETTINGS_DIR=str(tmp_path / "jsettings"),
               JUPYTERLAB_WORKSPACES_DIR=str(tmp_path / "jworkspaces"), IPYTHONDIR=str(tmp_path / "ipython"))
    if not target.embedded:
        env["REDIS_URL"] = target.url
    # Kernels: only a python3 spec running this interpreter (the user's own kernelspecs are not consulted).
    env["JUPYTER_DATA_DIR"] = str(tmp_path / "jdata")
    spec = tmp_path / "jdata" / "kernels" / "python3"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (ipykernel)", "language": "python"}))
    news = tmp_path / "jsettings" / "@jupyterlab" / "apputils-extension"
    news.mkdir(parents=True)
    (news / "notification.jupyterlab-settings").write_text('{"fetchNews": "false", "checkForUpdates": false}')
    log = open(tmp_path / "jupyter.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip", "127.0.0.1", "--port", str(port),
         f"--ServerApp.token={token}", "--allow-root", "--LabApp.expose_app_in_browser=True",
         f"--ServerApp.root_dir={work}", "--ServerApp.open_browser=False"],
        cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2).read()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    log.flush()
                    pytest.fail("jupyter lab did not start:\n" + (tmp_path / "jupyter.log").read_text()[-3000:])
                time.sleep(0.3)
        yield {"base": base, "token": token, "namespace": namespace, "log": tmp_path / "jupyter.log"}
    finally:
        _stop(proc, base, token)
        log.close()
        from labkit import connection
        r = connection.connect(target)
        names = list(r.scan_iter(match=f"{namespace}:*", count=1000))
        if names:
            r.unlink(*names)
        r.close()


@pytest.fixture
def chromium():
    path = shutil.which("chromium")
    if not path:
        pytest.skip("Debian's chromium is not installed (apt-get install chromium); CI installs it")
    return path


@pytest.mark.timeout(420)
def test_panel_in_jupyterlab_shows_avg_lines_after_start(chromium, jupyter_lab):
    from playwright.sync_api import expect, sync_playwright

    base, token, ns = jupyter_lab["base"], jupyter_lab["token"], jupyter_lab["namespace"]
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(f"{base}/lab/tree/{NOTEBOOK}?reset&token={token}")
            nb = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden)")
            expect(nb).to_have_count(1, timeout=90_000)
            page.wait_for_function("() => window.jupyterapp && window.jupyterapp.shell.currentWidget"
                                   " && window.jupyterapp.shell.currentWidget.sessionContext"
                                   " && window.jupyterapp.shell.currentWidget.sessionContext.session"
                                   " && window.jupyterapp.shell.currentWidget.sessionContext.session.kernel",
                                   timeout=90_000)
            page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")
            try:
                stdout = '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stdout"]'
                done = nb.locator(stdout, has_text="04 running the consumers: all checks passed")
                failed = nb.locator('.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]')
                expect(done.or_(failed).first).to_be_visible(timeout=240_000)
                assert failed.count() == 0, "a cell failed:\n" + "\n".join(failed.all_inner_texts())[-3000:]
                expect(done).to_have_count(1)
            except AssertionError:
                page.screenshot(path=str(ARTIFACTS / "browser-04-run-all-failed.png"), full_page=True)
                raise

            # The run-all left the panel stopped after a run from the first partition.
            panel = nb.locator(".widget-vbox", has=page.locator(".widget-dropdown select")).first
            start = panel.locator("button.widget-button", has_text="Start")
            expect(start).to_be_enabled()
            expect(panel.locator("button.widget-button", has_text="Stop")).to_be_disabled()
            avg_out = panel.locator(".widget-output").nth(1)
            expect(avg_out).to_contain_text("avg: Average temperature for 2025/01/01 at 0 was")

            # A learner: choose the second day, click Start.
            second = f"{ns}:temps:20250102"
            panel.locator(".widget-dropdown select").select_option(label=second)
            start.click()
            expect(avg_out).to_contain_text("avg: Average temperature for 2025/01/02 at 11 was", timeout=60_000)
            expect(avg_out).to_contain_text("avg: Average temperature for 2025/01/02 at 0 was")
            expect(avg_out).not_to_contain_text("2025/01/01")          # Start cleared the previous run
            agg_out = panel.locator(".widget-output").nth(0)
            expect(agg_out).to_contain_text(f"agg: Starting aggregating consumer in stream {second} at message 0.")
            expect(avg_out.locator(".ansi-yellow-fg").first).to_contain_text("avg:")   # yellow, as in the course
            expect(panel).to_contain_text("hours published 12", timeout=10_000)
            expect(start).to_be_disabled()                         # no Start twice
            expect(panel.locator("button.widget-button", has_text="Stop")).to_be_enabled()
            chart = panel.locator("img.widget-image")                      # the live chart, drawn
            expect(chart).to_have_count(1)
            expect(chart).to_be_visible()
            page.wait_for_function("img => img.complete && img.naturalWidth > 100", arg=chart.element_handle(),
                                   timeout=10_000)
            panel.scroll_into_view_if_needed()
            page.screenshot(path=str(ARTIFACTS / "browser-04-panel.png"), full_page=False)
        finally:
            browser.close()
