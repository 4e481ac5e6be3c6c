"""A notebook's final checks after a kernel restart (issue: NameError out of the Checks cell).

docs/notebooks.md promises the checks hold after a kernel restart, and ``nbk.Checks`` says a check that cannot
make sense yet is skipped.  A learner who restarts the kernel and runs only the set-up cell and then the Checks
cell gets ✗ lines in plain words naming the cell to run first, never a ``NameError`` traceback.

The first tests drive :class:`labkit.notebook.checks.Checks` in-process; the last runs notebooks 03–06 in a real
kernel (one per notebook, the small dataset of tests/test_learner.py) through that module's ``learner`` fixture.
"""

from __future__ import annotations

import re

import nbformat
import pytest

from labkit.notebook.checks import Checks, NotAsExpected, expect
from tests.test_learner import LAB, learner  # noqa: F401 - the fixture

AFTER_RESTART = [p for p in LAB if re.match(r"0[3-6]-", p.name)]


# ---------------------------------------------------------------- in-process

def test_a_name_not_defined_yet_is_a_plain_line_naming_the_cell_that_makes_it():
    c = Checks("04-running-the-consumers", "04 running the consumers")
    c.need(lambda: panel.running, "the consumers ran", "press Start")      # noqa: F821 - undefined, as after a restart
    c.check(True, "a later check")
    text = repr(c.report())
    assert "✗ the consumers ran: `panel` is not defined yet" in text, text
    assert "→ what to do: run the cell that makes `panel` first (the one under “The panel”), " \
           "then run this cell again" in text, text
    assert "press Start" not in text and "NameError" not in text, text
    assert "· a later check: not checked" in text and not c.ok


def test_a_description_may_be_a_function_so_it_is_formatted_only_when_its_names_exist():
    c = Checks("03-inspecting-the-dataset")
    c.check(lambda: readings, lambda: f"the DataFrame holds every reading of {day}", "run it")   # noqa: F821
    c.check(lambda: day, "the first partition is known")                                       # noqa: F821
    c.check(lambda: (True, "seen"), lambda: f"{1 + 1} hours match")
    lines = repr(c.report()).splitlines()
    assert lines[0] == ("✗ a check that needs `day`: `day` is not defined yet → what to do: run the cell that "
                        "makes `day` first (the one under “Entries are time-ordered”), then run this cell again"), \
        lines
    assert lines[1] == "· the first partition is known: not checked (see the ✗ above)", lines   # said once
    assert lines[2] == "✓ 2 hours match", lines


def test_a_name_error_inside_the_library_is_reported_as_it_is():
    """Only a name the notebook has not defined yet points at a cell: a bug in labkit's own code does not."""
    lib: dict = {}
    exec("def broken():\n    return undefined_in_labkit\n", lib)
    c = Checks("04-running-the-consumers")
    c.check(lambda: lib["broken"](), "something labkit computes")
    assert c.lines[0].detail == "NameError: name 'undefined_in_labkit' is not defined", c.lines
    assert "run the cell that makes" not in repr(c.report())


def test_a_cell_not_found_still_says_to_run_the_cell_that_makes_the_name():
    c = Checks("no-such-notebook")
    c.check(lambda: capped_run.hours, "the capped run")                 # noqa: F821
    assert "run the cell that makes `capped_run` first" in repr(c.report())
    with pytest.raises(NotAsExpected, match=r"run the cell that makes `handle` first"):
        expect(lambda: handle.wait_idle(1.0), "the consumers caught up")  # noqa: F821


# ---------------------------------------------------------------- in a kernel

def errors_of(cell) -> str:
    return "\n".join(f"{o.get('ename')}: {o.get('evalue')}\n" + "\n".join(o.get("traceback", []))
                     for o in cell.get("outputs", []) if o.get("output_type") == "error")


def run_checks(lab):
    """Run the Checks cell, whatever it does: ``(what it showed, its error outputs)``."""
    from nbclient.exceptions import CellExecutionError
    from tests.test_learner import outputs_text
    i = max(j for j, c in enumerate(lab.nb.cells) if c.cell_type == "code")
    assert "nbk.Checks(" in lab.nb.cells[i].source, lab.nb.cells[i].source
    try:
        lab.run(i)
    except CellExecutionError:
        pass
    cell = lab.nb.cells[i]
    return outputs_text(cell), errors_of(cell)


#: The name each notebook's Checks cell needs first, after a restart and the set-up cell only.
FIRST_MISSING = {"03": "day", "04": "panel", "05": "state", "06": "capped_run"}


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.parametrize("path", AFTER_RESTART, ids=[p.stem for p in AFTER_RESTART])
def test_after_a_restart_the_checks_cell_says_which_cell_to_run_first(path, learner):  # noqa: F811
    lab = learner(path, "UTC")                      # a fresh kernel: what Kernel → Restart leaves
    lab.run(next(i for i, c in enumerate(lab.nb.cells) if c.cell_type == "code"))      # the set-up cell
    out, errors = run_checks(lab)
    assert not errors and "Traceback" not in out and "NameError:" not in out, errors or out
    name = FIRST_MISSING[path.name[:2]]
    assert re.search(rf"^✗ .*run the cell that makes `{name}` first \(the one under “[^”]+”\)", out, re.M), out
    assert re.search(rf"^{path.name[:2]} .*checks failed", out, re.M), out

    if path.name.startswith("05-"):
        # The crash, what was saved, then a Resume cell that fails (the consumers still run): `resumed` is missing.
        for starts in ("from labkit.notebook.panel import ConsumerPanel", "crash_position = ", "import time",
                       "state = "):
            lab.run(lab.index(starts))
        lab.nb.cells.append(nbformat.v4.new_code_cell("panel.resume()"))    # the learner's own Resume, by hand
        lab.run(len(lab.nb.cells) - 1)
        lab.nb.cells.pop()
        failed = lab.run_failing(lab.index("panel.resume()"))
        assert "already running" in failed, failed
        out, errors = run_checks(lab)
        assert not errors and "Traceback" not in out and "NameError:" not in out, errors or out
        assert "✓ the crash landed mid-hour" in out, out
        assert re.search(r"^✗ .*run the cell that makes `resumed` first \(the one under “Resume", out, re.M), out
