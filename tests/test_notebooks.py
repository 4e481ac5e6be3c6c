"""The lab notebooks (00–06) and 13 run top to bottom, both ways; every notebook is stored clean.

Each notebook ends by asserting its own checks, so executing it is the test.
They run in lab order, twice:

* **as shipped**, in a fresh namespace: every exercise still holds its placeholder, so
  every exercise check must say "not solved yet" and the notebook must go on;
* **with LABKIT_SOLUTIONS=1**, in a namespace that already holds partitions from a
  longer run (three days, where the notebooks produce one and a half): every
  exercise check must pass with the reference solution, and every notebook's own
  checks must hold although the consumers read on into the extra day.

Notebook 13 (partitions across shards) runs on a Redis Cluster: one it starts
itself (no REDIS_URL, or one naming a single server) and, in a second test, one
named by REDIS_URL (Debian's redis-server, formed by the test), where it fails a
master over with CLUSTER FAILOVER instead of killing it.

Notebook 06 also runs on its own with the full ten days, which checks both that it
can stand alone and the cap (``XLEN`` about 120, hours trimmed) that a small
dataset never reaches.  The kernel is this test run's Python (a temporary
kernelspec pointing at ``sys.executable``, never the user's kernels).  Only the
namespaces' keys are deleted afterwards.

The structure tests (no kernel) hold the notebooks to the lab's shape: objectives
first, a recap and a link to the next last, one set-up call, the course's commands
visible with their redis-cli form, and at least eight exercises, each with a
check and a hidden solution equal to :mod:`labkit.notebook.solutions`.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import uuid
import xml.etree.ElementTree as ET
from pathlib import Path

import nbformat
import pytest

from tests.helpers import execute_notebook

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
LAB = sorted(p for p in NOTEBOOKS.glob("*.ipynb") if re.match(r"0[0-6]-", p.name))
SHARDS = NOTEBOOKS / "13-partitions-across-shards.ipynb"   # the scale-out notebook: lab-style, on a cluster
EXERCISED = LAB + [SHARDS]                                  # notebooks with exercises (07–12 have none)
ALL = sorted(NOTEBOOKS.glob("*.ipynb"))
QUIZZES = [p for p in ALL if "quiz" in p.name]              # self-checks after 06 and 10 (06q-…, 10q-…)
DAYS = "1.5"          # two partitions (a boundary to cross), 36 hours
LONGER_RUN_DAYS = 3   # what an earlier, longer run left behind
CELL_TIMEOUT = 300


@pytest.fixture(scope="module")
def run_notebook(target, lab_home, kernel_dir):
    """Execute a notebook on the test server; afterwards delete the namespaces it used."""
    used: list[str] = []

    def run(path: Path, namespace: str, days: str = DAYS, env: dict | None = None):
        used.append(namespace)
        return execute_notebook(path, target, lab_home, kernel_dir, namespace, days, CELL_TIMEOUT, env)

    yield run
    from labkit.servers import connection
    from labkit.core.keys import Keys
    from labkit.core.runner import delete_namespace
    r = connection.connect(target)
    for ns in set(used):
        delete_namespace(r, Keys(ns))
    r.close()


def stream_text(nb) -> str:
    """What the cells printed, and what they displayed as text (the final checks are displayed: nbk.Checks)."""
    parts = []
    for c in nb.cells:
        for o in c.get("outputs", []) if c.cell_type == "code" else []:
            if o.get("output_type") == "stream":
                parts.append(o.get("text", ""))
            elif o.get("output_type") == "display_data":
                parts.append(o.get("data", {}).get("text/plain", "") + "\n")
    return "".join(parts)


def result_texts(nb) -> list[str]:
    """The text form of every cell's result (``execute_result``), in order."""
    return [o["data"].get("text/plain", "") for c in nb.cells if c.cell_type == "code"
            for o in c.get("outputs", []) if o.get("output_type") == "execute_result"]


def exercise_outcomes(nb) -> list[str]:
    return [t for t in result_texts(nb) if t.startswith("Exercise ")]


@pytest.fixture(scope="module")
def lab_namespace():
    return "nb" + uuid.uuid4().hex[:10]


