"""Exercises in the lab notebooks: the learner writes or predicts, a check says plainly if it is right.

In a notebook::

    def partition_of(ms):
        ...                                   # the learner's code
    ex.check("partition_of", partition_of)    # ✓ right / ✗ not right yet: … expected … / not solved yet

An exercise not yet done (a function that still returns ``None``, a prediction
still ``None``) says "not solved yet" and the notebook goes on: Run All never
stops on an exercise, and an error in the learner's code is reported in one
line.  Whatever the answer is (a Series where a datetime was asked, nan, a dict
of dicts), reading it never raises out of the check: :func:`_examine` is the one
place the learner's answer is read and compared, and a wrong kind of answer that
happens to compare equal (a one-element array, ``"140"``, ``140.9``) is wrong.
Every check compares with something independent of the reference solution:
labkit's own pure functions, ground truth from the raw readings, or what the
server measured.

With ``LABKIT_SOLUTIONS=1`` the reference solutions in :mod:`labkit.notebook.solutions`
are checked instead of the learner's answers, and a check that fails raises:
CI runs every notebook that way too.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import math
import numbers
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Callable

from ..core.partition import (
    DAY_MS,
    HOUR_MS,
    day_start_ms,
    id_ms,
    next_partition,
    parse_partition,
    partition_for_ms,
)
from ..core import progress
from ..core.window import HourAverage, HourlyWindow, fold
from ..errors import LabkitError
from ..servers.replies import text


class NotSolved(Exception):
    """The answer is still the notebook's placeholder."""


class ExerciseFailed(AssertionError):
    """A reference solution failed its check (only with ``LABKIT_SOLUTIONS=1``)."""


@dataclass(frozen=True)
class Outcome:
    number: int
    title: str
    status: str                 # "solved", "wrong" or "unsolved"
    detail: str
    reference: bool             # the reference solution was checked (LABKIT_SOLUTIONS=1)

    @property
    def solved(self) -> bool:
        return self.status == "solved"

    def __repr__(self) -> str:
        head = f"Exercise {self.number} · {self.title}"
        if self.reference:
            head += " (the reference solution, LABKIT_SOLUTIONS=1)"
        mark = {"solved": "✓ right", "wrong": "✗ not right yet", "unsolved": "… not solved yet"}[self.status]
        return f"{head}\n{mark}: {self.detail}"

    def _repr_html_(self) -> str:
        """The same two lines, with ✓/✗ in colour and wrapped between words."""
        import html
        from .panel import status_css
        head, rest = repr(self).split("\n", 1)
        mark, detail = rest.split(": ", 1)
        cls = {"solved": "labkit-ok", "wrong": "labkit-bad"}.get(self.status, "")
        return (f'{status_css()}<div class="labkit-check"><b>{html.escape(head)}</b>\n'
                f'<b class="{cls}">{html.escape(mark)}</b>: {html.escape(detail)}</div>')


@dataclass(frozen=True)
class Exercise:
    number: int
    title: str
    checker: Callable[..., str]   # returns what was right; raises NotSolved, or Wrong with what was expected


class Wrong(Exception):
    """The answer is wrong; the message says what was expected."""


def solutions_mode() -> bool:
    """``LABKIT_SOLUTIONS=1``: check the reference solutions instead of the learner's answers."""
    raw = os.environ.get("LABKIT_SOLUTIONS", "").strip()
    if raw not in ("", "0", "1"):
        raise LabkitError(f"LABKIT_SOLUTIONS={raw!r} is not 0 or 1",
                          "set LABKIT_SOLUTIONS=1 to run the reference solutions, or unset it")
    return raw == "1"


_results: dict[str, str] = {}     # name -> status, for this kernel's summary()


def check(name: str, answer, **context) -> Outcome:
    """Check ``answer`` to exercise ``name``; an :class:`Outcome` that displays itself in one line."""
    if name not in EXERCISES:
        raise LabkitError(f"there is no exercise {name!r}", "names: " + ", ".join(EXERCISES))
    ex = EXERCISES[name]
    reference = solutions_mode()
    if reference:
        from . import solutions
        answer = getattr(solutions, name)
    try:
        status, detail = "solved", ex.checker(answer, **context)
    except NotSolved as exc:
        status, detail = "unsolved", str(exc) or "write your answer in the cell above, then run this cell again"
    except Wrong as exc:
        status, detail = "wrong", str(exc)
    outcome = Outcome(ex.number, ex.title, status, detail, reference)
    _results[name] = status
    progress.note("exercise", name, status, number=ex.number)
    if reference and status != "solved":
        raise ExerciseFailed(repr(outcome))
    return outcome


