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

:func:`tally_raw` is ground truth's bulk path: the exact sum and count per
hour of a batch's valid readings, order aside, as the pandas
:func:`labkit.core.truth.hourly_truth` computes them (``verify`` uses it).

:class:`BatchReader` reads a stream over one dedicated connection (on a
cluster, to the stream's master) and asks for batch N+1 before handing over
batch N, so the server prepares the next batch while the caller folds this one.

The fold and the tally are pure; only :class:`BatchReader` talks to Redis.
"""

from __future__ import annotations

import gc
from contextlib import contextmanager
from typing import Callable, NamedTuple

import numpy as np
import redis

from ..servers import connection
from .partition import HOUR_MS
from .window import PLAUSIBLE_F, HourAverage, HourlyWindow, fold, valid_temp

_FIELD = b"temp_f"
#: The usual spelling of every valid reading (``-150`` ... ``200``).  Valid but
#: unusual spellings (``007``, ``-0``) are not here: those batches go to the plain fold.
_VALUES = {b"%d" % v: v for v in range(PLAUSIBLE_F[0], PLAUSIBLE_F[1] + 1)}
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
    n = len(raw)
    if not n:
        return None
    try:
        ids, pairs = zip(*raw)                  # columns: one pass in C each
        if set(map(len, pairs)) != {2}:
            return None
        fields, values = zip(*pairs)
        if fields.count(_FIELD) != n:
            return None
        temps = np.fromiter(map(_VALUES.__getitem__, values), np.int64, n)
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


def xrange_raw(r: redis.Redis, key: str, start: bytes | str, count: int) -> list:
    """XRANGE as the server sends it, ``[[id, [field, value, …]], …]`` (no dicts built, nothing hidden).
    On a cluster it asks the node that serves ``key``, rereading the layout once if a failover moved it."""
    for attempt in (1, 2):
        node = connection.node_client(r, key)
        conn = connection.pooled_connection(node)
        try:
            conn.send_command("XRANGE", key, start, "+", "COUNT", count)
            return conn.read_response(disable_decoding=True) or []
        except redis.ResponseError as exc:
            if attempt == 2 or not (connection.is_cluster(r) and connection.relayout(exc)):
                raise
            connection.refresh(r)
        except BaseException:
            conn.disconnect()
            raise
        finally:
            node.connection_pool.release(conn)
    raise AssertionError("unreachable")


@contextmanager
def paused_gc():
    """Pause Python's cyclic garbage collector inside the block (restoring it after, if it was on).

    A batch reply is hundreds of thousands of small lists; collection passes
    over them while they are built cost more than building them.  None of them
    form cycles, so nothing is lost: they are freed by reference counting.
    """
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


class BatchReader:
    """Reads stream batches over one dedicated connection, one request ahead.

    ``read(stream, after)`` returns ``(replies, entries)``: the raw entries after
    ID ``after`` (at most ``count``), and the replies to the commands
    ``before(stream)`` names, which are sent in the same pipeline just before
    the read (e.g. a completeness marker), so they describe the same moment as
    the batch.  When a batch is full the next request, for ``(stream, last ID)``,
    is sent before the batch is returned; the next ``read`` with that
    position takes its reply, any other position throws it away.

    On a Redis Cluster the connection is to the master that serves ``stream``
    (:func:`~labkit.servers.connection.node_client`), so ``before`` may name
    only keys of its slot; ``first(stream)`` runs before each request is sent
    (through the cluster client: any key) and its replies come first.  A
    redirection (a failover moved the slot) rereads the layout and is raised
    as a lost connection, which the callers resume from.

    Holds at most the batch it returned and the one in flight.
    """

    def __init__(self, r: redis.Redis, count: int = 50_000,
                 before: Callable[[str], list[tuple]] | None = None,
                 first: Callable[[str], list] | None = None):
        self.r, self.count, self.before, self.first = r, count, before, first
        self.node: redis.Redis | None = None      # the client whose pool ``conn`` came from
        self.conn = None
        self.ahead: tuple[str, bytes] | None = None    # the request in flight
        self.ahead_replies = 0
        self.ahead_first: list = []

    def _connection(self, stream: str):
        """The connection to the server of ``stream`` (on one server: always the same one)."""
        node = connection.node_client(self.r, stream)
        if node is not self.node:
            self._release()
            self.node, self.conn = node, connection.pooled_connection(node)
        return self.conn

    def _send(self, stream: str, after: bytes) -> None:
        pre = list(self.first(stream)) if self.first else []
        conn = self._connection(stream)
        cmds = list(self.before(stream)) if self.before else []
        start = b"-" if after in (b"0", b"0-0") else b"(" + after
        cmds.append(("XRANGE", stream, start, "+", "COUNT", self.count))
        conn.send_packed_command(conn.pack_commands(cmds), check_health=False)
        self.ahead, self.ahead_replies, self.ahead_first = (stream, after), len(cmds), pre

    def _receive(self) -> tuple[list, list]:
        with paused_gc():
            replies = [self.conn.read_response(disable_decoding=True) for _ in range(self.ahead_replies)]
        self.ahead = None
        return self.ahead_first + replies[:-1], replies[-1] or []

    def read(self, stream: str, after: str | bytes) -> tuple[list, list]:
        after = after.encode() if isinstance(after, str) else after
        try:
            if self.ahead is not None and self.ahead != (stream, after):
                self._receive()                 # asked for the wrong position: drop it
            if self.ahead is None:
                self._send(stream, after)
            replies, entries = self._receive()
            if len(entries) == self.count:
                self._send(stream, entries[-1][0])
        except BaseException as exc:
            if self.conn is not None:
                self.conn.disconnect()          # replies may be left unread: start afresh next time
            self.ahead = None
            if connection.is_cluster(self.r) and connection.relayout(exc):
                raise connection.moved_to_lost(self.r, exc) from None
            raise
        return replies, entries

    def _release(self) -> None:
        if self.conn is not None:
            self.node.connection_pool.release(self.conn)
            self.node, self.conn = None, None

    def close(self) -> None:
        if self.ahead is not None:
            self.conn.disconnect()
            self.ahead = None
        self._release()


class Tally(NamedTuple):
    """Exact per-hour totals of a batch's valid readings (hour starts in ms, not necessarily distinct or in
    order across batches), and the IDs of the entries that count in no hour."""

    hours: np.ndarray
    sums: np.ndarray
    counts: np.ndarray
    invalid: list


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


def tally_raw(raw, day: tuple[int, int]) -> Tally:
    """Ground truth of one raw batch of a partition whose UTC day is ``day``: per hour the exact sum and
    count of its valid readings (:func:`reading_value`, time inside ``day``), and the IDs of the rest.

    What :func:`labkit.core.truth.hourly_truth` computes with pandas, in bulk: a clean batch (see
    :func:`parse_raw`) is summed per hour with numpy in int64, anything else entry by entry.  Unlike the
    fold, order plays no part: a reading counts in its own hour wherever it stands.
    """
    lo, hi = day
    p = parse_raw(raw)
    if p is not None:
        ms, temps, invalid = p.ms, p.temps, []
        inside = (ms >= lo) & (ms < hi)
        if not inside.all():
            invalid = [raw[i][0] for i in np.flatnonzero(~inside)]
            ms, temps = ms[inside], temps[inside]
        if not len(ms):
            return Tally(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64), invalid)
        hours = ms - ms % HOUR_MS          # ascending, like the IDs
        starts = np.flatnonzero(np.r_[True, hours[1:] != hours[:-1]])
        return Tally(hours[starts], np.add.reduceat(temps, starts), np.diff(np.r_[starts, len(ms)]), invalid)
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
    return Tally(np.array(hours, np.int64), np.array([per_hour[h][0] for h in hours], np.int64),
                 np.array([per_hour[h][1] for h in hours], np.int64), invalid)
