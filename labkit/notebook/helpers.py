"""Small helpers the lab notebooks call, so their cells stay short.

Every lab notebook starts with one call, ``lab = labkit.notebook.setup()``:
the connection, the key names, the dataset and its partitions, and a word on
anything else it found on the server.  Checks after a run are scoped to what the
consumers actually read (:func:`what_ran`), so a server holding partitions from
an earlier, longer run does not break them.

Everything here returns data (pandas DataFrames, dicts, figures, small objects
that display themselves); nothing prints.  The dataset size comes from
``LABKIT_DAYS`` (default 10, the course's dataset) so CI can run the notebooks
on a small one.
"""

from __future__ import annotations

import html
import io
import math
import os
import platform
import re
import sys
import time
import uuid
from dataclasses import dataclass, field

import pandas as pd
import redis

from .. import progressbar
from ..core import progress
from ..core import producer
from ..core.context import Context
from ..core.keys import Keys
from ..core.partition import HOUR_MS, id_ms, next_partition, partition_for_ms
from ..core.keyspace import delete_namespace, list_partitions
from ..core.state import AggregatingState
from ..core.truth import hourly_truth, load_averages, load_readings, verify
from ..errors import LabkitError
from ..log import null_sink
from ..servers import connection
from ..servers.replies import text, text_fields

DEFAULT_DAYS = 10.0


# ---------------------------------------------------------------- dataset

def dataset_days() -> float:
    """Days of readings to produce: ``LABKIT_DAYS`` or 10 (CI uses a small one)."""
    raw = os.environ.get("LABKIT_DAYS", "").strip()
    if not raw:
        return DEFAULT_DAYS
    try:
        days = float(raw)
    except ValueError:
        raise LabkitError(f"LABKIT_DAYS={raw!r} is not a number", "use e.g. LABKIT_DAYS=10 (or 1 for a quick run)") from None
    if not (math.isfinite(days) and 0 < days <= 3660):
        raise LabkitError(f"LABKIT_DAYS={raw!r} is out of range", "use a number of days above 0, at most 3660")
    return days


def dataset(days: float | None = None, max_days: float | None = None) -> producer.Dataset:
    """The course's dataset (2025-01-01, one reading a second), ``days`` long (default :func:`dataset_days`),
    at most ``max_days``."""
    days = dataset_days() if days is None else days
    return producer.Dataset(producer.parse_start(producer.DEFAULT_START), min(days, max_days) if max_days else days)


def expected_counts(data: producer.Dataset, keys: Keys) -> dict[str, int]:
    """Readings each partition of ``data`` should hold."""
    names = data.partitions(keys)
    return {name: hi - lo for name, (_, lo, hi) in zip(names, data.slices())}


def expected_hours(data: producer.Dataset) -> int:
    """How many hours hold at least one reading of ``data``."""
    first = data.start_ms - data.start_ms % HOUR_MS
    last = data.start_ms + (data.count - 1) * data.interval_ms
    return (last - last % HOUR_MS - first) // HOUR_MS + 1


def dataset_present(r: redis.Redis, data: producer.Dataset, keys: Keys) -> bool:
    """Do all partitions of ``data`` exist with the right number of readings?"""
    want = expected_counts(data, keys)
    p = r.pipeline(transaction=False)
    for name in want:
        p.xlen(name)
    try:
        got = p.execute()
    except redis.ResponseError:
        return False
    return list(got) == list(want.values())


def produce_with_progress(r: redis.Redis, data: producer.Dataset, keys: Keys, sink=null_sink,
                          retention_days: float = producer.DEFAULT_RETENTION_DAYS) -> dict:
    """:func:`labkit.core.producer.produce` with a progress bar (a widget in Jupyter, :func:`labkit.progressbar.bar`)."""
    update, close = progressbar.bar(data.count, "producing", notebook=True)
    try:
        return producer.produce(r, data, keys, sink, retention_days, update)
    finally:
        close()