@pytest.fixture(scope="module")
def longer_run_namespace(target):
    """A namespace that already holds three days of partitions, as an earlier, longer run leaves them."""
    from labkit.servers import connection
    from labkit.core import producer
    from labkit.core.keys import Keys
    ns = "nb" + uuid.uuid4().hex[:10]
    r = connection.connect(target)
    producer.produce(r, producer.Dataset(producer.parse_start("2025-01-01"), LONGER_RUN_DAYS), Keys(ns))
    r.close()
    return ns


def test_the_lab_has_seven_notebooks_in_order():
    assert [p.name[:3] for p in LAB] == ["00-", "01-", "02-", "03-", "04-", "05-", "06-"]


def test_the_scale_out_notebook_comes_last():
    assert SHARDS.is_file() and ALL[-1] == SHARDS
    assert [p.name[:2] for p in ALL if p not in QUIZZES] == [f"{i:02d}" for i in range(14)]


def test_the_quizzes_follow_06_and_10():
    order = [p.name for p in ALL]
    assert [p.name[:4] for p in QUIZZES] == ["06q-", "10q-"]
    for quiz, before in zip(QUIZZES, ("06-", "10-")):
        assert order[order.index(quiz.name) - 1].startswith(before)


@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.parametrize("solutions", [False, True], ids=["shipped", "LABKIT_SOLUTIONS=1"])
@pytest.mark.parametrize("path", QUIZZES, ids=[p.stem for p in QUIZZES])
def test_quiz_runs_unanswered_and_with_the_reference_answers(path, solutions, run_notebook):
    from labkit.notebook.quiz import load
    env = {"LABKIT_SOLUTIONS": "1"} if solutions else {}
    nb, seconds = run_notebook(path, "nb" + uuid.uuid4().hex[:10], env=env)
    print(f"{path.name} ({'solutions' if solutions else 'as shipped'}): {seconds:.1f} s")
    text = stream_text(nb)
    n = len(load(path.name.split("-")[1] + "-" + path.name.split("-")[2]).questions)
    assert "Traceback" not in text
    if solutions:
        assert re.search(rf"^quiz \d: all checks passed \({n}/{n}\)$", text, re.M), text[-2000:]
        assert "(the reference answers, LABKIT_SOLUTIONS=1)" in text and "✗" not in text
        assert text.count("✓ right") == n and text.count("Redis answered:") >= 3
    else:
        assert re.search(rf"^quiz \d: all checks passed \(0/{n}; nothing answered yet", text, re.M), text[-2000:]
        assert text.count("not answered yet") == n + 1


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.parametrize("path", LAB, ids=[p.stem for p in LAB])
def test_lab_notebook_runs_top_to_bottom_as_shipped(path, run_notebook, lab_namespace):
    nb, seconds = run_notebook(path, lab_namespace)
    print(f"{path.name} as shipped: {seconds:.1f} s")
    text = stream_text(nb)
    assert re.search(r"^0[0-6] .*: all checks passed$", text, re.M), text[-2000:]
    assert "Traceback" not in text
    outcomes = exercise_outcomes(nb)
    assert len(outcomes) == len(exercises_in(path))
    assert all("… not solved yet" in o for o in outcomes), outcomes
    if path.name.startswith("01-"):
        # The kernel ran this interpreter and saw the test server, through the environment only.
        assert sys.executable in json.dumps([c.get("outputs") for c in nb.cells])
    if path.name.startswith("06-"):
        assert "36/36 hours verified" in text


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.parametrize("path", LAB, ids=[p.stem for p in LAB])
def test_lab_notebook_runs_with_solutions_after_a_longer_run(path, run_notebook, longer_run_namespace):
    nb, seconds = run_notebook(path, longer_run_namespace, env={"LABKIT_SOLUTIONS": "1"})
    print(f"{path.name} with LABKIT_SOLUTIONS=1, after a longer run: {seconds:.1f} s")
    text = stream_text(nb)
    assert re.search(r"^0[0-6] .*: all checks passed$", text, re.M), text[-2000:]
    outcomes = exercise_outcomes(nb)
    assert len(outcomes) == len(exercises_in(path))
    assert all("(the reference solution, LABKIT_SOLUTIONS=1)\n✓ right" in o for o in outcomes), outcomes
    extra = f"{longer_run_namespace}:temps:20250103"
    if path.name[:2] in ("00", "01", "03", "04", "05", "06"):
        assert f"also found 1 other partition ({extra})" in "".join(result_texts(nb))
    if path.name[:2] in ("04", "05", "06"):
        # The consumers read on into the extra day, and the checks covered it.
        assert f"1 of them not this notebook's dataset ({extra})" in text
        # The extra day is complete in the partition manifest, so its final hour is closed too.
        assert "60 hours closed" in text and "is still open" not in text


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


