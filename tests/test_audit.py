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
from tests.helpers import T0, check, produce, wait_for


def consume_until_idle(target, keys, partition, timeout=60, **kw):
    sink = ListSink()
    h = start_consumers(partition, sink=sink, keys=keys, target=target, averages_maxlen=kw.pop("maxlen", 0), **kw)
    assert h.wait_idle(0.5, timeout=timeout), h.status()
    h.stop()
    return h, sink


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


# ---------------------------------------------------------------------------- 1. partitions that vanish under produce

@pytest.fixture
def own_server(tmp_path):
    """An embedded server of this test's own (its settings and restarts touch nobody else)."""
    from labkit.servers import connection, embedded as server
    home = tmp_path / "home"
    info, _ = server.start(home)
    t = connection.Target(info.url, embedded=True)
    r = connection.connect(t)
    yield home, info, t, r
    r.close()
    server.stop(home)


def _run_cli(t, lab_home, *args, env=None):
    import os
    import subprocess
    import sys
    from tests.conftest import ROOT
    e = {k: v for k, v in os.environ.items() if k not in ("LABKIT_NAMESPACE", "LABKIT_ALLOW_EVICTION")}
    e.update(LABKIT_HOME=str(lab_home), PYTHONPATH=str(ROOT), REDIS_URL=t.url, **(env or {}))
    return subprocess.run([sys.executable, "-m", "labkit", *args], capture_output=True, text=True, env=e,
                          timeout=120, cwd=ROOT)


def test_a_partition_deleted_while_produce_writes_it_is_never_re_created(r, keys):
    from labkit.core import producer
    from labkit.errors import LabkitError
    day1 = keys.partition_prefix + "20250101"
    done = []

    def progress(n):
        if n > 20_000 and not done:
            wait_for(lambda: r.exists(day1))         # created (its first transaction is in), then deleted
            r.delete(day1)
            done.append(n)
    with pytest.raises(LabkitError, match=f"{day1} vanished while produce was writing it .*left incomplete"):
        producer.produce(r, producer.Dataset(producer.parse_start("2025-01-01"), 2), keys, progress=progress)
    assert done
    assert not r.exists(day1) or r.pttl(day1) > 0            # never a partition without its expiry
    assert manifest.read(r, keys)[day1].status == manifest.WRITING


def test_expiry_follows_the_servers_clock_not_a_client_clock_days_behind(r, keys, monkeypatch):
    import datetime as dt
    import time as real_time
    from labkit.core import producer

    class Behind:                                   # the client's clock, five days late
        def __getattr__(self, name):
            return getattr(real_time, name)

        def time(self):
            return real_time.time() - 5 * 86400
    monkeypatch.setattr(producer, "time", Behind())
    today = dt.datetime.fromtimestamp(Behind().time(), dt.timezone.utc).date()
    data = producer.Dataset(producer.parse_start(today.isoformat()), 1, 1000)
    producer.produce(r, data, keys)
    name = data.partitions(keys)[0]
    assert r.xlen(name) == data.count and r.pttl(name) > 86_400_000, (r.xlen(name), r.pttl(name))


def test_produce_exits_non_zero_naming_a_server_that_restarted_empty_under_it(own_server):
    import shutil
    from labkit.core import producer
    from labkit.core.keys import Keys
    from labkit.errors import LabkitError
    from labkit.servers import embedded as server
    home, info, t, r = own_server
    restarted = []

    def progress(n):
        if n > 2 * 86_400 + 10_000 and not restarted:       # in the third of 4 partitions
            server.stop(home)
            shutil.rmtree(info.data_dir)                     # no persistence: it comes back empty
            server.start(home)
            restarted.append(n)
    with pytest.raises(LabkitError, match=r"Redis lost labkit's keys while produce was writing .*20250103.*"
                                          r"restarted without persistence") as exc:
        producer.produce(r, producer.Dataset(producer.parse_start("2025-01-01"), 4), Keys("empty"),
                         progress=progress, reconnect_s=30)
    assert restarted and "suspended" not in str(exc.value)