def ensure_dataset(r: redis.Redis, data: producer.Dataset, keys: Keys) -> bool:
    """Produce ``data`` unless it is already there (so a notebook can run on its own).

    Returns whether it produced.
    """
    if dataset_present(r, data, keys):
        return False
    producer.produce(r, data, keys, null_sink)
    return True


# ---------------------------------------------------------------- one set-up call

@dataclass
class Lab:
    """What a lab notebook works with; :func:`setup` returns it.

    ``r`` is the connection, ``keys`` the key names (``LABKIT_NAMESPACE``),
    ``data`` the dataset (``LABKIT_DAYS``), ``names`` its partitions and
    ``hours`` its hours of readings.  ``others`` are partitions on the server
    that are not this dataset's, e.g. left by an earlier, longer run: the
    consumers read on into any that follow the dataset, so checks are scoped
    to what actually ran (:func:`what_ran`).
    """

    target: connection.Target
    r: redis.Redis
    keys: Keys
    data: producer.Dataset
    names: list[str]
    hours: int
    present: bool                   # the dataset was (or now is) on the server, complete
    produced: bool                  # set-up wrote it just now
    others: list[str] = field(default_factory=list)

    @property
    def context(self) -> Context:
        """Where and what as one value, e.g. for ``start_consumers(partition, context=lab.context)``."""
        return Context(self.target, self.r, self.keys)

    def note(self) -> str:
        """One line: what set-up found or did (and, if it found other partitions, how to reset)."""
        span = _span(self.names)
        if self.produced:
            text = f"produced the dataset now: {self.data.count:,} readings in {span}"
        elif self.present:
            text = f"the dataset is in place: {self.data.count:,} readings in {span}"
        else:
            text = f"the dataset ({span}) is not on the server yet: notebook 02 produces it"
        if self.others:
            text += (f"; also found {len(self.others)} other partition{'s' * (len(self.others) != 1)} "
                     f"({_span(self.others, count=False)}), e.g. from a longer run: the consumers read on into any that "
                     f"follow the dataset, and the checks cover what they read "
                     f"(lab.remove_other_partitions() deletes them)")
        return text

    def remove_other_partitions(self) -> list[str]:
        """Delete the partitions that are not this dataset's (only those keys); returns their names."""
        gone = [p for p in list_partitions(self.r, self.keys) if p not in self.names]
        if gone:
            self.r.unlink(*gone)
        self.others = []
        return gone

    def rows(self) -> list[tuple[str, str, str]]:
        """``(attribute, what it is, value)`` for each thing set-up gives a notebook."""
        where = f"namespace {self.keys.namespace!r}" if self.keys.namespace else "the course's own key names"
        info = self.r.info("server")
        return [
            ("lab.r", "the connection (redis-py)", f"{self.target} · {server_label(info)}"),
            ("lab.keys", "key names", f"{where}: {self.keys.partition_prefix}YYYYMMDD, {self.keys.averages}, …"),
            ("lab.data", "the dataset (LABKIT_DAYS)",
             f"{self.data.days:g} days from {_utc(self.data.start_ms):%Y-%m-%d}, {self.data.count:,} readings"),
            ("lab.names", "its partitions", _span(self.names)),
            ("lab.hours", "hours of readings in it", str(self.hours)),
            ("lab.others", "other partitions found", _span(self.others) if self.others else "none"),
        ]

    def __repr__(self) -> str:
        return "\n".join(f"{a:<11} {w:<28} {v}" for a, w, v in self.rows()) + "\n" + self.note()

    def _repr_html_(self) -> str:
        left = ' style="text-align:left"'
        body = "".join(f"<tr><td{left}><code>{a}</code></td><td{left}>{html.escape(w)}</td>"
                       f"<td{left}>{html.escape(v)}</td></tr>" for a, w, v in self.rows())
        return f"<table>{body}</table><p>{html.escape(self.note())}</p>"