def _shards_run(nb, solutions: bool) -> str:
    """What every run of notebook 13 must show; returns its text."""
    text = stream_text(nb)
    assert "13 partitions across shards: all checks passed" in text, text[-3000:]
    assert "Traceback" not in text
    outcomes = exercise_outcomes(nb)
    assert len(outcomes) == len(exercises_in(SHARDS)) == 1
    mark = "(the reference solution, LABKIT_SOLUTIONS=1)\n✓ right" if solutions else "… not solved yet"
    assert all(mark in o for o in outcomes), outcomes
    # 1.5 days, then one more day written through the failover: 60 hours, every one exact.
    assert "60 hours compared: 60 matched, 0 mismatched, 0 missing" in text, text[-3000:]
    assert re.search(r"its replica \S+ serves its slots [\d.]+ s later", text), text[-3000:]
    return text


@pytest.mark.slow
@pytest.mark.cluster
@pytest.mark.timeout(600)
def test_partitions_across_shards_on_a_cluster_of_its_own(target, lab_home, kernel_dir):
    """13 starts its own 3 x 1 cluster and a 1-node one (unless REDIS_URL names a cluster), kills a master
    mid-run, verifies every hour and stops both clusters.  With the reference solution: the notebook as
    shipped (its exercise unanswered) runs in the next test, on a cluster it did not start."""
    from labkit.servers import connection
    env = {"LABKIT_SOLUTIONS": "1"}
    t = target
    if not target.embedded:
        r = connection.connect(target)
        if connection.is_cluster(r):   # CI's cluster runs: the notebook would use this one, not its own
            t = connection.Target("", embedded=True)
        r.close()
    from labkit.notebook.shards import stop_leftovers
    try:
        nb, seconds = execute_notebook(SHARDS, t, lab_home, kernel_dir, "nb" + uuid.uuid4().hex[:10], DAYS,
                                       CELL_TIMEOUT, env)
    finally:
        left = stop_leftovers(lab_home)   # a failed run's kernel is killed before the notebook's own stop()
    assert left == 0, f"the notebook left {left} cluster nodes running"
    print(f"{SHARDS.name} with LABKIT_SOLUTIONS=1: {seconds:.1f} s")
    text = _shards_run(nb, True)
    assert "so this notebook started its own" in "".join(result_texts(nb))
    assert "killed (SIGKILL)" in text
    assert "stopped the 3-master cluster it started (6 nodes)" in text
    assert "stopped the 1-master cluster it started (1 node)" in text


@pytest.mark.slow
@pytest.mark.cluster
@pytest.mark.timeout(600)
def test_partitions_across_shards_on_the_cluster_redis_url_names(own_cluster, lab_home, kernel_dir):
    """With REDIS_URL naming a cluster labkit did not form here, 13 uses it and kills nothing: the replica
    takes over with CLUSTER FAILOVER, and every node is still running afterwards."""
    from labkit.servers import cluster, connection
    t = connection.Target(own_cluster.url, embedded=False)
    ns = "nb" + uuid.uuid4().hex[:10]
    from labkit.notebook.shards import stop_leftovers
    try:
        nb, seconds = execute_notebook(SHARDS, t, lab_home, kernel_dir, ns, DAYS, CELL_TIMEOUT)
    finally:
        left = stop_leftovers(lab_home)
    assert left == 0, f"the notebook left {left} cluster nodes running"
    print(f"{SHARDS.name} on REDIS_URL's cluster: {seconds:.1f} s")
    text = _shards_run(nb, False)
    assert "REDIS_URL names a Redis Cluster" in "".join(result_texts(nb))
    assert "handed over (CLUSTER FAILOVER on its replica)" in text and "killed (SIGKILL)" not in text
    assert "stopped the 1-master cluster it started (1 node)" in text and "3-master" not in text
    assert len(cluster.running(own_cluster)) == 6, "nothing of REDIS_URL's cluster was stopped or killed"


# ---------------------------------------------------------------- the lab's shape (no kernel)