def test_an_evicting_server_is_refused_unless_allowed(own_server, lab_home):
    home, info, t, r = own_server
    r.config_set("maxmemory-policy", "allkeys-lru")
    res = _run_cli(t, lab_home, "produce", "--days", "1", "--interval", "60", "--no-progress")
    err = res.stderr.strip().splitlines()
    assert res.returncode != 0 and len(err) == 1 and "maxmemory-policy is allkeys-lru" in err[0], res.stderr
    assert "noeviction" in err[0] and "--allow-eviction" in err[0]
    assert not r.exists("temps:20250101")
    for cmd in (["consume", "temps:20250101", "--idle-exit", "0.5"], ["verify"]):
        res = _run_cli(t, lab_home, *cmd)
        assert res.returncode != 0 and "maxmemory-policy is allkeys-lru" in res.stderr, (cmd, res.stderr)
    res = _run_cli(t, lab_home, "produce", "--days", "1", "--interval", "60", "--no-progress", "--allow-eviction")
    assert res.returncode == 0 and "warning: maxmemory-policy is allkeys-lru" in res.stdout + res.stderr
    res = _run_cli(t, lab_home, "consume", "temps:20250101", "--idle-exit", "0.5", env={"LABKIT_ALLOW_EVICTION": "1"})
    assert res.returncode == 0, res.stderr


def test_the_policy_is_read_from_info_when_config_is_refused(own_server):
    from labkit.core import eviction
    from labkit.log import ListSink
    from labkit.servers import connection
    home, info, t, r = own_server
    r.config_set("maxmemory-policy", "volatile-lru")
    r.execute_command("ACL", "SETUSER", "learner", "on", ">pw", "~*", "&*", "+@all", "-config")
    r.execute_command("ACL", "SETUSER", "blind", "on", ">pw", "~*", "&*", "+@all", "-config", "-info")
    learner = connection.connect(connection.Target(f"redis://learner:pw@127.0.0.1:{info.port}/0", False))
    assert eviction.policy(learner) == "volatile-lru"
    import redis
    blind = redis.Redis.from_url(f"redis://blind:pw@127.0.0.1:{info.port}/0")     # labkit's connect asks INFO
    sink = ListSink()
    assert eviction.check(blind, sink) is None
    assert any("could not read maxmemory-policy" in x for x in sink.texts())


# ---------------------------------------------------------------------------- 1/3. readings lost before they were read

def test_readings_gone_before_they_were_read_are_named_and_consume_exits_non_zero(r, keys, cli):
    produce(r, keys, days=2, interval_ms=60_000)
    day1 = keys.partition_prefix + "20250101"
    gone = [e[0] for e in r.xrange(day1, f"{T0 + 3 * HOUR_MS}", f"{T0 + 3 * HOUR_MS + 9 * 60_000}")]
    r.xdel(day1, *gone)                                   # 10 readings of 03:00 evicted before the consumer came
    res = cli("consume", day1, "--averages-maxlen", "0", "--idle-exit", "1", namespace=keys.namespace)
    assert res.returncode != 0 and "Traceback" not in res.stderr, res.stderr
    assert (f"{day1} lost readings of the hour 2025/01/01 3:00 before they were read (deleted, or evicted): the "
            "consumer read 50 of the 60 its producer wrote; that hour is not published") in res.stdout, res.stdout
    assert f"{day1} lost readings: the consumer read 1,430 of the 1,440 its producer wrote" in res.stdout
    assert "named 2 loss(es) of readings" in res.stderr
    v = cli("verify", namespace=keys.namespace)
    assert v.returncode == 1, v.stdout
    assert "lost: 2025/01/01 03:00: not published: the consumer recorded" in v.stdout, v.stdout
    assert "23:00" not in v.stdout and "partial" not in v.stdout             # the whole last hour is published
    assert cli("verify", "--accept", day1, namespace=keys.namespace).returncode == 0