def _span(names: list[str], count: bool = True) -> str:
    """``temps:20250101 … temps:20250110 (10 partitions)``."""
    if not names:
        return "no partitions"
    if len(names) == 1:
        return names[0]
    return f"{names[0]} … {names[-1]}" + (f" ({len(names)} partitions)" if count else "")


def setup(produce_if_missing: bool = True, days: float | None = None) -> Lab:
    """Connect, name the keys and (with ``produce_if_missing``) produce the dataset if it is not there.

    The one set-up call of every lab notebook.  It never deletes anything but
    the dataset's own partitions (and only to rewrite them when they are
    incomplete); other partitions are reported in :meth:`Lab.note`.
    """
    ctx = Context.open()
    r, keys = ctx.r, ctx.keys
    data = dataset(days)
    if produce_if_missing:
        produced, present = ensure_dataset(r, data, keys), True
    else:
        produced, present = False, dataset_present(r, data, keys)
    names = data.partitions(keys)
    others = [p for p in list_partitions(r, keys) if p not in names]
    progress.attach(r, keys)
    return Lab(ctx.target, r, keys, data, names, expected_hours(data), present, produced, others)


def setup_companion(name: str, max_days: float | None = 1) -> Lab:
    """The one set-up call of a companion notebook (07–12): its own namespace, emptied, and fresh data.

    The namespace is the learner's :meth:`~labkit.core.keys.Keys.companion` ``name`` (never the main
    lab's keys); what an earlier run of the same notebook left there is deleted,
    then ``LABKIT_DAYS`` of data (at most ``max_days``) is produced into it.
    """
    learner = Context.open()
    progress.attach(learner.r, learner.keys)     # progress is the learner's, not the companion lab's
    ctx = learner.using(learner.keys.companion(name))
    r, keys = ctx.r, ctx.keys
    delete_namespace(r, keys)                     # what an earlier run of this notebook left
    data = dataset(max_days=max_days)
    producer.produce(r, data, keys, null_sink)
    return Lab(ctx.target, r, keys, data, data.partitions(keys), expected_hours(data), True, True, [])


# ---------------------------------------------------------------- server

def server_label(info: dict) -> str:
    """The server's name and real version, and the Redis version it is compatible with when that differs:
    ``Valkey 9.1.2 (Redis 7.2.4 compatible)``, ``Redis 7.0.15``."""
    redis_version = info.get("redis_version", "?")
    name = str(info.get("server_name") or ("valkey" if "valkey_version" in info else "redis"))
    own = info.get(f"{name}_version")
    if name == "redis" or not own or str(own) == str(redis_version):
        return f"{name.capitalize()} {redis_version}"
    return f"{name.capitalize()} {own} (Redis {redis_version} compatible)"


def server_description(r: redis.Redis, target: connection.Target) -> dict:
    """Which server labkit talks to, and what it is."""
    info = r.info("server")
    mem = r.info("memory")
    d = {
        "labkit uses": "the embedded server" if target.embedded else "REDIS_URL",
        "address": connection.mask(target.url),
        "redis_version": info.get("redis_version"),
        "server": server_label(info),
        "memory used": mem.get("used_memory_human"),
        "python": f"{platform.python_version()} ({sys.executable})",
        "redis-py": redis.__version__,
    }
    if target.embedded:
        from ..servers import embedded as server
        d["LABKIT_HOME"] = str(server.home())
    return d