EXERCISE_HEADING = re.compile(r"^#+ (Exercise (\d+) · (.+))$", re.M)
SOLUTION = re.compile(r"<details><summary>Show a solution</summary>\s*```python\n(.*?)```", re.S)
CHECK = re.compile(r"ex\.check\(\"(\w+)\"")


def cells(path: Path):
    return nbformat.read(path, as_version=4).cells


def code_of(path: Path) -> str:
    return "\n".join(c.source for c in cells(path) if c.cell_type == "code")


def exercises_in(path: Path) -> list[tuple[int, str, str, str]]:
    """``(number, title, check name, solution code)`` for each exercise heading of a notebook."""
    found = []
    cs = cells(path)
    for i, cell in enumerate(cs):
        if cell.cell_type != "markdown":
            continue
        for m in EXERCISE_HEADING.finditer(cell.source):
            sol = SOLUTION.search(cell.source[m.end():])
            check = next((CHECK.search(c.source) for c in cs[i + 1:]
                          if c.cell_type == "code" and CHECK.search(c.source)), None)
            found.append((int(m.group(2)), m.group(3), check.group(1) if check else "",
                          sol.group(1) if sol else ""))
    return found


def exercise_blocks() -> dict[str, str]:
    """Each exercise's hidden solution, by check name, from every notebook with exercises."""
    return {name: code for p in EXERCISED for _, _, name, code in exercises_in(p)}


def test_at_least_eight_exercises_each_with_a_check_and_a_hidden_solution():
    from labkit.notebook.exercises import EXERCISES
    found = [e for p in EXERCISED if p.name[:2] != "00" for e in exercises_in(p)]
    assert len(found) >= 8
    assert [n for n, *_ in found] == list(range(1, len(found) + 1)), "numbered in order across the lab"
    for number, title, name, solution in found:
        assert name in EXERCISES, (number, title, name)
        assert (EXERCISES[name].number, EXERCISES[name].title) == (number, title), name
        assert solution.strip(), f"exercise {number} has no hidden solution"
    assert sorted(name for *_, name, _ in found) == sorted(EXERCISES)
    assert all("Exercise" not in c.source for p in ALL if p not in EXERCISED for c in cells(p) if c.cell_type == "markdown"), \
        "the companion notebooks have no exercises, so LABKIT_SOLUTIONS changes nothing there"


def test_no_notebook_cell_ends_in_a_bare_assert():
    """Checks in a notebook speak plain words (``nbk.expect``, ``nbk.Checks``): never a raw AssertionError."""
    import ast
    found = []
    for path in ALL:
        for i, cell in enumerate(cells(path)):
            if cell.cell_type != "code":
                continue
            code = "\n".join("pass" if line.lstrip().startswith(("%", "!")) else line
                             for line in cell.source.splitlines())
            found += [f"{path.name} cell {i} line {node.lineno}" for node in ast.walk(ast.parse(code))
                      if isinstance(node, ast.Assert)]
    assert not found, found


def test_every_notebook_opens_with_objectives_and_ends_with_a_recap_and_the_next_link():
    order = [p.name for p in ALL]
    for p in ALL:
        first, last = cells(p)[0], cells(p)[-1]
        assert first.cell_type == "markdown" and last.cell_type == "markdown", p.name
        assert re.search(r"about \d+(–\d+)? minutes", first.source) or p.name.startswith("00"), p.name
        assert "In this notebook you will" in first.source or p.name.startswith("00"), p.name
        links = re.findall(r"\]\(([\w-]+\.ipynb)\)", last.source)
        assert links and all((NOTEBOOKS / link).is_file() for link in links), (p.name, links)
        i = order.index(p.name)
        if i + 1 < len(order):
            assert order[i + 1] in links, f"{p.name} must end with a link to {order[i + 1]}"
        if not p.name.startswith("00"):
            assert "Recap" in last.source, p.name


def test_start_here_maps_the_lab():
    src = "\n".join(c.source for c in cells(LAB[0]) if c.cell_type == "markdown")
    assert "](pipeline.svg)" in src
    svg = ET.parse(NOTEBOOKS / "pipeline.svg").getroot()
    text = " ".join(t.text or "" for t in svg.iter("{http://www.w3.org/2000/svg}text"))
    for part in ("producer", "temps:20250101", "aggregating consumer", "aggregating_consumer_state",
                 "temps:averages", "MAXLEN ~ 120", "averages consumer", "averages_consumer_state", "EXPIREAT"):
        assert part in text, part
    for p in ALL[1:]:
        assert f"]({p.name})" in src, f"00 does not list {p.name}"
    assert len(re.findall(r"\| \d+ min \|", src)) >= 6, "a time for each of 01–06"


