"""The hourly window fold: readings in, exact hourly averages out.

The aggregating consumer feeds readings in stream order.  An hour is *closed*
(its average is final) when a message from a later hour arrives, or when the
consumer leaves the partition, which it does once the partition manifest says
the partition is complete (see :mod:`labkit.core.aggregating`).  The fold keeps
the exact integer sum, so the mean is exact; rounding happens only for display
(see :class:`HourAverage`).

Pure: no Redis, no clocks.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction

from .partition import HOUR_MS

#: Readings outside this range (°F) are treated as faulty sensors, not weather.
PLAUSIBLE_F = (-150, 200)

#: The one definition of a valid ``temp_f`` value: an optional minus sign and
#: ASCII digits, nothing else (no ``+``, spaces, ``_``, decimals or other scripts'
#: digits), within :data:`PLAUSIBLE_F`.  The fold, ground truth and the
#: dead-letter reason all use it.
TEMP_PATTERN = r"-?[0-9]{1,9}"
_TEMP_STR = re.compile(TEMP_PATTERN)
_TEMP_BYTES = re.compile(TEMP_PATTERN.encode())
#: The usual spelling (``b"%d"``) of every valid reading, for the bulk paths' one dict lookup per value.
#: Valid but unusual spellings (``007``, ``-0``) are not here: batches holding them take the plain rule.
USUAL_SPELLING = {b"%d" % v: v for v in range(PLAUSIBLE_F[0], PLAUSIBLE_F[1] + 1)}


class BadReading(ValueError):
    """A reading that must not enter an average (it goes to the dead-letter stream)."""


def valid_temp(fields) -> "int | str":
    """The one validity rule: the reading of an entry's fields, or why it is not one (a ``str``).

    ``fields`` is the entry as the server sends it, a flat list ``[name, value,
    …]`` (only there can a field given twice be seen), or a dict.  A reading is
    exactly one field, ``temp_f``, whose value is an optional minus and ASCII
    digits (:data:`TEMP_PATTERN`; bytes that are not UTF-8 never match) within
    :data:`PLAUSIBLE_F`.  The fold (:func:`fold`, :mod:`labkit.core.fastfold`)
    and ground truth (:mod:`labkit.core.truth`) all follow it.
    """
    if isinstance(fields, dict):
        names, raw = list(fields), fields.get(b"temp_f", fields.get("temp_f"))
    else:
        names = list(fields[0::2])
        raw = fields[1] if len(fields) >= 2 else None
    wanted = [n for n in names if n in (b"temp_f", "temp_f")]
    if not wanted:
        return "missing temp_f"
    if len(wanted) > 1:
        return f"temp_f {len(wanted)} times in one entry"
    if len(names) != 1:
        return "unexpected fields"
    if not isinstance(fields, dict):
        raw = fields[1]
    pattern = _TEMP_BYTES if isinstance(raw, bytes) else _TEMP_STR
    if not isinstance(raw, (bytes, str)) or not pattern.fullmatch(raw):
        return f"temp_f is not a whole number: {raw!r:.40}"
    value = int(raw)
    lo, hi = PLAUSIBLE_F
    if not lo <= value <= hi:
        return f"temp_f {value} outside plausible range {lo}..{hi}"
    return value


def parse_temp(fields) -> int:
    """The integer ``temp_f`` of a reading's fields, or :class:`BadReading` (by :func:`valid_temp`).

    Readings are whole degrees Fahrenheit, as the course's producer writes
    them; anything else (missing, empty, fractional, NaN, out of range, extra
    or repeated fields) is rejected rather than guessed at, so every sum stays exact.
    """
    got = valid_temp(fields)
    if isinstance(got, str):
        raise BadReading(got)
    return got


def parse_temp_value(raw) -> int:
    """One ``temp_f`` value (bytes or str) by the rule of :func:`valid_temp`, or :class:`BadReading`."""
    return parse_temp({b"temp_f" if isinstance(raw, bytes) else "temp_f": raw})


def round_half_up(x: Fraction, places: int = 0) -> Decimal:
    """Round an exact fraction to ``places`` decimals, ties towards +infinity.

    Exact for any size: done in integer arithmetic, never through a float.
    """
    scaled = math.floor(x * 10**places + Fraction(1, 2))
    return Decimal(scaled).scaleb(-places)


@dataclass(frozen=True)
class HourAverage:
    """One closed hour. ``total / count`` is the exact mean."""

    hour_start_ms: int
    total: int
    count: int

    @property
    def mean(self) -> Fraction:
        return Fraction(self.total, self.count)

    @property
    def hour(self) -> int:
        return self.start.hour

    @property
    def start(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.hour_start_ms / 1000, dt.timezone.utc)

    @property
    def date(self) -> str:
        return f"{self.start:%Y/%m/%d}"

    @property
    def average_2dp(self) -> str:
        """The stored ``average_temp_f``: the exact mean rounded half-up to 2 decimals."""
        return str(round_half_up(self.mean, 2))

    @property
    def entry_id(self) -> str:
        """Its ID in the averages stream: the hour's start in ms.  Makes publishing idempotent."""
        return f"{self.hour_start_ms}-0"

    def fields(self) -> dict[str, str]:
        return {
            "hour": str(self.hour),
            "date": self.date,
            "average_temp_f": self.average_2dp,
            "num_observations": str(self.count),
            "sum_temp_f": str(self.total),
        }