def redis7_checks(r: redis.Redis, keys: Keys) -> pd.DataFrame:
    """Try the Redis 7 stream features the lab relies on; one row per check.

    Uses one scratch key in labkit's namespace and deletes it afterwards.
    """
    rows = []
    version = r.info("server").get("redis_version", "0")
    major = int(str(version).split(".")[0] or 0)
    rows.append(("redis_version ≥ 7", major >= 7, version))
    scratch = keys.key(f"labkit-check:{uuid.uuid4().hex[:8]}")
    try:
        def check(name, fn):
            try:
                ok, detail = fn()
            except redis.RedisError as exc:
                ok, detail = False, str(exc).splitlines()[0]
            rows.append((name, ok, detail))

        def xadd_ms_star():
            eid = r.xadd(scratch, {"temp_f": 50}, id="1735689600000-*")
            return eid == b"1735689600000-0", eid.decode()
        check("XADD with <ms>-* IDs (7.0)", xadd_ms_star)

        def xinfo_counters():
            info = r.xinfo_stream(scratch)
            return "entries-added" in info, f"entries-added={info.get('entries-added')}"
        check("XINFO STREAM entries-added (7.0)", xinfo_counters)

        def xautoclaim():
            r.xgroup_create(scratch, "g", id="0")
            r.xreadgroup("g", "c1", {scratch: ">"}, count=1)
            res = r.xautoclaim(scratch, "g", "c2", min_idle_time=0, start_id="0-0")
            return len(res) == 3, "reply has deleted-IDs list (7.0 form)"
        check("XAUTOCLAIM (6.2) with 7.0 reply", xautoclaim)

        def lag():
            g = r.xinfo_groups(scratch)[0]
            return "lag" in g, f"lag={g.get('lag')}"
        check("XINFO GROUPS lag (7.0)", lag)

        def expiretime():
            r.pexpire(scratch, 60_000)
            t = r.pexpiretime(scratch)
            return t > 0, "PEXPIRETIME answers"
        check("PEXPIRETIME (7.0)", expiretime)
    finally:
        r.delete(scratch)
    return pd.DataFrame(rows, columns=["check", "ok", "detail"])


# ---------------------------------------------------------------- inspecting

def _utc(ms: int | float | None) -> pd.Timestamp | None:
    return None if ms is None else pd.Timestamp(int(ms), unit="ms", tz="UTC")


def dataset_table(r: redis.Redis, keys: Keys, first: int = 2, memory: bool = True) -> pd.DataFrame:
    """One row per existing partition: XLEN, TTL, expiry time, first entries, MEMORY USAGE."""
    names = list_partitions(r, keys)
    p = r.pipeline(transaction=False)
    for name in names:
        p.xlen(name)
        p.pttl(name)
        p.xrange(name, count=first)
        if memory:
            p.memory_usage(name, samples=0)
    res = p.execute()
    step = 4 if memory else 3
    rows = []
    now = time.time() * 1000
    for i, name in enumerate(names):
        xlen, pttl, head = res[i * step:i * step + 3]
        row = {
            "partition": name,
            "XLEN": xlen,
            "TTL (h)": round(pttl / 3_600_000, 1) if pttl >= 0 else None,
            "expires (UTC)": _utc(now + pttl).floor("min") if pttl >= 0 else None,
            "first IDs": ", ".join(e[0].decode() for e in head),
            "first temp_f": ", ".join(e[1].get(b"temp_f", b"?").decode() for e in head),
        }
        if memory:
            used = res[i * step + 3] or 0
            row["MEMORY USAGE (MB)"] = round(used / 1e6, 2)
            row["bytes/reading"] = round(used / xlen, 1) if xlen else None
        rows.append(row)
    return pd.DataFrame(rows)


def entries_frame(entries) -> pd.DataFrame:
    """``XRANGE``/``XREVRANGE`` replies as a table, with each ID's time in UTC."""
    rows = []
    for eid, fields in entries:
        row = {"id": text(eid), "id time (UTC)": _utc(id_ms(eid))}
        row.update(text_fields(fields))
        rows.append(row)
    return pd.DataFrame(rows)


def state_frame(r: redis.Redis, keys: Keys) -> pd.DataFrame:
    """Both consumers' state hashes side by side (``HGETALL`` of each)."""
    rows = []
    for key in (keys.aggregating_state, keys.averages_state):
        for f, v in sorted(r.hgetall(key).items()):
            rows.append({"hash": key, "field": f.decode(), "value": v.decode()})
    return pd.DataFrame(rows, columns=["hash", "field", "value"])


def describe_id(entry_id: str) -> str:
    """``1735702767000-0`` → ``2025-01-01 03:39:27 UTC``."""
    if entry_id in ("0", "0-0"):
        return "the beginning of the stream"
    return f"{_utc(id_ms(entry_id)):%Y-%m-%d %H:%M:%S} UTC"