# ---------------------------------------------------------------------------- 2. verify audits what was promised

def test_verify_names_extra_trimmed_lost_and_duplicated_hours(r, keys, cli, target):
    produce(r, keys, days=3, interval_ms=60_000)
    day1, day2 = keys.partition_prefix + "20250101", keys.partition_prefix + "20250102"
    r.delete(day2)                                        # expired before the consumer got there
    h, sink = consume_until_idle(target, keys, day1)
    assert h.status()["losses"] == 1
    v = cli("verify", namespace=keys.namespace)
    assert v.returncode == 1 and "lost: 2025/01/02 00:00: not published: the consumer recorded" in v.stdout
    assert sum(line.startswith("lost: 2025/01/02") for line in v.stdout.splitlines()) == 24
    # a learner who has read the loss acknowledges it: then everything else is exact
    v = cli("verify", "--accept", day2, namespace=keys.namespace)
    assert v.returncode == 0 and "acknowledged lost: 2025/01/02 00:00" in v.stdout, v.stdout + v.stderr
    # a typo is refused in one line; a partition with nothing to acknowledge is said to have none
    v = cli("verify", "--accept", "foo", namespace=keys.namespace)
    assert v.returncode == 2 and "--accept foo: that names neither a partition" in v.stderr, v.stderr
    v = cli("verify", "--accept", day2, "--accept", day1, namespace=keys.namespace)
    assert v.returncode == 0 and f"--accept {day1}: it has no loss to acknowledge" in v.stdout, v.stdout
    # an average for a day never produced, the first hours deleted from an uncapped stream, a duplicate
    fields = {"hour": "5", "date": "2025/01/09", "average_temp_f": "50.00", "num_observations": "60",
              "sum_temp_f": "3000"}
    r.xadd(keys.averages, fields, id=f"{T0 + 8 * DAY_MS + 5 * HOUR_MS}-0")
    r.xadd(keys.averages, fields, id=f"{T0 + 8 * DAY_MS + 5 * HOUR_MS + 1}-0")
    r.xdel(keys.averages, *[e[0] for e in r.xrange(keys.averages, count=2)])
    v = cli("verify", "--accept", day2, namespace=keys.namespace)
    out = v.stdout
    assert v.returncode == 1
    assert "extra: 2025/01/09 05:00: published, but no raw data was ever produced" in out, out
    assert "duplicate: 2025/01/09 05:00: published 2 times" in out
    assert "lost: 2025/01/01 00:00: not in" in out and "the consumer ran uncapped" in out
    assert "lost: 2025/01/01 01:00" in out and "lost: 2025/01/01 02:00" not in out
    from labkit.core import progress
    last = progress.read(r, keys).entries[("verify", "last")]
    assert last.status == "failed" and last.detail["problems"] >= 4


def test_a_capped_run_accepts_only_what_its_cap_trimmed(r, keys, cli):
    produce(r, keys, days=2, interval_ms=60_000)
    res = cli("consume", keys.partition_prefix + "20250101", "--averages-maxlen", "10", "--idle-exit", "1",
              namespace=keys.namespace)
    assert res.returncode == 0, res.stderr
    v = cli("verify", namespace=keys.namespace)
    assert v.returncode == 0 and "0 problem(s)" in v.stdout, v.stdout
    r.xtrim(keys.averages, maxlen=3, approximate=False)                     # below the cap the consumer ran with: not the cap's doing
    v = cli("verify", namespace=keys.namespace)
    assert v.returncode == 1 and "so not by the cap" in v.stdout, v.stdout


# ---------------------------------------------------------------------------- 4. a live producer restarted

