"""The audit of published averages, on plain Python structures (no pandas).

Ground truth here is a dict ``hour start (ms) -> (sum, count)`` of exact
integers (:func:`load_hours`, summed in bulk by
:func:`~labkit.core.tally.tally_raw`); the published averages are a list of
rows (dicts of the stream's fields plus ``ms``, :func:`load_published`).
:func:`audit` is pure and is the one audit: ``python -m labkit verify`` calls
it through :func:`check_hours` without importing pandas (start-up is most of
its time), and :mod:`labkit.core.truth` gives the notebooks the same audit with
DataFrames at its edge.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from fractions import Fraction

import redis

from ..errors import LabkitError
from ..servers.connection import is_cluster, refresh
from ..servers.replies import text
from .batches import BatchReader, paused_gc
from .keys import Keys
from .keyspace import list_partitions
from .partition import DAY_MS, HOUR_MS, day_start_ms, parse_partition
from .tally import tally_raw
from .window import PLAUSIBLE_F, round_half_up

#: Entries per XRANGE when ground truth is read (the consumer's batch: measured the fastest, docs/benchmark.md).
READ_BATCH = 10_000

KINDS = ("lost", "extra", "duplicate", "mismatch", "partial", "unchecked")
#: Losses a learner may acknowledge (``verify --accept``); a wrong, extra or repeated value never is.
ACKNOWLEDGEABLE = ("lost", "partial", "unchecked")

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)


def utc(ms: int) -> dt.datetime:
    """The UTC time of epoch milliseconds ``ms``, exactly (no float on the way)."""
    return _EPOCH + dt.timedelta(milliseconds=int(ms))


@dataclass(frozen=True)
class Problem:
    """One thing wrong with one hour: ``kind`` (one of :data:`KINDS`), what is behind it (``source``: the
    partition, or the averages stream) and why, in words."""

    hour_ms: int
    kind: str
    source: str
    detail: str

    def line(self) -> str:
        return f"{self.kind}: {utc(self.hour_ms):%Y/%m/%d %H}:00: {self.detail}"


@dataclass
class Report:
    matched: int = 0
    mismatched: list = field(default_factory=list)   # rows of the mismatch table
    missing: list = field(default_factory=list)      # hour starts (ms) with readings but no average
    trimmed: int = 0
    duplicates: int = 0
    no_raw_data: int = 0
    table: object = None                             # notebooks: a DataFrame, one row per published hour
    problems: list = field(default_factory=list)     # Problems found by audit(), oldest hour first
    open: list = field(default_factory=list)         # hour starts (ms) the consumer rightly holds open
    notes: list = field(default_factory=list)        # why each open hour is open (Problems of kind "open")
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
        if self.open:
            text += f", {len(self.open)} still open"
        if self.audited:
            text += f"; {len(self.problems)} problem(s)" + (f", {len(self.accepted)} acknowledged"
                                                            if self.accepted else "")
        return text


def exact_2dp(total: int, count: int) -> Decimal:
    """The mean ``total / count`` rounded half-up to 2 decimals, exactly (as the consumer stores it)."""
    return round_half_up(Fraction(int(total), int(count)), 2)


def exact_decimal(text) -> Decimal | None:
    """A published field as an exact, finite Decimal (``None`` if it is not a number)."""
    try:
        d = Decimal(str(text))
    except (InvalidOperation, ValueError):
        return None
    return d if d.is_finite() else None


def _number(value) -> int | Decimal | None:
    """A field as a number, exactly (``None`` if it is missing or not one: what ``pd.to_numeric(errors=
    "coerce")`` makes NaN)."""
    if value is None or isinstance(value, float) and value != value:
        return None
    if isinstance(value, (int, float)):
        return value
    try:
        return int(value)
    except (TypeError, ValueError):
        return exact_decimal(value)


def _hour_named(date, hour) -> int | None:
    """The hour start an average's ``date`` and ``hour`` fields name (None if they name none)."""
    try:
        day = dt.datetime.strptime(str(date).strip(), "%Y/%m/%d")
        when = day.replace(hour=int(hour), tzinfo=dt.timezone.utc)
    except (ValueError, TypeError):
        return None
    return (when - _EPOCH) // dt.timedelta(milliseconds=1)