# ---------------------------------------------------------------- running

def consumer_chain(r: redis.Redis, keys: Keys, start: str) -> list[str]:
    """The partitions the aggregating consumer reads from ``start``: it, then each next day's while one exists."""
    chain, limit = [start], len(list_partitions(r, keys))
    while len(chain) <= limit and r.exists(nxt := next_partition(chain[-1], keys.partition_prefix)):
        chain.append(nxt)
    return chain


@dataclass
class Run:
    """What a run of the consumers read and published, against ground truth: :func:`what_ran`."""

    start: str
    partitions: list[str]           # what the aggregating consumer read, in order
    extra: list[str]                # of those, the ones that are not the notebook's dataset
    open_hour: int | None           # start (ms) of the hour still open in the saved state, if any
    hours: int                      # closed hours the run should have published
    truth: pd.DataFrame             # ground truth of the closed hours
    averages: pd.DataFrame          # temps:averages as it is
    report: object                  # labkit.core.truth.Report

    def summary(self) -> str:
        parts = [f"the consumers read {_span(self.partitions)} from {self.start}"]
        if self.extra:
            parts.append(f"{len(self.extra)} of them not this notebook's dataset ({_span(self.extra, count=False)}): "
                         "left by an earlier or longer run")
        parts.append(f"{self.hours} hours closed")
        if self.open_hour is not None:
            parts.append(f"the hour {_utc(self.open_hour):%Y/%m/%d %H}:00 is still open "
                         "(no later reading, and no manifest record, says it is complete)")
        return "; ".join(parts)

    def __repr__(self) -> str:
        return self.summary() + "\n" + self.report.summary()


def what_ran(lab: Lab, start: str) -> Run:
    """Scope the checks to what the consumers read from ``start``, whatever else is on the server.

    Ground truth comes from the partitions the consumer went through (see
    :func:`consumer_chain`), less the hour its saved state still holds open.
    """
    chain = consumer_chain(lab.r, lab.keys, start)
    state = AggregatingState.load(lab.r, lab.keys)
    open_hour = None
    if state is not None and state.count:
        ms = id_ms(state.last_id)
        open_hour = ms - ms % HOUR_MS
    truth = hourly_truth(load_readings(lab.r, chain))
    if open_hour is not None:
        truth = truth.drop(index=open_hour, errors="ignore")
    averages, trimmed = load_averages(lab.r, lab.keys)
    return Run(start, chain, [p for p in chain if p not in lab.names], open_hour, len(truth), truth, averages,
               verify(truth, averages, trimmed))


@dataclass
class Started:
    """What :func:`start_unless_started` did."""

    partition: str | None           # where the run began (None: nothing ran)
    by_hand: bool                   # the learner started it, not the notebook
    idle: bool                      # both consumers caught up (False: still busy, stopped or failed)
    note: str

    def __repr__(self) -> str:
        return self.note


def autorun() -> bool:
    """``LABKIT_AUTORUN``: unset or ``1`` lets notebook 4 press Start when you have not; ``0`` never."""
    raw = os.environ.get("LABKIT_AUTORUN", "").strip()
    if raw not in ("", "0", "1"):
        raise LabkitError(f"LABKIT_AUTORUN={raw!r} is not 0 or 1",
                          "unset it (or 1) to let the notebook start the consumers, 0 to always do it yourself")
    return raw != "0"