def summary() -> str:
    """How many of the exercises checked in this kernel are solved."""
    done = [n for n, s in _results.items() if s == "solved"]
    todo = [f"{EXERCISES[n].number} ({n})" for n, s in _results.items() if s != "solved"]
    text = f"exercises: {len(done)} of {len(_results)} solved"
    return text + (f"; not yet: {', '.join(todo)}" if todo else "")


# --------------------------------------------------------------------- checking helpers

def _call(fn, *args):
    """Call the learner's function; its errors become one line, never a traceback."""
    if fn is None:
        raise NotSolved("write the function in the cell above, then run this cell again")
    if not callable(fn):
        raise Wrong(f"expected a function, got {_seen(fn)}")
    try:
        return fn(*args)
    except NotImplementedError:
        raise NotSolved("the function still raises NotImplementedError") from None
    except Exception as exc:
        args_text = ", ".join(_short(a) for a in args)
        raise Wrong(f"calling it with ({args_text}) raised {type(exc).__name__}: {_one_line(str(exc), 200)}") from None


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 40 else type(value).__name__


def _one_line(text: str, width: int = 60) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[:width - 1] + "…"


def _shown(value) -> str:
    """The start of ``value``'s repr, on one line."""
    try:
        return _one_line(repr(value))
    except Exception:           # the learner's own class, with a repr that fails
        return "(an object that cannot be shown)"


def _seen(value) -> str:
    """What the learner's answer is, in a few words: its type, then the start of its repr."""
    shown, kind = _shown(value), type(value).__name__
    return shown if value is None or shown.startswith(kind) else f"{kind} {shown}"


def _examine(got, look: Callable, expected: str):
    """``look(got)``: the one place a learner's answer is read and compared.

    ``look`` turns the answer into plain values (or a verdict) and may fail on any answer it was not written for:
    ``len`` of a number, ``[0]`` of a dict, the truth of a Series.  Any such error means the answer is not what
    was asked for, so it becomes one line, "expected …; got …", never a traceback.
    """
    try:
        return look(got)
    except (NotSolved, Wrong):
        raise
    except Exception:
        raise Wrong(f"expected {expected}; got {_seen(got)}") from None


def _finite(x) -> float:
    """``x`` as a float, if it is a finite number: text, ``True``, nan and inf are not."""
    if isinstance(x, bool) or not isinstance(x, numbers.Real):
        raise TypeError(f"not a number: {x!r}")
    x = float(x)                # OverflowError for an int too big for a float
    if not math.isfinite(x):
        raise ValueError(f"not finite: {x}")
    return x


def _whole(x) -> int:
    """``x`` as an int, if it is a whole number: ``140``, ``np.int64(140)`` or ``140.0``, not ``140.9`` or ``"140"``."""
    if isinstance(x, numbers.Integral) and not isinstance(x, bool):
        return int(x)
    x = _finite(x)
    if not x.is_integer():
        raise ValueError(f"not a whole number: {x}")
    return int(x)


def _pair(got) -> tuple[int, int]:
    """A ``(sum, count)`` answer as two ints: a tuple or list of exactly two whole numbers."""
    if not isinstance(got, (tuple, list)) or len(got) != 2:
        raise TypeError("not a pair")
    return _whole(got[0]), _whole(got[1])


def _a(kinds) -> str:
    return "a " + " or ".join(k.__name__ for k in (kinds if isinstance(kinds, tuple) else (kinds,)))


