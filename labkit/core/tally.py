"""Ground truth in bulk: the exact sum and count per hour of a batch of raw readings, in plain Python.

``verify`` needs, for every hour, the exact sum and count of the valid readings the partitions hold:
what the pandas :func:`labkit.core.truth.hourly_truth` computes (the notebooks show that one, and the
tests hold this one to it).  Reading the partitions is most of the work; this module keeps the rest
small, and needs neither numpy nor pandas, so the command starts fast:

- a batch is an XRANGE reply, so its IDs ascend.  When the first and the last ID have millisecond parts
  of one width, every ID between them has that width too, and comparing IDs as bytes orders them as
  numbers: each hour boundary is found by bisection (a few per batch), not by parsing every ID;
- each value is checked and converted by one dict lookup (:data:`~labkit.core.window.USUAL_SPELLING`)
  and summed per hour;
- anything unusual (another field, an odd spelling, a reading outside the partition's day) sends the
  batch entry by entry through :func:`~labkit.core.window.valid_temp`, the rule the fold uses.
"""

from __future__ import annotations

from bisect import bisect_left
from typing import NamedTuple

from .partition import HOUR_MS
from .window import USUAL_SPELLING, valid_temp

_FIELD = b"temp_f"


class Tally(NamedTuple):
    """Exact totals per hour of a batch's valid readings: hour starts (ms), sums and counts (an hour
    may appear in several batches), and the IDs of the entries that count in no hour."""

    hours: list[int]
    sums: list[int]
    counts: list[int]
    invalid: list[bytes]


def reading_value(pairs) -> int | None:
    """The reading of an entry's raw field list by ground truth's rule, or ``None`` if it is invalid.

    Valid by :func:`~labkit.core.window.valid_temp`: exactly one field, ``temp_f`` (a repeated
    ``temp_f`` is not valid), whose value is an optional minus and ASCII digits (bytes that are not UTF-8
    never match), within :data:`~labkit.core.window.PLAUSIBLE_F`.
    """
    if pairs is None:
        return None
    value = valid_temp(pairs)       # the one rule, shared with the fold
    return value if isinstance(value, int) else None


def reading_columns(raw) -> tuple[tuple, tuple] | None:
    """The IDs and the values of a raw batch as two columns, when every entry is exactly one field, ``temp_f``
    (the shape of every reading); ``None`` otherwise, or for an empty batch.  The values are not checked."""
    if not raw:
        return None
    try:
        ids, pairs = zip(*raw)                  # columns: one pass in C each
        if set(map(len, pairs)) != {2}:
            return None
        fields, values = zip(*pairs)
    except (TypeError, ValueError):             # an entry or its fields None, or not a pair
        return None
    return (ids, values) if fields.count(_FIELD) == len(raw) else None


def tally_raw(raw, day: tuple[int, int]) -> Tally:
    """Ground truth of one XRANGE batch of a partition whose UTC day is ``day`` (``[start, end)`` in ms):
    per hour the exact sum and count of its valid readings (:func:`reading_value`, time inside ``day``),
    and the IDs of the rest.

    ``raw`` is the reply as the server sent it, ``[[id, [field, value, …]], …]``, in its order
    (ascending IDs).  A clean batch is summed hour by hour; anything else entry by entry.
    """
    clean = tally_clean(raw, day)
    return clean if clean is not None else tally_each(raw, day)


def tally_clean(raw, day: tuple[int, int]) -> Tally | None:
    """The tally of a batch in which every entry is a usual reading inside ``day``; ``None`` otherwise."""
    columns = reading_columns(raw)
    if columns is None:
        return None
    ids, values = columns
    n = len(ids)
    try:
        first, last = ids[0], ids[-1]
        width = first.index(b"-")
        if last.index(b"-") != width:           # ms parts of two widths: bytes order is not number order
            return None
        t0, t1 = int(first[:width]), int(last[:width])
        if not day[0] <= t0 <= t1 < day[1]:
            return None
        value = USUAL_SPELLING.__getitem__      # KeyError: an unusual spelling or not a reading
        hours, sums, counts = [], [], []
        a, hour = 0, t0 - t0 % HOUR_MS
        while a < n:
            end = hour + HOUR_MS
            b = bisect_left(ids, b"%d-" % end, a) if end <= t1 else n
            if b > a:
                hours.append(hour)
                sums.append(sum(map(value, values[a:b])))
                counts.append(b - a)
            a, hour = b, end
    except (TypeError, KeyError, ValueError, IndexError):   # None, str, a missing part, an unusual value
        return None
    return Tally(hours, sums, counts, [])


def tally_each(raw, day: tuple[int, int]) -> Tally:
    """The tally entry by entry, by the plain rule: any batch, in any order."""
    lo, hi = day
    per_hour: dict[int, list[int]] = {}
    invalid = []
    for eid, pairs in raw:
        ms = int(eid[:eid.index(b"-")])
        value = reading_value(pairs) if lo <= ms < hi else None
        if value is None:
            invalid.append(eid)
            continue
        acc = per_hour.setdefault(ms - ms % HOUR_MS, [0, 0])
        acc[0] += value
        acc[1] += 1
    hours = sorted(per_hour)
    return Tally(hours, [per_hour[h][0] for h in hours], [per_hour[h][1] for h in hours], invalid)
