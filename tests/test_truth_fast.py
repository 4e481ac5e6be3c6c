"""verify's ground truth in bulk (:func:`labkit.core.truth.load_truth`) against the pandas one the notebooks show.

``hourly_truth(load_readings(...))`` is the oracle: on every input the bulk path must give the same hours,
the same exact sums and counts, and name as invalid exactly the entries the pandas path leaves out.
The first tests are pure (raw replies built in memory); the others read a real server.
"""

from __future__ import annotations

import functools
import random

import numpy as np
import pandas as pd
import pytest

from labkit.core.tally import tally_clean, tally_each, reading_value, tally_raw
from labkit.core.partition import DAY_MS, HOUR_MS
from labkit.core.runner import list_partitions
from labkit.core.truth import hourly_truth, load_readings, load_truth
from tests.helpers import T0, produce
from tests.test_fastfold import EDGES, POISON, clean

DAY = (T0, T0 + DAY_MS)
#: Invalid by the tightened rule, beyond the fold's POISON list.
STRICT = [
    [b"temp_f", b"1", b"temp_f", b"2"],     # a repeated temp_f
    [b"temp_f", b"\xff\xfe"],                # not UTF-8
    [b"temp_f", b"4\xff"],
    [b"temp_f", b"1\n"],                     # a regex "$" would accept the newline: fullmatch must not
    [b"temp_f", b"0000000042"],              # 10 digits: TEMP_PATTERN allows at most 9
    [],                                      # no field at all
]
CLEAN = [[b"temp_f", b"%d" % v] for v in range(-150, 201)]
VALID_ODD = [[b"temp_f", b"000000042"], [b"temp_f", b"-000000150"], [b"temp_f", b"-0"], [b"temp_f", b"007"]]


def as_readings(raw, day_ms: int = T0) -> pd.DataFrame:
    """The DataFrame load_readings builds from these entries (its shape rule: one field, temp_f, as text)."""
    return pd.DataFrame({
        "ms": np.array([int(e[0][:e[0].index(b"-")]) for e in raw], dtype="int64"),
        "temp_f": [e[1][1].decode(errors="replace") if len(e[1]) == 2 and e[1][0] == b"temp_f" else None
                   for e in raw],
        "day_ms": np.full(len(raw), day_ms, dtype="int64")})


def frame(tallies) -> pd.DataFrame:
    """Tallies summed per hour, shaped like hourly_truth's result."""
    per: dict[int, list[int]] = {}
    for t in tallies:
        for h, s, c in zip(t.hours, t.sums, t.counts):
            acc = per.setdefault(h, [0, 0])
            acc[0] += s
            acc[1] += c
    hours = sorted(per)
    out = pd.DataFrame({"sum": np.array([per[h][0] for h in hours], dtype="int64"),
                        "count": np.array([per[h][1] for h in hours], dtype="int64")},
                       index=pd.Index(hours, dtype="int64", name="hour_start_ms"))
    out["mean"] = out["sum"] / out["count"]
    return out


def counted_by_pandas(entry) -> bool:
    return _counted(entry[0], tuple(entry[1]))


@functools.lru_cache(maxsize=None)
def _counted(eid: bytes, fields: tuple) -> bool:
    return len(hourly_truth(as_readings([[eid, list(fields)]]))) == 1


@pytest.mark.parametrize("fields", POISON + EDGES + STRICT + VALID_ODD)
def test_each_entry_is_judged_as_the_pandas_path_judges_it(fields):
    entry = [b"%d-0" % (T0 + 5), list(fields)]
    assert (reading_value(entry[1]) is not None) == counted_by_pandas(entry)
    t = tally_raw([entry], DAY)
    assert (t.invalid == []) == counted_by_pandas(entry)


