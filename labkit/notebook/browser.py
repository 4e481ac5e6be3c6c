"""A stream browser in the notebook: see the partitions, page through entries, jump to a time.

``StreamBrowser(lab)`` (or ``nbk.browse(lab)``) shows what RedisInsight's stream browser shows, inside the
notebook: a table of the partitions (entries, TTL, memory, first and last reading), the entries of one of them
20 a page with *Previous* / *Next*, a jump to a time, and ``temps:averages`` and the two consumers' state
hashes the same way.  Beside each view is the ``redis-cli`` command it ran.

The same data comes from code, exactly as the widget shows it::

    browser.partitions()                     # partition, entries, ttl_s, memory_bytes, first_id, last_id
    browser.entries(name, at="2025-01-01T12:00", count=20)     # id, time, temp_f
    browser.entries(name, at="12:00")        # 12:00 UTC on that partition's day

A time, in the *Jump to* box or as ``at=``, is one of (:data:`TIME_FORMS`): a time of day ``HH:MM``,
``HH:MM:SS`` or ``HH:MM:SS.fff`` (UTC, on the day of the partition browsed; on ``temps:averages``, the day of
the page shown); a date and time ``2025-01-01T12:00`` (UTC unless it ends in an offset such as ``+01:00``); an
entry ID ``1735732800000-0``; or epoch milliseconds ``1735732800000``.  Anything else is one line saying what
it takes, never today's date by accident; and nothing a button does ever raises out of the widget.

It uses only commands a learner's fenced user may run on its own namespace: ``SCAN`` with the partitions'
pattern, ``XLEN``, ``TTL``, ``MEMORY USAGE``, ``XRANGE``, ``XREVRANGE`` and ``HGETALL`` (no ``KEYS``, no
``CONFIG``).  On a Redis Cluster the partitions are found on every master and each is read on the master
that holds it.
"""

from __future__ import annotations

import datetime as dt
import html
import math
import numbers
import re
import shlex
import threading
from dataclasses import dataclass

import pandas as pd
import redis

from ..core.keys import Keys
from ..core.keyspace import list_partitions
from ..core.partition import DAY_MS, day_start_ms, id_ms, is_partition, parse_partition
from ..servers.replies import text
from ..errors import LabkitError
from ..servers.connection import is_cluster, node_client

PAGE = 20
PARTITION_COLUMNS = ["partition", "entries", "ttl_s", "memory_bytes", "first_id", "last_id"]
ENTRY_COLUMNS = ["id", "time", "temp_f"]
STATE = "state hashes"          # the dropdown's choice for the two consumers' state hashes
AUTO_S = 5.0                    # the auto-refresh's period
#: The times the browser takes, as a string (the Jump box, ``entries(at=…)``, ``show(at=…)``), in words.
TIME_FORMS = ("a time of day HH:MM, HH:MM:SS or HH:MM:SS.fff (UTC, on the day of the partition browsed), e.g. 12:00; "
              "a date and time, UTC unless it ends in an offset, e.g. 2025-01-01T12:00 or 2025-01-01 12:00:30+01:00; "
              "an entry ID, e.g. 1735732800000-0; or epoch milliseconds, e.g. 1735732800000")
#: A time of day: ``12:00``, ``9:30:05``, ``12:00:00.5``, optionally ``Z`` / ``UTC`` after it.
_CLOCK = re.compile(r"(\d{1,2}):(\d{2})(?::(\d{2})(?:\.(\d+))?)?(?:\s*(?:Z|UTC))?", re.I)
#: A date, or a date and time, optionally with ``Z`` / ``UTC`` or an offset: what ``pd.Timestamp`` then reads.
_DATE_TIME = re.compile(r"\d{4}-\d{2}-\d{2}(?:[T ]\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?"
                        r"(?:\s*(?:Z|UTC)|[+-]\d{2}:?\d{2})?", re.I)
#: The hint for what is not a time (one line in the widget: shorter than :data:`TIME_FORMS`).
_TYPE_HINT = ("type 12:00 or 12:00:30 (UTC, on the day browsed), 2025-01-01T12:00 (UTC unless an offset follows), "
              "an entry ID such as 1735732800000-0, or epoch ms such as 1735732800000")
