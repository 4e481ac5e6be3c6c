"""BatchReader + the bulk fold on a real server: the same hours as redis-py + the plain fold."""

from __future__ import annotations

import tracemalloc

import pytest

from labkit.core.batches import BatchReader
from labkit.core.fastfold import fold_raw
from labkit.core.partition import DAY_MS, HOUR_MS, day_start_ms, parse_partition
from labkit.core.runner import list_partitions
from labkit.core.window import HourlyWindow, fold

from tests.helpers import T0, produce

pytestmark = pytest.mark.single_server   # a BatchReader on the test's plain client (a cluster gives it a node's)


def fold_all(r, keys, batch_of, count):
    """Fold every partition, batch by batch, closing the open hour at each partition's end.
    Returns closed hours, rejected entries and how many batches were read."""
    window, closed, bad, batches = HourlyWindow(), [], [], 0
    for name in list_partitions(r, keys):
        lo = day_start_ms(parse_partition(name, keys.partition_prefix))
        last = "0"
        while True:
            entries, fold_batch = batch_of(name, last)
            c, b = fold_batch(window, entries, (lo, lo + DAY_MS))
            closed += c
            bad += b
            batches += 1
            if len(entries) < count:
                break
            last = entries[-1][0]
        closed += [h for h in [window.close()] if h]
    return closed, bad, batches


def plain(r, count):
    def batch_of(name, last):
        start = "-" if last == "0" else b"(" + last
        return r.xrange(name, min=start, count=count), fold
    return batch_of


def fast(reader):
    def batch_of(name, last):
        return reader.read(name, last)[1], fold_raw
    return batch_of


def both_ways(r, keys, count: int) -> tuple:
    """The partitions folded from redis-py's XREAD (the plain path) and from a BatchReader (the fast one)."""
    reader = BatchReader(r, count)
    try:
        return fold_all(r, keys, plain(r, count), count), fold_all(r, keys, fast(reader), count)
    finally:
        reader.close()


def test_a_produced_dataset_folds_to_the_same_hours(r, keys):
    data = produce(r, keys, start="2025-01-01T07:30", days=2.2, interval_ms=1300, seed=4)
    count = 9_000       # not a divisor of any partition's length: full batches, then a short one
    want, got = both_ways(r, keys, count)
    assert got == want
    hours = {(data.start_ms + i * data.interval_ms) // HOUR_MS for i in range(data.count)}
    assert [h.hour_start_ms // HOUR_MS for h in want[0]] == sorted(hours)
    assert sum(h.count for h in want[0]) == data.count and want[1] == [] and want[2] > 6


def test_poison_readings_on_the_wire_fold_the_same(r, keys):
    name = keys.partition_prefix + "20250101"
    p = r.pipeline(transaction=False)
    poison = [{"temp_f": "4_2"}, {"temp_f": " 42"}, {"temp_f": "+42"}, {"temp_f": "1.0"}, {"temp_f": "٤٢"},
              {"temp_f": "-151"}, {"temp_f": "201"}, {"temp_f": ""}, {"other": "5"}, {"temp_f": "5", "x": "1"},
              {"temp_f": "007"}, {"temp_f": "-0"}]
    for i in range(6000):
        fields = poison[i // 500] if i % 500 == 250 else {"temp_f": str(i % 351 - 150)}
        p.xadd(name, fields, id=f"{T0 + i * 1700}-{i % 3}")
    p.xadd(name, {"temp_f": "50"}, id=f"{T0 + DAY_MS + 5}-0")   # filed in the wrong day
    p.execute()
    count = 1000
    want, got = both_ways(r, keys, count)
    assert got == want
    assert len(want[1]) == 11 and "outside" in want[1][-1][2]


def test_reads_ahead_and_still_answers_any_position(r, keys):
    produce(r, keys, days=0.1, interval_ms=1000)      # 8,640 readings
    name = keys.partition_prefix + "20250101"
    seen = []
    # "before" may name only keys of the stream's slot (on a cluster it goes to the stream's master)
    reader = BatchReader(r, 1000, before=lambda stream: [("XLEN", stream), ("EXISTS", "{%s}x" % stream)])
    try:
        replies, first = reader.read(name, "0")
        assert replies == [8640, 0] and len(first) == 1000
        assert reader.ahead == (name, first[-1][0])          # the next batch is already asked for
        seen.append(reader.read(name, first[-1][0])[1])     # ... and taken
        again = reader.read(name, "0")[1]                    # another position: the read-ahead is dropped
        assert again == first
        tail = reader.read(name, b"%d-0" % (T0 + 8000 * 1000))[1]
        assert len(tail) == 639 and reader.ahead is None     # a short batch asks for nothing more
    finally:
        reader.close()
    assert seen[0][0][0] == b"%d-0" % (T0 + 1000 * 1000)


def test_reading_holds_a_couple_of_batches_not_the_dataset(r, keys):
    peaks = {}
    for days in (1, 4):
        produce(r, keys, days=days, interval_ms=2000)
        reader = BatchReader(r, 5_000)
        tracemalloc.start()
        try:
            fold_all(r, keys, fast(reader), 5_000)
            peaks[days] = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
            reader.close()
    assert peaks[4] < 1.5 * peaks[1], peaks


def test_the_commands_before_a_read_run_ahead_of_it_also_when_read_ahead(r, keys):
    # The consumer relies on this: the manifest record it judges a batch by is read before that batch.
    name = keys.partition_prefix + "20250101"
    for i in range(4):
        r.xadd(name, {"temp_f": "1"}, id=f"{T0 + i}-0")
    reader = BatchReader(r, 4, before=lambda stream: [("XADD", stream, "*", "temp_f", "2")])
    try:
        _, first = reader.read(name, "0")       # full: the next request (XADD, then XRANGE) is already sent
        assert len(first) == 4 and reader.ahead == (name, first[-1][0])
        replies, ahead = reader.read(name, first[-1][0])
    finally:
        reader.close()
    # Each request's XADD ran before its XRANGE: the batch read ahead holds both added entries.
    assert [e[1] for e in ahead] == [[b"temp_f", b"2"]] * 2 and replies == [ahead[1][0]]


def test_first_runs_before_each_request_also_when_read_ahead(r, keys):
    # On a cluster the consumer reads the manifest this way (through the cluster client, before the request
    # goes to the partition's master): what ``first`` does must be seen by the batch it precedes.
    name = keys.partition_prefix + "20250101"
    for i in range(4):
        r.xadd(name, {"temp_f": "1"}, id=f"{T0 + i}-0")
    reader = BatchReader(r, 4, first=lambda stream: [r.xadd(stream, {"temp_f": "2"})], before=lambda s: [("XLEN", s)])
    try:
        replies, first = reader.read(name, "0")
        assert len(first) == 4 and reader.ahead == (name, first[-1][0])
        assert replies[1] == 5 and isinstance(replies[0], bytes)   # first's reply, then before's
        replies, ahead = reader.read(name, first[-1][0])
    finally:
        reader.close()
    assert [e[1] for e in ahead] == [[b"temp_f", b"2"]] * 2 and replies == [ahead[1][0], 6]
