"""The producer on a real server: exactly the seeded dataset, and server errors surface as errors."""

from __future__ import annotations

import time

import numpy as np
import pytest
import redis

from labkit import producer
from labkit.partition import DAY_MS, day_of, parse_partition, partition_name
from labkit.runner import list_partitions


def reference(data: producer.Dataset, prefix: str) -> dict[str, list]:
    """What the dataset must be, computed the plain way: per partition, one draw of ±1 steps from the
    seeded generator, the walk kept within 0..100, IDs ``<ms>-0``."""
    rng, v, out = np.random.default_rng(data.seed), producer.WALK_START, {}
    for day, lo, hi in data.slices():
        steps = (rng.integers(0, 2, hi - lo, dtype=np.int8) * 2 - 1).tolist()
        rows = out.setdefault(partition_name(day, prefix), [])
        for i, s in zip(range(lo, hi), steps):
            v = min(producer.WALK_MAX, max(producer.WALK_MIN, v + s))
            rows.append((b"%d-0" % (data.start_ms + i * data.interval_ms), {b"temp_f": b"%d" % v}))
    return out


@pytest.mark.parametrize("start,days,interval_ms,seed", [
    ("2025-03-30T22:00", 1.3, 7000, 5),     # starts late in a day: a short first partition
    ("2024-02-28T23:59:59", 0.002, 1, 3),   # across a leap-day boundary, 1 ms apart
    ("2025-01-01", 2, 1000, 0),             # the course's days: full batches, the next walk computed meanwhile
    ("2001-09-09T01:46:39.990", 3e-7, 1, 1),  # IDs grow from 12 to 13 digits inside one batch
])
def test_writes_exactly_the_seeded_dataset_with_expiry(r, keys, start, days, interval_ms, seed):
    data = producer.Dataset(producer.parse_start(start), days, interval_ms, seed)
    now = int(time.time() * 1000)
    res = producer.produce(r, data, keys, now_ms=now)
    want = reference(data, keys.partition_prefix)
    assert list_partitions(r, keys) == sorted(want) and res["readings"] == data.count
    retention = round(producer.DEFAULT_RETENTION_DAYS * DAY_MS)
    for name, rows in want.items():
        assert r.xrange(name) == rows
        day = parse_partition(name, keys.partition_prefix)
        assert r.pexpiretime(name) == producer.expire_at_ms(day, day_of(data.start_ms), now, retention)


def test_a_rejected_xadd_in_a_batch_raises_the_servers_error(r, keys):
    key = keys.key("pipe-test").encode()
    pipe = producer._Pipe(r)
    ms, temps = range(1000, 2000), [50] * 1000
    pipe.send(*producer._encode_xadds(key, ms, temps), 1000)
    # The second batch goes back in time half-way: the server refuses those IDs.
    pipe.send(*producer._encode_xadds(key, range(1500, 2500), temps), 1000)
    with pytest.raises(redis.ResponseError, match="^ERR The ID specified in XADD is equal or smaller"):
        pipe.drain()
    pipe.close(False)
    assert len(r.xrange(key, "-", "1999-0")) == 1000     # the first batch was checked before the error surfaced


def test_a_wrong_type_key_raises_not_hangs(r, keys):
    key = keys.key("pipe-test")
    r.set(key, "not a stream")
    pipe = producer._Pipe(r)
    pipe.send(*producer._encode_xadds(key.encode(), range(1, 4), [1, 2, 3]), 3)
    with pytest.raises(redis.ResponseError, match="^WRONGTYPE"):
        pipe.drain()
    pipe.close(False)
    pipe = producer._Pipe(r)
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        pipe.call(producer._cmd(b"XADD", key.encode(), b"5-0", b"temp_f", b"1"), 1)
    pipe.close(False)


def test_a_reply_other_than_the_expected_id_raises(r, keys):
    key = keys.key("pipe-test").encode()
    pipe = producer._Pipe(r)
    _, expect = producer._encode_xadds(key, range(7, 8), [1])
    pipe.send(producer._cmd(b"XADD", key, b"*", b"temp_f", b"1"), expect, 1)   # the server picks the ID
    with pytest.raises(redis.ResponseError, match="unexpected reply"):
        pipe.drain()
    pipe.close(False)


def test_a_failed_first_entry_transaction_raises_the_servers_error(r, keys):
    key = keys.key("temps:20250101")
    r.set(key, "not a stream")
    pipe = producer._Pipe(r)
    with pytest.raises(redis.ResponseError, match="^WRONGTYPE"):
        producer._write_partition(pipe, key.encode(), range(1000, 1100), [5] * 100, 2**40,
                                  (keys.watermark.encode(), 1), 0, lambda n: None)
    pipe.close(False)
    assert r.get(keys.watermark) is None