_ENTRY_ID = re.compile(r"(\d{13})-\d+")     # the lab's IDs: 13-digit ms, a dash, a sequence number
_EPOCH_MS = re.compile(r"\d{13}")


# ---------------------------------------------------------------- pure: times, pages, commands

def _date_of(day_ms: int | None) -> str:
    return f"{pd.Timestamp(day_ms, unit='ms', tz='UTC'):%Y-%m-%d}" if day_ms is not None else "2025-01-01"


def _not_a_time(at, day_ms: int | None = None) -> LabkitError:
    """The one-line error for what is not a time, with a hint for the usual slips (``1200``, ``9:5``, ``12:00 PM``)."""
    s = at.strip() if isinstance(at, str) else ""
    hint = _TYPE_HINT
    clock = re.fullmatch(r"(\d{1,2}):(\d{1,2})(?::(\d{1,2}))?", s)
    ampm = re.fullmatch(r"(\d{1,2})(?::(\d{2}))?(?::(\d{2}))?\s*([ap])\.?m\.?", s, re.I)
    if re.fullmatch(r"\d{1,4}", s):
        digits = s.zfill(4) if len(s) > 2 else s.zfill(2) + "00"
        if int(digits[:2]) < 24 and int(digits[2:]) < 60:
            hint = f"a time of day takes a colon: {digits[:2]}:{digits[2:]} (or type epoch ms, 13 digits)"
    elif clock and not _CLOCK.fullmatch(s):
        parts = [g.zfill(2) for g in clock.groups() if g is not None]
        hint = f"minutes and seconds take two digits: {':'.join(parts)}"
    elif ampm and 1 <= int(ampm.group(1)) <= 12:
        h = int(ampm.group(1)) % 12 + (12 if ampm.group(4).lower() == "p" else 0)
        rest = "".join(f":{g}" for g in ampm.groups()[1:3] if g is not None) or ":00"
        hint = f"use the 24-hour clock (UTC): {h:02d}{rest}"
    elif re.fullmatch(r"\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?\s*[+-]\d{1,2}(?::?\d{2})?", s):
        hint = f"a time of day is UTC; with an offset, give the date too: {_date_of(day_ms)}T{s.replace(' ', '')}"
    elif re.fullmatch(r"T\d{1,2}:\d{2}.*", s, re.I):
        hint = f"drop the T ({s[1:]}), or put the date before it ({_date_of(day_ms)}{s})"
    return LabkitError(f"{at!r} is not a time", hint)


def is_time_of_day(at) -> bool:
    """Whether ``at`` is a bare time of day (``"12:00"``), which counts from a day :func:`to_ms` must be given."""
    return isinstance(at, str) and _CLOCK.fullmatch(at.strip()) is not None


def to_ms(at, day_ms: int | None = None) -> int:
    """``at`` as epoch milliseconds: an int (ms), a datetime or pandas Timestamp, or a string in one of the
    :data:`TIME_FORMS`.

    A time without a zone is UTC, as everything in the lab is.  A bare time of day (``"12:00"``) counts from
    ``day_ms`` (the start of its day, epoch ms); without one it is refused, never read as today.  Anything that
    is not a time is a :class:`~labkit.errors.LabkitError` whose hint says what is.
    """
    if isinstance(at, bool):
        raise _not_a_time(at)
    if isinstance(at, numbers.Integral):
        return int(at)
    if isinstance(at, float):
        if math.isfinite(at):
            return int(at)
        raise _not_a_time(at)
    if isinstance(at, str):
        return _text_ms(at, day_ms)
    if isinstance(at, (dt.datetime, dt.date, pd.Timestamp)):
        try:
            return _timestamp_ms(pd.Timestamp(at))
        except (ValueError, TypeError, OverflowError):
            pass
    raise _not_a_time(at)


