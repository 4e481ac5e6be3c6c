"""A notebook's final checks, in plain words: what was checked, ✓ or ✗, and what to do when something is off.

The last code cell of a lab notebook::

    checks = nbk.Checks("04-running-the-consumers", "04 running the consumers")
    checks.need(lambda: not panel.running, "the consumers are stopped", "press Stop first, then run this cell again")
    checks.check(lambda: run.report.ok, lambda: f"all {run.hours} hours match ground truth",
                 "start again from a partition (Start), let it catch up, run this cell again")
    checks.done()

Each line says what it checked; a failed one says what was seen and what to
do.  A check is a value or a function (called only while every :meth:`Checks.need`
before it held, so a check that cannot make sense yet is skipped rather than
crashing); an error inside a function is a ✗ with its one-line message, never
a traceback.  :meth:`Checks.done` shows the lines and a final one
(``04 running the consumers: all checks passed``), records the outcome in the
learner's progress (:func:`labkit.core.progress.note`), and with
``LABKIT_SOLUTIONS=1`` (CI) raises :class:`ChecksFailed` when a check failed, so
a run of the notebook fails too.

After a kernel restart the names earlier cells made are gone.  So a Checks cell
reads them only inside functions (``lambda: panel.running``, not
``panel.running``), and a description that shows one of them is a function too
(``lambda: f"… {day} …"``): a name not defined yet is then a ✗ line that says
which cell makes it (``run the cell that makes `panel` first (the one under
“The panel”)``, found in the notebook's own file), and a later check that needs
the same name is listed as not checked.

A step in the middle of a notebook checks with :func:`expect` instead of a bare
``assert``: ``nbk.expect(lambda: panel.wait_idle(1.0, timeout=600), "the
consumers caught up", "press Stop, then run this cell again")`` shows ``✓ the
consumers caught up``, or stops the cell with the ✗ line (no traceback), in
class and in CI alike.
"""

from __future__ import annotations

import ast
import html
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..core import progress

OK, BAD, SKIPPED = "✓", "✗", "·"


class ChecksFailed(AssertionError):
    """A notebook's checks failed while ``LABKIT_SOLUTIONS=1`` (a CI run): the message is the whole report."""


@dataclass
class Line:
    mark: str                   # OK, BAD or SKIPPED
    description: str
    detail: str = ""            # what was seen, when it is off
    hint: str = ""              # what to do, when it is off

    def text(self) -> str:
        if self.mark == OK:
            return f"{OK} {self.description}"
        if self.mark == SKIPPED:
            return f"{SKIPPED} {self.description}: not checked (see the ✗ above)"
        seen = f": {self.detail}" if self.detail else ""
        todo = f" → what to do: {self.hint}" if self.hint else ""
        return f"{BAD} {self.description}{seen}{todo}"


def _one_line(exc: BaseException) -> str:
    first = (str(exc).strip().splitlines() or [""])[0]
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


def _missing_name(exc: BaseException, fn) -> str | None:
    """The notebook's name that ``fn`` (a function of the notebook) found not defined, if that is what ``exc`` is.

    Only a name looked up in the notebook's own namespace counts: a ``NameError`` raised deeper, inside the
    library, is a bug to report as it is, not a cell to run.
    """
    if not isinstance(exc, NameError) or isinstance(exc, UnboundLocalError) or not getattr(exc, "name", None):
        return None
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    home = getattr(fn, "__globals__", None)
    if tb is None or home is None or tb.tb_frame.f_globals is not home:
        return None
    return exc.name


# ---------------------------------------------------------------- which cell makes a name

#: Where a notebook's file is looked for: the kernel's working directory (Jupyter starts it in the
#: notebook's folder, a learner's copy included), then the notebooks shipped with labkit.
NOTEBOOK_DIRS = (Path("."), Path(__file__).resolve().parents[2] / "notebooks")