def partition_day(key: str, prefix: str | None) -> int:
    """The start (ms) of the UTC day partition ``key`` holds (``prefix``: its name before the date)."""
    return day_start_ms(parse_partition(key, prefix if prefix is not None else key[:-8]))


def partition_batches(r: redis.Redis, reader: BatchReader, key: str):
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


def load_hours(r: redis.Redis, partitions: list[str], prefix: str | None = None, count: int = READ_BATCH
               ) -> tuple[dict[int, tuple[int, int]], list[tuple[str, bytes]]]:
    """Ground truth of ``partitions`` read and summed in bulk: ``{hour start ms: (sum, count)}`` in exact
    integers, sorted by hour, and the entries that count in no hour, as ``(partition, id)``.

    Each batch is tallied as it arrives (:func:`~labkit.core.tally.tally_raw`) while the server
    prepares the next one.  Tests hold it to the pandas path (:func:`labkit.core.truth.hourly_truth`).
    """
    acc: dict[int, list[int]] = {}
    invalid: list[tuple[str, bytes]] = []
    reader = BatchReader(r, count)
    try:
        with paused_gc():
            for key in partitions:
                day = partition_day(key, prefix)
                for batch in partition_batches(r, reader, key):
                    t = tally_raw(batch, (day, day + DAY_MS))
                    for h, s, c in zip(t.hours, t.sums, t.counts):
                        a = acc.get(h)
                        if a is None:
                            acc[h] = [s, c]
                        else:
                            a[0] += s
                            a[1] += c
                    invalid += [(key, eid) for eid in t.invalid]
                    del batch
    finally:
        reader.close()
    return {h: (acc[h][0], acc[h][1]) for h in sorted(acc)}, invalid


#: The fields of a published average, in the order the notebooks' table shows them.
AVERAGE_FIELDS = ("hour", "date", "average_temp_f", "num_observations", "sum_temp_f")


def load_published(r: redis.Redis, keys: Keys) -> tuple[list[dict], int]:
    """``temps:averages`` as rows (``id``, ``ms`` and its fields as text; a missing field is None), and how
    many entries the cap trimmed away."""
    rows = []
    for eid, f in r.xrange(keys.averages):
        d = {k.decode(): v.decode() for k, v in f.items()}
        row = {"id": eid.decode(), "ms": int(eid[:eid.index(b"-")])}
        row.update({k: d.get(k) for k in AVERAGE_FIELDS})
        rows.append(row)
    trimmed = 0
    if r.exists(keys.averages):
        info = r.xinfo_stream(keys.averages)
        trimmed = int(info.get("entries-added", 0)) - int(info.get("length", 0))
    return rows, max(trimmed, 0)


def compare(truth: dict[int, tuple[int, int]], averages: list[dict], rep: Report) -> list[dict]:
    """Each published row against ground truth, exactly: fills ``rep``'s matched, mismatched, duplicates
    and no_raw_data; returns the rows that have ground truth, with ``true_sum``, ``true_count``,
    ``true_avg`` and ``good`` added (the notebooks' table)."""
    names = Counter(f"{a.get('date')} {a.get('hour')}" for a in averages)
    times = Counter(a["ms"] for a in averages)
    rep.duplicates = sum(n - 1 for n in names.values()) + sum(n - 1 for n in times.values())
    rows = []
    for a in averages:
        ms = int(a["ms"])
        t = truth.get(ms)
        if t is None:
            rep.no_raw_data += 1
            continue
        true_sum, true_count = t
        when = utc(ms)
        fields_agree = (ms % HOUR_MS == 0 and _number(a.get("hour")) == when.hour
                        and a.get("date") == f"{when:%Y/%m/%d}")
        true_avg = exact_2dp(true_sum, true_count)
        total = _number(a.get("sum_temp_f"))
        good = (fields_agree and _number(a.get("num_observations")) == true_count
                and (total is None or total == true_sum) and exact_decimal(a.get("average_temp_f")) == true_avg)
        row = dict(a, true_sum=true_sum, true_count=true_count, true_avg=true_avg, good=good)
        rows.append(row)
        if good:
            rep.matched += 1
        else:
            rep.mismatched.append({k: row[k] for k in ("date", "hour", "average_temp_f", "true_avg",
                                                       "num_observations", "true_count")})
    return rows


