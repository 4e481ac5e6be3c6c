"""The stream browser (labkit.notebook.browser): its DataFrames are what Redis says, on one server, on a cluster
and under a learner's fenced ACL user; paging and the jump to a time show the right entries.

The pure parts (times, pages, the redis-cli forms) are tested without Redis.  Everything else reads a real
server: the tables are compared with XLEN / TTL / MEMORY USAGE / XRANGE / XREVRANGE / HGETALL of the same keys.
"""

from __future__ import annotations

import datetime as dt
import secrets
import uuid
from types import SimpleNamespace
from urllib.parse import urlsplit, urlunsplit

import pandas as pd
import pytest

from labkit.core.keys import Keys
from labkit.core.keyspace import delete_namespace, keys_for
from labkit.errors import LabkitError
from labkit.notebook import browser as B
from tests.helpers import T0, produce

HOUR = 3_600_000


# ---------------------------------------------------------------- pure

def test_times_are_read_as_utc_ms():
    assert B.to_ms(T0) == T0
    assert B.to_ms("2025-01-01T12:00") == T0 + 12 * HOUR
    assert B.to_ms("2025-01-01 12:00:00+01:00") == T0 + 11 * HOUR
    assert B.to_ms(dt.datetime(2025, 1, 1, 12)) == T0 + 12 * HOUR
    assert B.to_ms(dt.datetime(2025, 1, 1, 12, tzinfo=dt.timezone.utc)) == T0 + 12 * HOUR
    assert B.to_ms(pd.Timestamp("2025-01-01 01:00", tz="UTC")) == T0 + HOUR
    for bad in ("noon", "", None, True, [1]):
        with pytest.raises(LabkitError, match="is not a time"):
            B.to_ms(bad)


def test_a_time_of_day_counts_from_the_day_it_is_on():
    assert B.to_ms("12:00", T0) == T0 + 12 * HOUR
    assert B.to_ms(" 3:04:05 ", T0) == T0 + 3 * HOUR + 4 * 60_000 + 5000
    assert B.to_ms("2025-01-02 05:00", T0) == T0 + 29 * HOUR          # a full date and time wins
    with pytest.raises(LabkitError, match="not a time of day"):
        B.to_ms("24:00", T0)
    assert B.day_of_key("temps:20250102", "temps:") == T0 + 24 * HOUR
    assert B.day_of_key("temps:averages", "temps:", T0 + 30 * HOUR) == T0 + 24 * HOUR


#: What a learner typed in the Jump box that was not a time: each gets one line with a hint, never an exception.
NOT_TIMES = ["1200", "9:5", "T12:00", "12h", "-5", "12:00 PM", "12:00+05:30", "noon", "", "2025-13-01T12:00",
             "99999999999999999999", "1735732800000-0-0"]


def test_the_forms_a_jump_accepts_and_a_hint_for_anything_else():
    day2 = T0 + 24 * HOUR
    assert B.to_ms("12:00", day2) == day2 + 12 * HOUR                    # a time of day: on the day browsed
    assert B.to_ms("12:00:00.5", day2) == day2 + 12 * HOUR + 500        # not today
    assert B.to_ms("09:05:07", day2) == day2 + 9 * HOUR + 5 * 60_000 + 7000
    assert B.to_ms("12:00Z", day2) == B.to_ms("12:00 UTC", day2) == day2 + 12 * HOUR
    assert B.to_ms("2025-01-01T12:00", day2) == T0 + 12 * HOUR        # a full date and time (UTC) wins
    assert B.to_ms("2025-01-01T12:00:00+05:30", day2) == T0 + 12 * HOUR - 5 * HOUR - 30 * 60_000
    assert B.to_ms("2025-01-01", day2) == T0
    assert B.to_ms(f"{T0 + 5000}-0", day2) == T0 + 5000                 # an entry ID
    assert B.to_ms(str(T0 + 5000), day2) == T0 + 5000                   # epoch ms
    for bad in NOT_TIMES:
        with pytest.raises(LabkitError, match="is not a time") as caught:
            B.to_ms(bad, day2)
        assert caught.value.hint, bad
    hints = {bad: _hint(bad, day2) for bad in ("1200", "9:5", "12:00 PM", "12:00+05:30")}
    assert "12:00" in hints["1200"] and "09:05" in hints["9:5"] and "24-hour" in hints["12:00 PM"], hints
    assert "2025-01-02T12:00+05:30" in hints["12:00+05:30"], hints
    # A bare time of day with no day to count from is refused, never read as today.
    with pytest.raises(LabkitError, match="time of day"):
        B.to_ms("12:00")
    assert B.to_ms("12:00", day_ms=day2) == day2 + 12 * HOUR


