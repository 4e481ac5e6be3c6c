"""Issue 15, "an audit that cannot be fooled": on a real server, whatever a shared server (or another tool)
does to labkit's keys is noticed and named, and ``verify`` passes only when every promised hour is published
once, exact.  The pure audit is tested without Redis at the bottom.
"""

from __future__ import annotations

import time

import pytest

from labkit.core import manifest
from labkit.core.partition import DAY_MS, HOUR_MS
from labkit.core.runner import start_consumers
from labkit.core.window import fold
try:
    from labkit.core.window import valid_temp
except ImportError:
    valid_temp = None
from labkit.log import ListSink
from tests.helpers import T0, check, produce


def consume_until_idle(target, keys, partition, timeout=60, **kw):
    sink = ListSink()
    h = start_consumers(partition, sink=sink, keys=keys, target=target, averages_maxlen=kw.pop("maxlen", 0), **kw)
    assert h.wait_idle(0.5, timeout=timeout), h.status()
    h.stop()
    return h, sink


def wait_for(cond, timeout=30.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


# ---------------------------------------------------------------------------- 5. one validity rule

@pytest.mark.parametrize("fields,why", [
    ([b"temp_f", b"\xff"], "whole number"),
    ([b"temp_f", b"40", b"temp_f", b"41"], "temp_f 2 times"),
    ([b"temp_f", b"40", b"other", b"41"], "unexpected fields"),
    ([b"other", b"41"], "missing temp_f"),
    ({b"temp_f": b"40", b"x": b"1"}, "unexpected fields"),
])
def test_the_validity_rule_names_its_reason(fields, why):
    assert why in valid_temp(fields)


def test_the_validity_rule_accepts_one_plain_temp_f():
    assert valid_temp([b"temp_f", b"-12"]) == -12
    assert valid_temp({b"temp_f": b"007"}) == 7 and valid_temp({"temp_f": "5"}) == 5


def test_non_utf8_and_a_doubled_temp_f_are_dead_lettered_by_the_fold_and_ground_truth_alike(r, keys, target):
    produce(r, keys, days=1, interval_ms=60_000)
    day1 = keys.partition_prefix + "20250101"
    # two readings appended after the day's last (still in its last hour): one not UTF-8, one with temp_f twice
    r.execute_command("XADD", day1, f"{T0 + DAY_MS - 2}-0", "temp_f", b"\xff")
    r.execute_command("XADD", day1, f"{T0 + DAY_MS - 1}-0", "temp_f", "40", "temp_f", "41")
    manifest.mark_complete(r, keys, day1, manifest.read(r, keys)[day1].run, 1442, T0 + DAY_MS - 1)
    h, sink = consume_until_idle(target, keys, day1)
    assert h.error is None, h.error
    assert h.status()["dead_letters"] == 2, sink.texts()
    rep, averages, truth = check(r, keys)
    assert rep.ok and rep.matched == 24, rep.summary()
    assert int(truth["count"].sum()) == 1440
    reasons = [e[1][b"reason"].decode() for e in r.xrange(keys.deadletter)]
    assert any("whole number" in x for x in reasons) and any("temp_f 2 times" in x for x in reasons), reasons


def test_the_plain_fold_rejects_a_doubled_temp_f_it_is_handed_raw():
    from labkit.core.fastfold import as_entries, fold_raw
    from labkit.core.window import HourlyWindow
    raw = [[b"%d-0" % T0, [b"temp_f", b"40"]], [b"%d-0" % (T0 + 1), [b"temp_f", b"40", b"temp_f", b"41"]],
           [b"%d-0" % (T0 + 2), [b"temp_f", b"\xff"]]]
    for how in (lambda w: fold(w, as_entries(raw)), lambda w: fold_raw(w, raw)):
        w = HourlyWindow()
        _, bad = how(w)
        assert (w.total, w.count) == (40, 1) and [b[0] for b in bad] == [raw[1][0], raw[2][0]]
