"""Scrolling log boxes for notebook threads: :class:`LogBox` and the sink that fills it, :class:`OutputSink`.

Output from a background thread must never go through ``print`` or ``with output:``
(in ipykernel 7 it would land in whichever cell ran last), so :class:`OutputSink`
writes each batch of lines into a new small Output with ``Output.append_stdout``,
which only changes widget state.  The consumer panel (:mod:`labkit.notebook.panel`)
and the companion labs' panels show their logs this way.
"""

from __future__ import annotations

import re
import threading

import ipywidgets as W

from ..log import COLOURS, RESET, WAITING, LogLine


class LogBox(W.Box):
    """A scrolling log box: each batch of lines is one small ``Output`` appended below the others.

    Appending a child leaves the boxes already shown alone in the browser,
    whereas changing one ``Output``'s list of outputs makes the browser redraw
    all of it, which resets the scroll position each time.  So the box follows
    the newest line (see :func:`panel_css`) and, once the learner scrolls up,
    stays where they put it while lines keep arriving.
    """

    def __init__(self, **kwargs):
        self._lines = W.VBox()
        super().__init__([self._lines], **kwargs)
        self.add_class("labkit-log")

    @property
    def chunks(self) -> tuple[W.Output, ...]:
        """One ``Output`` per batch of lines, oldest first."""
        return self._lines.children

    @property
    def outputs(self) -> tuple[dict, ...]:
        """Every stream output of every batch, oldest first (what an ``Output`` would hold)."""
        return tuple(o for chunk in self.chunks for o in chunk.outputs)

    def append(self, text: str) -> W.Output:
        chunk = W.Output()
        chunk.append_stdout(text)
        self._lines.children = (*self._lines.children, chunk)
        return chunk

    def remove(self, indices) -> None:
        """Remove the batches at ``indices`` (their widgets are closed)."""
        gone = set(indices)
        keep = tuple(c for i, c in enumerate(self._lines.children) if i not in gone)
        dropped = [c for i, c in enumerate(self._lines.children) if i in gone]
        self._lines.children = keep
        for c in dropped:
            c.close()


class OutputSink:
    """A log sink that writes lines into :class:`LogBox` areas, safe from any thread.

    Lines go to ``outputs[line.source]`` or else to ``default``.  Sources listed
    in :data:`labkit.log.COLOURS` (the ``avg:`` lines) are coloured with ANSI
    codes, which JupyterLab renders (yellow, as on the course's terminal).

    Lines are gathered for ``flush_interval`` seconds and appended together as
    one new ``Output`` (written with ``Output.append_stdout``) at the end of the
    box: a line per widget message would cost minutes for the full ten-day run.
    A short-lived timer thread does the flushing; :meth:`flush` does it at once.
    Only the newest ``max_lines`` lines are kept in each box (whole batches are
    dropped from the top).

    A ``Waiting for new messages …`` line (:data:`WAITING`) stands only while it
    is the newest line of its source: the next line from the same consumer
    replaces it.  While the consumers run, the averages consumer waits after
    every batch, and those lines would otherwise drown the averages.
    """

    def __init__(self, outputs: dict[str, LogBox] | None = None, default: LogBox | None = None,
                 max_lines: int = 1000, colour: bool = True, flush_interval: float = 0.2):
        self.outputs = dict(outputs or {})
        self.default = default if default is not None else LogBox()
        self.max_lines, self.colour, self.flush_interval = max_lines, colour, flush_interval
        self._lock = threading.Lock()
        self._pending: dict[int, list[tuple[str, str]]] = {}   # id(box) -> (source, text) not yet shown
        self._chunks: dict[int, list[list[tuple[str, str]]]] = {}  # id(box) -> the lines of each batch shown
        self._timer: threading.Timer | None = None

    def _areas(self) -> list[LogBox]:
        return list({id(o): o for o in [self.default, *self.outputs.values()]}.values())

    def __call__(self, line: LogLine) -> None:
        box = self.outputs.get(line.source, self.default)
        text = str(line)
        if self.colour and line.source in COLOURS:
            text = f"{COLOURS[line.source]}{text}{RESET}"
        with self._lock:
            self._pending.setdefault(id(box), []).append((line.source, text))
            if self.flush_interval <= 0:
                self._flush_locked()
            elif self._timer is None:
                self._timer = threading.Timer(self.flush_interval, self.flush)
                self._timer.daemon = True
                self._timer.start()

    def flush(self) -> None:
        """Show every pending line now."""
        with self._lock:
            self._timer = None
            self._flush_locked()

    def _flush_locked(self) -> None:
        for box in self._areas():
            lines = _collapse_waiting(self._pending.pop(id(box), None) or [])
            if not lines:
                continue
            lines = lines[-self.max_lines:]
            chunks = self._chunks.setdefault(id(box), [])
            if len(chunks) != len(box.chunks):       # someone else changed this box
                chunks[:] = [[] for _ in box.chunks]
            self._drop_shown_waiting(box, chunks, {src for src, _ in lines})
            drop = 0
            while drop < len(chunks) and sum(map(len, chunks[drop:])) + len(lines) > self.max_lines:
                drop += 1
            if drop:
                box.remove(range(drop))
                del chunks[:drop]
            for part in _apart_from_waiting(lines):
                box.append("".join(text + "\n" for _, text in part))
                chunks.append(part)

    @staticmethod
    def _drop_shown_waiting(box: LogBox, chunks: list, sources: set[str]) -> None:
        """Remove an already shown waiting line of each of ``sources`` if it is that source's newest line."""
        for source in sources:
            for ci in range(len(chunks) - 1, -1, -1):
                idx = [i for i, (src, _) in enumerate(chunks[ci]) if src == source]
                if not idx:
                    continue
                if _is_waiting(chunks[ci][idx[-1]][1]):      # alone in its chunk (see _apart_from_waiting)
                    box.remove([ci])
                    del chunks[ci]
                break

    def clear(self) -> None:
        """Empty every box (pending lines are dropped)."""
        with self._lock:
            self._pending.clear()
            for box in self._areas():
                box.remove(range(len(box.chunks)))
                self._chunks[id(box)] = []


def _is_waiting(text: str) -> bool:
    return text.split(": ", 1)[-1].startswith(WAITING)


def _apart_from_waiting(lines: list[tuple[str, str]]) -> list[list[tuple[str, str]]]:
    """Split a flush into chunks so that each waiting line is a chunk of its own.

    Replacing a shown waiting line then removes a whole chunk and never
    rewrites one: rewriting an ``Output`` makes the browser redraw it, which
    would move a learner who scrolled up to read.
    """
    parts: list[list[tuple[str, str]]] = [[]]
    for line in lines:
        if _is_waiting(line[1]):
            parts += [[line], []]
        else:
            parts[-1].append(line)
    return [p for p in parts if p]


def _collapse_waiting(lines: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Drop each waiting line that a later line of the same source follows."""
    kept, later = [], set()
    for src, line in reversed(lines):
        if src in later and _is_waiting(line):
            continue
        later.add(src)
        kept.append((src, line))
    return kept[::-1]


def output_text(out: W.Output | LogBox) -> str:
    """Everything an Output widget or a :class:`LogBox` shows as text (ANSI codes removed)."""
    text = "".join(o.get("text", "") for o in out.outputs if o.get("output_type") == "stream")
    return re.sub(r"\x1b\[[0-9;]*m", "", text)