def test_a_live_producer_restarted_continues_and_the_consumer_goes_on(r, keys, target):
    from labkit.core.keyspace import list_partitions
    from labkit.core.live import run_live
    run_live(r, keys, rate=50, duration=1.0)
    today = list_partitions(r, keys)[-1]
    sink = ListSink()
    h = start_consumers(today, sink=sink, keys=keys, target=target, averages_maxlen=0)
    try:
        assert h.wait_idle(0.3, timeout=30)
        before = h.status()["readings"]
        run_live(r, keys, rate=50, duration=1.0)         # killed, started again: it appends
        wait_for(lambda: h.status()["readings"] >= before + 40 or not h.running)
    finally:
        h.stop()
    assert h.error is None, h.error



def test_verify_while_live_production_goes_on_says_the_newest_hour_is_still_open(r, keys, target, cli):
    """Live mode marks a partition complete only when its day is over, so the consumer holds the newest hour
    open (it has not ended): verify says so and passes, where it used to call that hour lost and fail."""
    from labkit.core.keyspace import list_partitions
    from labkit.core.live import run_live
    now = time.time()
    offset = ((int(now * 1000) // HOUR_MS + 1) * HOUR_MS) / 1000 - 0.5 - now   # an hour ends 0.5 s in
    run_live(r, keys, rate=200, duration=1.0, clock=lambda: time.time() + offset)
    today = list_partitions(r, keys)[-1]
    assert not manifest.read(r, keys)[today].complete
    consume_until_idle(target, keys, today)
    v = cli("verify", namespace=keys.namespace)
    assert v.returncode == 0, v.stdout + v.stderr
    assert "1 still open" in v.stdout and "open: " in v.stdout and "lost" not in v.stdout, v.stdout


def test_an_open_hour_is_only_the_newest_of_a_partition_still_being_written():
    """Pure: the newest hour of raw data is open while its partition (the newest) is not complete and the
    consumer gave up on nothing there; anything else unpublished is lost."""
    from labkit.core.audit import audit
    from labkit.core.manifest import COMPLETE, WRITING, Record
    day1, day2 = "temps:20250101", "temps:20250102"
    truth = {T0: (600, 10), T0 + HOUR_MS: (300, 5)}
    pub = [{"id": f"{T0}-0", "ms": T0, "hour": "0", "date": "2025/01/01", "average_temp_f": "60.00",
            "num_observations": "10", "sum_temp_f": "600"}]
    writing = {day1: Record(WRITING, "run")}
    rep = audit(truth, pub, writing, {}, cap=0, start=day1, present={day1})
    assert rep.ok and rep.open == [T0 + HOUR_MS] and not rep.missing and "1 still open" in rep.summary()
    assert [p.kind for p in rep.notes] == ["open"] and day1 in rep.notes[0].detail
    assert audit(truth, pub, {}, {}, cap=0, start=day1, present={day1}).open == [T0 + HOUR_MS]  # no record
    for records, losses, present in (
            ({day1: Record(COMPLETE, "run", 15, T0 + HOUR_MS + 4 * 60_000, T0)}, {}, {day1}),   # complete: lost
            (writing, {day1: "it was abandoned"}, {day1}),                                         # given up on
            ({**writing, day2: Record(WRITING, "run")}, {}, {day1, day2})):                         # a later one
        rep = audit(truth, pub, records, losses, cap=0, start=day1, present=present)
        assert not rep.ok and rep.open == [] and [p.kind for p in rep.problems] == ["lost"], records
    nothing = audit({T0: (600, 10)}, [], writing, {}, cap=0, start=day1, present={day1})
    assert nothing.open == [T0] and not nothing.ok and not nothing.problems     # nothing closed yet: not a pass

# ---------------------------------------------------------------------------- 6. keys removed by hand

def test_a_deleted_manifest_does_not_leave_the_consumer_waiting(r, keys, cli):
    produce(r, keys, days=2, interval_ms=60_000)
    r.delete(keys.manifest)
    res = cli("consume", keys.partition_prefix + "20250101", "--averages-maxlen", "0", "--idle-exit", "1",
              namespace=keys.namespace, timeout=60)
    assert res.returncode != 0 and f"{keys.manifest} is gone" in res.stdout, res.stdout + res.stderr
    assert f"Changing partition to consume stream: {keys.partition_prefix}20250102" in res.stdout


def test_averages_deleted_under_running_consumers_is_named(r, keys, target):
    from labkit.errors import LabkitError
    produce(r, keys, days=1, interval_ms=60_000)
    sink = ListSink()
    h = start_consumers(keys.partition_prefix + "20250101", sink=sink, keys=keys, target=target, averages_maxlen=0)
    try:
        assert h.wait_idle(0.3, timeout=30)
        r.delete(keys.averages)
        produce(r, keys, start="2025-01-02", days=1, interval_ms=60_000)
        h.join(timeout=30)
    finally:
        h.stop()
    assert isinstance(h.error, LabkitError) and f"{keys.averages} " in str(h.error) and "deleted" in str(h.error)


# ---------------------------------------------------------------------------- 7. chaos only in its own namespace

def test_chaos_refuses_a_namespace_holding_keys_it_did_not_write(r, keys):
    from labkit.commands.chaos import run_chaos
    from labkit.errors import LabkitError
    r.set(keys.key("mine"), "a learner's key")
    with pytest.raises(LabkitError, match="holds 1 key\\(s\\) chaos did not write"):
        run_chaos(days=0.1, kills=1, namespace=keys.namespace, out=ListSink())
    assert r.get(keys.key("mine")) == b"a learner's key"


# ---------------------------------------------------------------------------- 8. a late reading

def test_a_late_reading_for_a_published_hour_is_named_as_such(r, keys, target):
    from labkit.errors import LabkitError
    produce(r, keys, days=1, interval_ms=60_000)
    day1 = keys.partition_prefix + "20250101"
    sink = ListSink()
    h = start_consumers(day1, sink=sink, keys=keys, target=target, averages_maxlen=0)
    try:
        assert h.wait_idle(0.3, timeout=30) and r.xlen(keys.averages) == 24
        r.xadd(day1, {"temp_f": "99"}, id=f"{T0 + DAY_MS - 30_000}-0")      # 23:59:30, after the last one
        h.join(timeout=30)
    finally:
        h.stop()
    assert isinstance(h.error, LabkitError), sink.texts()
    assert "holds a late reading" in str(h.error) and "2025/01/01 23:00" in str(h.error)
    assert "something else writes" not in str(h.error)


# ---------------------------------------------------------------------------- the pure audit, without Redis

def test_the_audit_is_pure_and_names_each_kind():
    import pandas as pd
    from labkit.core.manifest import COMPLETE, Record
    from labkit.core.truth import audit
    from labkit.core.window import HourAverage
    rec = Record(COMPLETE, "run", 3 * 60, T0 + 3 * HOUR_MS - 60_000, T0)        # 00:00-02:59, one a minute
    assert rec.promised_hours() == {T0: 60, T0 + HOUR_MS: 60, T0 + 2 * HOUR_MS: 60}
    truth = pd.DataFrame({"sum": [3000, 3000, 1500], "count": [60, 60, 30]},
                         index=pd.Index([T0, T0 + HOUR_MS, T0 + 2 * HOUR_MS], name="hour_start_ms"))
    truth["mean"] = truth["sum"] / truth["count"]
    hours = [HourAverage(T0, 3000, 60), HourAverage(T0 + 2 * HOUR_MS, 1500, 30), HourAverage(T0 + DAY_MS, 1, 1)]
    pub = pd.DataFrame([{"id": x.entry_id, "ms": x.hour_start_ms, **x.fields()} for x in hours])
    rep = audit(truth, pub, {"temps:20250101": rec}, {}, cap=0, start="temps:20250101", present={"temps:20250101"})
    assert [(p.hour_ms, p.kind) for p in rep.problems] == [
        (T0 + HOUR_MS, "lost"), (T0 + 2 * HOUR_MS, "partial"), (T0 + DAY_MS, "extra")]
    assert not rep.ok and rep.matched == 2
    ok = audit(truth, pub.iloc[:1].assign(), {}, {}, cap=0, start="temps:20250101")
    assert [p.kind for p in ok.problems] == ["lost", "lost"]
    rep = audit(truth, pub.iloc[:2], {"temps:20250101": rec}, {}, cap=0, start="temps:20250101",
                dead={T0 + 2 * HOUR_MS: 30}, accept={"temps:20250101"})
    assert rep.ok and [p.kind for p in rep.accepted] == ["lost"]


def test_soak_refuses_a_namespace_holding_keys_it_did_not_write(r, keys):
    from labkit.commands.soak import run_soak
    from labkit.errors import LabkitError
    r.set(keys.key("mine"), "a learner's key")
    with pytest.raises(LabkitError, match="holds 1 key\\(s\\) soak did not write"):
        run_soak(rate=10, duration=6, namespace=keys.namespace, out=ListSink())
    assert r.get(keys.key("mine")) == b"a learner's key"


def test_only_a_loss_can_be_acknowledged_never_a_wrong_value():
    import pandas as pd
    from labkit.core.truth import audit
    from labkit.core.window import HourAverage
    truth = pd.DataFrame({"sum": [3000], "count": [60]}, index=pd.Index([T0], name="hour_start_ms"))
    truth["mean"] = truth["sum"] / truth["count"]
    wrong = HourAverage(T0, 3001, 60)
    pub = pd.DataFrame([{"id": wrong.entry_id, "ms": wrong.hour_start_ms, **wrong.fields()}])
    rep = audit(truth, pub, {}, {}, cap=0, accept={"temps:20250101", "temps:averages"})
    assert [p.kind for p in rep.problems] == ["mismatch"] and not rep.accepted and not rep.ok


# ---------------------------------------------------------------------------- raw data gone after a correct publish

def test_a_reading_deleted_after_a_correct_publish_is_unchecked_and_can_be_acknowledged(r, keys, cli):
    produce(r, keys, days=1, interval_ms=60_000)
    day1 = keys.partition_prefix + "20250101"
    res = cli("consume", day1, "--averages-maxlen", "0", "--idle-exit", "1", namespace=keys.namespace)
    assert res.returncode == 0, res.stdout + res.stderr
    assert cli("verify", namespace=keys.namespace).returncode == 0
    assert r.xdel(day1, f"{T0 + HOUR_MS}-0") == 1                          # one reading of 01:00
    v = cli("verify", namespace=keys.namespace)
    assert v.returncode == 1 and "mismatch:" not in v.stdout and "(unchecked)" in v.stderr, v.stdout + v.stderr
    assert "unchecked: 2025/01/01 01:00: published " in v.stdout and (
        f"{day1} holds 59 of the 60 readings promised for this hour (deleted or evicted after it was published), "
        "so it cannot be checked") in v.stdout, v.stdout
    assert "23 matched, 0 mismatched" in v.stdout and f"--accept {day1}" in v.stderr, v.stdout + v.stderr
    v = cli("verify", "--accept", day1, namespace=keys.namespace)
    assert v.returncode == 0 and "acknowledged unchecked: 2025/01/01 01:00" in v.stdout, v.stdout + v.stderr
    r.xtrim(day1, minid=f"{T0 + 2 * HOUR_MS + 30 * 60_000}", approximate=False)   # cut inside 02:00
    v = cli("verify", namespace=keys.namespace)
    kinds = [line.split(":")[0] for line in v.stdout.splitlines() if line.startswith(("unchecked", "mismatch"))]
    assert v.returncode == 1 and kinds == ["unchecked"] * 3, v.stdout
    assert "holds 30 of the 60 readings promised" in v.stdout
    assert cli("verify", "--accept", day1, namespace=keys.namespace).returncode == 0


def _rows(*hours):
    """Published rows of ``(hour start, sum, count)``, as load_published gives them."""
    from labkit.core.window import HourAverage
    return [{"id": x.entry_id, "ms": x.hour_start_ms, **x.fields()} for x in (HourAverage(*h) for h in hours)]


def _three_hours():
    """A complete, regular partition of 00:00-02:59, one reading a minute (60 promised per hour)."""
    from labkit.core.manifest import COMPLETE, Record
    return {"temps:20250101": Record(COMPLETE, "run", 3 * 60, T0 + 3 * HOUR_MS - 60_000, T0)}


def _kinds(rep):
    return [(p.hour_ms, p.kind) for p in rep.problems]


def test_an_hour_that_lost_readings_after_a_correct_publish_is_unchecked():
    """Pure: published from all 60 promised readings (or 58 plus 2 dead-lettered), the partition now holds fewer."""
    from labkit.core.audit import audit
    day1, records = "temps:20250101", _three_hours()
    truth = {T0: (3000 - 50, 59), T0 + HOUR_MS: (3000, 60), T0 + 2 * HOUR_MS: (3000, 60)}
    pub = _rows((T0, 3000, 60), (T0 + HOUR_MS, 3000, 60), (T0 + 2 * HOUR_MS, 3000, 60))
    rep = audit(truth, pub, records, {}, cap=0, start=day1, present={day1})
    assert _kinds(rep) == [(T0, "unchecked")] and rep.problems[0].source == day1
    assert rep.problems[0].detail == (
        f"published 50.00 from 60 readings, but {day1} holds 59 of the 60 readings promised for this hour "
        "(deleted or evicted after it was published), so it cannot be checked")
    assert rep.matched == 2 and rep.mismatched == [] and not rep.ok
    rep = audit(truth, pub, records, {}, cap=0, start=day1, present={day1}, accept={day1})
    assert rep.ok and [p.kind for p in rep.accepted] == ["unchecked"] and rep.compared == 2
    dead = audit({**truth, T0: (2850, 57)}, _rows((T0, 2900, 58), *[(h, 3000, 60) for h in (T0 + HOUR_MS,
                 T0 + 2 * HOUR_MS)]), records, {}, cap=0, start=day1, present={day1}, dead={T0: 2})
    assert _kinds(dead) == [(T0, "unchecked")] and "holds 57 of the 58 valid readings" in dead.problems[0].detail


def test_a_wrong_value_stays_a_mismatch_whatever_is_left_of_its_raw_data():
    """Pure: a published count other than the promise, all promised readings still there, no promise at all, or
    a row that disagrees with itself: a mismatch, never acknowledgeable."""
    from labkit.core.audit import audit
    from labkit.core.manifest import COMPLETE, WRITING, Record
    day1, records = "temps:20250101", _three_hours()
    rest = [(T0 + HOUR_MS, 3000, 60), (T0 + 2 * HOUR_MS, 3000, 60)]
    truth = {T0: (3000, 60), T0 + HOUR_MS: (3000, 60), T0 + 2 * HOUR_MS: (3000, 60)}
    less = {**truth, T0: (2950, 59)}
    bad_sum = _rows((T0, 3000, 60), *rest)
    bad_sum[0]["sum_temp_f"] = "3010"                                       # 50.17 on its own count: not 50.00
    no_sum = _rows((T0, 500 * 60, 60), *rest)
    no_sum[0]["sum_temp_f"] = None                   # 500.00: no one missing reading in PLAUSIBLE_F makes that
    for t, pub, recs, dead in (
            (less, _rows((T0, 3050, 61), *rest), records, {}),              # more than promised
            (less, _rows((T0, 3000, 60), *rest), records, {T0: 1}),         # 60 + 1 dead-lettered: not the 60
            (truth, _rows((T0, 3001, 60), *rest), records, {}),            # every promised reading is there
            ({**truth, T0: (3100, 61)}, _rows((T0, 3000, 60), *rest), records, {}),  # more there than promised
            (less, _rows((T0, 3000, 60), *rest), {}, {}),                   # no manifest record
            (less, _rows((T0, 3000, 60), *rest), {day1: Record(WRITING, "run")}, {}),      # not complete
            (less, _rows((T0, 3000, 60), *rest), {day1: Record(COMPLETE, "run", 180, T0 + 3 * HOUR_MS - 1, T0)},
             {}),                                                           # irregular: no promise per hour
            (less, bad_sum, records, {}),
            (less, _rows((T0, 2950 + 201, 60), *rest), records, {}),       # the missing one would be 201 °F
            (less, no_sum, records, {})):
        rep = audit(t, pub, recs, {}, cap=0, start=day1, present={day1}, dead=dead, accept={day1, "temps:averages"})
        assert _kinds(rep) == [(T0, "mismatch")] and not rep.accepted and not rep.ok, (t[T0], pub[0], recs, dead)
        assert rep.matched == 2 and len(rep.mismatched) == 1
    for field, value, hour in (("date", "2025/01/02", T0 + DAY_MS), ("hour", "5", T0 + 5 * HOUR_MS)):
        pub = _rows((T0, 3000, 60), *rest)
        pub[0][field] = value                                               # the row names another hour
        rep = audit(less, pub, records, {}, cap=0, start=day1, present={day1}, accept={day1})
        assert _kinds(rep) == [(hour, "mismatch")] and not rep.accepted, field
    twice = audit(truth, _rows((T0, 3001, 60), (T0, 3002, 60), *rest), records, {}, cap=0, start=day1,
                  present={day1})
    assert _kinds(twice) == [(T0, "duplicate"), (T0, "mismatch")] and len(twice.mismatched) == 2


def test_an_hour_published_from_fewer_readings_than_promised_is_partial_once():
    """Pure: partial is named once, whether its raw data are still there, gone from the partition, or the
    partition is gone; a wrong value is a mismatch (once) even so."""
    from labkit.core.audit import audit
    day1, records = "temps:20250101", _three_hours()
    pub = _rows((T0, 3000, 60), (T0 + HOUR_MS, 3000, 60), (T0 + 2 * HOUR_MS, 1500, 30))
    truth = {T0: (3000, 60), T0 + HOUR_MS: (3000, 60)}
    for t, present in (({**truth, T0 + 2 * HOUR_MS: (1500, 30)}, {day1}), (truth, {day1}), ({}, set())):
        rep = audit(t, pub, records, {}, cap=0, start=day1, present=present)
        gone = [(h, "unchecked") for h in (T0, T0 + HOUR_MS) if h not in t]          # the partition is gone
        assert _kinds(rep) == [*gone, (T0 + 2 * HOUR_MS, "partial")], (t, present, rep.problems)
        assert not rep.ok and rep.mismatched == [] and rep.matched == len(t)
        rep = audit(t, pub, records, {}, cap=0, start=day1, present=present, accept={day1})
        assert rep.ok == bool(t) and [p.kind for p in rep.accepted][-1] == "partial" and not rep.problems
    rep = audit(truth, pub, records, {}, cap=0, start=day1, present={day1})
    assert "now holds none of them" in rep.problems[0].detail, rep.problems[0].detail
    for later in ((1450, 29), (1510, 30)):      # fewer still after publishing, or all there and different
        rep = audit({**truth, T0 + 2 * HOUR_MS: later}, pub, records, {}, cap=0, start=day1, present={day1},
                    accept={day1})
        assert _kinds(rep) == [(T0 + 2 * HOUR_MS, "mismatch")] and not rep.accepted and len(rep.mismatched) == 1
        assert "60 were promised" in rep.problems[0].detail, rep.problems[0].detail
