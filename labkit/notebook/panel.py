"""The consumer panel: start, stop, crash and resume both consumers from a notebook.

:class:`ConsumerPanel` wraps :func:`labkit.core.runner.start_consumers`.  It shows a
dropdown of the partitions that exist, Start / Stop / Simulate crash / Resume
buttons (each disabled when its action makes no sense), a status line, the
``agg:`` and ``avg:`` lines in two scrolling log boxes (:class:`~labkit.notebook.logbox.LogBox`) and a
chart of the hourly averages that updates while the consumers run.  Its colours
read at WCAG AA in JupyterLab's light and dark themes (:data:`PALETTE`).

**Threads.**  The consumers run in background threads and log through a sink.
Output from a thread must never go through ``print`` or ``with output:`` (in
ipykernel 7 it would land in whichever cell ran last), so they log into
:class:`~labkit.notebook.logbox.OutputSink`, which only changes widget state.  The
status line renders the runner's status (:func:`labkit.core.runner.read_status`);
the chart is :func:`labkit.notebook.plot.chart_figure`.  A ticker thread refreshes the status line and the
chart while the consumers run and ends when they stop (or when the panel is
closed).

Everything a button does is also a method (``start()``, ``stop()``, ``crash()``,
``resume()``, ``refresh()``, ``update()``), so the panel works, and is tested,
without a browser.
"""

from __future__ import annotations

import html
import threading

import ipywidgets as W
import redis

from ..core import keyspace
from ..core.aggregating import DEFAULT_MAXLEN
from ..core.keys import Keys
from ..core.partition import id_ms, next_partition
from ..core.runner import Consumers, list_partitions, read_status, running_here, start_consumers
from ..errors import LabkitError
from ..log import ListSink, LogLine, tee
from ..servers import connection
from .logbox import LogBox, OutputSink

def _red_line(text: str) -> str:
    """An error as one red line of the panel (its first line: never a traceback)."""
    first = (str(text).strip().splitlines() or [""])[0]
    return f'<span class="labkit-bad">{html.escape(first)}</span>'