def _hint(bad: str, day_ms: int) -> str:
    try:
        B.to_ms(bad, day_ms)
    except LabkitError as exc:
        return exc.hint
    raise AssertionError(f"{bad!r} was taken as a time")

def test_pages_are_the_commands_redis_cli_would_run():
    assert B.first_page("temps:20250101").cli == "XRANGE temps:20250101 - + COUNT 20"
    assert B.first_page("temps:20250101", T0, 5).cli == f"XRANGE temps:20250101 {T0} + COUNT 5"
    assert B.next_page("k", "5-0").args() == ["XRANGE", "k", "(5-0", "+", "COUNT", "20"]
    assert B.previous_page("k", "5-0").args() == ["XREVRANGE", "k", "(5-0", "-", "COUNT", "20"]
    assert B.cli(["HGETALL", "{temps:averages}aggregating_consumer_state"]) == \
        "HGETALL '{temps:averages}aggregating_consumer_state'"


def test_an_empty_page_still_has_its_columns():
    assert list(B.entries_table([], ["temp_f"]).columns) == B.ENTRY_COLUMNS
    assert list(B.partitions_table([]).columns) == B.PARTITION_COLUMNS


# ---------------------------------------------------------------- what Redis says

def expected_partitions(r, names, ttl_before) -> pd.DataFrame:
    """The table, straight from XLEN, TTL, MEMORY USAGE, XRANGE and XREVRANGE of each key."""
    rows = []
    for n in sorted(names):
        rows.append({"partition": n, "entries": r.xlen(n), "ttl_s": ttl_before[n],
                     "memory_bytes": r.memory_usage(n, samples=0),
                     "first_id": r.xrange(n, count=1)[0][0].decode(), "last_id": r.xrevrange(n, count=1)[0][0].decode()})
    return pd.DataFrame(rows, columns=B.PARTITION_COLUMNS)


def check_partitions(r, browser, names):
    before = {n: r.ttl(n) for n in names}
    got = browser.partitions()
    after = {n: r.ttl(n) for n in names}
    assert list(got.columns) == B.PARTITION_COLUMNS
    assert list(got["partition"]) == sorted(names)
    # A TTL counts down between reads: the browser's lies between the one read before and the one after.
    for n, ttl in zip(got["partition"], got["ttl_s"]):
        assert after[n] <= ttl <= before[n] and ttl > 0, (n, before[n], ttl, after[n])
    want = expected_partitions(r, names, dict(zip(got["partition"], got["ttl_s"])))
    pd.testing.assert_frame_equal(got, want, check_dtype=False)


def check_entries(r, browser, name):
    want = r.xrange(name, count=20)
    got = browser.entries(name)
    assert list(got.columns) == B.ENTRY_COLUMNS
    assert list(got["id"]) == [e[0].decode() for e in want]
    assert list(got["temp_f"]) == [int(e[1][b"temp_f"]) for e in want]
    assert list(got["time"]) == [pd.Timestamp(int(e[0].split(b"-")[0]), unit="ms", tz="UTC") for e in want]
    noon = r.xrange(name, T0 + 12 * HOUR, "+", count=7)
    for at in (T0 + 12 * HOUR, "2025-01-01T12:00:00Z", dt.datetime(2025, 1, 1, 12)):
        frame = browser.entries(name, at=at, count=7)
        assert list(frame["id"]) == [e[0].decode() for e in noon]
        assert list(frame["temp_f"]) == [int(e[1][b"temp_f"]) for e in noon]
    assert browser.commands["entries"] == [f"XRANGE {name} {T0 + 12 * HOUR} + COUNT 7"]


def test_the_tables_are_what_redis_says(r, keys):
    produce(r, keys, days=1.5)
    b = B.StreamBrowser(SimpleNamespace(r=r, keys=keys))
    names = [keys.key("temps:20250101"), keys.key("temps:20250102")]
    check_partitions(r, b, names)
    check_entries(r, b, names[0])
    assert B.browse(SimpleNamespace(r=r, keys=keys)).partitions().equals(b.partitions())