def test_every_lab_notebook_starts_with_the_one_setup_call():
    for p in LAB:
        code = [c.source for c in cells(p) if c.cell_type == "code"]
        assert "nbk.setup(" in code[0], p.name
        assert sum("nbk.setup(" in c for c in code) == 1, p.name
        assert "connection.target()" not in code_of(p) and "Keys.from_env()" not in code_of(p), p.name


def test_the_scale_out_notebook_starts_with_its_one_cluster_setup_call_and_stops_what_it_started():
    code = [c.source for c in cells(SHARDS) if c.cell_type == "code"]
    assert "nbk.setup_cluster(" in code[0] and sum("nbk.setup_cluster(" in c for c in code) == 1
    assert "nbk.setup(" not in code_of(SHARDS) and "connection.target()" not in code_of(SHARDS)
    assert "lab.stop()" in code[-2], "the cell before the checks stops every cluster the notebook started"
    assert "not lab.still_running()" in code[-1] and "FLUSH" not in code_of(SHARDS).upper()


UNDER_THE_HOOD = {   # notebook -> the redis-cli forms its cells must show beside the calls
    "02": ["# XADD temps:practice 1735689600000-0 temp_f 50", "# EXPIREAT", "# TTL", "# EXISTS"],
    "03": ["# XLEN temps:20250101", "# TTL temps:20250101", "# XRANGE temps:20250101 - + COUNT 2",
           "# MEMORY USAGE temps:20250101 SAMPLES 0"],
    "04": ["# XREAD COUNT 5 STREAMS temps:20250101 0", "# MULTI", "MAXLEN ~ 120", "# HSET", "# EXEC",
           "# XREAD COUNT 10 BLOCK 500 STREAMS", "# XREAD COUNT 1 BLOCK 500 STREAMS", "nbk.source(AggregatingConsumer"],
    "05": ["# HGETALL aggregating_consumer_state", "# HGETALL averages_consumer_state", "# XADD temps:averages"],
    "06": ["# XADD temps:practice:capped MAXLEN ~ 120", "# XINFO STREAM temps:averages", "# XREVRANGE temps:averages",
           "# XREAD COUNT 3 STREAMS temps:averages 0", "# XRANGE temps:averages"],
    "13": ["# CLUSTER NODES", "# CLUSTER KEYSLOT temps:20250101", "# MEMORY USAGE temps:20250101 SAMPLES 0",
           "# INFO memory", "# DBSIZE", "# XLEN temps:averages"],
}


def test_the_courses_commands_are_visible_with_their_redis_cli_form():
    for p in EXERCISED:
        want = UNDER_THE_HOOD.get(p.name[:2], [])
        code = code_of(p)
        for form in want:
            assert form in code, f"{p.name}: no cell shows {form!r}"
        if want:
            assert any(re.search(r"^## Under the hood", c.source, re.M) for c in cells(p) if c.cell_type == "markdown"), \
                f"{p.name} has no 'Under the hood' section"


def test_ground_truth_is_computed_in_plain_sight():
    code = code_of(next(p for p in LAB if p.name.startswith("06-")))
    for part in (".resample(\"h\")", "pd.merge(", "merged[\"difference\"]", ".plot("):
        assert part in code, part


# ---------------------------------------------------------------- hygiene (every notebook in notebooks/)

