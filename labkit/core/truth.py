"""Ground truth and verification, as DataFrames (the notebooks' view).

:func:`hourly_truth` computes exact hourly sums and counts straight from raw
readings with pandas, independently of the consumer's fold, using the same
validity rule (:data:`labkit.core.window.TEMP_PATTERN`); :func:`load_truth`
gives the same from the bulk path (tests hold it to the pandas one).
:func:`verify` compares what the aggregating consumer published with it, hour
by hour, in exact arithmetic (integers and fractions, never floats).  The audit
itself lives in :mod:`labkit.core.audit`, on plain Python structures, so that
``python -m labkit verify`` never imports pandas; :func:`audit` and
:func:`check` here are its DataFrame edge.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import redis

from . import audit as _core
from .audit import (AVERAGE_FIELDS, READ_BATCH, Report, exact_2dp, exact_decimal, partition_batches,
                    partition_day)
from .batches import BatchReader, paused_gc
from .keys import Keys
from .partition import DAY_MS, HOUR_MS
from .window import PLAUSIBLE_F, TEMP_PATTERN


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


def load_readings(r: redis.Redis, partitions: list[str], chunk: int = 100_000,
                  prefix: str | None = None) -> pd.DataFrame:
    """All readings of ``partitions`` as a DataFrame ``(ms, temp_f, day_ms)``.

    ``temp_f`` is kept as text (None if absent, or if the entry has any other
    field); ``day_ms`` is the start of the partition's UTC day.
    """
    ids, temps, days = [], [], []
    reader = BatchReader(r, chunk)
    try:
        with paused_gc():       # a million small lists: no cycles among them (see batches.paused_gc)
            for key in partitions:
                day = partition_day(key, prefix)
                n0 = len(ids)
                for batch in partition_batches(r, reader, key):
                    ids += [e[0] for e in batch]
                    temps += [_field(e[1], b"temp_f") for e in batch]
                days += [day] * (len(ids) - n0)
    finally:
        reader.close()
    ms = np.fromiter((int(i[:i.index(b"-")]) for i in ids), dtype="int64", count=len(ids))
    return pd.DataFrame({"ms": ms, "temp_f": temps, "day_ms": np.array(days, dtype="int64")})


def _field(pairs: list, name: bytes) -> str | None:
    """The value of ``name`` when it is the entry's only field (the one valid shape), else None."""
    if len(pairs) == 2 and pairs[0] == name:
        return pairs[1].decode(errors="replace")
    return None


def load_truth(r: redis.Redis, partitions: list[str], prefix: str | None = None,
               count: int = READ_BATCH) -> tuple[pd.DataFrame, list[tuple[str, bytes]]]:
    """``hourly_truth(load_readings(r, partitions, prefix=prefix))``, read and summed in bulk, and the entries
    that count in no hour, as ``(partition, id)``.

    :func:`labkit.core.audit.load_hours` (what ``verify`` uses, without pandas) as a DataFrame: the same
    hours, sums and counts (exact int64) as the pandas path, without a row per reading.
    """
    hours, invalid = _core.load_hours(r, partitions, prefix=prefix, count=count)
    return truth_frame(hours), invalid


def truth_frame(hours: dict[int, tuple[int, int]]) -> pd.DataFrame:
    """Ground truth ``{hour start ms: (sum, count)}`` as :func:`hourly_truth`'s DataFrame."""
    out = pd.DataFrame({"sum": np.array([v[0] for v in hours.values()], np.int64),
                        "count": np.array([v[1] for v in hours.values()], np.int64)},
                       index=pd.Index(np.array(list(hours), np.int64), dtype="int64", name="hour_start_ms"))
    out["mean"] = out["sum"] / out["count"]
    return out


def truth_hours(truth: pd.DataFrame) -> dict[int, tuple[int, int]]:
    """:func:`hourly_truth`'s DataFrame as ``{hour start ms: (sum, count)}`` (exact Python ints)."""
    return {int(h): (int(s), int(c)) for h, s, c in zip(truth.index, truth["sum"], truth["count"])}


def published_rows(averages: pd.DataFrame) -> list[dict]:
    """:func:`load_averages`'s DataFrame as :func:`labkit.core.audit.load_published`'s rows (NaN -> None)."""
    return [{k: (None if isinstance(v, float) and v != v else v) for k, v in row.items()}
            for row in averages.to_dict("records")]


def load_averages(r: redis.Redis, keys: Keys) -> tuple[pd.DataFrame, int]:
    """``temps:averages`` as a DataFrame, and how many entries the cap trimmed away."""
    rows, trimmed = _core.load_published(r, keys)
    return pd.DataFrame(rows, columns=["id", "ms", *AVERAGE_FIELDS]), trimmed


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
    avg_ok = [exact_decimal(a) == t for a, t in zip(pub["average_temp_f"], pub["true_avg"])]
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
          **kw) -> Report:
    """:func:`labkit.core.audit.audit` (the one audit: same arguments, same problems) of DataFrames:
    ``truth`` as :func:`hourly_truth` gives it, ``averages`` as :func:`load_averages` does.  The report's
    ``table`` is :func:`verify`'s, for plotting."""
    rep = _core.audit(truth_hours(truth), published_rows(averages), records, losses, cap, **kw)
    rep.table = verify(truth, averages).table
    return rep


def check(r: redis.Redis, keys: Keys, partitions: list[str] | None = None, accept=()
          ) -> tuple[Report, pd.DataFrame, pd.DataFrame]:
    """Audit ``keys.averages`` against ground truth from ``partitions`` (default: all that exist) and what was
    promised (:func:`labkit.core.audit.check_hours`); ``accept``: sources (partitions, or the averages
    stream) whose named problems the learner acknowledged.

    Returns the report (its ``table`` for plotting), the published averages and the ground truth, as
    DataFrames.  ``keys`` are named for ``r``'s server (see :class:`labkit.core.context.Context`).
    """
    rep, rows, hours = _core.check_hours(r, keys, partitions, accept)
    averages = pd.DataFrame(rows, columns=["id", "ms", *AVERAGE_FIELDS])
    truth = truth_frame(hours)
    rep.table = verify(truth, averages).table
    return rep, averages, truth
