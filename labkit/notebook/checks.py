"""A notebook's final checks, in plain words: what was checked, ✓ or ✗, and what to do when something is off.

The last code cell of a lab notebook::

    checks = nbk.Checks("04-running-the-consumers", "04 running the consumers")
    checks.need(not panel.running, "the consumers are stopped", "press Stop first, then run this cell again")
    checks.check(lambda: run.report.ok, "every published hour matches ground truth",
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

A step in the middle of a notebook checks with :func:`expect` instead of a bare
``assert``: ``nbk.expect(lambda: panel.wait_idle(1.0, timeout=600), "the
consumers caught up", "press Stop, then run this cell again")`` shows ``✓ the
consumers caught up``, or stops the cell with the ✗ line (no traceback), in
class and in CI alike.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field

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


@dataclass
class Checks:
    """The final checks of the notebook whose file stem is ``notebook`` (``title`` names it in the last line)."""

    notebook: str
    title: str = ""
    lines: list[Line] = field(default_factory=list)
    _blocked: bool = False

    def __post_init__(self):
        self.title = self.title or self.notebook

    def check(self, ok, description: str, hint: str = "") -> bool:
        """One check: ``ok`` is a bool, or a function returning a bool or ``(bool, what was seen)``."""
        if self._blocked:
            self.lines.append(Line(SKIPPED, description))
            return False
        detail = ""
        if callable(ok):
            try:
                ok = ok()
            except Exception as exc:  # a check must report, never raise
                ok, detail = False, _one_line(exc)
        if isinstance(ok, tuple):
            ok, detail = ok[0], str(ok[1])
        ok = bool(ok)
        self.lines.append(Line(OK if ok else BAD, description, "" if ok else detail, "" if ok else hint))
        return ok

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


def expect(ok, description: str, hint: str = "") -> None:
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
