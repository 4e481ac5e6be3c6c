"""The consumer's fast path (read-ahead + bulk fold) against its plain path, on a real server.

The same random partitions (poison readings, oddly spelled but valid readings,
readings filed in the wrong day, several readings in one millisecond, hour
boundaries anywhere inside batches) are written to two namespaces; the consumer
runs once with ``fast=False`` and once with ``fast=True`` at each batch size,
and everything it writes must be identical.
"""

from __future__ import annotations

import random
import threading
import time
import uuid

import pytest

from labkit.servers import connection
from labkit.core import manifest
from labkit.core.aggregating import BATCH, AggregatingConsumer
from labkit.core.batches import BatchReader
from labkit.core.fastfold import parse_raw
from labkit.core.keys import Keys
from labkit.core.keyspace import keys_for
from labkit.log import ListSink
from labkit.core.partition import DAY_MS, HOUR_MS
from labkit.core.runner import prepare
from tests.conftest import _delete_namespace
from tests.helpers import T0, check

pytestmark = pytest.mark.single_server   # a BatchReader on the test's plain client (a cluster gives it a node's)

DAYS = 3
POISON = [{"temp_f": "4_2"}, {"temp_f": " 42"}, {"temp_f": "+42"}, {"temp_f": "1.0"}, {"temp_f": "٤٢"},
          {"temp_f": "-151"}, {"temp_f": "201"}, {"temp_f": ""}, {"other": "5"}, {"temp_f": "5", "x": "1"},
          {"temp_f": "nan"}, {"temp_f": "99999999999"}]
ODD_BUT_VALID = [{"temp_f": "007"}, {"temp_f": "-0"}, {"temp_f": "0200"}]


def random_partitions(seed: int) -> dict[int, list[tuple[str, dict]]]:
    """``{day: [(id, fields), ...]}`` in ID order: about 4,300 readings a day, clean stretches between
    poison, odd spellings, same-millisecond bursts (with sequence numbers past 9) and stray days."""
    rnd = random.Random(seed)
    days = {}
    for d in range(DAYS):
        lo, entries, ms = T0 + d * DAY_MS, [], T0 + d * DAY_MS
        if d == 1:   # filed in the wrong partition: from the day before, first in the stream
            entries += [(f"{lo - 5000 + i}-0", {"temp_f": "60"}) for i in range(3)]
        while True:
            ms += rnd.choice((1, 7_000, 20_000, 20_000, 20_000, 41_000))
            if ms >= lo + DAY_MS:
                break
            roll = rnd.random() if d < 2 else 1.0      # the last day is clean: bulk even in one batch
            if roll < 0.004:
                fields = rnd.choice(POISON)
            elif roll < 0.006:
                fields = rnd.choice(ODD_BUT_VALID)
            else:
                fields = {"temp_f": str(rnd.randint(-150, 200))}
            burst = 1 if d == 2 or rnd.random() < 0.99 else 12 if rnd.random() < 0.1 else 3
            entries += [(f"{ms}-{seq}", fields) for seq in range(burst)]
        if d == 0:   # stray readings of later days, last in the stream (one of them a poison)
            entries += [(f"{lo + DAY_MS + 1}-0", {"temp_f": "61"}), (f"{lo + 3 * DAY_MS}-0", {"temp_f": "x"})]
        days[d] = entries
    return days


def write(r, keys: Keys, days: dict) -> list[str]:
    names = []
    for d, entries in days.items():
        name = keys.partition_prefix + time.strftime("%Y%m%d", time.gmtime((T0 + d * DAY_MS) / 1000))
        p = connection.node_client(r, name).pipeline(transaction=False)
        for eid, fields in entries:
            p.xadd(name, fields, id=eid)
        p.execute()
        manifest.mark_complete(r, keys, name, "test", len(entries), int(entries[-1][0].split("-")[0]))
        names.append(name)
    return names


def consume(r, keys: Keys, first: str, batch: int, fast: bool) -> AggregatingConsumer:
    """Run the consumer from ``first`` until it waits for more, then stop it."""
    prepare(r, keys, first)
    agg = AggregatingConsumer(r, keys, ListSink(), averages_maxlen=0, batch=batch, block_ms=20, fast=fast)
    stop, crash = threading.Event(), threading.Event()
    t = threading.Thread(target=agg.run, args=(stop, crash), daemon=True)
    t.start()
    deadline = time.monotonic() + 120
    while agg.idle_since is None and t.is_alive() and time.monotonic() < deadline:
        time.sleep(0.01)
    stop.set()
    t.join(10)
    assert not t.is_alive() and agg.idle_since is not None, "the consumer did not finish"
    return agg


def written(r, keys: Keys) -> tuple:
    """Everything the consumer wrote, with the namespace taken out of key names."""
    def plain(v: bytes) -> bytes:
        return v.replace(keys.partition_prefix.encode(), b"P:")
    averages = r.xrange(keys.averages)
    dead = [{k: plain(v) for k, v in fields.items()} for _, fields in r.xrange(keys.deadletter)]
    state = {k: plain(v) for k, v in r.hgetall(keys.aggregating_state).items()}
    return averages, dead, state


@pytest.fixture
def other_keys(r):
    k = keys_for(r, Keys("t" + uuid.uuid4().hex[:10]))
    yield k
    _delete_namespace(r, k)


@pytest.mark.parametrize("batch", [7, 997, 4096, BATCH])
def test_fast_path_writes_exactly_what_the_plain_path_writes(r, keys, other_keys, batch):
    days = random_partitions(seed=batch)
    plain_names = write(r, keys, days)
    write(r, other_keys, days)
    plain = consume(r, keys, plain_names[0], batch, fast=False)
    fast = consume(r, other_keys, other_keys.partition_prefix + plain_names[0][-8:], batch, fast=True)

    want, got = written(r, keys), written(r, other_keys)
    assert got == want
    assert (fast.readings, fast.published, fast.dead_letters, fast.losses) == \
           (plain.readings, plain.published, plain.dead_letters, plain.losses)
    averages, dead, state = want
    hours = {int(eid.split("-")[0]) // HOUR_MS * HOUR_MS for d in days.values() for eid, _ in d}
    assert len(averages) == DAYS * 24 and plain.losses == 0
    assert [int(a[0].split(b"-")[0]) for a in averages] == sorted(h for h in hours if T0 <= h < T0 + DAYS * DAY_MS)
    assert sum(1 for f in dead if b"outside its partition" in f[b"reason"]) == 5
    assert len(dead) > 5 and state[b"current_stream_key"] == b"P:" + plain_names[-1][-8:].encode()
    assert check(r, other_keys)[0].ok
    # Both halves of the fast path ran: batches folded in bulk, and batches handed to the plain fold.
    reader, bulk, whole = BatchReader(r, batch), 0, 0
    try:
        for name in plain_names:
            last = "0"
            while entries := reader.read(name, last)[1]:
                bulk += parse_raw(entries) is not None
                whole += 1
                last = entries[-1][0]
    finally:
        reader.close()
    assert 0 < bulk < whole