def _bound(statements) -> set[str]:
    """The names a cell's top-level statements bind (assignments, imports, defs; inside if/for/with/try too)."""
    names: set[str] = set()

    def targets(node):
        if isinstance(node, ast.Name):
            names.add(node.id)
        elif isinstance(node, (ast.Tuple, ast.List)):
            for elt in node.elts:
                targets(elt)
        elif isinstance(node, ast.Starred):
            targets(node.value)

    for node in statements:
        if isinstance(node, ast.Assign):
            for t in node.targets:
                targets(t)
        elif isinstance(node, (ast.AnnAssign, ast.AugAssign)):
            targets(node.target)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, (ast.For, ast.AsyncFor)):
            targets(node.target)
        elif isinstance(node, (ast.With, ast.AsyncWith)):
            for item in node.items:
                if item.optional_vars is not None:
                    targets(item.optional_vars)
        if isinstance(node, ast.Try):
            for handler in node.handlers:
                names.update(_bound(handler.body))
        for body in ("body", "orelse", "finalbody"):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names.update(_bound(getattr(node, body, None) or []))
    return names


def made_in(notebook: str, name: str) -> str:
    """The heading above the first code cell of ``notebook`` (a file stem) that makes ``name`` ("" if unknown)."""
    for folder in NOTEBOOK_DIRS:
        path = folder / f"{notebook}.ipynb"
        try:
            cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
        except (OSError, ValueError, KeyError, TypeError):
            continue
        heading = ""
        for cell in cells:
            source = cell.get("source", "")
            source = "".join(source) if isinstance(source, list) else source
            if cell.get("cell_type") == "markdown":
                titles = [line.lstrip("#").strip() for line in source.splitlines() if re.match(r"#+\s", line)]
                heading = titles[-1] if titles else heading
            elif cell.get("cell_type") == "code":
                code = "\n".join("" if line.lstrip()[:1] in ("%", "!") else line for line in source.splitlines())
                try:
                    if name in _bound(ast.parse(code).body):
                        return heading
                except SyntaxError:
                    continue
        return ""
    return ""


