"""The consumer panel: start, stop, crash and resume both consumers from a notebook.

:class:`ConsumerPanel` wraps :func:`labkit.runner.start_consumers`.  It shows a
dropdown of the partitions that exist, Start / Stop / Simulate crash / Resume
buttons (each disabled when its action makes no sense), a status line, the
``agg:`` and ``avg:`` lines in two Output areas and a chart of the hourly
averages that updates while the consumers run.

**Threads.**  The consumers run in background threads and log through a sink.
Output from a thread must never go through ``print`` or ``with output:`` (in
ipykernel 7 it would land in whichever cell ran last), so :class:`OutputSink`
appends to the Output widgets with ``Output.append_stdout``, which only
changes the widget's state.  A ticker thread refreshes the status line and the
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

from . import connection, keyspace
from .aggregating import DEFAULT_MAXLEN
from .errors import LabkitError
from .keys import Keys
from .log import COLOURS, RESET, ListSink, LogLine, tee
from .partition import day_start_ms, id_ms, next_partition, parse_partition
from .runner import Consumers, list_partitions, start_consumers


class OutputSink:
    """A log sink that writes lines into ipywidgets ``Output`` areas, safe from any thread.

    Lines go to ``outputs[line.source]`` or else to ``default``.  Sources listed
    in :data:`labkit.log.COLOURS` (the ``avg:`` lines) are coloured with ANSI
    codes, which JupyterLab renders (yellow, as on the course's terminal).

    Every change to an Output sends its *whole* list of outputs to the browser,
    so lines are gathered for ``flush_interval`` seconds and appended together
    with one ``Output.append_stdout`` (a line per call would cost time quadratic
    in the number of lines: minutes for the full ten-day run).  A short-lived
    timer thread does the flushing; :meth:`flush` does it at once.  Only the
    newest ``max_lines`` lines are kept in each area.
    """

    def __init__(self, outputs: dict[str, W.Output] | None = None, default: W.Output | None = None,
                 max_lines: int = 1000, colour: bool = True, flush_interval: float = 0.2):
        self.outputs = dict(outputs or {})
        self.default = default if default is not None else W.Output()
        self.max_lines, self.colour, self.flush_interval = max_lines, colour, flush_interval
        self._lock = threading.Lock()
        self._pending: dict[int, list[str]] = {}      # id(output) -> lines not yet shown
        self._chunks: dict[int, list[int]] = {}       # id(output) -> lines in each of its outputs
        self._timer: threading.Timer | None = None

    def _areas(self) -> list[W.Output]:
        return list({id(o): o for o in [self.default, *self.outputs.values()]}.values())

    def __call__(self, line: LogLine) -> None:
        out = self.outputs.get(line.source, self.default)
        text = str(line)
        if self.colour and line.source in COLOURS:
            text = f"{COLOURS[line.source]}{text}{RESET}"
        with self._lock:
            self._pending.setdefault(id(out), []).append(text + "\n")
            if self.flush_interval <= 0:
                self._flush_locked()
            elif self._timer is None:
                self._timer = threading.Timer(self.flush_interval, self.flush)
                self._timer.daemon = True
                self._timer.start()

    def flush(self) -> None:
        """Show every pending line now."""
        with self._lock:
            self._flush_locked()

    def _flush_locked(self) -> None:
        if self._timer is not None and self._timer is not threading.current_thread():
            self._timer.cancel()
        self._timer = None
        for out in self._areas():
            lines = self._pending.pop(id(out), None)
            if not lines:
                continue
            lines = lines[-self.max_lines:]
            chunks = self._chunks.setdefault(id(out), [])
            if len(chunks) != len(out.outputs):       # someone else changed this Output
                chunks[:] = [0] * len(out.outputs)
            drop = 0
            while drop < len(chunks) and sum(chunks[drop:]) + len(lines) > self.max_lines:
                drop += 1
            if drop:
                out.outputs = out.outputs[drop:]
                del chunks[:drop]
            out.append_stdout("".join(lines))
            chunks.append(len(lines))

    def clear(self) -> None:
        """Empty every Output area (pending lines are dropped)."""
        with self._lock:
            self._pending.clear()
            for out in self._areas():
                out.outputs = ()
                self._chunks[id(out)] = []


def output_text(out: W.Output) -> str:
    """Everything an Output widget shows as text (ANSI codes removed)."""
    import re
    text = "".join(o.get("text", "") for o in out.outputs if o.get("output_type") == "stream")
    return re.sub(r"\x1b\[[0-9;]*m", "", text)


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


def _s(v) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


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
        self.lines = ListSink()            # every line of every run, for code and tests
        self.last_status: dict = {}
        self.chart_data: list[tuple[int, float]] = []   # (hour start ms, average) drawn last
        self._chart_key = None
        self._lock = threading.RLock()
        self._chart_lock = threading.Lock()
        self._ticker: threading.Thread | None = None
        self._tick_stop = threading.Event()
        self._partitions: list[str] = []
        self._crashed = False

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
        self.message = W.HTML()
        self.agg_output = W.Output(layout=box)
        self.avg_output = W.Output(layout=box)
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
            W.HBox([self.dropdown, self.refresh_button]),
            W.HBox([self.start_button, self.stop_button, self.crash_button, self.resume_button]),
            self.status, self.message, logs,
            *([self.chart] if chart else []),
        ])
        self.refresh()

    # ------------------------------------------------------------ display

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)

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
        self.message.value = f'<span style="color:#b00">{html.escape(text)}</span>'
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
            with self._chart_lock:
                self.chart_data, self._chart_key = [], None
                self._show_chart(b"")
            return self._launch(chosen)

    def resume(self) -> Consumers:
        """Start both consumers again from their saved state (no partition: nothing is reset)."""
        with self._lock:
            if self.running:
                raise LabkitError("the consumers are already running", "press Stop or Simulate crash first")
            return self._launch(None)

    def _launch(self, partition: str | None) -> Consumers:
        """Start the consumers (from ``partition``, or resuming) and the ticker; caller holds the lock."""
        self.message.value = ""
        self._crashed = False
        self.handle = start_consumers(partition, averages_maxlen=self.averages_maxlen, sink=self.sink,
                                      keys=self.keys, target=self.target, **self.consumer_options)
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
                self.message.value = f'<span style="color:#b00">{html.escape(st["error"])}</span>'
            self._set_buttons()
        if self.show_chart and "averages_len" in st:
            with self._chart_lock:      # drawing takes a while: never under the panel's lock
                self._update_chart(st)
        return st

    def _status(self) -> dict:
        k = self.keys
        newest = self._partitions[-1] if self._partitions else None
        p = self.r.pipeline(transaction=False)
        p.hgetall(k.aggregating_state)
        p.xinfo_stream(k.averages)
        p.xrevrange(k.averages, count=1)
        if newest:
            p.exists(next_partition(newest, k.partition_prefix))
        res = p.execute(raise_on_error=False)
        state, info, last = res[0], res[1], res[2]
        if newest and res[3] == 1:            # the producer has written new days since the last refresh
            self._partitions = list_partitions(self.r, k)
            newest = self._partitions[-1] if self._partitions else None
        st: dict = {"running": self.running}
        h = self.handle.status() if self.handle else {}
        st["crashed"] = bool(h.get("crashed")) or (self._crashed and not st["running"])
        st["error"] = h.get("error")
        saved = {_s(a): _s(b) for a, b in state.items()} if isinstance(state, dict) else {}
        st["partition"] = h.get("partition") or saved.get("current_stream_key")
        st["last_message_id"] = h.get("last_message_id") or saved.get("last_message_id")
        st["open_hour_count"] = int(saved.get("current_hourly_count", 0) or 0)
        if isinstance(info, Exception):
            st["hours_published"], st["averages_len"], st["averages_last_id"] = 0, 0, None
        else:
            st["hours_published"] = int(info.get("entries-added", 0))
            st["averages_len"] = int(info.get("length", 0))
            st["averages_last_id"] = _s(info.get("last-generated-id"))
        st["hours_this_run"] = h.get("hours_published", 0)
        st["averages_printed"] = h.get("averages_printed", 0)
        st["last_average"] = None
        if isinstance(last, list) and last:
            st["last_average"] = {_s(a): _s(b) for a, b in last[0][1].items()}
        st["lag_ms"] = None
        if newest and st["partition"]:
            tail = self.r.xrevrange(newest, count=1)
            if tail:
                newest_ms = id_ms(tail[0][0])
                lid = st["last_message_id"]
                try:
                    pos = (day_start_ms(parse_partition(st["partition"], k.partition_prefix)) - 1
                           if lid in (None, "0", "0-0") else id_ms(lid))
                    st["lag_ms"] = max(0, newest_ms - pos)
                except (LabkitError, ValueError):
                    pass
        st["averages_unread"] = max(0, st["hours_this_run"] - st["averages_printed"]) if self.handle else 0
        return st

    def _status_html(self, st: dict) -> str:
        if st.get("running"):
            state = '<b style="color:#080">running</b>'
        elif st.get("crashed"):
            state = '<b style="color:#b00">crashed</b>'
        elif st.get("error"):
            state = '<b style="color:#b00">stopped by an error</b>'
        else:
            state = "<b>stopped</b>"
        return f"{state} · {html.escape(self.status_text(st))}"

    def status_text(self, st: dict | None = None) -> str:
        """The status line as plain text."""
        st = self.last_status if st is None else st
        if "hours_published" not in st:
            return st.get("error") or ""
        where = st.get("partition") or "—"
        lid = st.get("last_message_id")
        if lid and lid not in ("0", "0-0"):
            from .notebook import describe_id
            where += f" at {describe_id(lid)}"
        la = st.get("last_average")
        last = (f"{la['date']} at {la['hour']}: {la['average_temp_f']}°F ({la['num_observations']} obs)"
                if la else "—")
        lag = "—" if st.get("lag_ms") is None else _duration(st["lag_ms"]) + " of readings"
        return (f"partition {where} · hours published {st['hours_published']} · last average {last} · "
                f"lag {lag}, {st['averages_unread']} averages unread")

    def _update_chart(self, st: dict) -> None:
        key = (st["averages_len"], st["averages_last_id"], st["hours_published"])
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
        self._show_chart(render_chart(data, self.keys.averages) if data else b"")

    def _show_chart(self, png: bytes) -> None:
        """Show ``png``, or hide the chart while there is nothing to draw (no broken-image icon)."""
        self.chart.value = png
        self.chart.layout.display = None if png else "none"


def render_chart(data: list[tuple[int, float]], name: str = "temps:averages", width: float = 9,
                 height: float = 2.6) -> bytes:
    """PNG of hourly averages ``[(hour start ms, °F), …]`` with day boundaries marked (no pyplot)."""
    import matplotlib.dates as mdates
    import pandas as pd
    from matplotlib.figure import Figure

    from .notebook import figure_png
    when = pd.to_datetime([d[0] for d in data], unit="ms", utc=True)
    fig = Figure(figsize=(width, height), layout="constrained")
    ax = fig.subplots()
    ax.plot(when, [d[1] for d in data], color="tab:orange", marker=".", ms=3, lw=1.2)
    for day in pd.date_range(when[0].normalize(), when[-1], freq="D", tz="UTC")[1:]:
        ax.axvline(day, color="0.85", lw=0.8, zorder=0)
    locator = mdates.AutoDateLocator(tz="UTC")
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator, tz="UTC"))
    ax.set_ylabel("°F")
    ax.set_title(f"{name}: {len(data)} hourly averages (newest {when[-1]:%Y/%m/%d} at {when[-1].hour})",
                 fontsize=10)
    ax.grid(axis="y", color="0.92")
    return figure_png(fig, dpi=90)