def test_the_tightened_rule():
    """Exactly one field temp_f; optional minus and ASCII digits; in range; not a repeated field; UTF-8."""
    assert reading_value([b"temp_f", b"-150"]) == -150 and reading_value([b"temp_f", b"200"]) == 200
    for bad in STRICT + [[b"temp_f", b"201"], [b"temp_f", "٤٢".encode()], [b"temp_f", b"+1"]]:
        assert reading_value(bad) is None, bad


@pytest.mark.parametrize("seed", range(30))
def test_random_batches_give_the_pandas_truth(seed):
    rnd = random.Random(seed)
    raw = clean(rnd, rnd.randint(0, 4000), start=T0 - rnd.choice([0, 0, 3000]),
                step_max=rnd.choice([50, 4000, HOUR_MS // 3]))
    for _ in range(rnd.choice([0, 0, 1, 5])):   # poison, odd spellings, readings filed in the wrong day
        if raw:
            i = rnd.randrange(len(raw))
            if rnd.random() < 0.3:
                raw[i][0] = b"%d-0" % rnd.choice([T0 - 1, T0 + DAY_MS, T0 + 3 * DAY_MS])
            else:
                raw[i][1] = list(rnd.choice(POISON + EDGES + STRICT + VALID_ODD))
    raw.sort(key=lambda e: _id_key(e[0]))      # as XRANGE returns them: in ID order
    cuts = sorted(rnd.sample(range(1, len(raw)), min(len(raw) - 1, rnd.randint(0, 6)))) if len(raw) > 1 else []
    tallies = [tally_raw(raw[a:b], DAY) for a, b in zip([0, *cuts], [*cuts, len(raw)])]
    want = hourly_truth(as_readings(raw))
    pd.testing.assert_frame_equal(frame(tallies), want, check_index_type=False)
    invalid = [eid for t in tallies for eid in t.invalid]
    assert invalid == [e[0] for e in raw if not counted_by_pandas([b"%d-0" % T0 if e[1] in CLEAN else e[0], e[1]])
                       or not T0 <= int(e[0][:e[0].index(b"-")]) < T0 + DAY_MS]
    assert int(want["count"].sum()) + len(invalid) == len(raw)


def _id_key(eid: bytes) -> tuple[int, int]:
    ms, seq = eid.split(b"-")
    return int(ms), int(seq)


@pytest.mark.parametrize("seed", range(20))
def test_the_bulk_path_sums_a_clean_batch_as_the_plain_rule_does(seed):
    """Clean batches (the usual case) take the bisecting path, and it agrees with the entry-by-entry one,
    wherever the batch starts and ends and however sparse its readings are."""
    rnd = random.Random(seed)
    raw = clean(rnd, rnd.randint(1, 3000), start=T0 + rnd.choice([0, 1, HOUR_MS - 1, 7 * HOUR_MS]),
                step_max=rnd.choice([1, 50, 4000, HOUR_MS // 3, HOUR_MS]))
    raw = [e for e in raw if int(e[0][:-2]) < T0 + DAY_MS]
    if rnd.random() < 0.5:      # several readings in one millisecond: sequence numbers of two widths
        raw = [[b"%s-%d" % (e[0][:-2], seq), e[1]] for e in raw[:40] for seq in (0, 9, 10, 11)] + raw[40:]
    bulk = tally_clean(raw, DAY)
    assert bulk is not None
    assert bulk == tally_each(raw, DAY)
    assert sum(bulk.counts) == len(raw) and len(set(bulk.hours)) == len(bulk.hours)


@pytest.mark.parametrize("first, last", [(0, 2 * HOUR_MS), (HOUR_MS, 2 * HOUR_MS), (HOUR_MS - 1, HOUR_MS),
                                         (HOUR_MS, HOUR_MS), (5, 5), (0, DAY_MS - 1000)])
def test_the_bulk_path_at_hour_boundaries(first, last):
    """Batches that start or end exactly on an hour, or hold one reading: every reading in its own hour."""
    raw = [[b"%d-0" % (T0 + ms), [b"temp_f", b"%d" % (ms // 1000 % 300 - 150)]]
           for ms in range(first, last + 1, 1000 if last - first >= 1000 else max(1, last - first))]
    t = tally_clean(raw, DAY)
    want: dict[int, list[int]] = {}
    for eid, (_, v) in raw:
        ms = int(eid[:-2])
        acc = want.setdefault(ms - ms % HOUR_MS, [0, 0])
        acc[0] += int(v)
        acc[1] += 1
    assert t is not None and list(zip(t.hours, t.sums, t.counts)) == [(h, s, c) for h, (s, c) in sorted(want.items())]


def test_unusual_batches_go_entry_by_entry():
    """An odd spelling, another field, a reading outside the day or IDs whose ms parts differ in width:
    not the bisecting path (its shortcuts would not hold), and the same tally as the plain rule."""
    raw = clean(random.Random(3), 500)
    odd = [raw[:250] + [[raw[250][0], [b"temp_f", b"007"]]] + raw[251:],
           raw[:9] + [[raw[9][0], [b"temp_f", b"5", b"x", b"1"]]] + raw[10:],
           raw + [[b"%d-0" % (T0 + DAY_MS), [b"temp_f", b"5"]]],
           [[b"999999999999-0", [b"temp_f", b"5"]], *raw]]
    for batch in odd:
        assert tally_clean(batch, (0, T0 + DAY_MS)) is None
        assert tally_raw(batch, (0, T0 + DAY_MS)) == tally_each(batch, (0, T0 + DAY_MS))


def both(r, keys, **kw):
    names = list_partitions(r, keys)
    want = hourly_truth(load_readings(r, names, prefix=keys.partition_prefix))
    got, invalid = load_truth(r, names, prefix=keys.partition_prefix, **kw)
    return want, got, invalid


@pytest.mark.parametrize("count", [997, 10_000])
def test_a_produced_dataset_gives_the_pandas_truth(r, keys, count):
    produce(r, keys, start="2025-01-01T07:30", days=2.2, interval_ms=1300, seed=4)
    want, got, invalid = both(r, keys, count=count)
    pd.testing.assert_frame_equal(got, want)
    assert invalid == [] and len(got) == 54


def test_poison_on_the_wire_gives_the_pandas_truth_and_names_the_invalid_entries(r, keys):
    name = keys.partition_prefix + "20250101"
    p = r.pipeline(transaction=False)
    bad = [{"temp_f": "4_2"}, {"temp_f": "+42"}, {"temp_f": "٤٢"}, {"temp_f": "-151"}, {"other": "5"},
           {"temp_f": "5", "x": "1"}, {"temp_f": b"\xff"}, {"temp_f": "007"}, {"temp_f": "-0"}]
    for i in range(5000):
        fields = bad[i // 500] if i % 500 == 250 and i // 500 < len(bad) else {"temp_f": str(i % 351 - 150)}
        p.xadd(name, fields, id=f"{T0 + i * 1700}-{i % 3}")
    p.xadd(name, {"temp_f": "50"}, id=f"{T0 + DAY_MS + 5}-0")       # filed in the wrong day
    p.execute_command("XADD", name, f"{T0 + DAY_MS + 6}-0", "temp_f", "1", "temp_f", "2")   # a repeated field
    p.execute()
    want, got, invalid = both(r, keys, count=700)
    pd.testing.assert_frame_equal(got, want)
    assert [eid for _, eid in invalid] == [b"%d-%d" % (T0 + i * 1700, i % 3) for i in range(250, 3500, 500)] \
        + [b"%d-0" % (T0 + DAY_MS + 5), b"%d-0" % (T0 + DAY_MS + 6)]
    assert {k for k, _ in invalid} == {name}


def test_no_partitions_no_truth(r, keys):
    got, invalid = load_truth(r, [], prefix=keys.partition_prefix)
    assert got.empty and invalid == [] and list(got.columns) == ["sum", "count", "mean"]
