"""Ground truth and verification.

:func:`hourly_truth` computes exact hourly sums and counts straight from raw
readings with pandas, independently of the consumer's fold, using the same
validity rule (:data:`labkit.core.window.TEMP_PATTERN`); :func:`load_truth`
computes the same in bulk, straight from the server's replies (what ``verify``
uses; tests hold it to the pandas path).  :func:`verify` compares
what the aggregating consumer published with it, hour by hour, in exact
arithmetic (integers and fractions, never floats).  Both are pure;
:func:`load_readings`, :func:`load_truth`, :func:`load_averages` and
:func:`check` are the thin Redis layer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from fractions import Fraction

import numpy as np
import pandas as pd
import redis

from ..errors import LabkitError
from ..servers.connection import is_cluster, refresh
from ..servers.replies import text
from .fastfold import BatchReader, Tally, paused_gc, tally_raw
from .keys import Keys
from .partition import DAY_MS, HOUR_MS, day_start_ms, parse_partition
from .window import PLAUSIBLE_F, TEMP_PATTERN, round_half_up


def hourly_truth(readings: pd.DataFrame) -> pd.DataFrame:
    """Exact hourly sums, counts and means of readings ``(ms, temp_f[, day_ms])``.

    A reading counts only if its ``temp_f`` text is valid by the one rule the
    consumer uses (:data:`~labkit.core.window.TEMP_PATTERN`, within the plausible
    range) and, when ``day_ms`` (its partition's day start) is given, its time
    lies in that day.  Indexed by hour start (epoch ms); ``mean`` is for display.
    """
    text = readings["temp_f"].astype("string")
    ok = text.str.fullmatch(TEMP_PATTERN).fillna(False).astype(bool)
    temp = pd.to_numeric(text.where(ok), errors="coerce")
    ok &= temp.between(*PLAUSIBLE_F)
    if "day_ms" in readings:
        ok &= (readings["ms"] >= readings["day_ms"]) & (readings["ms"] < readings["day_ms"] + DAY_MS)
    ms = readings["ms"][ok].astype("int64")
    t = temp[ok].astype("int64")
    hour = ms - ms % HOUR_MS
    g = t.groupby(hour.values)
    out = pd.DataFrame({"sum": g.sum(), "count": g.count()})
    out.index.name = "hour_start_ms"
    out["mean"] = out["sum"] / out["count"]
    return out


#: Entries per XRANGE when ground truth is read (the consumer's batch: measured the fastest, docs/benchmark.md).
READ_BATCH = 10_000


def load_readings(r: redis.Redis, partitions: list[str], chunk: int = 100_000,
                  prefix: str | None = None) -> pd.DataFrame:
    """All readings of ``partitions`` as a DataFrame ``(ms, temp_f, day_ms)``.

    ``temp_f`` is kept as text (None if absent, or if the entry has any other
    field); ``day_ms`` is the start of the partition's UTC day.
    """
    ids, temps, days = [], [], []
    reader = BatchReader(r, chunk)
    try:
        with paused_gc():       # a million small lists: no cycles among them (see fastfold.paused_gc)
            for key in partitions:
                day = _day_of(key, prefix)
                n0 = len(ids)
                for batch in _batches(r, reader, key):
                    ids += [e[0] for e in batch]
                    temps += [_field(e[1], b"temp_f") for e in batch]
                days += [day] * (len(ids) - n0)
    finally:
        reader.close()
    ms = np.fromiter((int(i[:i.index(b"-")]) for i in ids), dtype="int64", count=len(ids))
    return pd.DataFrame({"ms": ms, "temp_f": temps, "day_ms": np.array(days, dtype="int64")})


def _day_of(key: str, prefix: str | None) -> int:
    return day_start_ms(parse_partition(key, prefix if prefix is not None else key[:-8]))


def _batches(r: redis.Redis, reader: BatchReader, key: str):
    """Every entry of ``key``, batch by batch as the server sends them, one batch read ahead.  On a cluster
    a failover that moves ``key`` (read as a lost connection, see BatchReader) is survived once: the read
    goes on from the last entry received, at the new master."""
    after, retried = b"0", False
    while True:
        try:
            batch = reader.read(key, after)[1]
        except redis.ConnectionError:
            if retried or not is_cluster(r):
                raise
            retried = True
            refresh(r)
            continue
        if batch:
            yield batch
        if len(batch) < reader.count:
            return
        after = batch[-1][0]


def _field(pairs: list, name: bytes) -> str | None:
    """The value of ``name`` when it is the entry's only field (the one valid shape), else None."""
    if len(pairs) == 2 and pairs[0] == name:
        return pairs[1].decode(errors="replace")
    return None


def load_truth(r: redis.Redis, partitions: list[str], prefix: str | None = None,
               count: int = READ_BATCH) -> tuple[pd.DataFrame, list[tuple[str, bytes]]]:
    """``hourly_truth(load_readings(r, partitions, prefix=prefix))``, read and summed in bulk, and the entries
    that count in no hour, as ``(partition, id)``.

    The same hours, sums and counts (exact int64) as the pandas path, without a row per reading: each
    batch is tallied as it arrives (:func:`~labkit.core.fastfold.tally_raw`) while the server prepares the
    next one.  This is what ``verify`` uses; the notebooks show the pandas path.
    """
    parts: list[Tally] = []
    invalid: list[tuple[str, bytes]] = []
    reader = BatchReader(r, count)
    try:
        with paused_gc():
            for key in partitions:
                day = _day_of(key, prefix)
                for batch in _batches(r, reader, key):
                    t = tally_raw(batch, (day, day + DAY_MS))
                    parts.append(t)
                    invalid += [(key, eid) for eid in t.invalid]
                    del batch
    finally:
        reader.close()
    if parts:
        hours, where = np.unique(np.concatenate([t.hours for t in parts]), return_inverse=True)
        sums, counts = np.zeros(len(hours), np.int64), np.zeros(len(hours), np.int64)
        np.add.at(sums, where, np.concatenate([t.sums for t in parts]))
        np.add.at(counts, where, np.concatenate([t.counts for t in parts]))
    else:
        hours = sums = counts = np.zeros(0, np.int64)
    out = pd.DataFrame({"sum": sums, "count": counts}, index=pd.Index(hours, dtype="int64", name="hour_start_ms"))
    out["mean"] = out["sum"] / out["count"]
    return out, invalid


def load_averages(r: redis.Redis, keys: Keys) -> tuple[pd.DataFrame, int]:
    """``temps:averages`` as a DataFrame, and how many entries the cap trimmed away."""
    rows = []
    for eid, f in r.xrange(keys.averages):
        d = {k.decode(): v.decode() for k, v in f.items()}
        rows.append({"id": eid.decode(), "ms": int(eid[:eid.index(b"-")]), **d})
    df = pd.DataFrame(rows, columns=["id", "ms", "hour", "date", "average_temp_f", "num_observations", "sum_temp_f"])
    trimmed = 0
    if r.exists(keys.averages):
        info = r.xinfo_stream(keys.averages)
        trimmed = int(info.get("entries-added", 0)) - int(info.get("length", 0))
    return df, max(trimmed, 0)


KINDS = ("lost", "extra", "duplicate", "mismatch", "partial", "unchecked")
#: Losses a learner may acknowledge (``verify --accept``); a wrong, extra or repeated value never is.
ACKNOWLEDGEABLE = ("lost", "partial", "unchecked")


@dataclass(frozen=True)
class Problem:
    """One thing wrong with one hour: ``kind`` (one of :data:`KINDS`), what is behind it (``source``: the
    partition, or the averages stream) and why, in words."""

    hour_ms: int
    kind: str
    source: str
    detail: str

    def line(self) -> str:
        t = pd.Timestamp(self.hour_ms, unit="ms", tz="UTC")
        return f"{self.kind}: {t:%Y/%m/%d %H}:00: {self.detail}"


@dataclass
class Report:
    matched: int = 0
    mismatched: list = field(default_factory=list)   # rows of the mismatch table
    missing: list = field(default_factory=list)      # hour starts (ms) with readings but no average
    trimmed: int = 0
    duplicates: int = 0
    no_raw_data: int = 0
    table: pd.DataFrame | None = None                # one row per published hour
    problems: list = field(default_factory=list)     # Problems found by audit(), oldest hour first
    accepted: list = field(default_factory=list)     # Problems of sources the learner acknowledged
    audited: bool = False                            # problems were looked for (audit(), not verify() alone)

    @property
    def compared(self) -> int:
        return self.matched + len(self.mismatched)

    @property
    def ok(self) -> bool:
        if self.audited:
            return not self.problems and self.compared > 0
        return not self.mismatched and not self.missing and not self.duplicates and self.compared > 0

    def summary(self) -> str:
        text = (f"{self.compared} hours compared: {self.matched} matched, {len(self.mismatched)} mismatched, "
                f"{len(self.missing)} missing, {self.trimmed} trimmed by the cap, "
                f"{self.no_raw_data} without raw data, {self.duplicates} duplicated")
        if self.audited:
            text += f"; {len(self.problems)} problem(s)" + (f", {len(self.accepted)} acknowledged"
                                                            if self.accepted else "")
        return text


def exact_2dp(total: int, count: int) -> Decimal:
    """The mean ``total / count`` rounded half-up to 2 decimals, exactly (as the consumer stores it)."""
    return round_half_up(Fraction(int(total), int(count)), 2)


def _decimal(text) -> Decimal | None:
    try:
        d = Decimal(str(text))
    except (InvalidOperation, ValueError):
        return None
    return d if d.is_finite() else None


def verify(truth: pd.DataFrame, averages: pd.DataFrame, trimmed: int = 0, start_ms: int | None = None) -> Report:
    """Compare published averages with ground truth, hour by hour, exactly.

    ``start_ms``: where the consumer started (its first partition's day); hours
    of ground truth before it are not expected.  Of the expected hours before
    the first published one, the ``trimmed`` oldest are accounted for by the
    cap; any others are missing.
    """
    rep = Report(trimmed=trimmed)
    pub = averages.copy()
    pub["count"] = pd.to_numeric(pub["num_observations"], errors="coerce")
    pub["sum"] = pd.to_numeric(pub["sum_temp_f"], errors="coerce")
    pub["avg"] = pd.to_numeric(pub["average_temp_f"], errors="coerce")   # for plots; compared exactly below
    hour_of = pd.to_datetime(pub["ms"], unit="ms", utc=True)
    pub["fields_agree"] = ((pub["ms"] % HOUR_MS == 0)
                           & (pd.to_numeric(pub["hour"], errors="coerce") == hour_of.dt.hour)
                           & (pub["date"] == hour_of.dt.strftime("%Y/%m/%d")))
    key = pub["date"].astype(str) + " " + pub["hour"].astype(str)
    rep.duplicates = int(key.duplicated().sum() + pub["ms"].duplicated().sum())
    pub = pub.join(truth.rename(columns={"sum": "true_sum", "count": "true_count", "mean": "true_mean"}), on="ms")
    has_truth = pub["true_count"].notna()
    rep.no_raw_data = int((~has_truth).sum())
    pub = pub[has_truth].copy()
    pub["true_avg"] = [exact_2dp(s, c) for s, c in zip(pub["true_sum"], pub["true_count"])]
    avg_ok = [_decimal(a) == t for a, t in zip(pub["average_temp_f"], pub["true_avg"])]
    good = (pub["fields_agree"] & (pub["count"] == pub["true_count"])
            & (pub["sum"].isna() | (pub["sum"] == pub["true_sum"]))
            & pd.Series(avg_ok, index=pub.index, dtype=bool))
    rep.matched = int(good.sum())
    cols = ["date", "hour", "average_temp_f", "true_avg", "num_observations", "true_count"]
    rep.mismatched = pub.loc[~good, cols].to_dict("records")
    rep.table = pub
    hours = truth.index.to_numpy()
    expected = hours if start_ms is None else hours[hours >= start_ms]
    published = set(averages["ms"].astype("int64")) if len(averages) else set()
    first = int(averages["ms"].min()) if len(averages) else None
    before = [int(h) for h in expected if first is None or h < first]
    rep.trimmed = min(trimmed, len(before))
    rep.missing = before[rep.trimmed:] + [int(h) for h in expected
                                          if first is not None and h >= first and h not in published]
    return rep


def audit(truth: pd.DataFrame, averages: pd.DataFrame, records: dict, losses: dict[str, str], cap: int,
          trimmed: int = 0, start: str | None = None, prefix: str = "temps:", present: set[str] | None = None,
          dead: dict[int, int] | None = None, accept: set[str] = frozenset(), averages_key: str = "temps:averages",
          ) -> Report:
    """Audit published averages against what was promised, hour by hour.  Pure.

    ``truth``: exact per-hour sums and counts from the raw partitions that are
    left (:func:`hourly_truth`, or any source with the same columns);
    ``records``: the manifest (:class:`~labkit.core.manifest.Record` by partition);
    ``losses``: partition → why, as the consumer recorded them; ``cap``: the
    smallest ``temps:averages`` cap the consumer ran with (0 uncapped, -1
    unknown); ``trimmed``: entries ever added to ``temps:averages`` and gone;
    ``start``: the partition the consumer started from; ``present``: the
    partitions that exist; ``dead``: readings the consumer dead-lettered, per
    hour.  A loss (:data:`ACKNOWLEDGEABLE`) whose ``source`` is in ``accept`` is acknowledged, not a failure.

    Every promised hour (each complete partition's readings, by its count and
    span; every hour of raw data from ``start`` on) must be published once with
    the exact value, or be one of the oldest, trimmed by a cap.  Each hour that
    is not is a :class:`Problem`: lost (not published: which partition, why),
    extra (no raw data was ever produced for it), duplicate, mismatch, partial
    (published from fewer readings than were promised), unchecked (published,
    but its raw data are gone, so it cannot be checked).
    """
    start_ms = day_start_ms(parse_partition(start, prefix)) if start else None
    rep = verify(truth, averages, 0, start_ms)
    rep.audited, rep.trimmed = True, 0
    present = set(records) if present is None else present
    dead = dead or {}
    problems: list[Problem] = []

    def partition_of(ms: int) -> str:
        return f"{prefix}{pd.Timestamp(ms, unit='ms', tz='UTC'):%Y%m%d}"

    promised: dict[int, tuple[int, str]] = {}
    for name, rec in records.items():
        if start is None or name >= start:
            for h, n in rec.promised_hours().items():
                promised[h] = (n, name)
    published = averages["ms"].astype("int64").tolist() if len(averages) else []
    counts = dict(zip(published, pd.to_numeric(averages["num_observations"], errors="coerce"))) if published else {}
    seen = set(published)
    named = [_hour_named(d, h) for d, h in zip(averages["date"], averages["hour"])] if published else []
    for ms, times in pd.Series([n if n is not None else m for n, m in zip(named, published)]).value_counts().items():
        if times > 1:
            problems.append(Problem(int(ms), "duplicate", averages_key,
                                    f"published {times} times in {averages_key}"))
    for row in rep.mismatched:
        ms = _hour_named(row["date"], row["hour"]) or 0
        problems.append(Problem(ms, "mismatch", partition_of(ms),
                                f"published {row['average_temp_f']} from {row['num_observations']} readings, "
                                f"ground truth {row['true_avg']:.2f} from {int(row['true_count'])}"))
    for ms in sorted(seen - set(truth.index.astype("int64"))):
        p = partition_of(ms)
        if p in records and p not in present:
            problems.append(Problem(ms, "unchecked", p, f"{p} is gone (expired or deleted), so this published "
                                                        "hour cannot be checked against its raw data"))
        elif p in records and ms in promised:
            problems.append(Problem(ms, "unchecked", p, f"{p} no longer holds this hour's readings (deleted "
                                                        "or evicted), so it cannot be checked"))
        else:
            problems.append(Problem(ms, "extra", averages_key, "published, but no raw data was ever produced for "
                                                               f"this hour ({p} {'holds none' if p in records else 'was never produced'})"))
    for ms in sorted(seen & set(promised)):
        n, p = promised[ms]
        got = counts.get(ms)
        if got == got and got is not None and got + dead.get(ms, 0) < n:
            problems.append(Problem(ms, "partial", p, f"published from {int(got)} readings; {p} was written with "
                                                      f"{n} for this hour ({n - int(got) - dead.get(ms, 0)} gone: "
                                                      "deleted or evicted before they were read)"))
    # Hours that should be there and are not: from start on, with raw data or promised by the manifest.
    hours = set(int(h) for h in truth.index if start_ms is None or h >= start_ms) | set(promised)
    expected = sorted(h for h in hours if h not in seen)
    first = min(seen) if seen else None
    before = [h for h in expected if first is None or h < first]
    provable = cap < 0 or (cap > 0 and len(averages) >= cap)
    rep.trimmed = min(trimmed, len(before)) if provable else 0
    rep.missing = before[rep.trimmed:] + [h for h in expected if first is not None and h >= first]
    for ms in rep.missing:
        p = partition_of(ms)
        if first is not None and ms < first and trimmed:
            why = (f"not in {averages_key}: {trimmed} of its oldest entries were removed, and "
                   + ("the consumer ran uncapped" if cap == 0 else
                      f"only {len(averages)} are left under the cap of {cap}, so not by the cap" if not provable else
                      f"more hours are missing before the first published one than the cap of {cap} trimmed")
                   + " (deleted by hand or by another tool?)")
            problems.append(Problem(ms, "lost", averages_key, why))
        elif p in losses:
            problems.append(Problem(ms, "lost", p, f"not published: the consumer recorded {losses[p]}"))
        elif ms in promised and ms not in truth.index:
            problems.append(Problem(ms, "lost", p, f"not published, and {p} no longer holds its readings "
                                                   f"({'it is gone' if p not in present else 'deleted or evicted'})"))
        else:
            problems.append(Problem(ms, "lost", p, f"{p} holds readings for this hour, but no average was "
                                                   "published (is the consumer still at it?)"))
    problems.sort(key=lambda x: (x.hour_ms, x.kind))
    acked = [x for x in problems if x.source in accept and x.kind in ACKNOWLEDGEABLE]
    rep.problems = [x for x in problems if x not in acked]
    rep.accepted = acked
    return rep


def _hour_named(date, hour) -> int | None:
    """The hour start an average's ``date`` and ``hour`` fields name (None if they name none)."""
    try:
        return int(pd.Timestamp(f"{date} {int(hour):02d}:00", tz="UTC").value // 1_000_000)
    except (ValueError, TypeError):
        return None


def load_start_ms(r: redis.Redis, keys: Keys) -> int | None:
    """The day start of the partition the consumers started from (None if unknown)."""
    from .state import AggregatingState
    s = AggregatingState.load(r, keys)
    return day_start_ms(parse_partition(s.start_stream, keys.partition_prefix)) if s and s.start_stream else None


def load_promises(r: redis.Redis, keys: Keys) -> dict:
    """What ``audit`` needs besides truth and averages: the manifest, the consumer's recorded losses, the cap it
    ran with, where it started, and its dead-lettered readings per hour (each counted in its own partition's day)."""
    from . import manifest
    from .state import AggregatingState
    s = AggregatingState.load(r, keys)
    losses: dict[str, str] = {}
    dead: dict[int, int] = {}
    for _, f in r.xrange(keys.deadletter) if r.exists(keys.deadletter) else []:
        source, eid = text(f.get(b"source", b""), "replace"), text(f.get(b"id", b""), "replace")
        if eid == "-":
            losses[source] = text(f.get(b"reason", b""), "replace")
            continue
        try:
            ms = int(eid.split("-")[0])
            day = day_start_ms(parse_partition(source, keys.partition_prefix))
        except (ValueError, LabkitError):
            continue
        if day <= ms < day + DAY_MS:
            dead[ms - ms % HOUR_MS] = dead.get(ms - ms % HOUR_MS, 0) + 1
    return {"records": manifest.read(r, keys), "losses": losses, "cap": s.cap if s else -1,
            "start": s.start_stream if s and s.start_stream else None, "dead": dead}


def check(r: redis.Redis, keys: Keys, partitions: list[str] | None = None, accept=()
          ) -> tuple[Report, pd.DataFrame, pd.DataFrame]:
    """Audit ``keys.averages`` against ground truth from ``partitions`` (default: all that exist) and what was
    promised (:func:`audit`); ``accept``: sources (partitions, or the averages stream) whose named problems
    the learner acknowledged.

    Returns the report, the published averages and the ground truth.  ``keys`` are named for ``r``'s
    server (see :class:`labkit.core.context.Context`).
    """
    from .runner import list_partitions
    averages, trimmed = load_averages(r, keys)
    existing = list_partitions(r, keys)
    names = existing if partitions is None else partitions
    truth, _ = load_truth(r, names, prefix=keys.partition_prefix)
    promises = load_promises(r, keys)
    if partitions is not None:          # a chosen set: hold only its partitions to their promises
        promises["records"] = {k: v for k, v in promises["records"].items() if k in set(partitions)}
    return audit(truth, averages, trimmed=trimmed, prefix=keys.partition_prefix, present=set(existing),
                 accept=set(accept), averages_key=keys.averages, **promises), averages, truth
