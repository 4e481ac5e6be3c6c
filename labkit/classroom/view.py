"""The instructor's view as a refreshing widget: ``CohortView()`` in a notebook shows the table of
``python -m labkit cohort`` and re-reads it every few seconds (a daemon thread; ``close()`` stops it)."""

from __future__ import annotations

import html
import threading
import time

from . import cohort


def html_table(rows: list[cohort.Row], at_ms: int) -> str:
    """The rows as an HTML table, with when they were read (pure)."""
    head = ("learner", "days", "consumer", "hours published", "last verify", "exercises", "notebooks passed",
            "last activity")
    body = []
    for row in rows:
        failed = '<b style="color:#b00">failed</b>'
        verify = "-" if row.verified is None else f"{'ok' if row.verified else failed} {row.verified_at[11:19]}"
        cells = (html.escape(row.namespace), str(row.partitions),
                 f"running since {row.consumer_since[11:19]}" if row.consumer else "-", str(row.hours_published),
                 verify, f"{row.exercises_solved} of {row.exercises_total}", str(row.notebooks_passed),
                 (row.last_activity or "-").replace("T", " ").replace("Z", ""))
        body.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    when = time.strftime("%H:%M:%S UTC", time.gmtime(at_ms / 1000))
    return (f"<table><tr>{''.join(f'<th>{h}</th>' for h in head)}</tr>{''.join(body)}</table>"
            f"<p>{len(rows)} learner{'s' * (len(rows) != 1)}, read at {when}</p>")


class CohortView:
    """``python -m labkit cohort`` as a widget that refreshes itself every ``interval`` seconds."""

    def __init__(self, r=None, interval: float = 5.0, start: bool = True):
        import ipywidgets as widgets
        from ..servers import connection
        self.r = r if r is not None else connection.connect()
        self.interval = interval
        self.widget = widgets.HTML()
        self.rows: list[cohort.Row] = []
        self.error: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.refresh()
        if start:
            self._thread = threading.Thread(target=self._run, name="labkit-cohort-view", daemon=True)
            self._thread.start()

    def refresh(self) -> list[cohort.Row]:
        """Read the cohort now and show it (a failed read is shown in one line; the last table stays)."""
        try:
            self.rows = cohort.read_cohort(self.r)
            self.error = None
            self.widget.value = html_table(self.rows, int(time.time() * 1000))
        except Exception as exc:  # noqa: BLE001 - a view must keep going: say it, try again next time
            self.error = f"{type(exc).__name__}: {exc}"
            self.widget.value = html_table(self.rows, int(time.time() * 1000)) + \
                f"<p>could not read the cohort: {html.escape(self.error)}; retrying</p>"
        return self.rows

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.refresh()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.interval + 5)

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)