def _timestamp_ms(ts: pd.Timestamp) -> int:
    if ts is pd.NaT:
        raise ValueError("NaT")
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    return int(ts.value // 1_000_000)


def _text_ms(text_: str, day_ms: int | None) -> int:
    s = text_.strip()
    m = _CLOCK.fullmatch(s)
    if m:
        h, mi, sec = int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)
        if h > 23 or mi > 59 or sec > 59:
            raise LabkitError(f"{text_!r} is not a time of day", "use HH:MM or HH:MM:SS (UTC), e.g. 12:00 or 23:59:30")
        if day_ms is None:
            raise LabkitError(f"{text_!r} is a time of day: of which day?",
                              f"give the date too, e.g. 2025-01-01T{s}, or read a partition (its own day counts)")
        ms = int((m.group(4) or "0")[:3].ljust(3, "0"))
        return day_ms + ((h * 60 + mi) * 60 + sec) * 1000 + ms
    m = _ENTRY_ID.fullmatch(s)
    if m:
        return int(m.group(1))
    if _EPOCH_MS.fullmatch(s):
        return int(s)
    if _DATE_TIME.fullmatch(s):
        try:
            return _timestamp_ms(pd.Timestamp(s))
        except (ValueError, TypeError, OverflowError):
            pass
    raise _not_a_time(text_, day_ms)


def day_of_key(name: str, prefix: str, seen_ms: int | None = None) -> int:
    """Where a time of day is counted from: a partition's own day, else the day of ``seen_ms`` (the page shown)."""
    if is_partition(name, prefix):
        return day_start_ms(parse_partition(name, prefix))
    return (seen_ms - seen_ms % DAY_MS) if seen_ms is not None else 0


@dataclass(frozen=True)
class Page:
    """One read of a stream, as a command: ``XRANGE key start end COUNT n`` or ``XREVRANGE key end start COUNT n``."""

    key: str
    start: str = "-"             # the lowest ID (or ``(ID`` for "after ID")
    end: str = "+"
    count: int = PAGE
    reverse: bool = False        # XREVRANGE: the page *before* ``end``, newest first (shown oldest first)

    def args(self) -> list[str]:
        if self.reverse:
            return ["XREVRANGE", self.key, self.end, self.start, "COUNT", str(self.count)]
        return ["XRANGE", self.key, self.start, self.end, "COUNT", str(self.count)]

    @property
    def cli(self) -> str:
        return cli(self.args())


def first_page(key: str, at_ms: int | None = None, count: int = PAGE) -> Page:
    """The page from ``at_ms`` (from the start when ``None``)."""
    return Page(key, "-" if at_ms is None else str(at_ms), "+", count)


def next_page(key: str, last_id: str, count: int = PAGE) -> Page:
    """The page after ``last_id`` (``(`` makes the bound exclusive, Redis 6.2+)."""
    return Page(key, f"({last_id}", "+", count)


def previous_page(key: str, first_id: str, count: int = PAGE) -> Page:
    """The page before ``first_id``: XREVRANGE from just below it."""
    return Page(key, "-", f"({first_id}", count, reverse=True)


def cli(args) -> str:
    """A command as you would type it in ``redis-cli`` (quoted where the shell needs it)."""
    return " ".join(shlex.quote(str(a)) if re.search(r"[\s\"'{}\[\]*$]", str(a)) else str(a) for a in args)


def _value(v: str):
    """A field's value as a number when it is one (``"50"`` → 50), else the text."""
    try:
        return int(v)
    except ValueError:
        try:
            return float(v)
        except ValueError:
            return v


def entries_table(entries, fields: list[str] | None = None) -> pd.DataFrame:
    """An XRANGE reply as the browser shows it: ``id``, ``time`` (UTC, from the ID), then the fields
    (``fields`` fixes them, e.g. ``["temp_f"]`` for a partition; else every field seen, in order)."""
    rows, seen = [], list(fields or [])
    for eid, values in entries:
        eid = text(eid)
        values = {text(k): text(v) for k, v in values.items()}
        if fields is None:
            seen += [k for k in values if k not in seen]
        rows.append({"id": eid, "time": pd.Timestamp(id_ms(eid), unit="ms", tz="UTC"),
                     **{k: _value(v) for k, v in values.items()}})
    columns = ["id", "time", *seen]
    frame = pd.DataFrame(rows, columns=columns)
    if not rows:
        frame["time"] = pd.to_datetime(frame["time"], utc=True)
    return frame


def partitions_table(rows: list[tuple]) -> pd.DataFrame:
    """``(name, XLEN, TTL, MEMORY USAGE, first entry, last entry)`` per partition as the browser's table; keys
    that expired between SCAN and the reads (TTL -2) are left out."""
    out = [(name, int(n), int(ttl), int(mem or 0), text(first[0][0]) if first else None,
            text(last[0][0]) if last else None)
           for name, n, ttl, mem, first, last in rows if int(ttl) != -2]
    return pd.DataFrame(out, columns=PARTITION_COLUMNS).sort_values("partition", ignore_index=True)