def _duration(ms: float) -> str:
    s = int(max(ms, 0) // 1000)
    if s < 60:
        return f"{s} s"
    m = s // 60
    if m < 60:
        return f"{m} min"
    h, m = divmod(m, 60)
    if h < 24:
        return f"{h} h {m:02d} min"
    d, h = divmod(h, 24)
    return f"{d} d {h} h"


#: Text colours as (light theme, dark theme); each reads at WCAG AA (4.5:1 or more) on its theme's
#: backgrounds (:data:`BACKGROUNDS`).  The course's terminal yellow, rgb(221,182,43), is 1.9:1 on white.
PALETTE = {"avg": ("#806000", "#f2c94c"), "ok": ("#1a7f37", "#56d364"), "bad": ("#b3261e", "#ff7b72")}


def panel_css() -> str:
    """The panel's style sheet: log boxes that follow the newest line, wrap between words, and read well.

    The boxes are flex columns in reverse, so the browser keeps them scrolled
    to the bottom as lines arrive, and leaves them alone once scrolled up.
    JupyterLab's own ``word-break: break-all`` for outputs is undone here,
    and a token wider than the box scrolls rather than breaking inside.
    """
    dark = 'body[data-jp-theme-light="false"]'
    rules = [
        ".labkit-log { display: flex; flex-direction: column-reverse; }",
        ".labkit-log > .widget-vbox { flex-shrink: 0; margin-bottom: auto; }",
        ".labkit-log .widget-output, .labkit-log .jp-OutputArea-child { margin: 0; padding: 0; }",
        ".labkit-log .jp-OutputArea-output { padding-top: 0; }",
        # Lines wrap between words only; a token wider than the box (a key such as
        # {temps:averages}aggregating_consumer_state) stays whole and the box scrolls sideways.
        ".labkit-log .jp-OutputArea-output pre { word-break: normal; overflow-wrap: normal; }",
        f".labkit-log .jp-RenderedText pre .ansi-yellow-fg {{ color: {PALETTE['avg'][0]}; }}",
        f"{dark} .labkit-log .jp-RenderedText pre .ansi-yellow-fg {{ color: {PALETTE['avg'][1]}; }}",
    ]
    # A view whose kernel restarted or stopped: JupyterLab's widget manager marks every widget of it
    # "jupyter-widgets-disconnected" (comm_live false) but cannot redraw it, so the live status would stand.
    # The status carries both texts; these rules show the dead one then, and one hint instead of an icon per widget.
    rules += [
        ".labkit-status { white-space: normal; word-break: normal; overflow-wrap: normal; line-height: 1.5; }",
        ".labkit-seg { white-space: nowrap; }",
        ".labkit-dead { display: none; }",
        ".jupyter-widgets-disconnected .labkit-dead { display: inline; }",
        ".jupyter-widgets-disconnected .labkit-live { display: none; }",
        ".labkit-panel .jupyter-widgets-disconnected::before, .labkit-panel.jupyter-widgets-disconnected::before "
        "{ display: none; }",
        ".labkit-panel.jupyter-widgets-disconnected .widget-button, "
        ".labkit-panel.jupyter-widgets-disconnected .widget-dropdown { opacity: 0.45; pointer-events: none; }",
    ]
    return "<style>\n" + "\n".join(rules + _status_rules()) + "\n</style>"


def _status_rules() -> list[str]:
    dark = 'body[data-jp-theme-light="false"]'
    rules = [".labkit-check { white-space: pre-wrap; word-break: normal; overflow-wrap: break-word; "
             "font-family: var(--jp-code-font-family); font-size: var(--jp-code-font-size); }"]
    for name in ("ok", "bad"):
        rules.append(f".labkit-{name} {{ color: {PALETTE[name][0]}; }}")
        rules.append(f"{dark} .labkit-{name} {{ color: {PALETTE[name][1]}; }}")
    return rules


def status_css() -> str:
    """The ✓/✗ colours (:data:`PALETTE`, AA in both themes) and word-wise wrapping, for checks and exercises."""
    return "<style>\n" + "\n".join(_status_rules()) + "\n</style>"


#: What a saved notebook shows for the panel when the live widget cannot be drawn (e.g. after a reload).
#: What the status line says once the panel's kernel has restarted or stopped (shown by CSS: :func:`panel_css`).
DEAD = ("stopped: this panel's kernel restarted or stopped, so the panel is no longer live and its consumers "
        "stopped with it (their state is saved up to their last commit): re-run the cell for a live panel")

RELOAD_HINT = ("[labkit consumer panel: it is live only while this notebook's kernel runs it. After a reload "
               "it shows as this text: run this cell again (or Kernel → Restart and Run All). Consumers "
               "still running in the kernel keep running.]")


class ConsumerPanel:
    """Start, stop, crash and resume the two consumers; watch their logs and averages."""

    def __init__(self, keys: Keys | None = None, target: connection.Target | None = None,
                 averages_maxlen: int = DEFAULT_MAXLEN, interval: float = 0.5, chart: bool = True,
                 max_lines: int = 1000, **consumer_options):
        self.keys = keys or Keys.from_env()
        self.target = target or connection.target()
        self.averages_maxlen = averages_maxlen
        self.consumer_options = consumer_options     # e.g. batch=2000: passed to start_consumers
        self.interval = interval
        self.r = connection.connect(self.target)
        self.keys = keyspace.keys_for(self.r, self.keys)   # on a cluster the aggregating state is hash-tagged
        self.handle: Consumers | None = None
        self.lines = ListSink()            # every line since the last Start (Resume keeps them), for code and tests
        self.last_status: dict = {}
        self.chart_data: list[tuple[int, float]] = []   # (hour start ms, average) drawn last
        self.chart_caption = ""                          # the chart's title: how many it shows, and why
        self._chart_key = None
        self._lock = threading.RLock()
        self._chart_lock = threading.Lock()
        self._ticker: threading.Thread | None = None
        self._tick_stop = threading.Event()
        self._partitions: list[str] = []
        self._crashed = False
        self.started_from: str | None = None    # the partition of the last Start (Resume keeps it)

        box = W.Layout(height="240px", overflow="auto", border="1px solid #ccc", padding="2px 6px")
        self.dropdown = W.Dropdown(description="Partition", options=[], layout=W.Layout(width="300px"))
        self.refresh_button = W.Button(description="Refresh", icon="refresh",
                                       tooltip="list the partitions that exist now")
        self.start_button = W.Button(description="Start", button_style="success", icon="play",
                                     tooltip="reset both states and temps:averages, start at the chosen partition")
        self.stop_button = W.Button(description="Stop", icon="stop", tooltip="stop cleanly (state saved)")
        self.crash_button = W.Button(description="Simulate crash", button_style="danger", icon="bolt",
                                     tooltip="stop both threads dead, without saving anything they hold")
        self.resume_button = W.Button(description="Resume", button_style="info", icon="repeat",
                                      tooltip="start again from the saved state, without a partition")
        self.status = W.HTML()
        self.status.add_class("labkit-status")
        self.message = W.HTML()
        self.message.add_class("labkit-status")
        self._status_error = False          # the red line shows a status read's error (cleared once reads work)
        self.agg_output = LogBox(layout=box)
        self.avg_output = LogBox(layout=box)
        self.chart = W.Image(format="png", layout=W.Layout(width="100%", max_width="900px", display="none"))
        self.show_chart = chart
        self.output_sink = OutputSink({"avg": self.avg_output}, self.agg_output, max_lines=max_lines)
        self.sink = tee(self.output_sink, self.lines)

        self.refresh_button.on_click(self._guard(self.refresh))
        self.start_button.on_click(self._guard(self.start))
        self.stop_button.on_click(self._guard(self.stop))
        self.crash_button.on_click(self._guard(self.crash))
        self.resume_button.on_click(self._guard(self.resume))
        self.dropdown.observe(lambda _change: self._set_buttons(), names="value")

        logs = W.HBox([W.VBox([W.HTML("<b>aggregating consumer</b> (<code>agg:</code>)"), self.agg_output],
                              layout=W.Layout(width="50%")),
                       W.VBox([W.HTML("<b>averages consumer</b> (<code>avg:</code>)"), self.avg_output],
                              layout=W.Layout(width="50%"))])
        self.widget = W.VBox([
            W.HTML(panel_css()),
            W.HBox([self.dropdown, self.refresh_button]),
            W.HBox([self.start_button, self.stop_button, self.crash_button, self.resume_button]),
            self.status, self.message, logs,
            *([self.chart] if chart else []),
        ])
        self.widget.add_class("labkit-panel")
        self.refresh()
        self._take_over()

    def _take_over(self) -> None:
        """Show and control the consumers an earlier panel of this kernel left running for this namespace
        (its cell was run again): else they would run on with no button to stop them."""
        handle = running_here(self.target, self.keys)
        if handle is None:
            return
        earlier = handle.panel
        if earlier is not None:
            earlier._tick_stop.set()            # its boxes are no longer shown: stop drawing into them
            self.started_from = earlier.started_from
            self.averages_maxlen = earlier.averages_maxlen
        handle.panel = self
        handle.redirect(self.sink)
        self.handle = handle
        self.sink(LogLine("panel", "These consumers were started by an earlier panel in this kernel and are "
                                   "still running: this panel now shows them (from here on) and controls them."))
        self._start_ticker()
        self.update()

    # ------------------------------------------------------------ display

    def _repr_mimebundle_(self, **kwargs):
        bundle = self.widget._repr_mimebundle_(**kwargs)
        data = bundle[0] if isinstance(bundle, tuple) else bundle
        data["text/plain"] = RELOAD_HINT        # instead of "VBox(children=(HBox(…" when it cannot be drawn
        return bundle

    # ------------------------------------------------------------ state

    @property
    def running(self) -> bool:
        return self.handle is not None and self.handle.running

    @property
    def has_saved_state(self) -> bool:
        return bool(self.r.exists(self.keys.aggregating_state))

    def _guard(self, action):
        def on_click(_button):
            try:
                action()
            except LabkitError as exc:
                self._show_error(str(exc))
            except redis.RedisError as exc:
                self._show_error(str(connection.explain(exc, self.target)))
            except Exception as exc:  # a button must never fail silently
                self._show_error(f"{type(exc).__name__}: {exc}")
        return on_click

    def _show_error(self, text: str) -> None:
        self.message.value = _red_line(text)
        self._status_error = False
        self.update()

    def _set_buttons(self) -> None:
        running = self.running
        self.start_button.disabled = running or not self.dropdown.value
        self.stop_button.disabled = not running
        self.crash_button.disabled = not running
        self.dropdown.disabled = running
        try:
            saved = self.has_saved_state
        except redis.RedisError:
            saved = False
        self.resume_button.disabled = running or not saved

    # ------------------------------------------------------------ actions

    def refresh(self) -> list[str]:
        """List the partitions that exist now; keep the choice if it still exists."""
        with self._lock:
            self._partitions = list_partitions(self.r, self.keys)
            keep = self.dropdown.value
            self.dropdown.options = self._partitions
            self.dropdown.value = keep if keep in self._partitions else (
                self._partitions[0] if self._partitions else None)
            self.update()
            return self._partitions

    def start(self, partition: str | None = None) -> Consumers:
        """Reset both states and ``temps:averages``, then start both consumers at the chosen partition."""
        with self._lock:
            if self.running:
                raise LabkitError("the consumers are already running", "press Stop or Simulate crash first")
            if partition is not None:
                if partition not in self.dropdown.options:
                    self.refresh()
                self.dropdown.value = partition
            chosen = self.dropdown.value
            if not chosen:
                raise LabkitError("no partition chosen", "produce the dataset, press Refresh, then choose one")
            self.output_sink.clear()
            self.lines.clear()
            self.started_from = chosen
            with self._chart_lock:
                self.chart_data, self._chart_key = [], None
                self._show_chart(b"")
            return self._launch(chosen)

    def resume(self) -> Consumers:
        """Start both consumers again from their saved state (no partition: nothing is reset)."""
        with self._lock:
            if self._crashed and self.running:      # Resume pressed right after Simulate crash: let them die first
                self.handle.join(10)
            if self.running:
                raise LabkitError("the consumers are already running", "press Stop or Simulate crash first")
            return self._launch(None)

    def _launch(self, partition: str | None) -> Consumers:
        """Start the consumers (from ``partition``, or resuming) and the ticker; caller holds the lock."""
        if getattr(self, "_closed", False):   # closed by a notebook's last cell, then a cell above is run again
            self.r = connection.connect(self.target)   # a closed cluster client forgets its nodes: a new one
            self._closed = False
        self.message.value = ""
        self._status_error = False
        self._crashed = False
        self.handle = start_consumers(partition, averages_maxlen=self.averages_maxlen, sink=self.sink,
                                      keys=self.keys, target=self.target, **self.consumer_options)
        self.handle.panel = self
        self._start_ticker()
        self.update()
        return self.handle

    def stop(self) -> None:
        """Stop cleanly: each consumer finishes its step; state is saved."""
        handle = self.handle
        if handle is None or not handle.running:
            raise LabkitError("the consumers are not running", "press Start or Resume first")
        handle.stop()
        self.sink(LogLine("panel", "Stopped cleanly: both states saved."))
        self.update()

    def crash(self) -> None:
        """Simulate a crash: both threads stop dead, keeping nothing since their last commit."""
        handle = self.handle
        if handle is None or not handle.running:
            raise LabkitError("the consumers are not running", "press Start or Resume first")
        handle.crash()      # at once: no lock is taken before the signal
        # The handle's own "crashed" flag is set only if a thread died *inside* a step; one that
        # was between steps just returns.  Either way nothing after the last commit was saved.
        self._crashed = True
        self.sink(LogLine("panel", "Simulated crash: both threads stopped dead; "
                                   "whatever they held since their last commit is lost."))
        self.update()

    def wait_idle(self, seconds: float = 0.5, timeout: float | None = 120) -> bool:
        """Block until both consumers have had nothing to do for ``seconds``."""
        handle = self.handle
        if handle is None:
            return False
        ok = handle.wait_idle(seconds, timeout)
        self.update()
        return ok

    def close(self) -> None:
        """Stop the consumers (cleanly) and the ticker; the panel is finished.  A second call does nothing
        (a closed cluster client forgets its nodes, so it cannot be used again as a plain one can)."""
        if getattr(self, "_closed", False):
            return
        self._closed = True
        with self._lock:
            if self.running:
                self.handle.stop()
        self._tick_stop.set()
        t = self._ticker
        if t is not None and t is not threading.current_thread():
            t.join(5)
        self.update()
        self.r.close()

    # ------------------------------------------------------------ live updates

    def _start_ticker(self) -> None:
        if self._ticker is not None and self._ticker.is_alive():
            return
        self._tick_stop.clear()
        self._ticker = threading.Thread(target=self._tick, name="labkit-panel", daemon=True)
        self._ticker.start()

    def _tick(self) -> None:
        while not self._tick_stop.wait(self.interval):
            running = self.running
            try:
                self.update()
            except Exception:  # never let a refresh kill the ticker's final update
                pass
            if not running:
                break

    def update(self) -> dict:
        """Show pending log lines; refresh the status line, the buttons and the chart; returns the status."""
        self.output_sink.flush()
        with self._lock:
            try:
                st = self._status()
            except redis.RedisError as exc:
                st = {"running": self.running, "error": str(connection.explain(exc, self.target))}
            self.last_status = st
            self.status.value = self._status_html(st)
            if st.get("error") and not self.message.value:
                self.message.value = _red_line(st["error"])
                self._status_error = True
            elif not st.get("error") and self._status_error:     # e.g. after a failover: Redis answers again
                self.message.value = ""
                self._status_error = False
            self._set_buttons()
        if self.show_chart and "averages_len" in st:
            with self._chart_lock:      # drawing takes a while: never under the panel's lock
                self._update_chart(st)
        return st

    def _status(self) -> dict:
        """The runner's status (:func:`labkit.core.runner.read_status`), after noticing new partitions."""
        newest = self._partitions[-1] if self._partitions else None
        if newest and self.r.exists(next_partition(newest, self.keys.partition_prefix)):
            self._partitions = list_partitions(self.r, self.keys)      # the producer wrote new days since
            newest = self._partitions[-1] if self._partitions else None
        return read_status(self.r, self.keys, self.handle, newest, crashed=self._crashed)

    def _status_html(self, st: dict) -> str:
        """The status line: its parts break between one another, never inside a word; the text for a dead
        kernel is there too, hidden until the view is disconnected (see :func:`panel_css`)."""
        if st.get("running"):
            state = '<b class="labkit-ok">running</b>'
        elif st.get("crashed"):
            state = '<b class="labkit-bad">crashed</b>'
        elif st.get("error"):
            state = '<b class="labkit-bad">stopped by an error</b>'
        else:
            state = "<b>stopped</b>"
        parts = [state] + [html.escape(p) for p in self.status_text(st).split(" · ") if p]
        live = " · ".join(f'<span class="labkit-seg">{p}</span>' for p in parts)
        dead_state, dead_rest = DEAD.split(": ", 1)
        return (f'<span class="labkit-live">{live}</span><span class="labkit-dead"><b class="labkit-bad">'
                f"{dead_state}</b>: {html.escape(dead_rest)}</span>")

    def status_text(self, st: dict | None = None) -> str:
        """The status line as plain text."""
        st = self.last_status if st is None else st
        if "hours_ever_added" not in st:
            return st.get("error") or ""
        where = st.get("partition") or "—"
        lid = st.get("last_message_id")
        if lid and lid not in ("0", "0-0"):
            from .helpers import describe_id
            where += f" at {describe_id(lid)}"
        la = st.get("last_average")
        last = (f"{la['date']} at {la['hour']}: {la['average_temp_f']}°F ({la['num_observations']} obs)"
                if la else "—")
        lag = "—" if st.get("lag_ms") is None else _duration(st["lag_ms"]) + " of readings"
        return (f"partition {where} · hours published {st['hours_ever_added']} · last average {last} · "
                f"lag {lag}, {st['averages_unread']} averages unread")

    def _update_chart(self, st: dict) -> None:
        key = (st["averages_len"], st["averages_stream_last_id"], st["hours_ever_added"])
        if key == self._chart_key:
            return
        self._chart_key = key
        entries = self.r.xrange(self.keys.averages) if st["averages_len"] else []
        data = []
        for eid, f in entries:
            try:
                data.append((id_ms(eid), float(f[b"average_temp_f"])))
            except (KeyError, ValueError):
                continue
        self.chart_data = data
        from .plot import chart_title, render_chart     # matplotlib and pandas: loaded at the first chart
        self.chart_caption = chart_title(self.keys.averages, len(data), st["hours_ever_added"], self.averages_maxlen)
        self._show_chart(render_chart(data, self.keys.averages, st["hours_ever_added"], self.averages_maxlen)
                         if data else b"")

    def _show_chart(self, png: bytes) -> None:
        """Show ``png``, or hide the chart while there is nothing to draw (no broken-image icon)."""
        self.chart.value = png
        self.chart.layout.display = None if png else "none"


