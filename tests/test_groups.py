"""Consumer groups on a real server: helpers, workers, supervisor, dead letters, chaos, widgets."""

from __future__ import annotations

import threading
import time

import pytest
import redis

from labkit.labs import groups
from labkit.log import ListSink
from labkit.core.window import BadReading


def _fill(r, stream, n, start=1, bad=()):
    p = r.pipeline(transaction=False)
    for i in range(start, start + n):
        p.xadd(stream, {"temp_f": "oops" if i in bad else str(i % 101)}, id=f"{i}-0")
    p.execute()


class Recorder:
    """Work that remembers which entries it finished (to check: acked ⇒ work succeeded)."""

    def __init__(self, inner=groups.classify_reading):
        self.inner, self.ok, self.lock = inner, set(), threading.Lock()

    def __call__(self, eid, fields):
        out = self.inner(eid, fields)
        with self.lock:
            self.ok.add(eid)
        return out


def _wait(cond, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def _pool(target, keys, stream, **kw):
    kw.setdefault("claim_idle_ms", 200)
    kw.setdefault("supervise_every", 0.05)
    kw.setdefault("block_ms", 50)
    return groups.Pool(stream, keys=keys, target=target, sink=kw.pop("sink", ListSink()), **kw)


def test_create_group_start_ids_and_mkstream(r, keys):
    s = groups.key(keys, "s")
    with pytest.raises(redis.ResponseError):          # no stream, no MKSTREAM
        groups.create_group(r, s, "g", "$")
    assert groups.create_group(r, s, "g", "$", mkstream=True) is True
    assert groups.create_group(r, s, "g", "$", mkstream=True) is False   # BUSYGROUP is not an error
    _fill(r, s, 5)
    assert groups.create_group(r, s, "from0", "0") is True
    groups.create_group(r, s, "fromnow", "$")
    got0 = r.xreadgroup("from0", "c", {s: ">"})
    assert len(got0[0][1]) == 5
    assert r.xreadgroup("fromnow", "c", {s: ">"}) == []
    # The explicit-ID bound of XREADGROUP is exclusive: from 2-0 we get 3-0.. of our own PEL.
    again = r.xreadgroup("from0", "c", {s: "2-0"})
    assert [e[0] for e in again[0][1]] == [b"3-0", b"4-0", b"5-0"]


def test_pending_entries_pages_and_idle_filter(r, keys):
    s = groups.key(keys, "s")
    _fill(r, s, 250)
    groups.create_group(r, s, "g", "0")
    r.xreadgroup("g", "old", {s: ">"}, count=130)
    time.sleep(0.5)
    r.xreadgroup("g", "new", {s: ">"}, count=120)
    idle = groups.pending_entries(r, s, "g", idle_ms=300, page=50)
    rows = groups.pending_entries(r, s, "g", page=50)
    assert len(rows) == 250 and len({x["message_id"] for x in rows}) == 250
    assert len(idle) == 130 and {x["consumer"] for x in idle} == {b"old"}
    assert groups.pending_count(r, s, "g") == 250


def test_autoclaim_all_loops_until_cursor_zero_and_reports_deleted(r, keys):
    s = groups.key(keys, "s")
    _fill(r, s, 45)
    groups.create_group(r, s, "g", "0")
    r.xreadgroup("g", "dead", {s: ">"})
    r.xdel(s, "7-0", "30-0")                           # trimmed while pending
    time.sleep(0.02)
    entries, deleted, rounds = groups.autoclaim_all(r, s, "g", "healthy", 10, count=10)
    assert rounds >= 5                                  # 45 pending, 10 per call
    assert len(entries) == 43 and sorted(deleted) == ["30-0", "7-0"]
    assert all(f for _, f in entries)
    table = {c["name"]: c["pending"] for c in groups.consumers_table(r, s, "g")}
    assert table == {"dead": 0, "healthy": 43}
    # redis-py's justid=True returns a bare list of IDs: no cursor, no deleted IDs.
    time.sleep(0.02)
    just = r.xautoclaim(s, "g", "other", 10, "0-0", count=10, justid=True)
    assert isinstance(just, list) and len(just) == 10 and all(isinstance(x, bytes) for x in just)


def test_trimmed_pending_entry_comes_back_empty_from_own_pel(r, keys):
    s = groups.key(keys, "s")
    _fill(r, s, 5)
    groups.create_group(r, s, "g", "0")
    r.xreadgroup("g", "c", {s: ">"})
    r.xtrim(s, minid="3-0", approximate=False)
    own = r.xreadgroup("g", "c", {s: "0"})[0][1]
    assert [e[0] for e in own] == [b"1-0", b"2-0", b"3-0", b"4-0", b"5-0"]
    assert own[0][1] in ({}, None) and own[2][1] == {b"temp_f": b"3"}


def test_pool_processes_everything_and_replays_own_pending_first(r, keys, target):
    s = groups.key(keys, "s")
    _fill(r, s, 300)
    groups.create_group(r, s, "workers", "0")
    r.xreadgroup("workers", "w1", {s: ">"}, count=40)     # w1 "crashed" earlier holding 40
    work = Recorder()
    pool = _pool(target, keys, s, work=work, workers=2, claim_idle_ms=60_000)
    with pool:
        assert pool.wait_drained(30)
    st = pool.status()
    assert st["replayed"] == 40 and st["claimed"] == 0
    assert st["done"] == 300 and pool.done_ids <= work.ok
    a = pool.audit()
    assert a["ok"] and a["acked_after_work"] == 300 and a["pending"] == 0


def test_failed_work_is_not_acked_then_retried_by_supervisor(r, keys, target):
    s = groups.key(keys, "s")
    _fill(r, s, 200)
    work = Recorder(groups.flaky(groups.classify_reading, 0.3, seed=7))
    pool = _pool(target, keys, s, work=work, workers=2, deadletter_after=50)
    with pool:
        assert pool.wait_drained(30)
    st = pool.status()
    assert st["failed"] > 20 and st["claimed"] >= st["failed"] - st["replayed"]
    assert st["deadlettered"] == 0 and pool.done_ids == work.ok
    assert pool.audit()["ok"]


def test_poison_pill_dead_lettered_after_k_deliveries(r, keys, target):
    s = groups.key(keys, "s")
    _fill(r, s, 50, bad={17, 33})
    sink = ListSink()
    pool = _pool(target, keys, s, workers=2, deadletter_after=2, sink=sink)
    with pool:
        assert pool.wait_drained(30)
    dl = groups.deadletters(r, pool.deadletter, s)
    assert sorted(d["id"] for d in dl) == ["17-0", "33-0"]
    for d in dl:
        assert int(d["deliveries"]) > 2 and "more than 2" in d["reason"]
        assert d["source"] == s and "oops" in d["payload"]
    a = pool.audit()
    assert a["ok"] and a["deadlettered"] == 2 and a["acked_after_work"] == 48
    assert any("Dead-lettered 17-0" in t for t in sink.texts())


def test_trimmed_pending_entries_are_dead_lettered_not_lost(r, keys, target):
    s = groups.key(keys, "s")
    _fill(r, s, 60)
    groups.create_group(r, s, "workers", "0")
    r.xreadgroup("workers", "ghost", {s: ">"}, count=20)    # a consumer that never comes back: 1..20
    r.xreadgroup("workers", "w1", {s: ">"}, count=10)       # w1 replays these on start: 21..30
    r.xdel(s, "5-0", "6-0", "25-0")
    pool = _pool(target, keys, s, workers=1)
    with pool:
        assert pool.wait_drained(30)
    dl = {d["id"]: d for d in groups.deadletters(r, pool.deadletter, s)}
    assert set(dl) == {"5-0", "6-0", "25-0"}
    assert all(d["reason"].startswith("trimmed") for d in dl.values())
    st = pool.status()
    assert st["trimmed"] == 3 and st["done"] == 57
    assert groups.pending_count(r, s, "workers") == 0


def test_chaos_invariant_every_entry_acked_or_deadlettered(r, keys, target):
    s = groups.key(keys, "chaos")
    n, bad = 3000, {500, 1500, 2999}
    _fill(r, s, n, bad=bad)
    work = Recorder(groups.slow(groups.flaky(groups.classify_reading, 0.02, seed=3), 0.0005))
    pool = _pool(target, keys, s, work=work, workers=4, count=20, deadletter_after=3, chaos=True,
                 chaos_every=(0.03, 0.12), restart_after=0.1, seed=11, claim_idle_ms=150)
    t0 = time.monotonic()
    pool.start()
    drained = pool.wait_drained(60)
    pool.stop()
    st, a = pool.status(), pool.audit()
    print(f"\nchaos: {n} entries in {time.monotonic() - t0:.2f}s: acked after work {a['acked_after_work']}, "
          f"dead-lettered {a['deadlettered']}, pending {a['pending']}, lost {a['lost']}; killed {st['killed']}, "
          f"restarted {st['restarted']}, replayed {st['replayed']}, claimed {st['claimed']}, "
          f"failed attempts {st['failed']}, done twice {st['repeated']}")
    assert drained and not st["errors"]
    assert st["killed"] >= 3 and st["restarted"] >= 2
    assert a["entries"] == n and a["lost"] == 0 and a["pending"] == 0 and a["ok"]
    assert a["acked_after_work"] + a["deadlettered"] - a["both"] == n
    dl = {d["id"] for d in groups.deadletters(r, pool.deadletter, s)}
    assert {f"{i}-0" for i in bad} <= dl
    assert pool.done_ids <= work.ok                   # acked only after successful work
    assert not {f"{i}-0" for i in bad} & pool.done_ids


def test_audit_catches_a_lost_entry(r, keys, target):
    """The audit is not a rubber stamp: an entry acked without work is reported lost."""
    s = groups.key(keys, "s")
    _fill(r, s, 10)
    pool = _pool(target, keys, s, workers=1)
    with pool:
        assert pool.wait_drained(30)
    r.xadd(s, {"temp_f": "1"}, id="11-0")
    r.xreadgroup("workers", "sloppy", {s: ">"})
    r.xack(s, "workers", "11-0")                      # acknowledged, never worked on
    a = groups.audit(r, s, "workers", pool.deadletter, pool.done_ids)
    assert not a["ok"] and a["lost"] == 1 and a["lost_ids"] == ["11-0"]


def test_scaling_and_kill(r, keys, target):
    s = groups.key(keys, "s")
    groups.create_group(r, s, "workers", "$", mkstream=True)
    pool = _pool(target, keys, s, workers=1, restart_after=0.1, create=None)
    with pool:
        pool.set_workers(3)
        assert _wait(lambda: len([w for w in pool.live_workers() if w.state == "running"]) == 3)
        victim = pool.kill("w2")
        assert victim == "w2"
        assert _wait(lambda: pool.workers["w2"].generation == 2 and pool.workers["w2"].state == "running")
        assert pool.status()["restarted"] == 1 and pool.status()["killed"] == 1
        pool.set_workers(1)
        assert _wait(lambda: [w.name for w in pool.live_workers()] == ["w1"])
        assert {n: w.state for n, w in pool.workers.items()} == {"w1": "running", "w2": "stopped", "w3": "stopped"}


@pytest.mark.parametrize("seed", range(4))
def test_a_kill_lands_on_a_worker_holding_entries(r, keys, target, seed):
    """Chaos and the kill button pick a worker that holds unacknowledged entries when there is one, so a kill
    shows what it is meant to show (a pending list replayed or claimed), not an idle worker stopping."""
    s = groups.key(keys, "s")
    groups.create_group(r, s, "workers", "$", mkstream=True)
    pool = _pool(target, keys, s, work=groups.slow(groups.classify_reading, 0.3), workers=3, count=10,
                 restart_after=0.2, create=None, seed=seed)
    with pool:
        assert _wait(lambda: len([w for w in pool.live_workers() if w.state == "running"]) == 3)
        with r.pipeline(transaction=True) as p:        # all five at once: one worker reads them, two stay idle
            for i in range(1, 6):
                p.xadd(s, {"temp_f": "70"}, id=f"{i}-0")
            p.execute()
        assert _wait(lambda: sum(w.holding > 0 for w in pool.workers.values()) == 1)
        holder = next(w.name for w in pool.workers.values() if w.holding > 0)
        assert pool.kill() == holder
        assert _wait(lambda: pool.status()["replayed"] + pool.status()["claimed"] >= 1)
        assert pool.wait_drained(timeout=20)
    assert pool.audit()["lost"] == 0


def test_classify_average_and_reading():
    assert groups.classify_average("1-0", {b"average_temp_f": b"79.99"}) == "warm"
    assert groups.classify_reading("1-0", {b"temp_f": b"20"}) == "freezing"
    with pytest.raises(BadReading):
        groups.classify_reading("1-0", {b"temp_f": b"NaN"})
    with pytest.raises(BadReading):
        groups.classify_average("1-0", {b"average_temp_f": b"nan"})


def test_lab_keys_and_delete_keys(r, keys):
    k = groups.lab_keys("lab", keys)
    assert k.namespace == f"{keys.namespace}.lab"
    r.set(groups.key(k, "x"), 1)
    r.set(groups.key(keys, "mine"), 1)
    assert groups.delete_keys(r, k) == 1
    assert r.exists(groups.key(keys, "mine")) == 1
    from labkit.core.keys import Keys
    with pytest.raises(Exception):
        groups.delete_keys(r, Keys(""))


# --------------------------------------------------------------------------- widgets, headless

def test_workers_panel_callbacks_headless(r, keys, target):
    from labkit.labs import panel as gw
    s = groups.key(keys, "s")
    _fill(r, s, 200)
    pool = _pool(target, keys, s, work=groups.slow(groups.classify_reading, 0.002), workers=2,
                 restart_after=0.2)
    panel = gw.WorkersPanel(pool, refresh_every=0.1)
    with pool:
        panel.start()
        assert _wait(lambda: len(pool.live_workers()) == 2)
        panel.kill_button.click()
        assert panel.last_killed in ("w1", "w2")
        panel.chaos.value = True
        assert pool.chaos is True
        panel.chaos.value = False
        panel.workers.value = 3
        assert pool.desired == 3
        assert pool.wait_drained(30)
        time.sleep(0.3)
        panel.stop()
    assert pool.status()["killed"] >= 1
    assert "w1" in panel.table.value and "<table>" in panel.table.value
    assert panel.chart.value[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"acked after work <b>{pool.status()['done']}</b>" in panel.status.value
    assert pool.audit()["acked_after_work"] == 200
    logged = "".join(o.get("text", "") for o in panel.log.outputs)
    assert "Kill button" in logged and "killed" in logged
    assert pool.audit()["ok"]


def test_output_sink_limits_lines():
    import ipywidgets as W
    from labkit.labs import panel as gw
    from labkit.log import LogLine
    out = W.Output()
    sink = gw.FirstLinesSink(out, limit=3)
    for i in range(10):
        sink(LogLine("group", f"line {i}"))
    texts = [o["text"] for o in out.outputs]
    assert texts[:3] == ["group: line 0\n", "group: line 1\n", "group: line 2\n"]
    assert len(texts) == 4 and sink.hidden == 7


def test_throughput_series():
    from labkit.labs.panel import throughput_series
    xs, ys = throughput_series([(0.0, 0), (0.5, 50), (1.0, 100), (1.5, 100)])
    assert xs == [0.5, 1.0, 1.5] and ys == [100.0, 100.0, 50.0]