def test_paging_and_the_jump_show_the_right_entries(r, keys):
    produce(r, keys, days=1.5)
    b = B.StreamBrowser(r=r, keys=keys)
    day1, day2 = keys.key("temps:20250101"), keys.key("temps:20250102")
    ids = lambda frame: list(frame["id"])   # noqa: E731
    first40 = [e[0].decode() for e in r.xrange(day1, count=40)]
    assert ids(b.show(day1)) == first40[:20]
    assert ids(b.next()) == first40[20:] and b.commands["entries"] == [f"XRANGE {day1} ({first40[19]} + COUNT 20"]
    assert ids(b.previous()) == first40[:20] and b.commands["entries"][0].startswith(f"XREVRANGE {day1} ({first40[20]} -")
    assert ids(b.previous()) == first40[:20] and b.note == "this is the first page"
    # A time of day counts from the partition's own day.
    b.show(day2)
    want = [e[0].decode() for e in r.xrange(day2, T0 + 36 * HOUR - 1000 * 10, "+", count=20)]
    assert ids(b.jump("11:59:50")) == want and want[0] == f"{T0 + 36 * HOUR - 10_000}-0"
    assert ids(b.next())[-1] == want[-1] and b.note == "this is the last page"   # day 2 ends at 12:00
    assert b.jump("13:00").empty and "no entries from 2025-01-02 13:00:00 UTC" in b.note


def test_averages_and_state_are_shown_the_same_way(r, keys):
    for h in range(25):
        r.xadd(keys.averages, {"hour": h % 24, "date": "2025/01/01", "average_temp_f": "50.25",
                               "num_observations": 3600, "sum_temp_f": 180900}, id=f"{T0 + h * HOUR}-0")
    r.hset(keys.aggregating_state, mapping={"current_stream_key": keys.key("temps:20250102"),
                                             "last_message_id": f"{T0 + 25 * HOUR}-0"})
    r.hset(keys.averages_state, mapping={"last_message_id": f"{T0 + 24 * HOUR}-0", "entries_read": 25})
    b = B.StreamBrowser(r=r, keys=keys)
    got = b.averages()
    want = r.xrange(keys.averages, count=20)
    assert list(got.columns) == ["id", "time", "hour", "date", "average_temp_f", "num_observations", "sum_temp_f"]
    assert list(got["id"]) == [e[0].decode() for e in want]
    assert list(got["average_temp_f"]) == [50.25] * 20 and list(got["hour"]) == list(range(20))
    assert list(b.show(keys.averages)["id"]) == list(got["id"]) and len(b.next()) == 5
    # A time of day on the averages counts from the day of the page shown.
    assert b.jump("23:00")["id"].iloc[0] == f"{T0 + 23 * HOUR}-0"
    state = b.show(B.STATE)
    rows = {(h, f): v for h, f, v in state.itertuples(index=False)}
    for key in (keys.aggregating_state, keys.averages_state):
        assert {f: v for (h, f), v in rows.items() if h == key} == \
            {f.decode(): v.decode() for f, v in r.hgetall(key).items()}
    assert b.commands["state"][0] == f"HGETALL {B.cli([keys.aggregating_state])}"


def test_the_widget_pages_with_its_buttons(r, keys):
    produce(r, keys, days=1)
    b = B.StreamBrowser(r=r, keys=keys)
    box = b.widget
    w = b._widget
    day1 = keys.key("temps:20250101")
    first40 = [e[0].decode() for e in r.xrange(day1, count=40)]
    assert w.chooser.value == day1 and first40[0] in w.page.value and first40[20] not in w.page.value
    assert f"&gt; XRANGE {day1} - + COUNT 20" in w.page_cmd.value
    assert "SCAN 0 MATCH" in w.table_cmd.value and "86400" in w.table.value
    w.next_button.click()
    assert first40[20] in w.page.value and first40[19] not in w.page.value
    w.clock.value = "06:30"
    w.jump_button.click()
    assert f"{T0 + 6 * HOUR + 30 * 60_000}-0" in w.page.value
    w.clock.value = "half past six"
    w.jump_button.click()
    assert "is not a time" in w.status.value          # one line in the widget, no traceback
    w.chooser.value = B.STATE
    assert w.next_button.disabled and "HGETALL" in w.page_cmd.value
    bundle = b._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in (bundle[0] if isinstance(bundle, tuple) else bundle)
    assert box is b.widget