# ---------------------------------------------------------------- reading Redis

class StreamBrowser:
    """The partitions, ``temps:averages`` and the state hashes of ``lab`` (what :func:`labkit.notebook.setup`
    returns: its ``r`` and ``keys`` are used), as DataFrames and as a widget.

    Display it in a notebook cell to get the widget; call :meth:`partitions`, :meth:`entries` and
    :meth:`state` for the same data from code.  :meth:`show`, :meth:`next`, :meth:`previous` and
    :meth:`jump` page from code exactly as the buttons do.  :attr:`commands` holds the ``redis-cli``
    form of what each view last ran.
    """

    STATE = STATE      # ``browser.show(browser.STATE)``: the two state hashes

    def __init__(self, lab=None, *, r=None, keys: Keys | None = None, page: int = PAGE):
        self.r = r if r is not None else lab.r
        self.keys = keys if keys is not None else lab.keys
        self.page_size = page
        self.commands: dict[str, list[str]] = {}
        self.key: str | None = None             # the stream whose page is shown
        self.frame: pd.DataFrame | None = None  # the page shown
        self.note = ""                          # "at the start", "nothing from 12:00", …
        self._widget = None

    # ---------------------------------------------------------- data

    def partitions(self) -> pd.DataFrame:
        """One row per partition: ``partition, entries, ttl_s, memory_bytes, first_id, last_id``.

        XLEN, TTL, MEMORY USAGE … SAMPLES 0 (exact), XRANGE … COUNT 1 and XREVRANGE … COUNT 1 of each, in one
        round trip per server (on a cluster, to the master that holds each partition).
        """
        names = list_partitions(self.r, self.keys)
        by_node: dict[int, tuple] = {}
        for name in names:
            node = node_client(self.r, name)
            by_node.setdefault(id(node), (node, []))[1].append(name)
        rows = []
        for node, group in by_node.values():
            p = node.pipeline(transaction=False)
            for name in group:
                p.xlen(name)
                p.ttl(name)
                p.memory_usage(name, samples=0)
                p.xrange(name, count=1)
                p.xrevrange(name, count=1)
            res = p.execute()
            rows += [(name, *res[i * 5:i * 5 + 5]) for i, name in enumerate(group)]
        where = " (on every master)" if is_cluster(self.r) else ""
        k = f"{self.keys.partition_prefix}YYYYMMDD"
        self.commands["partitions"] = [
            cli(["SCAN", "0", "MATCH", self.keys.partition_pattern, "TYPE", "stream", "COUNT", "1000"]) + where,
            f"XLEN {k} · TTL {k} · MEMORY USAGE {k} SAMPLES 0", f"XRANGE {k} - + COUNT 1 · XREVRANGE {k} + - COUNT 1"]
        return partitions_table(rows)

    def entries(self, name: str, at=None, count: int = PAGE) -> pd.DataFrame:
        """``count`` entries of ``name`` from time ``at`` (from the start when ``None``): columns ``id, time,
        temp_f`` for a partition, ``id, time`` and the fields for ``temps:averages``.

        ``at`` is epoch ms, a datetime, or a string in one of the :data:`TIME_FORMS`: ``"12:00"`` (12:00 UTC on
        ``name``'s own day; on ``temps:averages``, the day of the page shown, else of its first entry),
        ``"2025-01-01T12:00"``, an entry ID ``"1735732800000-0"`` or epoch ms ``"1735732800000"``.
        """
        return self._read(first_page(name, self._at_ms(name, at), count))

    def averages(self, at=None, count: int = PAGE) -> pd.DataFrame:
        """``temps:averages`` from ``at``, as :meth:`entries` shows a partition."""
        return self.entries(self.keys.averages, at, count)

    def state(self) -> pd.DataFrame:
        """Both consumers' state hashes (HGETALL of each): columns ``hash, field, value``."""
        rows = []
        for key in (self.keys.aggregating_state, self.keys.averages_state):
            rows += [{"hash": key, "field": text(f), "value": text(v)} for f, v in sorted(self.r.hgetall(key).items())]
        self.commands["state"] = [f"HGETALL {cli([self.keys.aggregating_state])}",
                                  f"HGETALL {cli([self.keys.averages_state])}"]
        return pd.DataFrame(rows, columns=["hash", "field", "value"])

    def _at_ms(self, name: str, at) -> int | None:
        """``at`` as epoch ms, a bare time of day counted from ``name``'s day (:meth:`_day_of`)."""
        if at is None:
            return None
        return to_ms(at, self._day_of(name) if is_time_of_day(at) else None)

    def _day_of(self, name: str) -> int:
        """Where a time of day on ``name`` counts from: a partition's own day; else the day of the page shown of
        it, else of its first entry (``XRANGE name - + COUNT 1``)."""
        if is_partition(name, self.keys.partition_prefix):
            return day_of_key(name, self.keys.partition_prefix)
        if self.key == name and self.frame is not None and not self.frame.empty and "id" in self.frame:
            return day_of_key(name, self.keys.partition_prefix, id_ms(self.frame["id"].iloc[0]))
        first = node_client(self.r, name).xrange(name, count=1)
        return day_of_key(name, self.keys.partition_prefix, id_ms(text(first[0][0])) if first else None)

    def _read(self, page: Page) -> pd.DataFrame:
        try:
            reply = node_client(self.r, page.key).execute_command(*page.args())   # its master, on a cluster
        except redis.ResponseError as exc:
            if str(exc).upper().startswith("WRONGTYPE"):
                raise LabkitError(f"{page.key} is not a stream", "choose a partition or temps:averages") from None
            raise
        entries = list(reversed(reply)) if page.reverse else list(reply)
        self.commands["entries"] = [page.cli]
        fields = ["temp_f"] if is_partition(page.key, self.keys.partition_prefix) else None
        return entries_table(entries, fields)

    # ---------------------------------------------------------- paging (the buttons, from code)

    def show(self, name: str, at=None) -> pd.DataFrame:
        """Show the first page of ``name`` (from ``at``, as :meth:`entries` takes it)."""
        if name == STATE:
            frame, note = self.state(), ""
        else:
            at_ms = self._at_ms(name, at)          # a time that is not one: nothing changes
            frame = self._read(first_page(name, at_ms, self.page_size))
            note = "" if not frame.empty else "no entries" if at_ms is None else f"no entries from {_when(at_ms)} on"
        self.key, self.frame, self.note = name, frame, note
        self._draw()
        return self.frame

    def next(self) -> pd.DataFrame:
        """The next page (the same one, with a note, at the end)."""
        return self._turn(lambda f: next_page(self.key, f["id"].iloc[-1], self.page_size), "the last page")

    def previous(self) -> pd.DataFrame:
        """The page before (the same one, with a note, at the start)."""
        return self._turn(lambda f: previous_page(self.key, f["id"].iloc[0], self.page_size), "the first page")

    def jump(self, clock) -> pd.DataFrame:
        """The page of the stream shown from a time (the *Jump* button), one of the :data:`TIME_FORMS`:

        - a time of day ``12:00``, ``12:00:30`` or ``12:00:30.5``: UTC, on the shown partition's own day (on
          ``temps:averages``, on the day of the page shown);
        - a date and time ``2025-01-01T12:00`` (or ``2025-01-01 12:00:30``): UTC, unless it ends in an offset
          such as ``+01:00``; a date alone, ``2025-01-01``, is its midnight;
        - an entry ID ``1735732800000-0``, or epoch milliseconds ``1735732800000``.

        Anything else (``1200``, ``9:5``, ``12:00 PM``, ``12:00+05:30``) raises a
        :class:`~labkit.errors.LabkitError` whose hint says what to type; the page shown stays as it was.
        """
        if self.key is None or self.key == STATE:
            raise LabkitError("choose a stream first", "pick a partition or temps:averages in the dropdown")
        return self.show(self.key, clock)

    def _turn(self, page, edge: str) -> pd.DataFrame:
        if self.key is None or self.key == STATE or self.frame is None or self.frame.empty:
            return self.frame
        got = self._read(page(self.frame))
        if got.empty:
            self.note = f"this is {edge}"
        else:
            self.frame, self.note = got, ""
        self._draw()
        return self.frame

    # ---------------------------------------------------------- the widget

    @property
    def widget(self):
        if self._widget is None:
            self._widget = _Widget(self)
            self._widget.refresh()
        return self._widget.box

    def refresh(self) -> None:
        """Read the partitions again (the *Refresh* button)."""
        if self._widget is not None:
            self._widget.refresh()

    def auto_refresh(self, every_s: float | None = AUTO_S) -> None:
        """Re-read the partitions table every ``every_s`` seconds in a background thread (``None``: stop).

        The page shown stays where you paged to; only the table (and the stream list) follows the server.
        """
        self.widget
        self._widget.auto(every_s)

    def close(self) -> None:
        """Stop the auto-refresh thread, if any."""
        if self._widget is not None:
            self._widget.auto(None)

    def _draw(self) -> None:
        if self._widget is not None:
            self._widget.draw()

    def _repr_mimebundle_(self, **kwargs):
        bundle = self.widget._repr_mimebundle_(**kwargs)
        data = bundle[0] if isinstance(bundle, tuple) else bundle
        data["text/plain"] = ("[labkit stream browser: live while this notebook's kernel runs; run the cell again "
                              "after a reload. From code: browser.partitions(), browser.entries(name, at)]")
        return bundle