@pytest.mark.parametrize("path", ALL, ids=[p.stem for p in ALL])
def test_notebook_is_stored_clean(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3", f"{path.name}: kernel must be python3"
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            assert cell.outputs == [], f"{path.name} cell {i} has outputs: strip them " \
                                       f"(nbstripout {path})"
            assert cell.execution_count is None, f"{path.name} cell {i} has an execution count"
            assert not re.search(r"redis://|rediss://|127\.0\.0\.1|localhost|password\s*=", cell.source), \
                f"{path.name} cell {i} hard-codes a host or password"


def test_nbstripout_cleans_a_notebook_the_way_the_hygiene_test_wants(tmp_path):
    """The tool CONTRIBUTING.md names (and the pre-commit hook runs) leaves what the test above accepts."""
    nb = nbformat.read(LAB[0], as_version=4)
    code = next(c for c in nb.cells if c.cell_type == "code")
    code.outputs = [nbformat.v4.new_output("stream", name="stdout", text="hello\n")]
    code.execution_count = 7
    dirty = tmp_path / "dirty.ipynb"
    nbformat.write(nb, dirty)
    with pytest.raises(AssertionError, match="has outputs"):
        test_notebook_is_stored_clean(dirty)
    subprocess.run([sys.executable, "-m", "nbstripout", str(dirty)], check=True)
    test_notebook_is_stored_clean(dirty)

def test_the_pandas_plot_of_06_puts_the_series_and_the_difference_on_their_own_axes():
    """06's ``DataFrame.plot`` cell, run on a small merged frame: two axes (°F series above, the difference
    below, each titled for what it shows) and legends beside the data, never over it."""
    import matplotlib
    import numpy as np
    import pandas as pd
    matplotlib.use("Agg")
    src = next(c.source for c in cells(next(p for p in LAB if p.name.startswith("06-")))
               if c.cell_type == "code" and "merged[[\"mean\", \"average_temp_f\"]].plot(" in c.source)
    when = pd.date_range("2025-01-01", periods=36, freq="h", tz="UTC")
    mean = 50 + 10 * np.sin(np.arange(36) / 5)
    merged = pd.DataFrame({"mean": mean, "average_temp_f": mean.round(2)}, index=when)
    merged["difference"] = merged["average_temp_f"] - merged["mean"]
    from labkit import notebook as nbk
    scope = {"merged": merged, "nbk": nbk}
    exec(src, scope)
    fig = scope.get("fig") or scope["ax"].figure
    axes = [a for a in fig.axes if a.get_visible()]
    assert len(axes) == 2, [a.get_title() for a in axes]
    top, bottom = sorted(axes, key=lambda a: -a.get_position().y0)
    assert "difference" not in top.get_title() and "−" in bottom.get_title()
    assert top.get_ylim()[0] > 1, "the temperatures' axes does not reach down to the difference's 0"
    assert max(abs(v) for v in bottom.get_ylim()) < 1, "the difference has an axes of its own"
    fig.canvas.draw()
    for ax in axes:
        legend = ax.get_legend()
        if legend is not None:
            box, area = legend.get_window_extent(), ax.get_window_extent()
            overlap = min(box.x1, area.x1) - max(box.x0, area.x0) > 0 and min(box.y1, area.y1) - max(box.y0, area.y0) > 0
            assert not overlap, f"the legend of {ax.get_title()!r} covers the data"


def test_04_shows_the_courses_transaction_then_the_real_loop_and_its_commit_script_read_at_run_time():
    nb4 = next(p for p in LAB if p.name.startswith("04-"))
    code = code_of(nb4)
    md = "\n".join(c.source for c in cells(nb4) if c.cell_type == "markdown")
    assert "nbk.source(AggregatingConsumer._loop)" in code and "AggregatingConsumer.run)" not in code
    assert "nbk.source(aggregating.COMMIT)" in code and "redis.call" not in code, "the script is read, not pasted"
    assert "nbk.source(AggregatingConsumer._commit)" in code
    for part in ("MULTI", "second", "lease", "Lua script"):
        assert part in md, part
    from labkit.notebook import source
    assert "redis.call('HSET'" in source(__import__("labkit.core.aggregating", fromlist=["COMMIT"]).COMMIT).data


def test_05s_unattended_crash_always_leaves_an_open_hour():
    """05 crashes after about 10,000 readings, a few batches late on a busy machine.  The state then holds the
    readings of the whole batches committed: with batches of 1,000 the 18th ends exactly on an hour (18,000 s =
    5 h) and the notebook's 'crash landed mid-hour' check failed (seen in CI and once before).  No batch boundary
    anywhere near the crash may fall on an hour."""
    nb = nbformat.read(NOTEBOOKS / "05-recovering-a-crash.ipynb", as_version=4)
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    batch = int(re.search(r"^BATCH = ([0-9_]+)", code, re.M).group(1))
    crash_at = int(re.search(r"crash_at = min\(([0-9_]+),", code).group(1))
    on_the_hour = [k for k in range(crash_at // batch, 10 * crash_at // batch + 1) if k * batch % 3600 == 0]
    assert not on_the_hour, f"batches of {batch}: batch {on_the_hour[0]} ends exactly on an hour"
