"""The producer on a real server: exactly the seeded dataset, and server errors surface as errors."""

from __future__ import annotations

import time

import numpy as np
import pytest
from labkit.core.partition import DAY_MS, day_of, parse_partition, partition_name
from labkit.core.runner import list_partitions

from labkit.core import producer


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


def test_a_partition_is_marked_complete_only_once_the_server_holds_all_of_it(r, keys, monkeypatch):
    """The writer sends the next partition before the last batch of one is acknowledged; the mark must still
    wait for every reply (checked at the moment of marking, on another connection)."""
    real, seen = producer.manifest.mark_complete, []

    def checked(r_, keys_, partition, run, count, last_ms, first_ms=-1):
        seen.append((partition, r.xlen(partition), count))
        real(r_, keys_, partition, run, count, last_ms, first_ms)

    monkeypatch.setattr(producer.manifest, "mark_complete", checked)
    data = producer.Dataset(producer.parse_start("2025-01-01"), 3)
    producer.produce(r, data, keys)
    assert sorted(p for p, _, _ in seen) == data.partitions(keys)   # on a cluster, in any order
    assert all(held == count == 86_400 for _, held, count in seen), seen


def _kill_writers(r, names) -> int:
    """Drop every connection that last ran a write of the producer's, on the nodes serving ``names``."""
    from labkit.servers import connection
    killed = 0
    for node in {id(c): c for c in (connection.node_client(r, n) for n in names)}.values():
        me = node.client_id()
        for c in node.client_list():
            if c["cmd"] in ("xadd", "exec", "pexpireat", "multi") and int(c["id"]) != me:
                killed += node.client_kill_filter(_id=c["id"])
    return killed


@pytest.mark.server_wide     # CLIENT PAUSE WRITE, and it kills the connections that write
def test_a_connection_lost_while_two_partitions_are_in_flight_resumes_both(r, keys):
    """The first partition's last batch is sent (the server is then paused, so it is not all written), the
    second partition's first batch is sent, and the connection is lost: both resume after their last entry;
    the dataset is exact and both are marked complete."""
    from labkit.servers import connection
    from labkit.core import manifest
    from labkit.log import ListSink
    for day in range(1, 29):    # on a cluster: two days whose partitions one master serves (one pipe)
        data = producer.Dataset(producer.parse_start(f"2025-01-{day:02d}"), 2, 2000, 9)  # 43,200 a day
        names = data.partitions(keys)
        node = connection.node_client(r, names[0])
        if connection.node_client(r, names[1]) is node:
            break
    per_day, sink = 43_200, ListSink()
    steps, sent = [], [0]

    def progress(n):
        sent.append(n)
        if n == per_day and not steps:      # the first partition's last batch is on its way: once the server
            while r.xlen(names[0]) < sent[-2]:   # has written the batch before it, pause its writes
                pass
            steps.append(node.execute_command("CLIENT", "PAUSE", 5_000, "WRITE"))
        elif n > per_day and len(steps) == 1:   # the second one's first batch is on its way too
            steps.append(_kill_writers(r, names))
            node.execute_command("CLIENT", "UNPAUSE")

    now = int(time.time() * 1000)
    try:
        res = producer.produce(r, data, keys, sink, progress=progress, now_ms=now, reconnect_s=30)
    finally:
        node.execute_command("CLIENT", "UNPAUSE")
    assert len(steps) == 2 and steps[1] >= 1 and res["readings"] == data.count
    resumed = [t for t in sink.texts() if "resuming" in t]
    assert len(resumed) == 2 and names[0] in resumed[0] and names[1] in resumed[1], resumed
    assert f"of {per_day:,}" in resumed[0] and f"at reading {per_day:,}" not in resumed[0], resumed
    want = reference(data, keys.partition_prefix)
    retention = round(producer.DEFAULT_RETENTION_DAYS * DAY_MS)
    records = manifest.read(r, keys)
    for name, rows in want.items():
        assert r.xrange(name) == rows
        day = parse_partition(name, keys.partition_prefix)
        assert r.pexpiretime(name) == producer.expire_at_ms(day, day_of(data.start_ms), now, retention)
        assert records[name].status == manifest.COMPLETE and records[name].count == len(rows) == per_day
