"""The notebooks' one set-up call, the auto-start that respects the learner, and checks scoped to what ran.

Real server, real consumers; each test in its own namespace (``LABKIT_NAMESPACE``
is pointed at it, as the notebooks read it from the environment).
"""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from labkit import notebook as nbk
from labkit.core import producer
from labkit.errors import LabkitError
from labkit.core.runner import list_partitions
from labkit.core.partition import id_ms


@pytest.fixture
def lab_env(monkeypatch, keys, target):
    monkeypatch.setenv("LABKIT_NAMESPACE", keys.namespace)
    monkeypatch.setenv("LABKIT_DAYS", "1.5")
    monkeypatch.delenv("LABKIT_AUTORUN", raising=False)
    if not target.embedded:
        monkeypatch.setenv("REDIS_URL", target.url)
    return keys


def longer_run(r, keys, days=3):
    producer.produce(r, producer.Dataset(producer.parse_start("2025-01-01"), days), keys)


def test_setup_produces_once_and_says_what_it_gives(r, lab_env):
    keys = lab_env
    lab = nbk.setup(produce_if_missing=False)
    assert not lab.present and not lab.produced and list_partitions(r, keys) == []
    assert "not on the server yet" in lab.note()
    lab = nbk.setup()
    assert lab.produced and lab.present and lab.names == list_partitions(r, keys) and lab.hours == 36
    assert lab.keys == keys and lab.data.count == 129_600 and lab.others == []
    again = nbk.setup()
    assert not again.produced and again.present
    text = repr(again)
    for attribute in ("lab.r", "lab.keys", "lab.data", "lab.names", "lab.hours", "lab.others"):
        assert attribute in text
    password = urlsplit(again.target.url).password
    assert not password or (password not in text and "***" in text)
    assert "<table>" in again._repr_html_()


def test_setup_reports_partitions_from_a_longer_run_and_offers_the_reset(r, lab_env):
    keys = lab_env
    longer_run(r, keys, 3)
    lab = nbk.setup()                         # 1.5 days wanted: the first two days are rewritten
    third = keys.partition_prefix + "20250103"
    assert lab.produced and lab.others == [third]
    note = lab.note()
    assert third in note and "lab.remove_other_partitions()" in note and "\n" not in note
    assert lab.remove_other_partitions() == [third]
    assert list_partitions(r, keys) == lab.names and lab.others == []
    assert r.xlen(lab.names[0]) == 86_400          # only the other partition went


def test_what_ran_covers_exactly_what_the_consumers_read(r, lab_env, panels):
    keys = lab_env
    longer_run(r, keys, 3)
    lab = nbk.setup()
    p = panels()
    p.start(lab.names[0])
    assert p.wait_idle(0.5, timeout=120)
    run = nbk.what_ran(lab, lab.names[0])
    third = keys.partition_prefix + "20250103"
    assert run.partitions == lab.names + [third] and run.extra == [third]
    # The third day is complete in the partition manifest (the longer run finished it), so its last hour closes.
    assert run.open_hour is None
    assert run.hours == 24 + 12 + 24 == p.last_status["hours_ever_added"]
    assert run.report.ok and run.report.matched == run.hours, run.report.summary()
    assert "1 of them not this notebook's dataset" in run.summary() and "still open" not in run.summary()

    p.stop()
    p.start(lab.names[1])                          # a run from the second day covers the second and third only
    assert p.wait_idle(0.5, timeout=120)
    run = nbk.what_ran(lab, lab.names[1])
    assert run.partitions == [lab.names[1], third] and run.hours == 12 + 24 and run.report.ok


def test_what_ran_on_the_dataset_alone_leaves_no_hour_open(r, lab_env, panels):
    lab = nbk.setup()
    p = panels()
    p.start(lab.names[0])
    assert p.wait_idle(0.5, timeout=60)
    run = nbk.what_ran(lab, lab.names[0])
    assert run.open_hour is None and run.extra == [] and run.hours == lab.hours == 36 and run.report.ok


def test_autostart_presses_start_only_when_nothing_was_started(r, lab_env, panels):
    lab = nbk.setup()
    p = panels()
    p.dropdown.value = lab.names[1]                # chosen, not started: the choice is used
    started = nbk.start_unless_started(p, timeout=60)
    assert not started.by_hand and started.partition == lab.names[1] and started.idle
    assert p.lines.texts("agg")[0].endswith(f"stream {lab.names[1]} at message 0.")


def test_autostart_leaves_a_run_started_by_hand_alone(r, lab_env, panels):
    lab = nbk.setup()
    p = panels()
    p.dropdown.value = lab.names[1]
    p.start_button.click()                         # the learner's Start
    handle = p.handle
    p.dropdown.value = lab.names[0]                # even with the dropdown moved afterwards (it is disabled in the UI)
    started = nbk.start_unless_started(p, timeout=60)
    assert started.by_hand and started.partition == lab.names[1] and p.handle is handle
    assert "you pressed Start yourself" in started.note and p.message.value == ""
    assert sum("Starting aggregating consumer" in line for line in p.lines.texts("agg")) == 1
    first_avg = next(line for line in p.lines.texts("avg") if "Average temperature" in line)
    assert first_avg.startswith("avg: Average temperature for 2025/01/02 at 0 was")


def test_autorun_0_never_starts(r, lab_env, panels, monkeypatch):
    lab = nbk.setup()
    p = panels()
    monkeypatch.setenv("LABKIT_AUTORUN", "0")
    started = nbk.start_unless_started(p, timeout=5)
    assert started.partition is None and p.handle is None and "Press Start" in started.note
    monkeypatch.setenv("LABKIT_AUTORUN", "yes")
    with pytest.raises(LabkitError, match="LABKIT_AUTORUN='yes' is not 0 or 1"):
        nbk.start_unless_started(p)
    assert lab.names


