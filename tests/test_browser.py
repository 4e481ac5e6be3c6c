"""Real-browser tests: JupyterLab in Debian's Chromium, driven by Playwright.

They start ``jupyter lab`` in a temporary copy of notebooks 00 and 04 and do what
a learner does.  In notebook 4: run the cells down to the panel, choose the
*second* partition by hand, press Start, then run the next cell.  The choice must
stand (the notebook does not press Start over it), the first average must be that
day's 00:00, the log box must show its newest line, the colours must read at
WCAG AA in the light and the dark theme, lines must not break inside words, and
the rest of the notebook must pass its checks.  Notebook 0 must render (with its
drawn pipeline) and pass, with no error output.  Screenshots go to
``test-artifacts/`` (git-ignored; CI keeps them).  Playwright's own browser
download is never used: the tests drive the ``chromium`` on ``PATH`` and skip only
if there is none.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import nbformat
import pytest

from labkit.servers.embedded import free_port
from tests.helpers import need_program

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"
NOTEBOOKS = ["00-start-here.ipynb", "04-running-the-consumers.ipynb", "06-hourly-averages.ipynb", "pipeline.svg",
             "06q-quiz-1-partitioned-streams.ipynb"]
DAYS = "3"           # the second day is a full one: enough lines to scroll the log box
SAVED = "saved-panel.ipynb"
BROWSE = "stream-browser.ipynb"      # set-up and the stream browser, nothing else
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]

pytestmark = [pytest.mark.browser, pytest.mark.slow]


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


@pytest.fixture(scope="module")
def jupyter_lab(tmp_path_factory, target, lab_home):
    """A JupyterLab server in a temporary copy of the notebooks, isolated from the user's Jupyter settings."""
    tmp_path = tmp_path_factory.mktemp("jupyterlab")
    work = tmp_path / "lab"
    work.mkdir()
    for name in NOTEBOOKS:
        shutil.copy(ROOT / "notebooks" / name, work / name)
    # A notebook saved with a panel's output, as it is found after a reload with no live panel behind it.
    from labkit.notebook.panel import RELOAD_HINT
    saved = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                              "language": "python"}})
    saved.cells = [nbformat.v4.new_code_cell("panel", execution_count=1, outputs=[nbformat.v4.new_output(
        "execute_result", execution_count=1, data={
            "application/vnd.jupyter.widget-view+json": {"model_id": uuid.uuid4().hex, "version_major": 2,
                                                          "version_minor": 0},
            "text/plain": RELOAD_HINT})])]
    nbformat.write(saved, work / SAVED)
    browse = nbformat.v4.new_notebook(metadata=saved.metadata)
    browse.cells = [nbformat.v4.new_code_cell("from labkit import notebook as nbk\n\nlab = nbk.setup()\n"
                                              "browser = nbk.browse(lab)\nbrowser"),
                    nbformat.v4.new_code_cell("print('browser drawn')")]
    nbformat.write(browse, work / BROWSE)
    namespace = "br" + uuid.uuid4().hex[:10]
    port, token = free_port(), secrets.token_hex(16)
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "LABKIT_NAMESPACE", "MPLBACKEND")}
    env.update(LABKIT_HOME=str(lab_home), LABKIT_NAMESPACE=namespace, LABKIT_DAYS=DAYS,
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
        yield {"base": base, "token": token, "namespace": namespace, "log": tmp_path / "jupyter.log", "target": target}
    finally:
        _stop(proc, base, token)
        log.close()
        from labkit.servers import connection
        r = connection.connect(target)
        names = list(r.scan_iter(match=f"{namespace}:*", count=1000))
        if names:
            r.unlink(*names)
        r.close()


@pytest.fixture(scope="module")
def chromium():
    return need_program("chromium", "apt-get install chromium")


@pytest.fixture(scope="module")
def browser(chromium):
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@contextlib.contextmanager
def new_page(browser, failed_shot: str, height: int = 1000):
    """A browser page; a full-page screenshot goes to test-artifacts/ if the block fails."""
    ARTIFACTS.mkdir(exist_ok=True)
    page = browser.new_page(viewport={"width": 1400, "height": height})
    try:
        yield page
    except BaseException:
        page.screenshot(path=str(ARTIFACTS / failed_shot), full_page=True)
        raise
    finally:
        page.close()


STDOUT = '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stdout"]'
STDERR = '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]'
NB = ".jp-NotebookPanel:not(.lm-mod-hidden)"


def open_notebook(page, lab, name):
    """Open a notebook in a fresh workspace and wait for its kernel; returns the notebook locator."""
    from playwright.sync_api import expect
    page.goto(f"{lab['base']}/lab/tree/{name}?reset&token={lab['token']}")
    nb = page.locator(NB)
    expect(nb).to_have_count(1, timeout=90_000)
    page.wait_for_function("() => window.jupyterapp && window.jupyterapp.shell.currentWidget"
                           " && window.jupyterapp.shell.currentWidget.sessionContext"
                           " && window.jupyterapp.shell.currentWidget.sessionContext.session"
                           " && window.jupyterapp.shell.currentWidget.sessionContext.session.kernel",
                           timeout=90_000)
    return nb


def cell_index(page, starts_with: str) -> int:
    i = page.evaluate("""s => window.jupyterapp.shell.currentWidget.content.widgets
                           .findIndex(c => c.model.sharedModel.getSource().startsWith(s))""", starts_with)
    assert i >= 0, f"no cell starts with {starts_with!r}"
    return i


def run(page, command: str, active: int | None = None) -> None:
    """Run a notebook command (e.g. notebook:run-cell) with cell ``active`` selected."""
    if active is not None:
        page.evaluate("i => { const nb = window.jupyterapp.shell.currentWidget.content;"
                      " nb.activeCellIndex = i; nb.deselectAll(); }", active)
    page.evaluate("c => window.jupyterapp.commands.execute(c)", command)


def wait_for_stdout(page, nb, text: str, timeout: float = 240_000):
    """Wait until an output shows ``text``, or a cell fails (then fail with its error)."""
    from playwright.sync_api import expect
    done = nb.locator(STDOUT, has_text=text)
    failed = nb.locator(STDERR)
    expect(done.or_(failed).first).to_be_visible(timeout=timeout)
    assert failed.count() == 0, "a cell failed:\n" + "\n".join(failed.all_inner_texts())[-3000:]


def wait_for_output(page, nb, text: str, timeout: float = 240_000):
    """Wait until any output (printed, or displayed as HTML like the final checks) shows ``text``, or a cell
    fails (then fail with its error)."""
    from playwright.sync_api import expect
    done = nb.locator(".jp-OutputArea-output", has_text=text)
    failed = nb.locator(STDERR)
    expect(done.or_(failed).first).to_be_visible(timeout=timeout)
    assert failed.count() == 0, "a cell failed:\n" + "\n".join(failed.evaluate_all(
        "els => els.map(e => e.textContent)"))[-3000:]


def contrast_in_page(page, selector: str) -> dict:
    """The WCAG contrast of the first element matching ``selector`` against the background behind it."""
    return page.evaluate("""sel => {
        const el = document.querySelector(sel);
        const rgb = s => s.match(/[\\d.]+/g).map(Number);
        const lum = c => { const [r, g, b] = c.slice(0, 3).map(v => { v /= 255;
            return v <= 0.04045 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); });
            return 0.2126 * r + 0.7152 * g + 0.0722 * b; };
        let bg = null;
        for (let n = el; n; n = n.parentElement) {
            const c = rgb(getComputedStyle(n).backgroundColor);
            if (c.length < 4 || c[3] > 0) { bg = c; break; }
        }
        bg = bg || [255, 255, 255];
        const fg = rgb(getComputedStyle(el).color);
        const [hi, lo] = [lum(fg), lum(bg)].sort((a, b) => b - a);
        return {ratio: (hi + 0.05) / (lo + 0.05), fg: fg, bg: bg};
    }""", selector)


def newest_line_visible(page, box) -> dict:
    """Whether the last character of a log box's text lies inside the box's visible area."""
    return box.evaluate("""box => {
        const walker = document.createTreeWalker(box, NodeFilter.SHOW_TEXT);
        let last = null;
        while (walker.nextNode()) if (walker.currentNode.textContent.trim()) last = walker.currentNode;
        const text = last.textContent.replace(/\\s+$/, '');
        const range = document.createRange();
        range.setStart(last, text.length - 1); range.setEnd(last, text.length);
        const r = range.getBoundingClientRect(), b = box.getBoundingClientRect();
        return {visible: r.top >= b.top - 1 && r.bottom <= b.bottom + 1, overflowing: box.scrollHeight > box.clientHeight,
                text: text.slice(-80)};
    }""")


def top_line(box) -> str:
    """The text of the line at the top of a log box's visible area."""
    return box.evaluate("""b => { const r = b.getBoundingClientRect();
        const range = document.caretRangeFromPoint(r.left + 12, r.top + 8);
        const t = range.startContainer.textContent; const i = range.startOffset;
        const start = t.lastIndexOf('\\n', i - 1) + 1, end = t.indexOf('\\n', i);
        return t.slice(start, end < 0 ? undefined : end); }""")


@pytest.mark.timeout(420)
def test_a_log_box_keeps_a_long_key_whole_and_wraps_between_words(browser):
    """13's agg lines name {temps:averages}aggregating_consumer_state: wider than a box, it scrolls, uncut."""
    from labkit.notebook.panel import panel_css
    line = "agg: Saved state to {temps:averages}aggregating_consumer_state after the hour 2025/01/01 at 3"
    jupyterlab = ".jp-OutputArea-output pre { word-break: break-all; white-space: pre-wrap; font: 13px monospace; }"
    with new_page(browser, "browser-log-long-token-failed.png") as page:
        page.set_content(f"<style>{jupyterlab}</style>{panel_css()}"
                         '<div class="labkit-log" style="width: 220px; height: 240px; overflow: auto">'
                         '<div class="widget-vbox"><div class="widget-output"><div class="jp-OutputArea-child">'
                         f'<div class="jp-OutputArea-output jp-RenderedText"><pre>{line}</pre></div></div></div></div></div>')
        seen = page.locator(".labkit-log").evaluate("""box => {
            const t = box.querySelector('pre').firstChild, r = document.createRange(), rows = [];
            let top = null;
            for (let i = 0; i < t.length; i++) {           // the text of each visual row
                r.setStart(t, i); r.setEnd(t, i + 1);
                const y = Math.round(r.getBoundingClientRect().top);
                if (y !== top) rows.push('');
                rows[rows.length - 1] += t.data[i]; top = y;
            }
            return {rows: rows.map(s => s.trim()), scrolls: box.scrollWidth > box.clientWidth}; }""")
    assert "{temps:averages}aggregating_consumer_state" in seen["rows"] and seen["scrolls"], seen
    assert all(w in line.split() for row in seen["rows"] for w in row.split()), seen     # no word is cut


def test_the_learners_partition_stands_and_the_panel_reads_well(browser, jupyter_lab):
    from playwright.sync_api import expect

    ns = jupyter_lab["namespace"]
    with new_page(browser, "browser-04-failed.png") as page:
        nb = open_notebook(page, jupyter_lab, "04-running-the-consumers.ipynb")
        # Run everything above the "Run them" section: the panel appears, nothing is started.
        panel_cell = cell_index(page, "from labkit.notebook.panel import ConsumerPanel")
        run(page, "notebook:run-all-above", active=panel_cell + 1)
        panel = nb.locator(".widget-vbox", has=page.locator(".widget-dropdown select")).first
        start = panel.locator("button.widget-button", has_text="Start")
        expect(start).to_be_enabled(timeout=120_000)

        # A learner: choose the second day by hand, press Start ...
        second = f"{ns}:temps:20250102"
        panel.locator(".widget-dropdown select").select_option(label=second)
        start.click()
        expect(start).to_be_disabled()
        # ... then run the next cell, which must leave that run alone.
        start_cell = cell_index(page, "started = nbk.start_unless_started(panel)")
        run(page, "notebook:run-cell", active=start_cell)
        wait_for_stdout(page, nb, "you pressed Start yourself")
        expect(nb.locator(STDOUT, has_text=f"(run from {second})")).to_have_count(1)

        expect(panel.locator(".widget-dropdown select")).to_have_value(second)        # the choice stands
        expect(panel).to_contain_text("hours published 48")                           # the 2nd and 3rd days
        assert "already running" not in panel.inner_text()
        agg_out, avg_out = panel.locator(".labkit-log").nth(0), panel.locator(".labkit-log").nth(1)
        expect(agg_out).to_contain_text(f"agg: Starting aggregating consumer in stream {second} at message 0.")
        avg_lines = [l for l in avg_out.inner_text().splitlines() if "Average temperature" in l]
        assert avg_lines[0].startswith("avg: Average temperature for 2025/01/02 at 0 was"), avg_lines[:2]
        assert "2025/01/01" not in avg_out.inner_text()

        # The log box shows its newest line (the box is full enough to scroll), one Waiting line.
        seen = newest_line_visible(page, avg_out)
        assert seen["overflowing"] and seen["visible"], seen
        assert seen["text"].endswith(f"Waiting for new messages in stream {ns}:temps:averages")
        assert avg_out.inner_text().count("Waiting for new messages") == 1
        # No breaks inside words, and readable colours.
        assert avg_out.locator("pre").first.evaluate("e => getComputedStyle(e).wordBreak") == "normal"
        light = contrast_in_page(page, ".labkit-log .ansi-yellow-fg")
        status = contrast_in_page(page, ".labkit-ok")
        assert light["ratio"] >= 4.5 and status["ratio"] >= 4.5, (light, status)
        panel.scroll_into_view_if_needed()
        page.screenshot(path=str(ARTIFACTS / "browser-04-learner-choice-light.png"))

        # Scrolled up, the box stays where the learner put it while a new day's averages arrive.
        avg_out.evaluate("b => { b.scrollTop = -(b.scrollHeight - b.clientHeight); }")    # to the top
        at_top = top_line(avg_out)
        assert at_top.startswith(f"avg: Starting averages consumer in stream {ns}:temps:averages"), at_top
        from labkit.servers import connection
        from labkit.core import producer
        from labkit.core.keys import Keys
        r = connection.connect(jupyter_lab["target"])
        producer.produce(r, producer.Dataset(producer.parse_start("2025-01-04"), 1), Keys(ns))
        r.close()
        expect(panel).to_contain_text("hours published 72", timeout=60_000)
        expect(avg_out).to_contain_text("2025/01/04 at 23 was")
        page.wait_for_timeout(600)                               # a few more flushes of the panel
        assert top_line(avg_out) == at_top, "the box jumped away from where the learner scrolled"
        assert not newest_line_visible(page, avg_out)["visible"]
        avg_out.evaluate("b => { b.scrollTop = 0; }")            # back down: it follows the newest line again
        assert newest_line_visible(page, avg_out)["visible"]

        # The rest of the notebook passes its checks on the learner's run.
        run(page, "notebook:run-all-below", active=start_cell + 1)
        wait_for_output(page, nb, "04 running the consumers: all checks passed")
        expect(nb.locator(STDOUT, has_text=f"the consumers read {second} … {ns}:temps:20250104")).to_have_count(1)

        # The dark theme: the same lines read at AA there too.
        page.evaluate("window.jupyterapp.commands.execute('apputils:change-theme', {theme: 'JupyterLab Dark'})")
        page.wait_for_function("document.body.dataset.jpThemeLight === 'false'", timeout=30_000)
        page.wait_for_timeout(500)
        dark = contrast_in_page(page, ".labkit-log .ansi-yellow-fg")
        assert dark["ratio"] >= 4.5 and sum(dark["bg"][:3]) < 150, dark
        panel.scroll_into_view_if_needed()
        page.screenshot(path=str(ARTIFACTS / "browser-04-learner-choice-dark.png"))
        page.evaluate("window.jupyterapp.commands.execute('apputils:change-theme', {theme: 'JupyterLab Light'})")


@pytest.mark.timeout(300)
def test_start_here_renders_and_passes(browser, jupyter_lab):
    with new_page(browser, "browser-00-failed.png") as page:
        nb = open_notebook(page, jupyter_lab, "00-start-here.ipynb")
        img = nb.locator('img[src*="pipeline.svg"]')
        page.wait_for_function("img => img.complete && img.naturalWidth > 500", arg=img.element_handle(),
                               timeout=30_000)
        run(page, "notebook:run-all-cells")
        wait_for_output(page, nb, "00 start here: all checks passed", timeout=120_000)
        assert nb.locator(STDERR).count() == 0
        link = nb.locator("a", has_text="04 · Running the consumers")
        link.scroll_into_view_if_needed()
        assert "/04-running-the-consumers.ipynb" in link.get_attribute("href")
        img.scroll_into_view_if_needed()
        page.screenshot(path=str(ARTIFACTS / "browser-00-start-here.png"))


@pytest.mark.timeout(120)
def test_a_saved_panel_shows_the_reload_hint(browser, jupyter_lab):
    """Opened from disk with no live panel behind it, the panel's output reads as a hint, not a widget repr."""
    from playwright.sync_api import expect
    with new_page(browser, "browser-saved-panel-failed.png", height=700) as page:
        nb = open_notebook(page, jupyter_lab, SAVED)
        out = nb.locator(".jp-OutputArea-output").first
        expect(out).to_contain_text("run this cell again", timeout=30_000)
        assert "VBox(" not in out.inner_text()


def last_code_cell(page) -> int:
    return page.evaluate("""() => { const cells = window.jupyterapp.shell.currentWidget.content.widgets;
        let i = cells.length - 1; while (i >= 0 && cells[i].model.type !== 'code') i--; return i; }""")


def set_source(page, index: int, source: str) -> None:
    """Type into a cell, as a learner does (the cell's model, not the keyboard: no editor auto-indent)."""
    page.evaluate("([i, s]) => window.jupyterapp.shell.currentWidget.content.widgets[i].model.sharedModel.setSource(s)",
                  [index, source])


def output_of(nb, index: int):
    return nb.locator(".jp-Cell").nth(index).locator(".jp-OutputArea-output")


def run_cell_and_wait(page, nb, index: int, text: str, timeout: float = 240_000):
    """Run cell ``index`` and wait until its own output shows ``text``."""
    from playwright.sync_api import expect
    out = nb.locator(".jp-Cell").nth(index).locator(".jp-OutputArea")
    page.evaluate("i => window.jupyterapp.shell.currentWidget.content.widgets[i].model.outputs.clear()", index)
    run(page, "notebook:run-cell", active=index)
    expect(out).to_contain_text(text, timeout=timeout)
    return out.inner_text()


@pytest.mark.timeout(600)
def test_a_learner_tries_the_moves_of_04_then_the_checks(browser, jupyter_lab):
    """The "try by hand" moves 04 invites, with the checks after each: a later partition started and stopped,
    Start then Simulate crash then Resume (checks run while they still run), "Run them" again after a Stop, an
    exercise answered wrong then right (✓/✗ in colour at AA), then a kernel restart: the old panel says stopped."""
    from playwright.sync_api import expect

    ns = jupyter_lab["namespace"]
    with new_page(browser, "browser-04-moves-failed.png") as page:
        nb = open_notebook(page, jupyter_lab, "04-running-the-consumers.ipynb")
        run(page, "notebook:run-all-cells")                       # Run All once: the notebook starts at day 1
        wait_for_output(page, nb, "04 running the consumers: all checks passed")
        panel = nb.locator(".widget-vbox.labkit-panel").first
        select = panel.locator(".widget-dropdown select")
        button = lambda name: panel.locator("button.widget-button", has_text=name)   # noqa: E731
        checks = last_code_cell(page)

        # 1. A later partition, Start, Stop once it has caught up; then the checks.
        expect(button("Start")).to_be_enabled(timeout=60_000)
        second = f"{ns}:temps:20250102"
        select.select_option(label=second)
        button("Start").click()
        agg_box = panel.locator(".labkit-log").nth(0)
        page.wait_for_function("""([box, start]) => { const t = box.innerText.trim();     // this run, caught up
            return t.includes(start) && t.split('\\n').pop().includes('Waiting for new messages'); }""",
                               arg=[agg_box.element_handle(), f"in stream {second} at message 0."], timeout=120_000)
        button("Stop").click()
        expect(button("Resume")).to_be_enabled(timeout=30_000)
        text = run_cell_and_wait(page, nb, checks, "04 running the consumers:")
        assert "all checks passed" in text and f"from {second}" in text, text
        assert "AssertionError" not in text

        # 2. Start at the first partition, Simulate crash, Resume, and the checks at once (they wait).
        select.select_option(label=f"{ns}:temps:20250101")
        button("Start").click()
        button("Simulate crash").click()
        expect(panel.locator(".labkit-status").first).to_contain_text("crashed", timeout=30_000)
        expect(button("Resume")).to_be_enabled(timeout=30_000)
        button("Resume").click()
        expect(button("Resume")).to_be_disabled(timeout=30_000)   # the kernel has it (as a learner sees it)
        text = run_cell_and_wait(page, nb, checks, "04 running the consumers:")
        assert "all checks passed" in text and f"from {ns}:temps:20250101" in text, text + panel.inner_text()[:600]

        # 3. Stop, then "Run them" again: it says they are stopped (not "did not settle").
        button("Stop").click()
        expect(button("Resume")).to_be_enabled(timeout=30_000)
        again = cell_index(page, "started = nbk.start_unless_started(panel)")
        text = run_cell_and_wait(page, nb, again, "you pressed")
        assert "stopped" in text and "did not settle" not in text, text
        panel.scroll_into_view_if_needed()
        page.screenshot(path=str(ARTIFACTS / "browser-04-after-the-moves.png"))

        # 4. Exercise 7 answered wrong, then right: ✗ and ✓ in colour, at AA, wrapped between words.
        ex7 = cell_index(page, "import datetime as dt\n\n\ndef hour_of")
        placeholder = page.evaluate("i => window.jupyterapp.shell.currentWidget.content.widgets[i].model"
                                    ".sharedModel.getSource()", ex7)
        wrong = placeholder.replace("    ...   # your code here",
                                    "    t = dt.datetime.fromtimestamp(int(entry_id.split('-')[0]) / 1000)\n"
                                    "    return f'{t:%Y/%m/%d}', t.hour")
        set_source(page, ex7, wrong)
        text = run_cell_and_wait(page, nb, ex7, "not right yet")
        assert "time zone" in text, text
        bad = output_of(nb, ex7).locator(".labkit-bad").first
        expect(bad).to_be_visible()
        assert bad.evaluate("e => getComputedStyle(e.closest('.labkit-check')).wordBreak") == "normal"
        bad.evaluate("e => e.id = 'labkit-ex-bad'")
        assert contrast_in_page(page, "#labkit-ex-bad")["ratio"] >= 4.5
        from tests.test_learner import answered, right as reference
        right = answered(placeholder, "hour_of", reference("hour_of"))
        set_source(page, ex7, right)
        run_cell_and_wait(page, nb, ex7, "✓ right")
        good = output_of(nb, ex7).locator(".labkit-ok").first
        good.evaluate("e => e.id = 'labkit-ex-ok'")
        assert contrast_in_page(page, "#labkit-ex-ok")["ratio"] >= 4.5
        output_of(nb, ex7).first.scroll_into_view_if_needed()
        page.screenshot(path=str(ARTIFACTS / "browser-04-exercise-feedback.png"))

        # 5. Kernel restart: the old panel must not look running; it says to re-run the cell.
        button("Resume").click()
        expect(panel.locator(".labkit-live .labkit-ok", has_text="running")).to_be_visible(timeout=30_000)
        page.evaluate("window.jupyterapp.shell.currentWidget.sessionContext.session.kernel.restart()")
        dead = panel.locator(".labkit-dead").first
        expect(dead).to_be_visible(timeout=60_000)
        expect(dead).to_contain_text("re-run the cell")
        expect(panel.locator(".labkit-live").first).to_be_hidden()
        assert button("Start").evaluate("e => getComputedStyle(e).pointerEvents") == "none"
        panel.scroll_into_view_if_needed()
        page.screenshot(path=str(ARTIFACTS / "browser-04-after-a-kernel-restart.png"))


@pytest.mark.timeout(420)
def test_06_runs_and_its_plots_read_well(browser, jupyter_lab):
    with new_page(browser, "browser-06-failed.png", height=1100) as page:
        nb = open_notebook(page, jupyter_lab, "06-hourly-averages.ipynb")
        run(page, "notebook:run-all-cells")
        wait_for_output(page, nb, "06 hourly averages: all checks passed")
        assert nb.locator(STDERR).count() == 0
        plot = cell_index(page, "from matplotlib.figure import Figure")
        img = output_of(nb, plot).locator("img").first
        img.scroll_into_view_if_needed()
        page.wait_for_function("img => img.complete && img.naturalWidth > 800", arg=img.element_handle(),
                               timeout=30_000)
        page.screenshot(path=str(ARTIFACTS / "browser-06-pandas-plot.png"))
        figure = cell_index(page, "from labkit.notebook.plot import averages_vs_truth")
        output_of(nb, figure).locator("img").first.scroll_into_view_if_needed()
        page.screenshot(path=str(ARTIFACTS / "browser-06-labkit-figure.png"))


@pytest.mark.timeout(300)
def test_the_stream_browser_renders_pages_and_jumps(browser, jupyter_lab):
    """The widget draws the partitions; Next shows entries 21-40; a jump to 12:00 shows noon's readings."""
    from playwright.sync_api import expect
    ns, t0 = jupyter_lab["namespace"], 1735689600000
    with new_page(browser, "browser-stream-browser-failed.png", height=1200) as page:
        nb = open_notebook(page, jupyter_lab, BROWSE)
        run(page, "notebook:run-all-cells")
        wait_for_stdout(page, nb, "browser drawn", timeout=180_000)
        widget = nb.locator(".labkit-browser")
        expect(widget).to_be_visible(timeout=60_000)
        parts = widget.locator("table.labkit-browser-partitions")
        for day in ("20250101", "20250102", "20250103"):
            expect(parts).to_contain_text(f"{ns}:temps:{day}")
        expect(widget).to_contain_text(f"> XLEN {ns}:temps:YYYYMMDD")
        rows = widget.locator("table.labkit-browser-page tbody tr")
        expect(rows).to_have_count(20)
        expect(rows.first).to_contain_text(f"{t0}-0")
        expect(widget).to_contain_text(f"> XRANGE {ns}:temps:20250101 - + COUNT 20")

        widget.locator("button", has_text="Next").click()
        expect(rows.first).to_contain_text(f"{t0 + 20_000}-0")
        expect(rows.last).to_contain_text(f"{t0 + 39_000}-0")
        expect(widget).to_contain_text(f"> XRANGE {ns}:temps:20250101 ({t0 + 19_000}-0 + COUNT 20")
        widget.locator("button", has_text="Previous").click()
        expect(rows.first).to_contain_text(f"{t0}-0")

        widget.locator("input[type=text]").fill("12:00")
        widget.locator("button", has_text="Jump").click()
        noon = t0 + 12 * 3_600_000
        expect(rows.first).to_contain_text(f"{noon}-0")
        expect(rows.first).to_contain_text("2025-01-01 12:00:00")
        expect(widget).to_contain_text(f"> XRANGE {ns}:temps:20250101 {noon} + COUNT 20")

        widget.locator("select").select_option(label=f"{ns}:temps:20250102")
        expect(rows.first).to_contain_text(f"{t0 + 86_400_000}-0")
        assert nb.locator(STDERR).count() == 0
        widget.scroll_into_view_if_needed()
        page.screenshot(path=str(ARTIFACTS / "browser-stream-browser.png"))


@pytest.mark.timeout(300)
def test_a_quiz_renders_and_checks_in_the_browser(browser, jupyter_lab):
    """Quiz 1 draws its questions; choosing an answer and pressing Check explains it, with Redis's real reply."""
    from playwright.sync_api import expect
    with new_page(browser, "browser-quiz-failed.png", height=1200) as page:
        nb = open_notebook(page, jupyter_lab, "06q-quiz-1-partitioned-streams.ipynb")
        run(page, "notebook:run-all-cells")
        wait_for_stdout(page, nb, "quiz 1: all checks passed", timeout=120_000)
        quiz = nb.locator(".labkit-quiz")
        expect(quiz.locator(".widget-radio-box")).to_have_count(11)
        quiz.locator(".widget-radio-box").nth(3).locator("label", has_text="-1").click()     # TTL, no expiry
        quiz.locator("button", has_text="Check").nth(3).click()
        expect(quiz).to_contain_text("✓ right.")
        expect(quiz).to_contain_text("(integer) -1")
        quiz.locator(".widget-radio-box").nth(0).locator("label", has_text="temps:20250103").click()
        quiz.locator("button", has_text="Check").nth(0).click()
        expect(quiz).to_contain_text("✗ not right.")
        quiz.locator("button", has_text="Score").click()
        expect(quiz).to_contain_text("1/11")
        right, wrong = contrast_in_page(page, ".labkit-quiz .labkit-ok"), contrast_in_page(page, ".labkit-quiz .labkit-bad")
        assert right["ratio"] >= 4.5 and wrong["ratio"] >= 4.5, (right, wrong)
        assert nb.locator(STDERR).count() == 0
        quiz.locator("button", has_text="Check").nth(3).scroll_into_view_if_needed()
        page.screenshot(path=str(ARTIFACTS / "browser-quiz-1.png"))