def start_unless_started(panel, timeout: float = 600) -> Started:
    """Press Start only if the consumers were not started by hand; then wait until both are idle.

    A run the learner started (Start or Resume, from any partition) is left
    alone.  Otherwise Start is pressed at the partition chosen in the dropdown,
    unless ``LABKIT_AUTORUN=0``.
    """
    if panel.handle is not None:
        start = run_start(panel) or panel.dropdown.value
        how = "Start" if panel.started_from else "Resume"
        by_hand, note = True, f"you pressed {how} yourself (run from {start}): leaving your run alone"
        if not panel.running:              # stopped or crashed by hand: nothing to wait for
            why = "crashed" if panel.last_status.get("crashed") else "stopped"
            return Started(start, True, False, f"{note}; the consumers are {why} (press Resume to go on)")
    elif not autorun():
        return Started(None, False, False, "LABKIT_AUTORUN=0: nothing started. Press Start in the panel above, "
                                           "then run this cell again")
    else:
        start = panel.dropdown.value
        panel.start_button.click()          # exactly a click: an error shows as the panel's red line
        if panel.handle is None:
            why = html.unescape(re.sub(r"<[^>]+>", "", panel.message.value))
            return Started(None, False, False, f"the notebook pressed Start at {start}, and it failed: {why}")
        by_hand, note = False, f"nothing was started by hand, so the notebook pressed Start at {start} (the dropdown's choice)"
    idle = panel.wait_idle(1.0, timeout=timeout)
    note += "; both consumers have caught up" if idle else "; the consumers did not settle (see the panel)"
    return Started(start, by_hand, idle, note)


def run_start(panel) -> str | None:
    """The partition the panel's last run started at: its last Start, or (a Resume only) the first average's day;
    None if nothing ran in this panel."""
    if panel.handle is None:
        return None
    return panel.started_from or _first_average_partition(panel)


@dataclass
class Settled:
    """Whether the panel's consumers are done with what there is to read: :func:`settle`."""

    ok: bool
    note: str

    def __bool__(self) -> bool:
        return self.ok

    def __repr__(self) -> str:
        return self.note


def settle(panel, timeout: float = 120) -> Settled:
    """Wait (up to ``timeout`` s) until the panel's consumers are idle, and say whether they read everything.

    Running and caught up is settled; stopped or crashed before the end of the
    data is not (Resume finishes the run), nor is still busy after ``timeout``.
    """
    if panel.handle is None:
        return Settled(False, "nothing ran in this panel")
    if panel.running and not panel.wait_idle(1.0, timeout=timeout):
        if panel.running:
            return Settled(False, f"still busy after {timeout:g} s")
    st = panel.update()
    if st.get("error"):
        return Settled(False, f"stopped by an error: {st['error']}")
    state = AggregatingState.load(panel.r, panel.keys)
    if state is None:
        return Settled(False, f"there is no saved state ({panel.keys.aggregating_state})")
    chain = consumer_chain(panel.r, panel.keys, state.stream)
    tail = panel.r.xrevrange(chain[-1], count=1)
    end = tail[0][0].decode() if tail else "0-0"
    if state.stream != chain[-1] or id_ms(state.last_id) < id_ms(end):
        how = "crashed" if st.get("crashed") else "stopped"
        return Settled(False, f"they {how} at {state.stream} {describe_id(state.last_id)}, before the end of the "
                              f"data ({chain[-1]} {describe_id(end)})")
    return Settled(True, "caught up" + ("" if panel.running else " and stopped"))


def _first_average_partition(panel) -> str | None:
    first = panel.r.xrange(panel.keys.averages, count=1)
    return partition_for_ms(id_ms(first[0][0]), panel.keys.partition_prefix) if first else None


def source(obj):
    """The source code of a labkit function or class, displayed as code (to read the real thing); a string is a
    script labkit sends to Redis (e.g. :data:`labkit.core.aggregating.COMMIT`), shown as Lua."""
    import inspect

    from IPython.display import Code
    if isinstance(obj, str):
        return Code(inspect.cleandoc(obj), language="lua")
    return Code(inspect.getsource(obj), language="python")


def figure_png(fig, dpi: int = 100) -> bytes:
    """A matplotlib Figure as PNG bytes (no pyplot)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def show_figure(fig, dpi: int = 100):
    """Display a matplotlib Figure in a notebook (works without ``%matplotlib``)."""
    from IPython.display import Image
    return Image(data=figure_png(fig, dpi), format="png")