def test_autostart_that_fails_says_why_in_one_line(r, lab_env, panels, monkeypatch):
    import labkit.notebook.panel as widgets

    def refuse(*args, **kwargs):
        raise LabkitError("another aggregating consumer is running in this namespace", "stop it first")
    monkeypatch.setattr(widgets, "start_consumers", refuse)
    nbk.setup()
    p = panels()
    started = nbk.start_unless_started(p, timeout=5)
    assert started.partition is None and not started.idle
    assert started.note.endswith("it failed: another aggregating consumer is running in this namespace "
                                 "(hint: stop it first)")
    assert 'class="labkit-bad"' in p.message.value


def test_the_cluster_layout_as_notebook_13_shows_it():
    """CLUSTER NODES as a table (masters first, each replica naming its master) and the slot lookup."""
    from labkit.notebook.shards import nodes_table, owner, slot_ranges_of
    text = ("a1 10.0.0.1:7000@17000 myself,master - 0 0 1 connected 0-5460\n"
            "b1 10.0.0.4:7003@17003 slave a1 0 0 1 connected\n"
            "a2 10.0.0.2:7001@17001 master - 0 0 2 connected 5461-16383\n"
            "a3 10.0.0.3:7002@17002 master,fail - 0 0 3 disconnected\n")
    table = nodes_table(text)
    assert list(table["node"]) == ["10.0.0.1:7000", "10.0.0.2:7001", "10.0.0.3:7002", "10.0.0.4:7003"]
    assert list(table["role"]) == ["master", "master", "master (failed)", "replica"]
    assert table.loc[3, "replica of"] == "10.0.0.1:7000" and table.loc[0, "replica of"] == ""
    assert list(table["slot count"]) == [5461, 10923, 0, 0]
    ranges = slot_ranges_of(text)
    assert [owner(s, ranges) for s in (0, 5460, 5461, 16383)] == ["10.0.0.1:7000"] * 2 + ["10.0.0.2:7001"] * 2
    assert owner(16384, ranges) is None


def test_setup_names_the_servers_real_version_and_its_redis_compatibility(r, lab_env):
    info = r.info("server")
    row = dict((a, v) for a, _, v in nbk.setup(produce_if_missing=False).rows())["lab.r"]
    own = info.get(f"{info.get('server_name') or 'redis'}_version")
    if own and own != info["redis_version"]:            # Valkey 9.1.2 speaks Redis 7.2.4
        assert f"{own} (Redis {info['redis_version']} compatible)" in row, row
    else:
        assert row.endswith(f"Redis {info['redis_version']}"), row
    assert nbk.server_label({"server_name": "valkey", "valkey_version": "9.1.2", "redis_version": "7.2.4"}) == \
        "Valkey 9.1.2 (Redis 7.2.4 compatible)"
    assert nbk.server_label({"redis_version": "7.0.15"}) == "Redis 7.0.15"


def test_settle_and_run_start_follow_the_panels_last_run(r, lab_env, panels):
    """A later partition started then stopped when caught up is settled; a crash before the end is not, and
    says where it stopped; a panel that never ran has no run."""
    lab = nbk.setup()
    panel = panels()
    assert nbk.run_start(panel) is None and not nbk.settle(panel)
    panel.start(lab.names[1])
    assert nbk.settle(panel, timeout=120), "running and caught up"
    panel.stop()
    assert nbk.run_start(panel) == lab.names[1] and nbk.settle(panel).note == "caught up and stopped"
    panel.start(lab.names[0])
    panel.crash()
    # 1.5 days take the fold ~0.1 s, so on a busy machine it may reach the end before the crash: one more
    # reading after the end makes "crashed before the end of the data" true however far it got.
    end_ms = id_ms(r.xrevrange(lab.names[-1], count=1)[0][0])
    r.xadd(lab.names[-1], {"temp_f": "70"}, id=f"{end_ms + 1000}-0")
    s = nbk.settle(panel)
    assert not s and s.note.startswith("they crashed at") and "before the end of the data" in s.note, s
    panel.resume()
    assert nbk.settle(panel, timeout=120) and nbk.run_start(panel) == lab.names[0]
    nbk.start_unless_started(panel)
    panel.stop()
    again = nbk.start_unless_started(panel)
    assert "did not settle" not in again.note and "stopped" in again.note, again


def test_expect_shows_what_held_and_stops_the_cell_in_plain_words_when_not():
    """``nbk.expect``: the mid-notebook check; its failure is one ✗ line for IPython, not a traceback."""
    from labkit.notebook.checks import NotAsExpected, expect
    expect(True, "the consumers caught up")                      # holds: nothing raised
    expect(lambda: (True, "ignored"), "the consumers caught up")
    with pytest.raises(NotAsExpected) as caught:
        expect(lambda: (False, "lag 12"), "the consumers caught up", "press Stop, then run this cell again")
    line = "✗ the consumers caught up: lag 12 → what to do: press Stop, then run this cell again"
    assert str(caught.value) == line and caught.value._render_traceback_() == [line]
    with pytest.raises(NotAsExpected) as caught:                 # an error inside the check is its message
        expect(lambda: [][0], "the first line was logged", "run the cell above first")
    assert str(caught.value).startswith("✗ the first line was logged: IndexError: ") and "run the cell above" in \
        str(caught.value)


def test_a_labkit_error_in_a_notebook_is_the_clis_one_line():
    from labkit.errors import LabkitError
    err = LabkitError("the consumers are already running", "press Stop or Simulate crash first")
    assert err._render_traceback_() == [
        "labkit: error: the consumers are already running (hint: press Stop or Simulate crash first)"]
