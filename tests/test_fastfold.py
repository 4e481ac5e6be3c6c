"""The bulk fold over raw stream replies gives exactly what the plain fold gives: pure, no Redis.

The plain :func:`labkit.core.window.fold` sees entries as redis-py hands them over
(``(id, {field: value})``); :func:`labkit.core.fastfold.fold_raw` sees the reply as the
server sent it (``[id, [field, value, ...]]``).  On every input both must close
the same hours, reject the same entries for the same reasons, and leave the
same window.
"""

import random

import pytest
from labkit.core.fastfold import fold_raw, parse_raw
from labkit.core.partition import DAY_MS, HOUR_MS
from labkit.core.window import HourAverage, HourlyWindow, fold
from redis._parsers.helpers import parse_stream_list

T0 = 1735689600000  # 2025-01-01 00:00 UTC
DAY = (T0, T0 + DAY_MS)

#: Every way a reading can be wrong (or odd but valid), as the raw field list the server would send.
POISON = [
    [b"other", b"50"],                       # missing temp_f
    [b"temp_f", b"50", b"extra", b"1"],      # an extra field
    [b"temp_f", b""],                        # empty
    [b"temp_f", b"4_2"], [b"temp_f", b" 42"], [b"temp_f", b"42 "], [b"temp_f", b"+42"],
    [b"temp_f", b"1.0"], [b"temp_f", b"nan"], [b"temp_f", b"0x1"], [b"temp_f", b"4\x00"],
    [b"temp_f", "٤٢".encode()],              # Arabic-Indic digits
    [b"temp_f", "４２".encode()],            # full-width digits
    [b"temp_f", b"-151"], [b"temp_f", b"201"], [b"temp_f", b"99999999999"],
    [b"temp_f", b"-"], [b"temp_f", b"--5"],
    [b"TEMP_F", b"50"],
    [b"temp_f", b"-0"], [b"temp_f", b"007"],  # odd spellings, but valid
    [b"temp_f", b"1", b"temp_f", b"2"],      # a repeated field: invalid (redis-py's dict would keep the last)
    [b"temp_f", b"\xff"],                   # not UTF-8
]
#: Valid readings at the edges of the plausible range: the bulk path takes these itself.
EDGES = [[b"temp_f", b"-150"], [b"temp_f", b"200"], [b"temp_f", b"0"]]


def as_redis_py(raw):
    """The entries as the plain fold gets them: redis-py's parsing, except that an entry whose field
    name repeats keeps its raw list (a dict would hide the repeat; see fastfold.as_entries)."""
    return [(e[0], f if e[1] is None or 2 * len(f) == len(e[1]) else list(e[1]))
            for e, (_, f) in zip(raw, parse_stream_list(raw))]


def run_both(window_args, raw, day, cuts):
    """Fold ``raw`` in the pieces ``cuts`` with both folds; every output and the windows must agree."""
    plain, fast = HourlyWindow(*window_args), HourlyWindow(*window_args)
    pieces = [raw[a:b] for a, b in zip([0, *cuts], [*cuts, len(raw)])]
    for piece in pieces:
        want = fold(plain, as_redis_py(piece), day)
        got = fold_raw(fast, piece, day)
        assert got == want
        assert (fast.hour_start_ms, fast.total, fast.count) == (plain.hour_start_ms, plain.total, plain.count)
    return plain


def clean(rnd, n, start=T0, step_max=4000):
    """``n`` well-formed readings, as a raw reply, from ``start`` on."""
    ms, out = start, []
    for _ in range(n):
        ms += rnd.randint(1, step_max)
        out.append([b"%d-0" % ms, [b"temp_f", b"%d" % rnd.randint(-150, 200)]])
    return out


def test_clean_batches_take_the_bulk_path():
    raw = clean(random.Random(1), 5000)
    parsed = parse_raw(raw)
    assert parsed is not None
    assert parsed.ms.tolist() == [int(e[0][:-2]) for e in raw]
    assert parsed.temps.tolist() == [int(e[1][1]) for e in raw]


@pytest.mark.parametrize("fields", POISON)
def test_anything_unusual_leaves_the_bulk_path(fields):
    raw = clean(random.Random(2), 50)
    raw[17][1] = fields
    assert parse_raw(raw) is None


@pytest.mark.parametrize("eid", [b"1735689600000", b"1735689600000-", b"1735689600000-0-1", b"+735689600000-0",
                                 b"1735689600000_0", b"17356896000001-0", "1735689600123-0",
                                 b"1234567890123456789-0", b"173568960000-00", b"1735689600000-a",
                                 b"199999999999900", b"19999999999:9-0", b"1999999999999-:"])
def test_unusual_ids_leave_the_bulk_path(eid):
    raw = clean(random.Random(3), 50)
    raw[-1][0] = eid        # last, so that ascending order alone would not catch it
    assert parse_raw(raw) is None


def test_ids_without_a_sequence_leave_the_bulk_path():
    assert parse_raw([[b"%d-" % (T0 + i), [b"temp_f", b"1"]] for i in range(3)]) is None


def test_ids_out_of_order_or_other_shapes_leave_the_bulk_path():
    raw = clean(random.Random(4), 50)
    raw[10], raw[11] = raw[11], raw[10]
    assert parse_raw(raw) is None
    assert parse_raw([(b"%d-0" % T0, (b"temp_f", b"1"))]) is not None   # tuples are fine
    assert parse_raw([[b"%d-0" % T0, None]]) is None
    assert parse_raw([[b"%d-0" % T0]]) is None


