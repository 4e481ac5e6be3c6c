"""The one log sink library code writes to.

Consumers and the producer never print: they call ``sink(source, text)``.
The CLI renders lines on a terminal (colour only on a TTY, ``NO_COLOR``
respected); notebooks render them into ipywidgets Output areas
(:mod:`labkit.notebook.panel`); tests collect them in a :class:`ListSink`.
"""

from __future__ import annotations

import os
import sys
import threading
from dataclasses import dataclass
from typing import Callable, TextIO

#: ``source`` → colour.  The averages consumer's lines are yellow, as in the course.
COLOURS = {"avg": "\x1b[33m"}
RESET = "\x1b[0m"


@dataclass(frozen=True)
class LogLine:
    source: str   # "agg", "avg", "produce", ...
    text: str

    def __str__(self) -> str:
        return f"{self.source}: {self.text}" if self.source else self.text


Sink = Callable[[LogLine], None]


def use_colour(stream: TextIO) -> bool:
    if "NO_COLOR" in os.environ and os.environ["NO_COLOR"] != "":
        return False
    return hasattr(stream, "isatty") and stream.isatty()


#: How a consumer's line starts when it has caught up and waits (the terminal and the panel show it once).
WAITING = "Waiting for new messages"


class TerminalSink:
    """Writes one line per log line; thread-safe; colours only where they help.

    A consumer says it is waiting each time it catches up; fed in real time (live mode) that is several times
    a second.  A terminal cannot take a line back (a notebook panel shows only the newest, see
    :mod:`labkit.notebook.logbox`), so a waiting line that repeats the same source's last line is not printed
    again: it still stands there."""

    def __init__(self, stream: TextIO | None = None, colour: bool | None = None):
        self.stream = stream or sys.stdout
        self.colour = use_colour(self.stream) if colour is None else colour
        self._lock = threading.Lock()
        self._last: dict[str, str] = {}

    def __call__(self, line: LogLine) -> None:
        text = str(line)
        if self.colour and line.source in COLOURS:
            text = f"{COLOURS[line.source]}{text}{RESET}"
        with self._lock:
            if line.text.startswith(WAITING) and self._last.get(line.source) == line.text:
                return
            self._last[line.source] = line.text
            self.stream.write(text + "\n")
            self.stream.flush()


class ListSink:
    """Keeps every line (for tests and for widgets that redraw)."""

    def __init__(self):
        self.lines: list[LogLine] = []
        self._lock = threading.Lock()

    def __call__(self, line: LogLine) -> None:
        with self._lock:
            self.lines.append(line)

    def clear(self) -> None:
        with self._lock:
            self.lines.clear()

    def texts(self, source: str | None = None) -> list[str]:
        with self._lock:
            return [str(l) for l in self.lines if source is None or l.source == source]


def tee(*sinks: Sink) -> Sink:
    def _tee(line: LogLine) -> None:
        for s in sinks:
            s(line)
    return _tee


def null_sink(line: LogLine) -> None:
    pass