def _cases(fn, name: str, cases: list[tuple[tuple, object, str]], same=lambda got, want: got == want,
           kind: type | tuple | None = None) -> str:
    """Run ``fn`` on each ``(args, expected, why)``; the first ``None`` means not solved yet.

    The answer must be of ``kind`` (by default the expected value's type) before it is compared: a one-element
    array or DatetimeIndex compares equal to a datetime, but it is not one."""
    for i, (args, want, why) in enumerate(cases):
        got = _call(fn, *args)
        if got is None and i == 0:
            raise NotSolved("the function still returns None: write its body, then run this cell again")
        call = f"{name}({', '.join(map(repr, args))})"
        because = f" ({why})" if why else ""
        kinds = kind or type(want)
        if not isinstance(got, kinds):
            raise Wrong(f"{call} returned {_seen(got)}; expected {want!r}, {_a(kinds)}{because}")
        if not _examine(got, lambda g: bool(same(g, want)), f"{want!r} from {call}"):
            raise Wrong(f"{call} returned {_shown(got)}; expected {want!r}{because}")
    return f"all {len(cases)} cases give the expected answer"


def _prediction(value, look: Callable = _finite, expected: str = "a number"):
    """The learner's prediction read by ``look`` (:func:`_finite`, :func:`_whole`); ``None`` is not solved yet."""
    if value is None:
        raise NotSolved("set your prediction in the cell above (replace None), then run this cell again")
    return _examine(value, look, expected)


def _utc(ms: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ms / 1000, dt.timezone.utc)


_IDS = [(1735689600000, "the first reading of the dataset"), (1736035200000, "the course's example, 2025-01-05"),
        (1735702767000, "mid-hour"), (1735775999999, "the last millisecond of a day"),
        (1738367999000, "the last second of January")]


#: Zones with an offset, as POSIX TZ rules (no time zone database needed): a check of a time exercise runs the
#: learner's code under each of them too, so ``datetime.fromtimestamp(ms / 1000)`` without a zone is caught even
#: on a machine (a container, CI) whose clock is in UTC.
ZONES = [("UTC-5, New York", "EST5EDT,M3.2.0,M11.1.0"), ("UTC+5:30, Kolkata", "IST-5:30"),
         ("UTC+14, Kiribati", "LINT-14")]


@contextlib.contextmanager
def _zone(rule: str):
    """Run the block with the process's local time zone set to ``rule`` (``TZ``), then put it back."""
    old = os.environ.get("TZ")
    os.environ["TZ"] = rule
    time.tzset()
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("TZ", None)
        else:
            os.environ["TZ"] = old
        time.tzset()


def _cases_in_zones(fn, name: str, cases, same=lambda got, want: got == want, kind=None) -> str:
    """:func:`_cases` with the process's clock in UTC, then in each of :data:`ZONES`: the answer is a UTC fact,
    whatever the computer's time zone (where the zone cannot be changed, Windows, on the clock as it is)."""
    if not hasattr(time, "tzset"):
        return _cases(fn, name, cases, same, kind)
    with _zone("UTC0"):
        done = _cases(fn, name, cases, same, kind)
    for label, rule in ZONES:
        try:
            with _zone(rule):
                _cases(fn, name, cases, same, kind)
        except Wrong as exc:
            raise Wrong(f"right while the computer's clock is in UTC, but with the clock in {label}: {exc}. "
                        "The answer must not depend on the computer's time zone: give datetime.fromtimestamp "
                        "tz=datetime.timezone.utc") from None
    return done + f", with the clock in UTC and in {', '.join(label for label, _ in ZONES)}"


# --------------------------------------------------------------------- the exercises

def _reading_time(fn) -> str:
    def same(got, want):
        if isinstance(got, dt.datetime) and got.tzinfo is None:
            raise Wrong("it returned a naive datetime: make it UTC-aware (tz=datetime.timezone.utc), "
                        "otherwise it reads as local time")
        if isinstance(got, dt.datetime) and got.utcoffset() != dt.timedelta(0):
            raise Wrong(f"it returned {got.isoformat()}, in the computer's zone: make it UTC "
                        "(tz=datetime.timezone.utc)")
        return got == want
    return _cases_in_zones(fn, "reading_time", [((f"{ms}-0",), _utc(ms), why) for ms, why in _IDS], same)


def _partition_of(fn) -> str:
    cases = [((ms,), partition_for_ms(ms), why) for ms, why in _IDS]
    cases.append(((1735776000000,), partition_for_ms(1735776000000), "midnight UTC starts the next day"))
    return _cases_in_zones(fn, "partition_of", cases)


def _next_partition_name(fn) -> str:
    cases = [(("temps:20250101",), None, ""), (("temps:20250131",), None, "across a month end"),
             (("temps:20241231",), None, "across a year end"), (("temps:20240228",), None, "2024 is a leap year"),
             (("temps:20250228",), None, "2025 is not")]
    return _cases(fn, "next_partition_name", [(a, next_partition(a[0]), why) for a, _, why in cases])


