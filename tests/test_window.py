"""The hourly window fold, rounding and ground truth: pure, no Redis."""

import random
from fractions import Fraction

import pandas as pd
import pytest

from labkit.core.averages import describe
from labkit.core.partition import HOUR_MS
from labkit.core.truth import hourly_truth, verify
from labkit.core.window import BadReading, HourAverage, HourlyWindow, fold, parse_temp, round_half_up

T0 = 1735689600000  # 2025-01-01 00:00 UTC


def entries(pairs):
    return [(b"%d-0" % ms, {b"temp_f": b"%d" % t}) for ms, t in pairs]


def test_an_hour_closes_only_when_a_later_hour_is_seen():
    w = HourlyWindow()
    closed, bad = fold(w, entries([(T0, 10), (T0 + 1000, 20), (T0 + HOUR_MS - 1, 30)]))
    assert closed == [] and bad == []
    closed, _ = fold(w, entries([(T0 + HOUR_MS, 7)]))
    assert closed == [HourAverage(T0, 60, 3)]
    assert (w.hour_start_ms, w.total, w.count) == (T0 + HOUR_MS, 7, 1)


def test_final_hour_closes_when_time_reaches_its_end_or_by_explicit_close():
    w = HourlyWindow()
    fold(w, entries([(T0 + 5, 1), (T0 + 6, 2)]))
    assert w.advance_to(T0 + HOUR_MS - 1) is None
    assert w.advance_to(T0 + HOUR_MS) == HourAverage(T0, 3, 2)
    assert w.close() is None
    fold(w, entries([(T0 + 7, 4)]))
    assert w.close() == HourAverage(T0, 4, 1) and w.close() is None


def test_gaps_skip_empty_hours_and_start_mid_hour():
    w = HourlyWindow()
    closed, _ = fold(w, entries([(T0 + 30 * 60_000, 50), (T0 + 5 * HOUR_MS + 1, 60)]))
    assert closed == [HourAverage(T0, 50, 1)]
    assert w.hour_start_ms == T0 + 5 * HOUR_MS


def test_fold_is_independent_of_batching():
    rnd = random.Random(7)
    pairs = [(T0 + i * 997, rnd.randint(0, 100)) for i in range(20_000)]
    whole = HourlyWindow()
    a, _ = fold(whole, entries(pairs))
    a.append(whole.close())
    pieces = HourlyWindow()
    b = []
    i = 0
    while i < len(pairs):
        n = rnd.randint(1, 700)
        b += fold(pieces, entries(pairs[i:i + n]))[0]
        i += n
    b.append(pieces.close())
    assert a == b and len(a) == 6


@pytest.mark.parametrize("fields,why", [
    ({}, "missing"), ({b"temp_f": b""}, "whole number"), ({b"temp_f": b"abc"}, "whole number"),
    ({b"temp_f": b"nan"}, "whole number"), ({b"temp_f": b"inf"}, "whole number"),
    ({b"temp_f": b"50.5"}, "whole number"), ({b"temp_f": b"999"}, "plausible"),
    ({b"temp_f": b"50", b"extra": b"1"}, "unexpected"),
])
def test_bad_readings_are_rejected_not_averaged(fields, why):
    with pytest.raises(BadReading, match=why):
        parse_temp(fields)
    w = HourlyWindow()
    closed, bad = fold(w, [(b"%d-0" % T0, {b"temp_f": b"40"}), (b"%d-0" % (T0 + 1), fields)])
    assert len(bad) == 1 and why in bad[0][2]
    assert (w.total, w.count) == (40, 1)


def test_a_rejected_reading_in_a_later_hour_still_closes_the_open_hour():
    w = HourlyWindow()
    closed, bad = fold(w, [(b"%d-0" % T0, {b"temp_f": b"40"}), (b"%d-0" % (T0 + HOUR_MS), {b"temp_f": b"x"})])
    assert closed == [HourAverage(T0, 40, 1)] and len(bad) == 1 and w.count == 0


def test_rounding_is_half_up_and_exact():
    assert round_half_up(Fraction(47, 2)) == 24          # int() would give 23
    assert str(round_half_up(Fraction(1, 3), 2)) == "0.33"
    assert str(round_half_up(Fraction(2, 3), 2)) == "0.67"
    assert str(round_half_up(Fraction(1, 8), 2)) == "0.13"  # a tie: half up, not to even
    h = HourAverage(T0 + 5 * HOUR_MS, 181_799, 3600)
    assert h.fields() == {"hour": "5", "date": "2025/01/01", "average_temp_f": "50.50",
                          "num_observations": "3600", "sum_temp_f": "181799"}
    # 50.4997…: "50.50" to 2 places, but 50 whole (rounding from the exact mean, never twice)
    assert "was 50F" in describe(h.fields()) and h.entry_id == f"{T0 + 5 * HOUR_MS}-0"


