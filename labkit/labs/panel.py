"""ipywidgets for the consumer-group workers notebook.

:class:`WorkersPanel` drives a running :class:`labkit.labs.pool.Pool`: a slider for
the number of workers, a chaos toggle, a "kill worker" button, a live table of
the group's consumers (XINFO CONSUMERS: pending, idle) and a throughput chart.

Threads never ``print`` and never enter ``with out:``; the pool's log lines
reach the page through :meth:`ipywidgets.Output.append_stdout` only.  All logic
lives in plain methods (``refresh()``, the button handlers), so tests drive it
headless with ``button.click()`` and no browser.
"""

from __future__ import annotations

import html
import io
import threading

import ipywidgets as W
from matplotlib.figure import Figure

from ..log import LogLine, tee
from ..servers import connection
from .pool import Pool


class FirstLinesSink:
    """A log sink writing the first ``limit`` lines of a run into an Output widget, then only counting.

    Writes with ``append_stdout`` (safe from threads).  The lines after the first
    ``limit`` are counted in :attr:`hidden`, so a long run cannot grow the page
    without bound.  The consumer panel's :class:`labkit.notebook.logbox.OutputSink`
    differs on purpose: it keeps the *newest* lines, appended in batches to a
    :class:`~labkit.notebook.logbox.LogBox`.
    """

    def __init__(self, out: W.Output, limit: int = 300):
        self.out, self.limit = out, limit
        self.shown = 0
        self.hidden = 0
        self._lock = threading.Lock()

    def __call__(self, line: LogLine) -> None:
        with self._lock:
            if self.shown < self.limit:
                self.shown += 1
                self.out.append_stdout(f"{line}\n")
                return
            self.hidden += 1
            if self.hidden == 1:
                self.out.append_stdout("… (further log lines are counted in the status line, not shown)\n")


def consumers_html(rows: list[dict]) -> str:
    """The consumer table as HTML (escaped; consumer names come from the server)."""
    head = "<tr><th>consumer</th><th>state here</th><th>pending</th><th>idle (ms)</th><th>done</th></tr>"
    body = "".join(
        f"<tr><td>{html.escape(r['name'])}</td><td>{html.escape(str(r.get('state', '-')))}</td>"
        f"<td style='text-align:right'>{r['pending']}</td><td style='text-align:right'>{r['idle_ms']}</td>"
        f"<td style='text-align:right'>{r.get('done', 0)}</td></tr>" for r in rows)
    return f"<table>{head}{body}</table>"


def throughput_series(history: list[tuple[float, int]], window: float = 1.0) -> tuple[list[float], list[float]]:
    """``(seconds, entries/s)`` from the pool's ``(seconds, done)`` samples, averaged over ``window``."""
    xs, ys, j = [], [], 0
    for i, (t, d) in enumerate(history):
        while j < i and t - history[j][0] > window:
            j += 1
        t0, d0 = history[j]
        if t > t0:
            xs.append(t)
            ys.append((d - d0) / (t - t0))
    return xs, ys


def throughput_png(history: list[tuple[float, int]], width: float = 6.0, height: float = 2.4) -> bytes:
    xs, ys = throughput_series(history)
    fig = Figure(figsize=(width, height), layout="constrained")
    ax = fig.subplots()
    ax.plot(xs, ys, color="tab:blue")
    ax.set_xlabel("seconds since start")
    ax.set_ylabel("acked entries/s")
    ax.set_ylim(bottom=0)
    ax.set_title("throughput")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80)
    return buf.getvalue()


class WorkersPanel:
    """Controls and live view for a :class:`~labkit.labs.pool.Pool`."""

    def __init__(self, pool: Pool, max_workers: int = 8, refresh_every: float = 0.5, log_limit: int = 300):
        self.pool = pool
        self.refresh_every = refresh_every
        self.workers = W.IntSlider(value=pool.desired, min=0, max=max_workers, description="workers")
        self.chaos = W.ToggleButton(value=pool.chaos, description="chaos", icon="bolt",
                                    tooltip="kill and restart workers at random")
        self.kill_button = W.Button(description="kill worker", button_style="danger",
                                    tooltip="kill a random live worker (it restarts shortly)")
        self.status = W.HTML()
        self.table = W.HTML()
        self.chart = W.Image(format="png")
        self.log = W.Output(layout=W.Layout(max_height="12em", overflow="auto", border="1px solid #ddd"))
        self.sink = FirstLinesSink(self.log, log_limit)
        pool.sink = tee(pool.sink, self.sink)
        self.last_killed: str | None = None
        self.workers.observe(self._on_workers, names="value")
        self.chaos.observe(self._on_chaos, names="value")
        self.kill_button.on_click(self._on_kill)
        self.widget = W.VBox([W.HBox([self.workers, self.chaos, self.kill_button]), self.status,
                              W.HBox([self.table, self.chart]), self.log])
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.refresh()

    # -- handlers (plain methods: tests call them through the widgets)
    def _on_workers(self, change) -> None:
        self.pool.set_workers(change["new"])

    def _on_chaos(self, change) -> None:
        self.pool.set_chaos(change["new"])

    def _on_kill(self, _button) -> None:
        self.last_killed = self.pool.kill()
        self.pool.log(f"Kill button: {self.last_killed or 'no live worker to kill'}.")

    # -- view
    def refresh(self) -> None:
        st = self.pool.status()
        self.table.value = consumers_html(self.pool.consumers())
        self.chart.value = throughput_png(self.pool.history_snapshot())
        self.status.value = (
            f"<b>{st['live']}</b> live of {self.pool.desired} · acked after work <b>{st['done']}</b> · "
            f"failed attempts {st['failed']} · claimed {st['claimed']} · dead-lettered <b>{st['deadlettered']}</b>"
            f" · killed {st['killed']} · restarted {st['restarted']} · done twice {st['repeated']}"
            f" · chaos {'on' if st['chaos'] else 'off'}"
            + (f" · <span style='color:red'>errors: {html.escape('; '.join(st['errors'][-2:]))}</span>"
               if st["errors"] else ""))

    def _loop(self) -> None:
        while not self._stop.wait(self.refresh_every):
            try:
                self.refresh()
            except Exception as exc:  # a refresh error must not kill the view silently
                self.sink(LogLine("panel", f"refresh failed: {connection.failure(exc, self.pool.target).text}"))

    def start(self) -> "WorkersPanel":
        """Refresh the table and chart in a background thread every ``refresh_every`` seconds."""
        if self._thread is None or not self._thread.is_alive():
            self._stop.clear()
            self._thread = threading.Thread(target=self._loop, name="labkit-panel", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(2.0)
        self.refresh()

    def _ipython_display_(self):
        from IPython.display import display
        display(self.widget)