def _ttl_gap_hours(prediction, ttls_h: list[float] | None = None) -> str:
    p = _prediction(prediction, _finite, "a number of hours")
    want = DAY_MS / HOUR_MS          # each partition expires a day after the one before (labkit.core.producer)
    seen = ""
    if ttls_h and len(ttls_h) >= 2:
        gaps = [round(b - a, 1) for a, b in zip(ttls_h, ttls_h[1:])]
        seen = f"; measured on the server: {', '.join(f'{g:g}' for g in gaps)} h"
    if abs(p - want) > 0.5:
        raise Wrong(f"you predicted {p:g} h; the TTLs step by {want:g} h, one day per partition{seen}")
    return f"{want:g} h: a partition expires one day after the one before it{seen}"


def _noon_readings(fn, r, partition: str, prefix: str | None = None) -> str:
    prefix = prefix if prefix is not None else partition[:partition.rindex(":") + 1]
    noon = day_start_ms(parse_partition(partition, prefix)) + 12 * HOUR_MS
    got = _call(fn, r, partition)
    if got is None:
        raise NotSolved("the function still returns None: write its body, then run this cell again")
    want = [e[0].decode() for e in r.xrange(partition, noon, noon + 9_000)]
    ids = _examine(got, _entry_ids, "the entries as XRANGE returns them, [(id, fields), …]")
    if ids != want:
        raise Wrong(f"got {len(ids)} entries ({', '.join(ids[:2])}{', …' if len(ids) > 2 else ''}); expected "
                    f"{len(want)}, from {want[0] if want else '(none)'} to {want[-1] if want else '(none)'}: "
                    "XRANGE's bounds are inclusive")
    return f"{len(ids)} entries, {ids[0]} … {ids[-1]}" if ids else "no readings at noon in this partition"


def _entry_ids(got) -> list[str]:
    """The IDs of a list of entries as XRANGE returns them; anything else raises."""
    if not isinstance(got, (list, tuple)):
        raise TypeError("not a list")
    for entry in got:
        if not (isinstance(entry, (tuple, list)) and len(entry) == 2 and isinstance(entry[0], (bytes, str))
                and isinstance(entry[1], Mapping)):
            raise TypeError("not an (id, fields) entry")
    return [text(entry[0]) for entry in got]


def _hourly_means(fn, readings) -> str:
    """The partition given, then the same readings as two days in a row: grouping by the hour *of the day*
    (``time.dt.hour``) is right for one day and wrong across days, where 00:00 of both days would be one group."""
    done = _means_match(fn, readings)
    two = _two_days(readings)
    try:
        _means_match(fn, two)
    except Wrong as exc:
        raise Wrong(f"right for one day, but not for readings spanning {len(_hours(two))} hours over two days: {exc}. "
                    "Group by the hour's start (ms // 3_600_000), not by the hour of the day, which puts 00:00 "
                    "of every day in one group") from None
    return done + "; also across two days"


def _hours(readings):
    from ..core.truth import hourly_truth
    return hourly_truth(readings)


