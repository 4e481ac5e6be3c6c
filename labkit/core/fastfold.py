"""The fold's fast path: whole batches of raw stream replies folded with numpy.

:func:`labkit.core.window.fold` is the readable version: one reading at a time.
:func:`fold_raw` gives *identical* results (the same closed hours, the same
rejected entries with the same reasons, the same window afterwards) but works
on the reply as the server sent it, ``[[id, [field, value]], ...]``, and parses
a batch in bulk: IDs and values are checked and converted with numpy, and
hours are summed with ``np.add.reduceat``.  A batch with anything unusual in
it (a bad or oddly spelled value, an extra field, a reading outside its
partition's day, IDs of mixed widths) is handed to the plain fold whole, so
every rule lives in one place.

The batches come from :class:`labkit.core.batches.BatchReader`; everything
here is pure.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .partition import HOUR_MS
from .tally import reading_columns
from .window import USUAL_SPELLING, HourAverage, HourlyWindow, fold

_MAX_MS_DIGITS = 18     # so every ms fits an int64


class Parsed(NamedTuple):
    """A batch that passed every check: its times (ms, ascending) and readings, as int64 arrays."""

    ms: np.ndarray
    temps: np.ndarray


def as_entries(raw) -> list[tuple]:
    """Raw entries as :func:`~labkit.core.window.fold` takes them: ``(id, {field: value})``, or
    ``(id, [field, value, …])`` when a field name repeats (a dict would keep only the last one)."""
    out = []
    for e in raw:
        pairs = e[1] if e[1] is not None else []
        d = dict(zip(pairs[::2], pairs[1::2]))
        out.append((e[0], d if 2 * len(d) == len(pairs) else list(pairs)))
    return out


def parse_raw(raw) -> Parsed | None:
    """Times and readings of a raw batch in bulk, or ``None`` if anything in it is unusual.

    Usual means: every entry has exactly one field, ``temp_f``, spelled as
    ``b"%d"`` of a plausible reading; every ID is ``<ms>-<seq>`` in ASCII digits,
    all of one width (so they can be cut into columns), in ascending order.
    """
    columns = reading_columns(raw)
    if columns is None:
        return None
    ids, values = columns
    n = len(ids)
    try:
        temps = np.fromiter(map(USUAL_SPELLING.__getitem__, values), np.int64, n)
        width = len(ids[0])
        if set(map(len, ids)) != {width}:
            return None
        joined = b"".join(ids)
    except (TypeError, KeyError, IndexError, ValueError):   # None, str, a missing part, an unusual value
        return None
    dash = ids[0].find(b"-")
    if not 0 < dash <= _MAX_MS_DIGITS or dash == width - 1:
        return None
    cols = np.frombuffer(joined, np.uint8).reshape(n, width)
    digits = np.delete(cols, dash, axis=1) - np.uint8(48)     # b"0" -> 0; anything below b"0" wraps high
    if digits.max() > 9 or (cols[:, dash] != ord("-")).any():
        return None
    ms = np.zeros(n, np.int64)
    for j in range(dash):
        ms = ms * 10 + digits[:, j]
    if n > 1 and (np.diff(ms) < 0).any():
        return None
    return Parsed(ms, temps)


def fold_parsed(window: HourlyWindow, p: Parsed, day: tuple[int, int] | None = None) -> list[HourAverage] | None:
    """:func:`~labkit.core.window.fold` of a clean batch, hour by hour instead of reading by reading.

    Returns the closed hours, or ``None`` when a reading lies outside ``day``
    (the plain fold rejects those, one by one).
    """
    ms, temps = p.ms, p.temps
    if day and not (day[0] <= int(ms[0]) and int(ms[-1]) < day[1]):
        return None
    closed = []
    hs, total, count = window.hour_start_ms, window.total, window.count
    k = 0
    if hs is not None:
        # The readings before the open hour's end belong to it (they are a prefix: IDs ascend).
        k = int(np.searchsorted(ms, hs + HOUR_MS, side="left"))
        total, count = total + int(temps[:k].sum()), count + k
        if k < len(ms):
            if count:
                closed.append(HourAverage(hs, total, count))
            hs, total, count = None, 0, 0
    if k < len(ms):
        rest_ms, rest = ms[k:], temps[k:]
        hours = rest_ms - rest_ms % HOUR_MS
        starts = np.flatnonzero(np.r_[True, hours[1:] != hours[:-1]])
        sums = np.add.reduceat(rest, starts)
        counts = np.diff(np.r_[starts, len(rest)])
        closed += [HourAverage(int(h), int(s), int(c)) for h, s, c in zip(hours[starts[:-1]], sums[:-1], counts[:-1])]
        hs, total, count = int(hours[starts[-1]]), int(sums[-1]), int(counts[-1])
    window.hour_start_ms, window.total, window.count = hs, total, count
    return closed


def fold_raw(window: HourlyWindow, raw, day: tuple[int, int] | None = None
             ) -> tuple[list[HourAverage], list[tuple[object, dict, str]]]:
    """Exactly ``fold(window, as_entries(raw), day)``, in bulk when the batch is clean."""
    p = parse_raw(raw)
    if p is not None:
        closed = fold_parsed(window, p, day)
        if closed is not None:
            return closed, []
    return fold(window, as_entries(raw), day)