@pytest.mark.parametrize("fields", POISON + EDGES)
def test_each_poison_reading_is_folded_like_the_plain_fold(fields):
    rnd = random.Random(5)
    raw = clean(rnd, 3000, step_max=3000)
    for i in (0, 1499, 2999):
        raw[i] = [raw[i][0], fields]
    run_both((), raw, DAY, [700, 1500])


@pytest.mark.parametrize("seed", range(40))
def test_random_streams_with_poison_hours_and_splits(seed):
    rnd = random.Random(seed)
    raw, ms, seq = [], T0 - rnd.choice([0, 0, 5000]), 0
    for _ in range(rnd.randint(0, 6000)):
        if rnd.random() < 0.1:
            seq += 1                          # same millisecond, next sequence number
        elif rnd.random() < 0.02:             # a jump: to or across an hour boundary, or tiny
            ms, seq = ms + rnd.choice([1, 997, 60_000, HOUR_MS - 1, HOUR_MS, 3 * HOUR_MS]), 0
        else:
            ms, seq = ms + rnd.randint(1, 5000), 0
        if rnd.random() < 0.002:              # filed in the wrong partition
            eid_ms = rnd.choice([T0 - 1, T0 + DAY_MS, T0 + 9 * DAY_MS, 0])
        else:
            eid_ms = ms
        fields = rnd.choice(POISON + EDGES) if rnd.random() < 0.003 else [b"temp_f", b"%d" % rnd.randint(-150, 200)]
        raw.append([b"%d-%d" % (eid_ms, seq), list(fields)])
    window = rnd.choice([(), (T0, 123, 4), (T0 - HOUR_MS, 5, 1), (T0 + 2 * HOUR_MS, 7, 2), (T0, 0, 0)])
    day = rnd.choice([DAY, DAY, None])
    cuts = sorted(rnd.sample(range(1, len(raw)), min(len(raw) - 1, rnd.randint(0, 12)))) if len(raw) > 1 else []
    run_both(window, raw, day, cuts)


@pytest.mark.parametrize("seed", range(20))
def test_random_clean_streams_agree_on_the_bulk_path(seed):
    """Mostly clean batches (so the bulk path does the work), hour boundaries anywhere, any start window."""
    rnd = random.Random(100 + seed)
    raw = clean(rnd, rnd.randint(1, 20_000), start=T0 + rnd.randint(-1, 2) * HOUR_MS + rnd.randint(-2, 2),
                step_max=rnd.choice([2, 900, 4000, HOUR_MS // 2, 2 * HOUR_MS]))
    window = rnd.choice([(), (T0, 10, 1), (T0 - HOUR_MS, 0, 0), (T0 + HOUR_MS, -7, 3)])
    cuts = sorted(rnd.sample(range(1, len(raw)), min(len(raw) - 1, 8))) if len(raw) > 1 else []
    assert all(parse_raw(raw[a:b]) is not None for a, b in zip([0, *cuts], [*cuts, len(raw)]))
    plain = run_both(window, raw, None, cuts)
    assert plain.count > 0


def test_an_hour_boundary_exactly_at_a_batch_edge():
    raw = [[b"%d-0" % (T0 + HOUR_MS - 1), [b"temp_f", b"10"]], [b"%d-0" % (T0 + HOUR_MS), [b"temp_f", b"20"]]]
    w = HourlyWindow()
    assert fold_raw(w, raw[:1], DAY) == ([], [])
    assert fold_raw(w, raw[1:], DAY) == ([HourAverage(T0, 10, 1)], [])
    assert (w.hour_start_ms, w.total, w.count) == (T0 + HOUR_MS, 20, 1)


def test_an_empty_batch_changes_nothing():
    w = HourlyWindow(T0, 5, 1)
    assert fold_raw(w, [], DAY) == ([], [])
    assert (w.hour_start_ms, w.total, w.count) == (T0, 5, 1)


@pytest.mark.parametrize("base", [10**17, 9_999_999_999_999_999_000, 18_446_744_073_709_550_000])
def test_ids_too_large_for_int64_fold_like_the_plain_fold(base):
    raw = [[b"%d-0" % (base + i * 400_000), [b"temp_f", b"%d" % i]] for i in range(30)]
    run_both((), raw, None, [7])


def test_paused_gc_restores_what_it_found():
    import gc

    from labkit.core.batches import paused_gc
    assert gc.isenabled()
    with paused_gc():
        assert not gc.isenabled()
        with paused_gc():
            assert not gc.isenabled()
        assert not gc.isenabled()          # the inner block must not switch it back on
    assert gc.isenabled()
    with pytest.raises(KeyError):
        with paused_gc():
            raise KeyError
    assert gc.isenabled()


def test_the_bulk_paths_spellings_are_valid_by_the_one_rule():
    from labkit.core.window import PLAUSIBLE_F, USUAL_SPELLING, parse_temp_value
    assert len(USUAL_SPELLING) == PLAUSIBLE_F[1] - PLAUSIBLE_F[0] + 1
    assert all(parse_temp_value(raw) == v for raw, v in USUAL_SPELLING.items())