def _two_days(readings):
    """``readings`` followed by a copy of them (other temperatures) starting right after their last hour."""
    import pandas as pd
    first = int(readings["ms"].min()) // HOUR_MS * HOUR_MS
    shift = (int(readings["ms"].max()) // HOUR_MS + 1) * HOUR_MS - first
    later = readings.copy()
    later["ms"] = later["ms"] + shift
    if "day_ms" in later:
        later["day_ms"] = later["day_ms"] + shift
    temps = pd.to_numeric(later["temp_f"])
    later["temp_f"] = (100 - temps).astype(readings["temp_f"].dtype)
    if "time" in later:
        later["time"] = pd.to_datetime(later["ms"], unit="ms", utc=True)
    return pd.concat([readings, later], ignore_index=True)


def _means_match(fn, readings) -> str:
    want = _hours(readings)["mean"].tolist()
    got = _call(fn, readings.copy())
    if got is None:
        raise NotSolved("the function still returns None: write its body, then run this cell again")
    values = _examine(got, _hourly_values, "one mean per hour, oldest first, as a pandas Series")
    if len(values) != len(want):
        raise Wrong(f"got {len(values)} hourly means; the readings have {len(want)} hours")
    for i, (g, w) in enumerate(zip(values, want)):
        if not abs(g - w) <= 1e-9:        # written so that nan is not close to anything
            raise Wrong(f"hour {i}: got {g}, expected {w} (the exact mean of that hour's readings)")
    return f"{len(want)} hourly means, equal to ground truth (first {want[0]:.4f} °F)"


def _hourly_values(got) -> list[float]:
    """The numbers of a Series, a DataFrame's mean column, a dict by hour or a list; nan stays, text does not."""
    if isinstance(got, Mapping):
        values = [got[k] for k in sorted(got)]
    elif hasattr(got, "columns"):
        cols = [c for c in got.columns if "mean" in str(c)] or list(got.columns)
        values = got[cols[0]].tolist()
    else:
        values = list(getattr(got, "values", got))
    for v in values:
        if isinstance(v, bool) or not isinstance(v, numbers.Real):
            raise TypeError(f"not a number: {v!r}")
    return [float(v) for v in values]


def _hour_of(fn) -> str:
    def hour(ms):
        h = HourAverage(ms - ms % HOUR_MS, 0, 1)
        return (h.date, h.hour)

    def same(got, want):
        return len(got) == 2 and isinstance(got[0], str) and (got[0], _whole(got[1])) == want
    return _cases_in_zones(fn, "hour_of", [((f"{ms}-0",), hour(ms), why) for ms, why in _IDS], same,
                           kind=(tuple, list))


def _hourly_sums(fn, entries) -> str:
    window = HourlyWindow()
    closed, _ = fold(window, entries)
    want = {h.hour_start_ms: (h.total, h.count) for h in closed}
    if window.count:
        want[window.hour_start_ms] = (window.total, window.count)
    got = _call(fn, entries)
    if got is None:
        raise NotSolved("the function still returns None: write its body, then run this cell again")
    got = _examine(got, _hour_sums, "{hour start ms: (sum, count)}, whole numbers in a dict")
    if got != want:
        _name_the_key_mistake(got, want)
        bad = [h for h in sorted(set(want) | set(got)) if got.get(h) != want.get(h)][0]
        raise Wrong(f"for the hour starting {bad} ({_utc(bad):%Y/%m/%d %H}:00): got {got.get(bad)}, "
                    f"expected {want.get(bad)}")
    return f"{len(want)} hours, sums and counts exact for {len(entries):,} readings"


def _hour_sums(got) -> dict[int, tuple[int, int]]:
    """A ``{hour start ms: (sum, count)}`` answer as ints; text keys, fractions or ``{"sum": …}`` values raise."""
    if not isinstance(got, Mapping):
        raise TypeError("not a dict")
    return {_whole(k): _pair(v) for k, v in got.items()}


def _name_the_key_mistake(got: dict, want: dict) -> None:
    """The usual wrong keys of :func:`_hourly_sums`: the right sums under another name for the hour."""
    if sorted(got.values()) != sorted(want.values()) or not want:
        return
    h = min(want)
    for kind, key in [("the hour's number since 1970 (ms // 3_600_000)", lambda ms: ms // HOUR_MS),
                      ("the hour of the day (0–23)", lambda ms: _utc(ms).hour),
                      ("the hour's start in seconds", lambda ms: ms // 1000)]:
        if {key(k): v for k, v in want.items()} == got:
            raise Wrong(f"the sums and counts are right, but each is keyed by {kind}, e.g. {key(h)}, where the "
                        f"hour's start in milliseconds is wanted, e.g. {h} ({_utc(h):%Y/%m/%d %H}:00): "
                        "ms - ms % 3_600_000")


def _crash_position(choice, state: dict | None = None, batch: int | None = None) -> str:
    if choice is None:
        raise NotSolved("set your choice, 'a', 'b' or 'c', in the cell above, then run this cell again")
    c = _examine(choice, lambda c: str(c).strip().lower(), "'a', 'b' or 'c'")
    if c not in ("a", "b", "c"):
        raise Wrong(f"choose 'a', 'b' or 'c', not {_shown(choice)}")
    evidence = where = open_hour = ""
    if state:
        open_hour = (f" (here current_hourly_count {state.get('current_hourly_count')}, current_hourly_total "
                     f"{state.get('current_hourly_total')})")
    if state and batch:
        lid = state["last_message_id"]
        name = state["current_stream_key"]
        n = (id_ms(lid) - day_start_ms(parse_partition(name, name[:name.rindex(":") + 1]))) // 1000 + 1
        where = f"; here last_message_id {lid} is reading {n:,} of {name}"
        evidence = (f"; here last_message_id {lid} is reading {n:,} of {name}, "
                    f"{'exactly' if n % batch == 0 else 'not'} a multiple of the batch size {batch:,}")
    if c == "a":
        raise Wrong("(a) would mean the position is saved as the thread reads; it is not: the consumer writes its "
                    "state itself, in one step with what it publishes, and a thread killed mid-batch writes "
                    f"nothing more{where}")
    if c == "c":
        raise Wrong("(c) would tie the position to the last published hour, but the state also holds the open "
                    f"hour's sum and count{open_hour}: it can point into the middle of an hour{where}")
    return f"(b): the state is committed with each batch, so it points at a batch's last reading{evidence}"


def _open_hour_from_partition(fn, r, state: dict) -> str:
    want = (int(state["current_hourly_total"]), int(state["current_hourly_count"]))
    got = _call(fn, r, state)
    if got is None:
        raise NotSolved("the function still returns None: write its body, then run this cell again")
    got = _examine(got, _pair, "(sum, count), two whole numbers")
    if got != want:
        raise Wrong(f"got (sum, count) = {got}; the saved state says {want}: read from the start of the hour "
                    "of last_message_id up to it, both ends included")
    return f"(sum, count) = {want}, as saved in the state hash"


def _xlen_after_cap(prediction, measured: int, node: int = 100) -> str:
    p = _prediction(prediction, _whole, "a whole number of entries, as XLEN replies")
    if p == measured:
        return f"exactly {measured}: at least 120, and less than 120 plus one node ({node} entries)"
    if p == 120:
        raise Wrong(f"'~' never cuts inside a node, so it keeps more than 120 here: XLEN is {measured}")
    if 120 < p < 120 + node:
        raise Wrong(f"more than 120 is right, but not {p}: XLEN is {measured}. Count the nodes: when can the oldest "
                    f"whole node of {node} go, and what do the XADDs after that leave?")
    raise Wrong(f"you predicted {p}; XLEN is {measured}: at least 120, and less than 120 + one node ({node})")


def _node_of(fn, ranges: list, placed: dict | None = None) -> str:
    """``ranges`` is CLUSTER NODES' ``(first, last, node)``; ``placed`` maps keys to the node found holding them."""
    from redis.crc import key_slot
    cases = [((a, ranges), node, "the first slot of its range") for a, b, node in ranges]
    cases += [((b, ranges), node, "the last slot of its range") for a, b, node in ranges]
    cases += [((key_slot(k.encode()), ranges), node, f"the slot of {k}, found on {node} (EXISTS)")
              for k, node in (placed or {}).items()]
    return _cases(fn, "node_of", cases)


EXERCISES: dict[str, Exercise] = {
    "reading_time": Exercise(1, "When was this reading taken?", _reading_time),
    "partition_of": Exercise(2, "Which partition holds a reading?", _partition_of),
    "next_partition_name": Exercise(3, "The next partition, across a month end", _next_partition_name),
    "ttl_gap_hours": Exercise(4, "Predict, then look: how far apart do partitions expire?", _ttl_gap_hours),
    "noon_readings": Exercise(5, "Ten seconds at noon, with XRANGE", _noon_readings),
    "hourly_means": Exercise(6, "The hourly means of a partition, with pandas", _hourly_means),
    "hour_of": Exercise(7, "The hour of a message ID", _hour_of),
    "hourly_sums": Exercise(8, "One batch of the aggregating consumer", _hourly_sums),
    "crash_position": Exercise(9, "Predict: what will last_message_id be after a crash?", _crash_position),
    "open_hour_from_partition": Exercise(10, "Rebuild the open hour from the raw readings",
                                         _open_hour_from_partition),
    "xlen_after_cap": Exercise(11, "Predict XLEN after 240 XADDs with MAXLEN ~ 120", _xlen_after_cap),
    "node_of": Exercise(12, "Which master serves a hash slot?", _node_of),
}
