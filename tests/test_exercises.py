"""The exercises' checks: a reference solution passes, a placeholder is "not solved yet", a wrong answer says
what was expected, and nothing a learner writes stops the notebook.

The checks that read Redis run on the test server, on a small dataset in the test's namespace.
"""

from __future__ import annotations

import datetime as dt
import inspect
import os
import time

import numpy as np
import pandas as pd
import pytest

from labkit.notebook import exercises as ex
from labkit.core import producer
from labkit.notebook import solutions
from labkit.core.truth import load_readings

PURE = ["reading_time", "partition_of", "next_partition_name", "hour_of"]


def stub(*args):
    ...


@pytest.fixture(autouse=True)
def shipped(monkeypatch):
    monkeypatch.delenv("LABKIT_SOLUTIONS", raising=False)
    ex._results.clear()


@pytest.fixture
def dataset(r, keys):
    producer.produce(r, producer.Dataset(producer.parse_start("2025-01-01"), 1.5), keys)
    return [keys.partition_prefix + "20250101", keys.partition_prefix + "20250102"]


def test_there_are_at_least_eight_exercises_numbered_in_order():
    numbers = [e.number for e in ex.EXERCISES.values()]
    assert len(numbers) >= 8 and numbers == list(range(1, len(numbers) + 1))
    assert all(hasattr(solutions, name) for name in ex.EXERCISES)


@pytest.mark.parametrize("name", PURE)
def test_pure_exercises(name):
    assert ex.check(name, getattr(solutions, name)).status == "solved"
    out = ex.check(name, stub)
    assert out.status == "unsolved" and "not solved yet" in repr(out)


def test_wrong_answers_say_what_was_expected():
    naive_next = lambda name: name[:-2] + f"{int(name[-2:]) + 1:02d}"            # noqa: E731
    out = ex.check("next_partition_name", naive_next)
    assert out.status == "wrong"
    assert "next_partition_name('temps:20250131') returned 'temps:20250132'; expected 'temps:20250201'" in out.detail

    local = lambda ms: f"temps:{dt.datetime.fromtimestamp(ms / 1000) + dt.timedelta(hours=5):%Y%m%d}"  # noqa: E731
    assert ex.check("partition_of", local).status == "wrong"

    naive = lambda entry_id: dt.datetime.utcfromtimestamp(int(entry_id.split("-")[0]) / 1000)  # noqa: E731
    out = ex.check("reading_time", naive)
    assert out.status == "wrong" and "UTC-aware" in out.detail

    assert ex.check("hour_of", lambda entry_id: ("2025-01-01", 0)).status == "wrong"


def test_errors_in_the_learners_code_are_one_line():
    out = ex.check("hour_of", lambda entry_id: 1 / 0)
    assert out.status == "wrong" and "raised ZeroDivisionError: division by zero" in out.detail
    assert "Traceback" not in repr(out)
    assert ex.check("hour_of", None).status == "unsolved"
    assert ex.check("hour_of", "temps:20250101").status == "wrong"


def _not_implemented(entry_id):
    raise NotImplementedError


def test_not_implemented_counts_as_not_solved():
    assert ex.check("hour_of", _not_implemented).status == "unsolved"


def test_predictions():
    assert ex.check("ttl_gap_hours", None).status == "unsolved"
    assert ex.check("ttl_gap_hours", 24, ttls_h=[48.0, 72.0, 96.0]).status == "solved"
    out = ex.check("ttl_gap_hours", 48, ttls_h=[48.0, 72.0])
    assert out.status == "wrong" and "24" in out.detail
    assert ex.check("ttl_gap_hours", "many").status == "wrong"

    assert ex.check("xlen_after_cap", 140, measured=140, node=100).detail.startswith("exactly 140")
    assert ex.check("xlen_after_cap", 200, measured=140, node=100).status == "wrong"
    assert ex.check("xlen_after_cap", 120, measured=140, node=100).status == "wrong"
    assert ex.check("xlen_after_cap", 240, measured=140, node=100).status == "wrong"

    assert ex.check("crash_position", None).status == "unsolved"
    assert ex.check("crash_position", "B").status == "solved"
    assert ex.check("crash_position", "a").status == "wrong"
    assert ex.check("crash_position", "z").status == "wrong"