def audit(truth: dict[int, tuple[int, int]], averages: list[dict], records: dict, losses: dict[str, str],
          cap: int, trimmed: int = 0, start: str | None = None, prefix: str = "temps:",
          present: set[str] | None = None, dead: dict[int, int] | None = None, accept: set[str] = frozenset(),
          averages_key: str = "temps:averages", hour_losses: dict[int, str] | None = None) -> Report:
    """Audit published averages against what was promised, hour by hour.  Pure.

    ``truth``: exact per-hour ``(sum, count)`` from the raw partitions that are
    left (:func:`load_hours`); ``averages``: the published rows
    (:func:`load_published`); ``records``: the manifest
    (:class:`~labkit.core.manifest.Record` by partition); ``losses``: partition →
    why, as the consumer recorded them; ``cap``: the smallest ``temps:averages``
    cap the consumer ran with (0 uncapped, -1 unknown); ``trimmed``: entries
    ever added to ``temps:averages`` and gone; ``start``: the partition the
    consumer started from; ``present``: the partitions that exist; ``dead``:
    readings the consumer dead-lettered, per hour; ``hour_losses``: hour start → why, for the hours the
    consumer named one by one (cut short before it read them).  A loss
    (:data:`ACKNOWLEDGEABLE`) whose ``source`` is in ``accept`` is acknowledged, not a failure.

    Every promised hour (each complete partition's readings, by its count and
    span; every hour of raw data from ``start`` on) must be published once with
    the exact value, or be one of the oldest, trimmed by a cap.  Each hour that
    is not is a :class:`Problem`: lost (not published: which partition, why),
    extra (no raw data was ever produced for it), duplicate, mismatch, partial
    (published from fewer readings than were promised), unchecked (published,
    but its raw data, or some of the readings it was promised and published
    from, are gone since, so it cannot be checked).  A published hour is named
    once for its value: mismatch, else partial, else unchecked, else extra.
    """
    start_ms = day_start_ms(parse_partition(start, prefix)) if start else None
    rep = Report(audited=True)
    rep.table = compare(truth, averages, rep)
    present = set(records) if present is None else present
    dead = dead or {}
    problems: list[Problem] = []

    def partition_of(ms: int) -> str:
        return f"{prefix}{utc(ms):%Y%m%d}"

    promised: dict[int, tuple[int, str]] = {}
    for name, rec in records.items():
        if start is None or name >= start:
            for h, n in rec.promised_hours().items():
                promised[h] = (n, name)
    published = [int(a["ms"]) for a in averages]
    counts = {ms: _number(a.get("num_observations")) for ms, a in zip(published, averages)}
    seen = set(published)
    named = [_hour_named(a.get("date"), a.get("hour")) for a in averages]
    for ms, times in Counter(n if n is not None else m for n, m in zip(named, published)).items():
        if times > 1:
            problems.append(Problem(int(ms), "duplicate", averages_key,
                                    f"published {times} times in {averages_key}"))
    # Each published hour is named at most once for its value (a duplicate is named apart, above): mismatch,
    # else partial, else unchecked, else extra.
    wrong: set[int] = set()
    for row in [x for x in rep.table if not x["good"]]:
        ms = int(row["ms"])
        why = _cannot_check(row, promised.get(ms), dead.get(ms, 0))
        if why:
            rep.mismatched.remove({k: row[k] for k in ("date", "hour", "average_temp_f", "true_avg",
                                                       "num_observations", "true_count")})
            if ms not in wrong:
                wrong.add(ms)
                problems.append(Problem(ms, "unchecked", promised[ms][1], why))
            continue
        hour = _hour_named(row["date"], row["hour"]) or 0
        if hour in wrong:
            continue
        wrong.add(hour)
        n, p = promised.get(ms, (None, partition_of(hour)))
        got, d = _number(row["num_observations"]), dead.get(ms, 0)
        promise = (f"; {n} were promised for this hour" + (f" ({d} dead-lettered)" if d else "")
                   if n is not None and got is not None and got + d != n else "")
        problems.append(Problem(hour, "mismatch", p,
                                f"published {row['average_temp_f']} from {row['num_observations']} readings, "
                                f"ground truth {row['true_avg']:.2f} from {int(row['true_count'])}{promise}"))
    partial: set[int] = set()
    for ms in sorted(seen & set(promised) - wrong):
        n, p = promised[ms]
        got = counts.get(ms)
        if got is not None and got + dead.get(ms, 0) < n:
            partial.add(ms)
            unchecked = "" if ms in truth else (f", and {p} " + ("is gone now" if p not in present else
                                                                  "now holds none of them")
                                                + ", so the published value cannot be checked")
            problems.append(Problem(ms, "partial", p, f"published from {int(got)} readings; {p} was written with "
                                                      f"{n} for this hour ({n - int(got) - dead.get(ms, 0)} gone: "
                                                      f"deleted or evicted before they were read){unchecked}"))
    for ms in sorted(seen - set(truth) - partial):
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
    # Hours that should be there and are not: from start on, with raw data or promised by the manifest,
    # less the newest hour while its partition is still being written (the consumer rightly holds it open).
    rep.notes = still_open(truth, seen, records, losses, present, prefix)
    rep.open = [n.hour_ms for n in rep.notes]
    hours = set(h for h in truth if start_ms is None or h >= start_ms) | set(promised)
    expected = sorted(h for h in hours if h not in seen and h not in rep.open)
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
        elif ms in (hour_losses or {}):
            problems.append(Problem(ms, "lost", p, f"not published: the consumer recorded {hour_losses[ms]}"))
        elif p in losses:
            problems.append(Problem(ms, "lost", p, f"not published: the consumer recorded {losses[p]}"))
        elif ms in promised and ms not in truth:
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