#: The Jump box's tooltip: what it takes.
JUMP_TIP = ("Jump to: 12:00 or 12:00:30 (UTC, on this partition's day), 2025-01-01T12:00 (UTC, or ending in an "
            "offset such as +01:00), an entry ID such as 1735732800000-0, or epoch ms such as 1735732800000")


def _one_line(exc: BaseException) -> str:
    """What went wrong, in one line: a labkit error as it is, Redis's reply, else the error's type and message."""
    first = (str(exc).strip().splitlines() or [""])[0]
    if isinstance(exc, LabkitError):
        return first
    if isinstance(exc, redis.RedisError):
        return f"Redis said: {first}"
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


def _when(ms: int) -> str:
    return f"{pd.Timestamp(ms, unit='ms', tz='UTC'):%Y-%m-%d %H:%M:%S} UTC"


def _table(frame: pd.DataFrame, cls: str) -> str:
    if frame is None or frame.empty:
        return f'<p class="{cls}"><i>nothing here</i></p>'
    shown = frame.copy()
    for col in shown.columns:
        if pd.api.types.is_datetime64_any_dtype(shown[col]):
            shown[col] = shown[col].dt.strftime("%Y-%m-%d %H:%M:%S")
    return shown.to_html(index=False, classes=cls, border=0, na_rep="")