def test_ground_truth_and_verify_agree_with_the_fold_and_catch_errors():
    rnd = random.Random(3)
    pairs = [(T0 + i * 1000, rnd.randint(0, 100)) for i in range(3 * 3600 + 10)]
    w = HourlyWindow()
    hours, _ = fold(w, entries(pairs))
    hours.append(w.close())
    truth = hourly_truth(pd.DataFrame({"ms": [p[0] for p in pairs], "temp_f": [str(p[1]) for p in pairs]}))
    assert len(truth) == 4 and truth["count"].tolist() == [3600, 3600, 3600, 10]
    pub = pd.DataFrame([{"id": h.entry_id, "ms": h.hour_start_ms, **h.fields()} for h in hours])
    rep = verify(truth, pub)
    assert rep.ok and rep.matched == 4 and not rep.missing
    # a wrong average, a lost hour and a duplicate are each caught
    bad = pub.copy()
    bad.loc[1, "average_temp_f"] = str(float(bad.loc[1, "average_temp_f"]) + 0.01)
    assert len(verify(truth, bad).mismatched) == 1
    assert verify(truth, pub.drop(index=2)).missing == [T0 + 2 * HOUR_MS]
    assert verify(truth, pd.concat([pub, pub.iloc[[0]]])).duplicates >= 1
    # trimmed by the cap: the oldest entries gone, counted, not "missing"
    rep = verify(truth, pub.iloc[2:], trimmed=2)
    assert rep.ok and rep.trimmed == 2 and rep.matched == 2


@pytest.mark.parametrize("raw", [b"4_2", b" 42", b"42 ", b"+42", b"42\n", "٤٢".encode(), b"1.0", b"--1", b"-"])
def test_one_validity_rule_rejects_what_int_would_accept(raw):
    """Only an optional minus and ASCII digits are a reading; int()'s leniency is not."""
    with pytest.raises(BadReading, match="whole number"):
        parse_temp({b"temp_f": raw})
    w = HourlyWindow()
    _, bad = fold(w, [(b"%d-0" % T0, {b"temp_f": raw})])
    assert len(bad) == 1 and w.count == 0


@pytest.mark.parametrize("raw,value", [(b"0", 0), (b"-0", 0), (b"-12", -12), (b"007", 7), (b"200", 200)])
def test_one_validity_rule_accepts_plain_integers(raw, value):
    assert parse_temp({b"temp_f": raw}) == value
    w = HourlyWindow()
    fold(w, [(b"%d-0" % T0, {b"temp_f": raw})])
    assert (w.total, w.count) == (value, 1)


def test_a_reading_outside_its_partitions_day_never_opens_or_closes_an_hour():
    day = (T0, T0 + 24 * HOUR_MS)
    w = HourlyWindow()
    far = T0 + 5 * 365 * 24 * HOUR_MS    # a 2030 timestamp filed in 2025-01-01's partition
    closed, bad = fold(w, entries([(T0, 10), (far, 99), (T0 + HOUR_MS, 20)]), day)
    assert closed == [HourAverage(T0, 10, 1)]
    assert [b[0] for b in bad] == [b"%d-0" % far] and "outside" in bad[0][2]
    assert (w.hour_start_ms, w.total, w.count) == (T0 + HOUR_MS, 20, 1)
    # the first reading of the next day, filed in this one, is rejected too
    w = HourlyWindow()
    closed, bad = fold(w, entries([(T0 + 23 * HOUR_MS, 5), (day[1] + 500, 6)]), day)
    assert closed == [] and len(bad) == 1 and (w.total, w.count) == (5, 1)
    # and one from before the day
    w = HourlyWindow()
    closed, bad = fold(w, entries([(T0 - 1, 5)]), day)
    assert len(bad) == 1 and w.hour_start_ms is None


def test_verify_is_exact_on_ties_that_floats_round_the_wrong_way():
    # 234414 / 3600 = 65.115 exactly: half-up gives 65.12; floor(x*100+0.5) in floats gives 65.11
    h = HourAverage(T0, 234_414, 3600)
    assert h.average_2dp == "65.12"
    truth = pd.DataFrame({"sum": [234_414], "count": [3600]}, index=pd.Index([T0], name="hour_start_ms"))
    truth["mean"] = truth["sum"] / truth["count"]
    pub = pd.DataFrame([{"id": h.entry_id, "ms": T0, **h.fields()}])
    rep = verify(truth, pub)
    assert rep.ok and rep.matched == 1 and not rep.mismatched


def test_verify_reports_hours_missing_before_the_first_published_one():
    pairs = [(T0 + i * 60_000, 50) for i in range(5 * 60)]           # 5 hours
    truth = hourly_truth(pd.DataFrame({"ms": [p[0] for p in pairs], "temp_f": [str(p[1]) for p in pairs]}))
    hours = [HourAverage(T0 + i * HOUR_MS, 3000, 60) for i in range(5)]
    pub = pd.DataFrame([{"id": h.entry_id, "ms": h.hour_start_ms, **h.fields()} for h in hours[2:]])
    rep = verify(truth, pub)
    assert not rep.ok and rep.missing == [T0, T0 + HOUR_MS]
    rep = verify(truth, pub, trimmed=1)                              # one of them was trimmed by the cap
    assert not rep.ok and rep.trimmed == 1 and rep.missing == [T0 + HOUR_MS]
    rep = verify(truth, pub, start_ms=T0 + 2 * HOUR_MS)               # the consumer started at 02:00
    assert rep.ok and rep.matched == 3


def test_ground_truth_skips_readings_outside_their_partitions_day():
    df = pd.DataFrame({"ms": [T0, T0 + 86_400_000 + 500], "temp_f": ["10", "20"], "day_ms": [T0, T0]})
    truth = hourly_truth(df)
    assert truth["count"].tolist() == [1] and truth["sum"].tolist() == [10]