def test_a_bare_time_of_day_counts_from_the_day_of_the_partition_read(r, keys):
    produce(r, keys, days=1.5)
    b = B.StreamBrowser(r=r, keys=keys)
    day1, day2 = keys.key("temps:20250101"), keys.key("temps:20250102")
    for name, start in ((day1, T0), (day2, T0 + 24 * HOUR)):
        want = [e[0].decode() for e in r.xrange(name, start + 6 * HOUR, "+", count=5)]
        assert want and list(b.entries(name, at="06:00", count=5)["id"]) == want
        assert list(b.show(name, at="06:00")["id"]) == [e[0].decode() for e in r.xrange(name, start + 6 * HOUR, "+",
                                                                                            count=20)]
    assert list(b.entries(day1, at="12:00:00.5", count=1)["id"]) == [f"{T0 + 12 * HOUR + 1000}-0"]


def test_the_jump_box_says_in_one_line_what_it_takes_and_never_raises(r, keys, caplog):
    import logging
    produce(r, keys, days=1)
    b = B.StreamBrowser(r=r, keys=keys)
    b.widget
    w = b._widget
    day1 = keys.key("temps:20250101")
    for hint in ("12:00", "2025-01-01T12:00", "1735732800000-0"):   # the accepted forms, where a learner looks
        assert hint in w.clock.tooltip and hint in B.StreamBrowser.jump.__doc__
    assert "12:00" in w.clock.placeholder
    w.clock.value = "12:00"
    w.jump_button.click()
    shown = w.page.value
    assert f"{T0 + 12 * HOUR}-0" in shown and "labkit-bad" not in w.status.value
    with caplog.at_level(logging.WARNING):
        for bad in NOT_TIMES:
            w.status.value = ""
            w.clock.value = bad
            w.jump_button.click()
            assert "labkit-bad" in w.status.value and "is not a time" in w.status.value, (bad, w.status.value)
            assert "hint:" in w.status.value and "\n" not in w.status.value, (bad, w.status.value)
            assert w.page.value == shown, bad                    # the page stays where it was
    assert not [rec for rec in caplog.records if "callback" in rec.getMessage().lower()], caplog.text
    # Something nobody expected, inside any button: one line in the widget, not a traceback.
    w._safely(lambda: 1 / 0)
    assert "labkit-bad" in w.status.value and "ZeroDivisionError: division by zero" in w.status.value
    assert "Traceback" not in w.status.value

def test_the_table_can_refresh_itself_and_leaves_the_page_alone(r, keys):
    import time
    produce(r, keys, days=1)
    b = B.StreamBrowser(r=r, keys=keys)
    b.widget
    w = b._widget
    day1, day2 = keys.key("temps:20250101"), keys.key("temps:20250102")
    paged = list(b.next()["id"])
    b.auto_refresh(0.05)
    assert w.auto_box.value and w._thread.is_alive()
    produce(r, keys, start="2025-01-02", days=1)
    deadline = time.monotonic() + 60               # a deadline for a loaded machine, not a speed check
    while day2 not in w.table.value and time.monotonic() < deadline:
        time.sleep(0.05)
    assert day2 in w.table.value and day2 in w.chooser.options
    assert list(b.frame["id"]) == paged and w.chooser.value == day1      # the page stayed where it was
    w.auto_box.value = False                                             # the checkbox stops it too
    w._thread.join(timeout=30)
    assert not w._thread.is_alive() and w._stop is None
    b.auto_refresh(0.05)
    b.close()
    w._thread.join(timeout=30)
    assert not w._thread.is_alive() and not w.auto_box.value


# ---------------------------------------------------------------- a learner's fenced user

ALLOWED = ["scan", "xlen", "ttl", "pttl", "memory|usage", "xrange", "xrevrange", "hgetall"]


#: What any cluster client must run to learn the layout (redis-py reads COMMAND and CLUSTER SLOTS/SHARDS).
CLUSTER_LAYOUT = ["command", "cluster|slots", "cluster|shards", "cluster|nodes", "readonly"]