def _cannot_check(row: dict, promise: tuple[int, str] | None, dead: int) -> str:
    """Why a published ``row`` that disagrees with ground truth cannot be checked (readings deleted after it was
    published), or "" when it is a mismatch.  ``promise``: ``(readings, partition)`` the manifest promised for
    its hour; ``dead``: the hour's dead-lettered readings."""
    if promise is None:
        return ""
    n, p = promise
    ms, got = int(row["ms"]), _number(row.get("num_observations"))
    try:
        got = int(got) if got is not None and got == int(got) else None
    except (OverflowError, ValueError):
        got = None
    when = utc(ms)
    if not (ms % HOUR_MS == 0 and _number(row.get("hour")) == when.hour and row.get("date") == f"{when:%Y/%m/%d}"
            and got is not None and got + dead == n and row["true_count"] < got):
        return ""
    # The missing readings were valid (the consumer counted them), so each lay in PLAUSIBLE_F: a value no
    # such readings could make is wrong, checkable or not.
    missing = got - int(row["true_count"])
    lo, hi = (int(row["true_sum"]) + missing * f for f in PLAUSIBLE_F)
    avg, total = exact_decimal(row.get("average_temp_f")), _number(row.get("sum_temp_f"))
    if avg is None or not exact_2dp(lo, got) <= avg <= exact_2dp(hi, got):
        return ""
    if total is not None and not (total == int(total) and lo <= total <= hi and exact_2dp(int(total), got) == avg):
        return ""
    valid = f"{n} readings promised" if not dead else f"{n - dead} valid readings promised"
    return (f"published {row['average_temp_f']} from {got} readings, but {p} holds {row['true_count']} of the "
            f"{valid} for this hour ({f'{dead} more were dead-lettered; ' if dead else ''}deleted or evicted after it "
            "was published), so it cannot be checked")


