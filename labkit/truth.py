"""Ground truth and verification.

:func:`hourly_truth` computes exact hourly means straight from raw readings
with pandas, independently of the consumer's fold.  :func:`verify` compares
what the aggregating consumer published with it, hour by hour.  Both are pure;
:func:`load_readings` and :func:`load_averages` are the thin Redis readers.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import redis

from .keys import Keys
from .partition import HOUR_MS
from .window import PLAUSIBLE_F


def hourly_truth(readings: pd.DataFrame) -> pd.DataFrame:
    """Exact hourly sums, counts and means of readings ``(ms, temp_f)``.

    Readings that are not whole numbers within the plausible range are left
    out, as the consumer dead-letters them.  Indexed by hour start (epoch ms).
    """
    temp = pd.to_numeric(readings["temp_f"], errors="coerce")
    ok = temp.notna() & np.isfinite(temp) & (temp == temp.round()) & temp.between(*PLAUSIBLE_F)
    ms = readings["ms"][ok].astype("int64")
    t = temp[ok].astype("int64")
    hour = ms - ms % HOUR_MS
    g = t.groupby(hour.values)
    out = pd.DataFrame({"sum": g.sum(), "count": g.count()})
    out.index.name = "hour_start_ms"
    out["mean"] = out["sum"] / out["count"]
    return out


def _xrange_raw(r: redis.Redis, key: str, start: bytes | str, count: int) -> list:
    """XRANGE as the server sends it, ``[[id, [field, value, …]], …]``, skipping redis-py's
    per-entry dict building (this is the one bulk read of every reading)."""
    conn = r.connection_pool.get_connection()
    try:
        conn.send_command("XRANGE", key, start, "+", "COUNT", count)
        return conn.read_response()
    except BaseException:
        conn.disconnect()
        raise
    finally:
        r.connection_pool.release(conn)


def load_readings(r: redis.Redis, partitions: list[str], chunk: int = 100_000) -> pd.DataFrame:
    """All readings of ``partitions`` as a DataFrame ``(ms, temp_f)`` (temp_f kept as text, None if absent)."""
    ids, temps = [], []
    for key in partitions:
        start: bytes | str = "-"
        while True:
            batch = _xrange_raw(r, key, start, chunk)
            if not batch:
                break
            ids += [e[0] for e in batch]
            temps += [_field(e[1], b"temp_f") for e in batch]
            if len(batch) < chunk:
                break
            start = b"(" + batch[-1][0]
    ms = np.fromiter((int(i[:i.index(b"-")]) for i in ids), dtype="int64", count=len(ids))
    return pd.DataFrame({"ms": ms, "temp_f": temps})


def _field(pairs: list, name: bytes) -> str | None:
    if len(pairs) == 2 and pairs[0] == name:   # the usual case: one field
        return pairs[1].decode(errors="replace")
    for k, v in zip(pairs[::2], pairs[1::2]):
        if k == name:
            return v.decode(errors="replace")
    return None


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


@dataclass
class Report:
    matched: int = 0
    mismatched: list = field(default_factory=list)   # rows of the mismatch table
    missing: list = field(default_factory=list)      # hour starts (ms) with readings but no average
    trimmed: int = 0
    duplicates: int = 0
    no_raw_data: int = 0
    table: pd.DataFrame | None = None                # one row per published hour

    @property
    def compared(self) -> int:
        return self.matched + len(self.mismatched)

    @property
    def ok(self) -> bool:
        return not self.mismatched and not self.missing and not self.duplicates and self.compared > 0

    def summary(self) -> str:
        return (f"{self.compared} hours compared: {self.matched} matched, {len(self.mismatched)} mismatched, "
                f"{len(self.missing)} missing, {self.trimmed} trimmed by the cap, "
                f"{self.no_raw_data} without raw data, {self.duplicates} duplicated")


def _round2(x: float) -> float:
    return float(np.floor(x * 100 + 0.5) / 100)


def verify(truth: pd.DataFrame, averages: pd.DataFrame, trimmed: int = 0) -> Report:
    """Compare published averages with ground truth, hour by hour."""
    rep = Report(trimmed=trimmed)
    pub = averages.copy()
    pub["count"] = pd.to_numeric(pub["num_observations"], errors="coerce")
    pub["sum"] = pd.to_numeric(pub["sum_temp_f"], errors="coerce")
    pub["avg"] = pd.to_numeric(pub["average_temp_f"], errors="coerce")
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
    pub["true_avg"] = pub["true_mean"].map(_round2)
    good = (pub["fields_agree"] & (pub["count"] == pub["true_count"])
            & (pub["sum"].isna() | (pub["sum"] == pub["true_sum"]))
            & ((pub["avg"] - pub["true_avg"]).abs() < 1e-9))
    rep.matched = int(good.sum())
    cols = ["date", "hour", "average_temp_f", "true_avg", "num_observations", "true_count"]
    rep.mismatched = pub.loc[~good, cols].to_dict("records")
    rep.table = pub
    # Which truth hours should have been published: from the first published hour
    # (less the ones the cap trimmed, which came just before it) to the last truth hour.
    if len(averages):
        hours = truth.index.to_numpy()
        first = int(averages["ms"].min())
        start = int(np.searchsorted(hours, first)) - trimmed
        expected = hours[max(start, 0):]
        rep.trimmed = min(trimmed, int(np.searchsorted(hours, first)))
        published = set(averages["ms"].astype("int64"))
        rep.missing = [int(h) for h in expected if h not in published and h >= first]
    else:
        rep.missing = [int(h) for h in truth.index]
    return rep