@dataclass
class Checks:
    """The final checks of the notebook whose file stem is ``notebook`` (``title`` names it in the last line)."""

    notebook: str
    title: str = ""
    lines: list[Line] = field(default_factory=list)
    _blocked: bool = False
    _missing: set = field(default_factory=set)      # the names reported as not defined yet

    def __post_init__(self):
        self.title = self.title or self.notebook

    def check(self, ok, description, hint: str = "") -> bool:
        """One check: ``ok`` is a bool, or a function returning a bool or ``(bool, what was seen)``.

        ``description`` is the text, or a function returning it when it shows values of earlier cells (so it is
        formatted only once they exist).  A name the notebook has not defined yet (a kernel restart, a cell not
        run) is a ✗ that says which cell makes it; a later check that needs the same name is not checked.
        """
        if callable(description):
            try:
                description = str(description())
            except Exception as exc:  # a description must not crash the cell either
                name = _missing_name(exc, description)
                if name is None:
                    description = f"(a check whose description failed: {_one_line(exc)})"
                else:
                    return self._not_defined(name, f"a check that needs `{name}`")
        if self._blocked:
            self.lines.append(Line(SKIPPED, description))
            return False
        detail = ""
        if callable(ok):
            try:
                ok = ok()
            except Exception as exc:  # a check must report, never raise
                name = _missing_name(exc, ok)
                if name is not None:
                    return self._not_defined(name, description)
                ok, detail = False, _one_line(exc)
        if isinstance(ok, tuple):
            ok, detail = ok[0], str(ok[1])
        ok = bool(ok)
        self.lines.append(Line(OK if ok else BAD, description, "" if ok else detail, "" if ok else hint))
        return ok

    def _not_defined(self, name: str, description: str) -> bool:
        """The ✗ for a name not defined yet, naming the cell that makes it (once: after that, "not checked")."""
        if self._blocked or name in self._missing:
            self.lines.append(Line(SKIPPED, description))
            return False
        self._missing.add(name)
        heading = made_in(self.notebook, name)
        where = f" (the one under “{heading}”)" if heading else ""
        self.lines.append(Line(BAD, description, f"`{name}` is not defined yet",
                               f"run the cell that makes `{name}` first{where}, then run this cell again"))
        return False

    def need(self, ok, description: str, hint: str = "") -> bool:
        """A check the rest depend on: when it fails, the checks after it are listed as not checked."""
        held = self.check(ok, description, hint)
        self._blocked = self._blocked or not held
        return held

    @property
    def passed(self) -> int:
        return sum(line.mark == OK for line in self.lines)

    @property
    def ok(self) -> bool:
        return bool(self.lines) and self.passed == len(self.lines)

    def final_line(self) -> str:
        if self.ok:
            return f"{self.title}: all checks passed"
        failed = sum(line.mark == BAD for line in self.lines)
        skipped = sum(line.mark == SKIPPED for line in self.lines)
        return (f"{self.title}: {failed} of {len(self.lines)} checks failed" +
                (f", {skipped} not checked" if skipped else "") + ": see the ✗ lines above for what to do")

    def report(self) -> "Report":
        return Report(self)

    def done(self) -> None:
        """Show the lines and the final one, record the outcome; raise :class:`ChecksFailed` in CI mode.

        Returns nothing (the last line of a cell, it would otherwise be shown twice); :meth:`report` is the object.
        """
        from .exercises import solutions_mode
        rep = self.report()
        progress.note("notebook", self.notebook, "passed" if self.ok else "failed",
                      passed=self.passed, total=len(self.lines))
        try:
            from IPython import get_ipython
            from IPython.display import display
            if get_ipython() is not None:
                display(rep)
        except ImportError:
            pass
        if not self.ok and solutions_mode():
            raise ChecksFailed("\n" + repr(rep))


class NotAsExpected(Exception):
    """A step in the middle of a notebook did not end as expected; IPython shows only its ✗ line."""

    def _render_traceback_(self) -> list[str]:     # IPython's hook: these lines instead of a traceback
        return [str(self)]


def expect(ok, description, hint: str = "") -> None:
    """A check in the middle of a notebook (a value or a function, as in :meth:`Checks.check`).

    Shows ``✓ description`` when it holds; otherwise raises :class:`NotAsExpected`, whose message is
    the ✗ line (what was expected, what was seen, what to do), so the cell stops there and a run of
    the notebook fails.
    """
    checks = Checks("expect")
    held = checks.check(ok, description, hint)
    if not held:
        raise NotAsExpected(checks.lines[-1].text())
    try:
        from IPython import get_ipython
        from IPython.display import display
        if get_ipython() is not None:
            display(Report(checks, final=False))
    except ImportError:
        pass


class Report:
    """What :meth:`Checks.done` shows: one line per check, then the final line (text and coloured HTML)."""

    def __init__(self, checks: Checks, final: bool = True):
        self.lines = [line.text() for line in checks.lines]
        self.marks = [line.mark for line in checks.lines]
        self.final = checks.final_line() if final else ""
        self.ok = checks.ok

    def __repr__(self) -> str:
        return "\n".join([*self.lines, self.final] if self.final else self.lines)

    def _repr_html_(self) -> str:
        from .panel import status_css
        cls = {OK: "labkit-ok", BAD: "labkit-bad", SKIPPED: ""}
        rows = "".join(f'<div class="labkit-check"><span class="{cls[m]}">{html.escape(t[:1])}</span>'
                       f"{html.escape(t[1:])}</div>" for m, t in zip(self.marks, self.lines))
        final = f'<div class="labkit-check"><b class="{"labkit-ok" if self.ok else "labkit-bad"}">' \
                f"{html.escape(self.final)}</b></div>" if self.final else ""
        return status_css() + rows + final