def fenced_client(r, target, namespace):
    """A client logged in as a user that may run only ALLOWED, on ``namespace``'s keys only (on a cluster the
    user is set on every node, ACLs being per node)."""
    from labkit.servers import connection
    user, password = "fenced" + uuid.uuid4().hex[:8], secrets.token_hex(12)
    allowed = ALLOWED + (CLUSTER_LAYOUT if connection.is_cluster(r) else [])
    args = ["ACL", "SETUSER", user, "on", f">{password}", "resetkeys", f"~{namespace}:*", f"~{{{namespace}:*",
            "-@all", *[f"+{c}" for c in allowed]]
    nodes = [r.get_redis_connection(n) for n in r.get_nodes()] if connection.is_cluster(r) else [r]
    for node in nodes:
        node.execute_command(*args)
    parts = urlsplit(target.url)
    host = f"{user}:{password}@{parts.hostname}:{parts.port or 6379}"
    fenced = connection.client(connection.Target(urlunsplit((parts.scheme, host, parts.path, "", "")), False),
                               cluster=connection.is_cluster(r))

    def drop():
        fenced.close()
        for node in nodes:
            node.execute_command("ACL", "DELUSER", user)
    return fenced, drop


def check_fenced(r, target, keys):
    import redis
    produce(r, keys, days=1.5)
    r.hset(keys.aggregating_state, "last_message_id", f"{T0}-0")
    fenced, drop = fenced_client(r, target, keys.namespace)
    try:
        with pytest.raises(redis.exceptions.NoPermissionError):
            fenced.xlen("temps:20250101")                      # outside the namespace: the fence is real
        with pytest.raises(redis.exceptions.NoPermissionError):
            fenced.xadd(keys.key("temps:20250101"), {"temp_f": 1})   # and read-only
        b = B.StreamBrowser(r=fenced, keys=keys)
        names = [keys.key("temps:20250101"), keys.key("temps:20250102")]
        check_partitions(r, b, names)
        check_entries(r, b, names[0])
        assert len(b.show(names[0])) == 20 and len(b.next()) == 20 and len(b.previous()) == 20
        assert b.averages().empty and len(b.state()) == 1
        b.widget                                                # the widget too
        assert names[1] in b._widget.table.value
    finally:
        drop()


def test_it_works_under_a_learners_fenced_user(r, keys, target):
    check_fenced(r, target, keys)


@pytest.mark.cluster
def test_it_works_under_a_fenced_user_on_a_cluster(redis_cluster):
    from labkit.servers import connection
    t = connection.Target(redis_cluster.url, embedded=False)
    r = connection.connect(t)
    keys = keys_for(r, Keys("cf" + uuid.uuid4().hex[:8]))
    try:
        check_fenced(r, t, keys)
    finally:
        delete_namespace(r, keys)
        r.close()


# ---------------------------------------------------------------- a cluster

@pytest.mark.cluster
def test_on_a_cluster_each_partition_is_read_on_its_master(redis_cluster):
    from labkit.servers import connection
    r = connection.connect(connection.Target(redis_cluster.url, embedded=False))
    keys = keys_for(r, Keys("cb" + uuid.uuid4().hex[:8]))
    try:
        produce(r, keys, days=4)
        names = [keys.key(f"temps:2025010{d}") for d in range(1, 5)]
        masters = {connection.node_client(r, n).connection_pool.connection_kwargs["port"] for n in names}
        assert len(masters) >= 2, "the test needs partitions on more than one master"
        b = B.StreamBrowser(r=r, keys=keys)
        check_partitions(r, b, names)
        assert b.commands["partitions"][0].endswith("(on every master)")
        for n in names:
            check_entries(r, b, n)
        assert len(b.show(names[2])) == 20 and b.next()["id"].iloc[0] == f"{T0 + 2 * 24 * HOUR + 20_000}-0"
        r.xadd(keys.averages, {"hour": 0, "date": "2025/01/01", "average_temp_f": "1"}, id=f"{T0}-0")
        r.hset(keys.aggregating_state, "last_message_id", f"{T0}-0")
        assert list(b.averages()["id"]) == [f"{T0}-0"] and list(b.state()["hash"]) == [keys.aggregating_state]
    finally:
        delete_namespace(r, keys)
        r.close()