def test_solutions_mode_checks_the_reference_and_fails_loudly(monkeypatch):
    monkeypatch.setenv("LABKIT_SOLUTIONS", "1")
    out = ex.check("hour_of", stub)                 # the learner's stub is ignored
    assert out.solved and out.reference and "reference solution" in repr(out)
    monkeypatch.setattr(solutions, "hour_of", lambda entry_id: ("2025/01/01", 99))
    with pytest.raises(ex.ExerciseFailed, match="Exercise 7"):
        ex.check("hour_of", stub)
    monkeypatch.setenv("LABKIT_SOLUTIONS", "yes")
    with pytest.raises(ex.LabkitError, match="LABKIT_SOLUTIONS='yes' is not 0 or 1"):
        ex.check("hour_of", stub)


def test_summary_counts_this_kernels_exercises():
    ex.check("hour_of", solutions.hour_of)
    ex.check("partition_of", stub)
    assert ex.summary() == "exercises: 1 of 2 solved; not yet: 2 (partition_of)"
    with pytest.raises(ex.LabkitError, match="no exercise"):
        ex.check("no_such_thing", stub)


def test_redis_exercises_against_the_server(r, keys, dataset):
    first = dataset[0]
    assert ex.check("noon_readings", solutions.noon_readings, r=r, partition=first).solved
    out = ex.check("noon_readings", lambda r, p: r.xrange(p, count=10), r=r, partition=first)
    assert out.status == "wrong" and "XRANGE's bounds are inclusive" in out.detail

    readings = load_readings(r, [first]).astype({"temp_f": int})
    assert ex.check("hourly_means", solutions.hourly_means, readings=readings).solved
    resampled = lambda df: df.set_index(pd.to_datetime(df["ms"], unit="ms", utc=True))["temp_f"].resample("h").mean()  # noqa: E731
    assert ex.check("hourly_means", resampled, readings=readings).solved
    assert ex.check("hourly_means", lambda df: df.groupby(df["ms"] // 3_600_000)["temp_f"].median(),
                    readings=readings).status == "wrong"

    batch = r.xread({first: "0"}, count=5000)[0][1]
    assert ex.check("hourly_sums", solutions.hourly_sums, entries=batch).solved
    off_by_one = lambda entries: {h: (s, c - 1) for h, (s, c) in solutions.hourly_sums(entries).items()}  # noqa: E731
    assert ex.check("hourly_sums", off_by_one, entries=batch).status == "wrong"


def test_open_hour_exercise_against_a_crashed_state(r, keys, dataset, target):
    from labkit.log import ListSink
    from labkit.core.runner import start_consumers
    handle = start_consumers(dataset[0], sink=ListSink(), keys=keys, target=target, batch=1000)
    while handle.running and handle.status()["readings"] < 10_000:
        pass
    handle.crash()
    state = {k.decode(): v.decode() for k, v in r.hgetall(keys.aggregating_state).items()}
    assert int(state["current_hourly_count"]) > 0
    assert ex.check("open_hour_from_partition", solutions.open_hour_from_partition, r=r, state=state).solved
    out = ex.check("crash_position", solutions.crash_position, state=state, batch=1000)
    assert out.solved and "exactly a multiple of the batch size 1,000" in out.detail
    exclusive = lambda r, s: solutions.open_hour_from_partition(r, {**s, "last_message_id": "(" + s["last_message_id"]})  # noqa: E731
    assert ex.check("open_hour_from_partition", exclusive, r=r, state=state).status == "wrong"


def test_each_solution_is_what_the_notebooks_show():
    """Every exercise's ``Show a solution`` block equals the reference in labkit.notebook.solutions."""
    from tests.test_notebooks import exercise_blocks
    blocks = exercise_blocks()
    assert sorted(blocks) == sorted(ex.EXERCISES)
    for name, code in blocks.items():
        ref = getattr(solutions, name)
        if callable(ref):
            assert code.strip() == inspect.getsource(ref).strip(), name
        else:
            scope: dict = {}
            exec(code, scope)
            assert scope[name] == ref, name


NODES = """a1 10.0.0.1:7000@17000 myself,master - 0 0 1 connected 0-5460
a2 10.0.0.2:7001@17001 master - 0 0 2 connected 5461-10922
a3 10.0.0.3:7002@17002 master - 0 0 3 connected 10923-16383
b1 10.0.0.4:7003@17003 slave a1 0 0 1 connected
"""


def test_node_of_exercise_against_a_cluster_layout():
    """Exercise 12 (notebook 13): the slot ranges come from CLUSTER NODES, the partitions' homes from EXISTS."""
    from labkit.notebook.shards import slot_ranges_of
    ranges = slot_ranges_of(NODES)
    assert ranges == [(0, 5460, "10.0.0.1:7000"), (5461, 10922, "10.0.0.2:7001"), (10923, 16383, "10.0.0.3:7002")]
    placed = {"temps:20250101": "10.0.0.3:7002", "temps:20250102": "10.0.0.1:7000"}   # slots 13538, 1153
    out = ex.check("node_of", solutions.node_of, ranges=ranges, placed=placed)
    assert out.solved and "all 8 cases" in out.detail
    assert ex.check("node_of", stub, ranges=ranges).status == "unsolved"
    exclusive = lambda slot, rs: next((n for a, b, n in rs if a <= slot < b), None)   # noqa: E731
    out = ex.check("node_of", exclusive, ranges=ranges)
    assert out.status == "wrong" and "node_of(5460," in out.detail and "expected '10.0.0.1:7000'" in out.detail
    wrong_home = {"temps:20250101": "10.0.0.1:7000"}     # what EXISTS found disagrees with the slot: the check says so
    assert ex.check("node_of", solutions.node_of, ranges=ranges, placed=wrong_home).status == "wrong"


# ---------------------------------------------------------------- the classic mistakes, under any clock

ZONES = ["UTC", "America/New_York", "Asia/Kolkata"]


@pytest.fixture(params=ZONES)
def clock(request, monkeypatch):
    """The process's local time zone, as a learner's computer (or a container in UTC) has it."""
    monkeypatch.setenv("TZ", request.param)
    time.tzset()
    yield request.param
    monkeypatch.undo()
    time.tzset()


def local_partition_of(ms):
    return f"temps:{dt.datetime.fromtimestamp(ms / 1000):%Y%m%d}"       # no zone: the computer's clock


def local_hour_of(entry_id):
    t = dt.datetime.fromtimestamp(int(entry_id.split("-")[0]) / 1000)
    return f"{t:%Y/%m/%d}", t.hour


def local_reading_time(entry_id):
    return dt.datetime.fromtimestamp(int(entry_id.split("-")[0]) / 1000).astimezone()   # aware, but local


def test_a_zone_less_fromtimestamp_is_caught_whatever_the_clock(clock):
    for name, wrong in [("partition_of", local_partition_of), ("hour_of", local_hour_of),
                        ("reading_time", local_reading_time)]:
        out = ex.check(name, wrong)
        assert out.status == "wrong", (clock, name, out)
        assert "time zone" in out.detail or "UTC-aware" in out.detail, out.detail
        assert ex.check(name, getattr(solutions, name)).status == "solved", (clock, name)
    assert os.environ["TZ"] == clock and time.localtime(0).tm_zone == time.localtime(0).tm_zone   # clock restored
    assert dt.datetime.fromtimestamp(0).hour == {"UTC": 0, "America/New_York": 19, "Asia/Kolkata": 5}[clock]


def test_every_exercise_wrong_then_right_under_each_clock(r, keys, dataset, clock):
    """A learner's wrong answer, then the right one, for each exercise of 01–06 (12 is in the test above's file
    end, on a cluster layout)."""
    first = dataset[0]
    readings = load_readings(r, [first]).astype({"temp_f": int})
    readings["time"] = pd.to_datetime(readings["ms"], unit="ms", utc=True)
    batch = r.xread({first: "0"}, count=5000)[0][1]
    naive_next = lambda name: name[:-2] + f"{int(name[-2:]) + 1:02d}"            # noqa: E731
    by_hour_of_day = lambda df: df.groupby(df["time"].dt.hour)["temp_f"].mean()   # noqa: E731
    hour_numbers = lambda entries: {h // 3_600_000: v for h, v in solutions.hourly_sums(entries).items()}  # noqa: E731
    cases = [
        ("reading_time", local_reading_time, solutions.reading_time, {}),
        ("partition_of", local_partition_of, solutions.partition_of, {}),
        ("next_partition_name", naive_next, solutions.next_partition_name, {}),
        ("ttl_gap_hours", 48, 24, {"ttls_h": [48.0, 72.0]}),
        ("noon_readings", lambda r, p: r.xrange(p, count=10), solutions.noon_readings, {"r": r, "partition": first}),
        ("hourly_means", by_hour_of_day, solutions.hourly_means, {"readings": readings}),
        ("hour_of", local_hour_of, solutions.hour_of, {}),
        ("hourly_sums", hour_numbers, solutions.hourly_sums, {"entries": batch}),
        ("xlen_after_cap", 200, 140, {"measured": 140, "node": 100}),
    ]
    for name, wrong, right, context in cases:
        out = ex.check(name, wrong, **context)
        assert out.status == "wrong" and "✗ not right yet" in repr(out), (clock, name, out)
        assert ex.check(name, right, **context).status == "solved", (clock, name)
    assert ex.summary() == f"exercises: {len(cases)} of {len(cases)} solved"


def test_hour_of_the_day_is_named_as_the_mistake(r, keys, dataset):
    readings = load_readings(r, [dataset[0]]).astype({"temp_f": int})
    readings["time"] = pd.to_datetime(readings["ms"], unit="ms", utc=True)
    out = ex.check("hourly_means", lambda df: df.groupby(df["time"].dt.hour)["temp_f"].mean(), readings=readings)
    assert out.status == "wrong" and "right for one day" in out.detail and "hour of the day" in out.detail, out.detail
    resampled = lambda df: df.set_index("time")["temp_f"].resample("h").mean()   # noqa: E731
    assert ex.check("hourly_means", resampled, readings=readings).solved


def test_hour_numbers_instead_of_the_hours_start_are_named(r, keys, dataset):
    batch = r.xread({dataset[0]: "0"}, count=5000)[0][1]
    numbers = lambda entries: {h // 3_600_000: v for h, v in solutions.hourly_sums(entries).items()}   # noqa: E731
    out = ex.check("hourly_sums", numbers, entries=batch)
    assert out.status == "wrong" and "keyed by the hour's number since 1970 (ms // 3_600_000), e.g. 482136" in out.detail
    assert "1735689600000 (2025/01/01 00:00)" in out.detail, out.detail
    of_day = lambda entries: {h // 3_600_000 % 24: v for h, v in solutions.hourly_sums(entries).items()}   # noqa: E731
    assert "the hour of the day" in ex.check("hourly_sums", of_day, entries=batch).detail


def test_each_wrong_crash_prediction_has_its_own_message_that_keeps_the_answer():
    state = {"current_stream_key": "temps:20250101", "last_message_id": "1735699599000-0",
             "current_hourly_total": "123", "current_hourly_count": "3"}
    a = ex.check("crash_position", "a", state=state, batch=1000)
    c = ex.check("crash_position", "c", state=state, batch=1000)
    assert a.status == c.status == "wrong" and a.detail != c.detail
    for out in (a, c):
        assert "(b)" not in out.detail and "batch" not in out.detail.replace("mid-batch", ""), out.detail
    assert "reading 10,000 of temps:20250101" in a.detail and "current_hourly_count 3" in c.detail


def test_a_prediction_near_the_measured_length_is_not_right():
    for p in (121, 200, 219):
        out = ex.check("xlen_after_cap", p, measured=140, node=100)
        assert out.status == "wrong" and "140" in out.detail, (p, out)


# ---------------------------------------------------------------- any answer: one line, never wrongly "right"

def _one_line_not_right(out, seen: str) -> None:
    """The answer is ✗ on one plain line that shows what was seen."""
    assert out.status == "wrong", out
    assert "✗ not right yet" in repr(out) and "\n" not in out.detail and "Traceback" not in out.detail, out.detail
    assert seen in out.detail, out.detail


def _utc_of(entry_id):
    return pd.Timestamp(int(entry_id.split("-")[0]), unit="ms", tz="UTC")


def _one_element_index(entry_id):
    return pd.to_datetime([int(entry_id.split("-")[0])], unit="ms", utc=True)


def _hour_in_an_array(entry_id):
    date, hour = solutions.hour_of(entry_id)
    return date, np.array([hour])


XLEN = {"measured": 140, "node": 100}

#: Answers an outside tester wrote in the notebooks: each one raised inside the check, or was accepted as right.
#: ``(exercise, answer, context, what the detail must show)``.
ODD_ANSWERS = {
    "reading_time, a Series": ("reading_time", lambda i: pd.Series([_utc_of(i)]), {}, "Series"),
    "reading_time, an array of two": ("reading_time", lambda i: np.array([_utc_of(i)] * 2), {}, "ndarray"),
    "reading_time, an array of one": ("reading_time", lambda i: np.array([_utc_of(i).to_pydatetime()]), {}, "ndarray"),
    "reading_time, a DatetimeIndex": ("reading_time", _one_element_index, {}, "DatetimeIndex"),
    "hour_of, the hour in an array": ("hour_of", _hour_in_an_array, {}, "array([0])"),
    "ttl_gap_hours, nan": ("ttl_gap_hours", float("nan"), {"ttls_h": [48.0, 72.0]}, "nan"),
    "xlen_after_cap, inf": ("xlen_after_cap", float("inf"), XLEN, "inf"),
    "xlen_after_cap, 140.9": ("xlen_after_cap", 140.9, XLEN, "140.9"),
    "xlen_after_cap, a string": ("xlen_after_cap", "140", XLEN, "'140'"),
}


@pytest.mark.parametrize("case", ODD_ANSWERS, ids=list(ODD_ANSWERS))
def test_an_answer_of_the_wrong_kind_is_one_line_not_right(case):
    name, answer, context, seen = ODD_ANSWERS[case]
    _one_line_not_right(ex.check(name, answer, **context), seen)


def _sums_as_dicts(entries):
    return {h: {"sum": s, "count": c} for h, (s, c) in solutions.hourly_sums(entries).items()}


def _sums_by_text_keys(entries):
    return {str(h): v for h, v in solutions.hourly_sums(entries).items()}


def _sums_with_a_fraction(entries):
    return {h: (s + 0.5, c) for h, (s, c) in solutions.hourly_sums(entries).items()}


def _open_hour_as_a_dict(r, state):
    s, c = solutions.open_hour_from_partition(r, state)
    return {"sum": s, "count": c}


def _open_hour_and_a_zero(r, state):
    return (*solutions.open_hour_from_partition(r, state), 0)


def _open_hour_with_a_fraction(r, state):
    s, c = solutions.open_hour_from_partition(r, state)
    return s + 0.4, c


#: The same for the exercises that read the server: ``(exercise, answer, context from the lab, what is shown)``.
ODD_SERVER_ANSWERS = {
    "hourly_means, one number": ("hourly_means", lambda df: df["temp_f"].mean(), "readings", "float64"),
    "hourly_means, all nan": ("hourly_means", lambda df: solutions.hourly_means(df) * float("nan"), "readings", "nan"),
    "noon_readings, one entry": ("noon_readings", lambda r, p: r.xrange(p, "-", "+", count=10)[0], "noon", "tuple"),
    "hourly_sums, dicts for pairs": ("hourly_sums", _sums_as_dicts, "batch", "'sum'"),
    "hourly_sums, text keys": ("hourly_sums", _sums_by_text_keys, "batch", "'1735689600000'"),
    "hourly_sums, sums with a fraction": ("hourly_sums", _sums_with_a_fraction, "batch", ".5"),
    "open_hour, a dict": ("open_hour_from_partition", _open_hour_as_a_dict, "state", "'sum'"),
    "open_hour, three numbers": ("open_hour_from_partition", _open_hour_and_a_zero, "state", "tuple"),
    "open_hour, a sum with a fraction": ("open_hour_from_partition", _open_hour_with_a_fraction, "state", ".4"),
}


@pytest.fixture
def lab_context(r, keys, dataset):
    """Each server exercise's context, on the test dataset (the open hour: 10:00 to 10:20:00 of the first day)."""
    first = dataset[0]
    last = f"{1735689600000 + 10 * 3_600_000 + 1_200_000}-0"
    temps = [int(f[b"temp_f"]) for _, f in r.xrange(first, 1735689600000 + 10 * 3_600_000, last)]
    state = {"current_stream_key": first, "last_message_id": last,
             "current_hourly_total": str(sum(temps)), "current_hourly_count": str(len(temps))}
    return {"readings": {"readings": load_readings(r, [first]).astype({"temp_f": int})},
            "noon": {"r": r, "partition": first},
            "batch": {"entries": r.xread({first: "0"}, count=5000)[0][1]},
            "state": {"r": r, "state": state}}


@pytest.mark.parametrize("case", ODD_SERVER_ANSWERS, ids=list(ODD_SERVER_ANSWERS))
def test_an_answer_of_the_wrong_kind_is_one_line_not_right_against_the_server(case, lab_context):
    name, answer, context, seen = ODD_SERVER_ANSWERS[case]
    _one_line_not_right(ex.check(name, answer, **lab_context[context]), seen)
    assert ex.check(name, getattr(solutions, name), **lab_context[context]).solved


def test_a_prediction_is_a_finite_number_and_a_count_a_whole_one():
    """``140.0`` is the number 140; ``140.9``, text, ``True``, nan and inf are not a count of entries."""
    for p in (140, 140.0, np.int64(140), np.float64(140.0)):
        assert ex.check("xlen_after_cap", p, **XLEN).solved, p
    for p in ("140", "140.0", True, float("nan"), float("-inf")):
        _one_line_not_right(ex.check("xlen_after_cap", p, **XLEN), "")
    for p in (24, 24.0, 23.9, np.float64(24)):
        assert ex.check("ttl_gap_hours", p, ttls_h=[48.0, 72.0]).solved, p
    for p in ("24", float("nan"), float("inf"), [24], 10**400):     # 10**400: too big for a float
        _one_line_not_right(ex.check("ttl_gap_hours", p, ttls_h=[48.0, 72.0]), "")