def still_open(truth: dict, seen: set, records: dict, losses: dict, present: set, prefix: str) -> list[Problem]:
    """The hour the consumer rightly holds open, as a note (none, or one).  Pure.

    An hour closes when a later reading arrives or when its partition's manifest
    record says complete (:mod:`labkit.core.aggregating`).  So the newest hour of
    raw data is not yet due while its partition is the newest there is (in ``present``), is not
    marked complete (live mode marks a day only once it is over), and the
    consumer did not give up on it.  Every other unpublished hour is due.
    """
    if not truth:
        return []
    h = max(truth)
    p = f"{prefix}{utc(h):%Y%m%d}"
    rec = records.get(p)
    if h in seen or (rec is not None and rec.complete) or p in losses or p not in present or max(present) > p:
        return []
    why = "its manifest record says writing" if rec is not None else "it has no manifest record"
    return [Problem(h, "open", p, f"not due yet: {p} is still being written ({why}), so the consumer publishes "
                                  "this hour once a later reading arrives or the partition is marked complete")]


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
    hour_losses: dict[int, str] = {}
    dead: dict[int, int] = {}
    for _, f in r.xrange(keys.deadletter) if r.exists(keys.deadletter) else []:
        source, eid = text(f.get(b"source", b""), "replace"), text(f.get(b"id", b""), "replace")
        if eid == "-":
            why = text(f.get(b"reason", b""), "replace")
            hour = f.get(b"hour")           # an hour the consumer did not publish, cut short (aggregating._whole)
            if hour is not None and hour.isdigit():
                hour_losses[int(hour)] = why
                losses.setdefault(source, why)
            else:
                losses[source] = why        # the partition's own loss is the one to name for its other hours
            continue
        try:
            ms = int(eid.split("-")[0])
            day = day_start_ms(parse_partition(source, keys.partition_prefix))
        except (ValueError, LabkitError):
            continue
        if day <= ms < day + DAY_MS:
            dead[ms - ms % HOUR_MS] = dead.get(ms - ms % HOUR_MS, 0) + 1
    return {"records": manifest.read(r, keys), "losses": losses, "cap": s.cap if s else -1,
            "start": s.start_stream if s and s.start_stream else None, "dead": dead, "hour_losses": hour_losses}



def check_hours(r: redis.Redis, keys: Keys, partitions: list[str] | None = None, accept=()
                ) -> tuple[Report, list[dict], dict[int, tuple[int, int]]]:
    """Audit ``keys.averages`` against ground truth from ``partitions`` (default: all that exist) and what was
    promised (:func:`audit`); ``accept``: sources (partitions, or the averages stream) whose named problems
    the learner acknowledged.  Returns the report, the published rows and the ground truth, as plain
    structures (:func:`labkit.core.truth.check` gives them as DataFrames)."""
    averages, trimmed = load_published(r, keys)
    existing = list_partitions(r, keys)
    names = existing if partitions is None else partitions
    truth, _ = load_hours(r, names, prefix=keys.partition_prefix)
    promises = load_promises(r, keys)
    if partitions is not None:          # a chosen set: hold only its partitions to their promises
        promises["records"] = {k: v for k, v in promises["records"].items() if k in set(partitions)}
    return audit(truth, averages, trimmed=trimmed, prefix=keys.partition_prefix, present=set(existing),
                 accept=set(accept), averages_key=keys.averages, **promises), averages, truth