def _commands(lines: list[str]) -> str:
    return "".join(f"<div><code>&gt; {html.escape(c)}</code></div>" for c in lines)


class _Widget:
    """The browser's ipywidgets: a partitions table, a stream chooser, the page and its buttons."""

    def __init__(self, b: StreamBrowser):
        import ipywidgets as W
        self.b = b
        self.table = W.HTML()
        self.table_cmd = W.HTML()
        self.refresh_button = W.Button(description="Refresh", icon="refresh", tooltip="read the partitions again")
        self.chooser = W.Dropdown(description="Stream", layout=W.Layout(width="360px"))
        self.prev_button = W.Button(description="Previous", icon="arrow-left")
        self.next_button = W.Button(description="Next", icon="arrow-right")
        self.clock = W.Text(placeholder="12:00 or 2025-01-01T12:00", description="Jump to", tooltip=JUMP_TIP,
                            layout=W.Layout(width="300px"))
        self.jump_button = W.Button(description="Jump", tooltip=JUMP_TIP)
        self.auto_box = W.Checkbox(value=False, description=f"auto-refresh every {AUTO_S:g} s", indent=False)
        self.auto_box.observe(lambda change: self.auto(AUTO_S if change["new"] else None), names="value")
        self._stop: threading.Event | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.RLock()          # the auto-refresh thread and the buttons take turns
        self.status = W.HTML()
        self.page = W.HTML()
        self.page_cmd = W.HTML()
        self.refresh_button.on_click(lambda _: self._safely(self.refresh))
        self.prev_button.on_click(lambda _: self._safely(b.previous))
        self.next_button.on_click(lambda _: self._safely(b.next))
        self.jump_button.on_click(lambda _: self._safely(lambda: b.jump(self.clock.value)))
        self.clock.continuous_update = False
        self.chooser.observe(self._chosen, names="value")
        from .panel import panel_css
        self.box = W.VBox([
            W.HTML(_STYLE + panel_css()),
            W.HBox([W.HTML("<b>Partitions</b>"), self.refresh_button, self.auto_box]), self.table, self.table_cmd,
            W.HBox([self.chooser, self.prev_button, self.next_button, self.clock, self.jump_button]),
            self.status, self.page, self.page_cmd])
        self.box.add_class("labkit-browser")
        self._filling = False

    def _safely(self, action) -> None:
        """Run what a button or the dropdown asked for; whatever goes wrong is one red line in the widget."""
        try:
            with self._lock:
                action()
        except Exception as exc:    # a widget callback must never raise: ipywidgets would print a traceback
            self.say(exc)

    def say(self, exc: BaseException) -> None:
        """``exc`` as the one red status line."""
        self.status.value = f'<span class="labkit-bad">{html.escape(_one_line(exc))}</span>'

    def auto(self, every_s: float | None) -> None:
        """Start (or, with ``None``, stop) the thread that refreshes the table."""
        if self._stop is not None:
            self._stop.set()
            self._stop = None
        if every_s:
            stop = self._stop = threading.Event()

            def tick():
                while not stop.wait(every_s):
                    try:
                        with self._lock:
                            self.refresh(page=False)
                    except Exception as exc:        # said in the widget; the thread goes on
                        self.say(exc)
            self._thread = threading.Thread(target=tick, name="labkit-browser", daemon=True)
            self._thread.start()
        if self.auto_box.value != bool(every_s):
            self.auto_box.value = bool(every_s)

    def refresh(self, page: bool = True) -> None:
        """Read the partitions again; with ``page`` also the page shown (the auto-refresh leaves it alone)."""
        frame = self.b.partitions()
        shown = frame.assign(first=[None if i is None else _when(id_ms(i))[:-4] for i in frame["first_id"]],
                             last=[None if i is None else _when(id_ms(i))[:-4] for i in frame["last_id"]])
        shown = shown.rename(columns={"first": "first reading (UTC)", "last": "last reading (UTC)"})
        self.table.value = _table(shown, "labkit-browser-partitions")
        self.table_cmd.value = _commands(self.b.commands["partitions"])
        options = list(frame["partition"]) + [self.b.keys.averages, STATE]
        keep = self.b.key if self.b.key in options else options[0]
        self._filling = True                     # setting the options must not read a page on its own
        try:
            if list(self.chooser.options) != options:
                self.chooser.options = options
            self.chooser.value = keep
        finally:
            self._filling = False
        if page or self.b.key != keep:
            self.b.show(keep)

    def _chosen(self, change) -> None:
        if change["new"] and not self._filling:
            self._safely(lambda: self.b.show(change["new"]))

    def draw(self) -> None:
        b = self.b
        paged = b.key not in (None, STATE)
        for w in (self.prev_button, self.next_button, self.clock, self.jump_button):
            w.disabled = not paged
        if b.key is not None and self.chooser.value != b.key and b.key in self.chooser.options:
            self.chooser.value = b.key
        self.page.value = _table(b.frame, "labkit-browser-page")
        what = "state" if b.key == STATE else "entries"
        self.page_cmd.value = _commands(b.commands.get(what, []))
        if paged and b.frame is not None and not b.frame.empty:
            where = f"{len(b.frame)} entries, {_when(id_ms(b.frame['id'].iloc[0]))} … {_when(id_ms(b.frame['id'].iloc[-1]))}"
        else:
            where = ""
        note = f" · <b>{html.escape(b.note)}</b>" if b.note else ""
        self.status.value = f"<span>{html.escape(where)}</span>{note}"


_STYLE = """<style>
.labkit-browser table { font-size: 12px; margin-bottom: 2px; }
.labkit-browser td, .labkit-browser th { padding: 1px 8px; text-align: right; white-space: nowrap; }
.labkit-browser code { font-size: 12px; }
</style>"""


def browse(lab) -> StreamBrowser:
    """A :class:`StreamBrowser` of ``lab``'s partitions, averages and state (display it to get the widget)."""
    return StreamBrowser(lab)
