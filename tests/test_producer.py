"""The producer on a real server: exactly the seeded dataset, and server errors surface as errors."""

from __future__ import annotations

import time

import numpy as np
import pytest
from labkit.partition import DAY_MS, day_of, parse_partition, partition_name
from labkit.runner import list_partitions

from labkit import producer


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