@dataclass
class HourlyWindow:
    """The open hour: its start (``None`` when nothing is open), sum and count."""

    hour_start_ms: int | None = None
    total: int = 0
    count: int = 0

    def advance_to(self, ms: int) -> HourAverage | None:
        """Time has reached ``ms`` (a message of that time was seen): close the open hour if it ended."""
        if self.hour_start_ms is not None and ms >= self.hour_start_ms + HOUR_MS:
            return self.close()
        return None

    def close(self) -> HourAverage | None:
        """Close the open hour unconditionally (e.g. when leaving a partition)."""
        if self.hour_start_ms is None:
            return None
        done = HourAverage(self.hour_start_ms, self.total, self.count) if self.count else None
        self.hour_start_ms, self.total, self.count = None, 0, 0
        return done


def fold(window: HourlyWindow, entries, day: tuple[int, int] | None = None
         ) -> tuple[list[HourAverage], list[tuple[object, dict, str]]]:
    """Feed stream entries ``[(id, fields), …]`` (in ID order) into ``window``.

    Returns the hours this closed and the rejected entries ``(id, fields,
    reason)``; ``fields`` is a dict, or the raw ``[name, value, …]`` list when
    a name repeats (see :func:`valid_temp`).  Any entry with a bad value still proves time has reached its
    timestamp, so it closes an hour that ended before it.  With ``day`` (the
    partition's ``[start, end)`` in ms), an entry whose time lies outside it
    was filed in the wrong partition: it is rejected and moves no hour, so one
    stray 2030 timestamp cannot close today and shut out the rest of the day.
    This is the hot loop of the aggregating consumer, so the common case is inlined.
    """
    closed: list[HourAverage] = []
    bad: list[tuple[object, dict, str]] = []
    hs, total, count = window.hour_start_ms, window.total, window.count
    day_lo, day_hi = day if day else (-1 << 63, 1 << 63)
    key, lo, hi, match = b"temp_f", PLAUSIBLE_F[0], PLAUSIBLE_F[1], _TEMP_BYTES.fullmatch
    for eid, fields in entries:
        if isinstance(eid, bytes):
            ms = int(eid[:eid.index(b"-")])
        else:
            ms, key, match = int(eid[:eid.index("-")]), "temp_f", _TEMP_STR.fullmatch
        if not day_lo <= ms < day_hi:
            bad.append((eid, fields, "reading time outside its partition's UTC day"))
            continue
        if hs is not None and ms >= hs + HOUR_MS:
            if count:
                closed.append(HourAverage(hs, total, count))
            hs, total, count = None, 0, 0
        raw = fields.get(key) if len(fields) == 1 else None     # a list (a field given twice) has no .get
        temp = int(raw) if raw is not None and match(raw) else None
        if temp is None or not lo <= temp <= hi:
            reason = valid_temp(fields)
            bad.append((eid, fields, reason if isinstance(reason, str) else "rejected"))
            continue
        if hs is None:
            hs = ms - ms % HOUR_MS
        total += temp
        count += 1
    window.hour_start_ms, window.total, window.count = hs, total, count
    return closed, bad
