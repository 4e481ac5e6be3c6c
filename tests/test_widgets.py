"""The consumer panel, headless: real server, real consumers, no browser.

Each test sets the dropdown, clicks buttons with ``Button.click()``, waits for
the consumers and reads what the Output widgets hold.  The expected ``avg:``
lines are computed independently from the raw readings with pandas.
"""

from __future__ import annotations

import re

import math
import threading
import time

import pytest

from labkit.core import producer
from labkit.errors import LabkitError
from labkit.log import LogLine
from labkit.core.runner import list_partitions
from labkit.core.truth import check, hourly_truth, load_readings
from labkit.notebook.logbox import LogBox, OutputSink, output_text
from labkit.notebook.panel import ConsumerPanel

DAYS = 1.5     # two partitions (a boundary to cross), the second one half a day: 36 hours
HOURS = 36


@pytest.fixture
def data(r, keys):
    d = producer.Dataset(producer.parse_start("2025-01-01"), DAYS)
    producer.produce(r, d, keys)
    return d


@pytest.fixture
def panel(panels):
    return panels


def expected_avg_lines(r, keys, partitions) -> list[str]:
    """The course's avg: line for every hour, from ground truth (round half up to whole °F)."""
    truth = hourly_truth(load_readings(r, partitions))
    lines = []
    for ms, row in truth.iterrows():
        import datetime as dt
        t = dt.datetime.fromtimestamp(ms / 1000, dt.timezone.utc)
        whole = math.floor(row["sum"] / row["count"] + 0.5)
        lines.append(f"avg: Average temperature for {t:%Y/%m/%d} at {t.hour} was {whole}F "
                     f"({int(row['count'])} observations).")
    return lines


def avg_average_lines(p: ConsumerPanel) -> list[str]:
    return [l for l in output_text(p.avg_output).splitlines() if "Average temperature" in l]


def buttons(p: ConsumerPanel) -> dict:
    return {"start": p.start_button.disabled, "stop": p.stop_button.disabled,
            "crash": p.crash_button.disabled, "resume": p.resume_button.disabled,
            "dropdown": p.dropdown.disabled}


def wait_for(cond, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.02)
    return cond()


def test_start_fills_both_outputs_and_status(r, keys, data, panel, capfd):
    parts = list_partitions(r, keys)
    assert len(parts) == 2
    p = panel()
    assert list(p.dropdown.options) == parts and p.dropdown.value == parts[0]
    # Nothing saved yet: only Start makes sense.
    assert buttons(p) == {"start": False, "stop": True, "crash": True, "resume": True, "dropdown": False}

    assert p.chart.layout.display == "none"          # nothing to draw yet: no broken image
    p.dropdown.value = parts[0]
    p.start_button.click()
    assert p.message.value == ""
    assert buttons(p) == {"start": True, "stop": False, "crash": False, "resume": True, "dropdown": True}
    assert p.handle.wait_idle(0.3, timeout=60)

    # The ticker (not the test) brings the status line and the logs up to date while they run.
    assert wait_for(lambda: f"hours published {HOURS} " in re.sub("<[^>]+>", " ", p.status.value)), p.status.value
    assert wait_for(lambda: "Waiting for new messages" in output_text(p.avg_output))
    agg = output_text(p.agg_output).splitlines()
    assert agg[0] == f"agg: Starting aggregating consumer in stream {parts[0]} at message 0."
    assert f"agg: Changing partition to consume stream: {parts[1]}" in agg
    assert not any(l.startswith("avg:") for l in agg)

    # avg: lines are yellow (ANSI), in stdout stream outputs, and say exactly what ground truth says.
    assert all(o["output_type"] == "stream" and o["name"] == "stdout" for o in p.avg_output.outputs)
    raw = "".join(o["text"] for o in p.avg_output.outputs).splitlines(keepends=True)
    assert all(t.startswith("\x1b[33mavg: ") and t.endswith("\x1b[0m\n") for t in raw)
    assert raw[0] == f"\x1b[33mavg: Starting averages consumer in stream {keys.averages} at message 0.\x1b[0m\n"
    assert avg_average_lines(p) == expected_avg_lines(r, keys, parts)
    rep, _, _ = check(r, keys, parts)            # and the published stream, to the hundredth
    assert rep.ok and rep.matched == HOURS, rep.summary()

    st = p.update()
    assert st["running"] and st["partition"] == parts[1]
    assert st["hours_ever_added"] == HOURS and st["lag_ms"] == 0 and st["averages_unread"] == 0
    assert st["last_average"]["date"] == "2025/01/02" and st["last_average"]["hour"] == "11"
    assert "lag 0 s of readings" in p.status.value
    # One status model: the panel shows the runner's own status, completed from Redis (read_status).
    own = p.handle.status()
    assert set(own) <= set(st) and st["readings"] > 0 and st["losses"] == own["losses"] == 0
    assert st["averages_last_id"] == own["averages_last_id"] and st["hours_this_run"] == own["hours_published"]

    # The live chart holds every published hour, in order.
    assert bytes(p.chart.value).startswith(b"\x89PNG") and p.chart.layout.display is None
    assert len(p.chart_data) == HOURS
    assert [ms for ms, _ in p.chart_data] == sorted(ms for ms, _ in p.chart_data)

    p.stop_button.click()
    assert not p.running
    assert buttons(p) == {"start": False, "stop": True, "crash": True, "resume": False, "dropdown": False}
    assert "Stopped cleanly" in output_text(p.agg_output)
    assert wait_for(lambda: not p._ticker.is_alive(), 3), "the ticker must end when the consumers stop"
    # Nothing went through print(): every line is in the widgets.
    out, err = capfd.readouterr()
    assert "avg:" not in out and "agg:" not in out and "avg:" not in err


def test_chart_and_status_update_live_while_running(r, keys, data, panel):
    p = panel(batch=500)                     # small batches: a run long enough to watch
    p.start()
    seen_chart, seen_status = set(), set()
    while p.running and p.handle.idle_for() < 0.3:
        seen_chart.add(len(p.chart_data))
        seen_status.add(p.last_status.get("hours_ever_added"))
        time.sleep(0.01)
    assert any(0 < n < HOURS for n in seen_chart), seen_chart
    assert any(0 < n < HOURS for n in seen_status if n is not None), seen_status
    assert wait_for(lambda: len(p.chart_data) == HOURS, 5)


def test_no_start_twice(r, keys, data, panel):
    p = panel()
    p.start()
    assert p.start_button.disabled and p.resume_button.disabled
    with pytest.raises(LabkitError, match="already running"):
        p.start()
    with pytest.raises(LabkitError, match="already running"):
        p.resume()
    p.start_button.click()                 # even a click that gets through is refused, and said so
    assert "already running" in p.message.value
    assert p.wait_idle(0.3, timeout=60)          # the panel's wait also shows every pending line
    assert output_text(p.agg_output).count("Starting aggregating consumer") == 1
    assert len(avg_average_lines(p)) == HOURS


def test_start_from_second_partition_clears_the_logs(r, keys, data, panel):
    parts = list_partitions(r, keys)
    p = panel()
    p.start(parts[0])
    assert p.wait_idle(0.3, timeout=60)
    p.stop()
    p.dropdown.value = parts[1]
    p.start_button.click()
    assert p.wait_idle(0.3, timeout=60)
    lines = avg_average_lines(p)
    assert lines[0].startswith("avg: Average temperature for 2025/01/02 at 0 was")
    assert len(lines) == 12 and "2025/01/01" not in output_text(p.avg_output)
    assert output_text(p.agg_output).startswith(f"agg: Starting aggregating consumer in stream {parts[1]}")
    assert p.last_status["hours_ever_added"] == 12 and len(p.chart_data) == 12


def test_crash_mid_hour_then_resume_loses_and_repeats_nothing(r, keys, data, panel):
    parts = list_partitions(r, keys)
    p = panel(averages_maxlen=0, batch=500)     # small batches: a run long enough to interrupt
    p.start(parts[0])
    while p.running and p.handle.status()["readings"] < 5_000:
        time.sleep(0.001)
    p.crash_button.click()
    st = p.last_status
    assert st["crashed"] and not st["running"], (st, p.handle.status())
    assert "crashed" in p.status.value
    assert buttons(p) == {"start": False, "stop": True, "crash": True, "resume": False, "dropdown": False}
    assert "Simulated crash" in output_text(p.agg_output)

    saved = {k.decode(): v.decode() for k, v in r.hgetall(keys.aggregating_state).items()}
    assert int(saved["current_hourly_count"]) > 0, f"crash landed on an hour boundary: {saved}"
    assert st["lag_ms"] > 0 and st["hours_ever_added"] < HOURS
    published_before = r.xlen(keys.averages)

    p.resume_button.click()
    assert p.message.value == ""
    resumed = (f"agg: Starting aggregating consumer in stream {saved['current_stream_key']} "
               f"at message {saved['last_message_id']}.")
    assert wait_for(lambda: resumed in output_text(p.agg_output)), output_text(p.agg_output)
    assert p.wait_idle(0.3, timeout=60)
    rep, averages, truth = check(r, keys, parts)
    assert rep.ok and rep.matched == HOURS and rep.duplicates == 0 and not rep.missing, rep.summary()
    assert len(averages) == HOURS > published_before
    assert p.last_status["hours_ever_added"] == HOURS
    assert p.handle.status()["hours_replayed"] == 0
    # Every hour was printed (printing is at-least-once; publishing is exactly-once).
    printed = set(avg_average_lines(p))
    assert printed == set(expected_avg_lines(r, keys, parts))


def test_read_status_without_a_handle_reads_what_redis_holds(r, keys, data, panel):
    """No consumers running here: the position and the averages come from the saved state and the stream."""
    from labkit.core.runner import read_status
    empty = read_status(r, keys)
    assert not empty["running"] and empty["partition"] is None and empty["hours_ever_added"] == 0
    parts = list_partitions(r, keys)
    p = panel()
    p.start(parts[0])
    assert p.wait_idle(0.5, timeout=120)
    p.stop()
    st = read_status(r, keys, newest=parts[-1])
    assert not st["running"] and st["partition"] == parts[-1] and st["hours_ever_added"] == HOURS
    assert st["lag_ms"] == 0 and st["averages_unread"] == 0 and "readings" not in st


def test_refresh_finds_new_partitions(r, keys, panel):
    p = panel()
    assert list(p.dropdown.options) == [] and p.dropdown.value is None
    assert p.start_button.disabled and p.resume_button.disabled
    with pytest.raises(LabkitError, match="no partition"):
        p.start()
    producer.produce(r, producer.Dataset(producer.parse_start("2025-03-01"), 0.25), keys)
    p.refresh_button.click()
    assert list(p.dropdown.options) == [keys.partition_prefix + "20250301"]
    assert not p.start_button.disabled


def test_close_stops_consumers_and_ticker(r, keys, data, panel):
    p = panel()
    p.start()
    handle = p.handle
    p.close()
    assert not handle.running and not p._ticker.is_alive()


def test_a_closed_panel_resumes_when_a_cell_above_is_run_again(r, keys, data, panel):
    """A notebook's last cell closes its panel; a learner who then re-runs Resume gets it back (on a cluster a
    closed client forgets its nodes: seen in CI as a raw RedisClusterException from 05's Resume cell)."""
    p = panel()
    p.start()
    assert p.wait_idle(0.5, timeout=120)
    p.close()
    p.resume()
    assert p.running and wait_for(lambda: p.update()["running"])
    p.stop()
    assert not p.running and p.update()["hours_ever_added"] > 0
    p.close()



def test_a_new_panel_takes_over_the_consumers_an_earlier_panel_of_this_kernel_left_running(r, keys, data, panel):
    """Running the panel's cell again while its consumers run: the new panel shows and controls them (they
    used to run on with no button left to stop them, and Start was refused by this kernel's own lease)."""
    old = panel()
    old.start(list_partitions(r, keys)[0])
    assert old.wait_idle(0.5, timeout=120)
    new = panel()
    assert new.running and new.handle is old.handle and new.started_from == old.started_from
    assert "an earlier panel in this kernel" in output_text(new.agg_output)
    assert not old._ticker.is_alive() or wait_for(lambda: not old._ticker.is_alive())
    producer.produce(r, producer.Dataset(producer.parse_start("2025-01-03"), 1), keys)
    assert wait_for(lambda: "Changing partition to consume stream" in output_text(new.agg_output), timeout=30)
    assert "2025/01/03" not in output_text(old.avg_output)            # the old boxes are no longer written
    new.stop()
    assert not new.running and not old.running
    new.start(list_partitions(r, keys)[0])                             # the lease was let go
    assert new.running
    new.stop()

def test_output_sink_keeps_every_line_from_many_threads():
    a, b = LogBox(), LogBox()
    sink = OutputSink({"avg": b}, a, max_lines=10_000)

    def work(n):
        for i in range(300):
            sink(LogLine("avg" if i % 2 else "agg", f"{n}-{i}"))
    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    sink.flush()
    assert len(output_text(a).splitlines()) == len(output_text(b).splitlines()) == 600
    assert {l.split(": ")[1] for l in output_text(a).splitlines()} == {f"{n}-{i}" for n in range(4)
                                                                       for i in range(0, 300, 2)}
    assert {l.split(": ")[1] for l in output_text(b).splitlines()} == {f"{n}-{i}" for n in range(4)
                                                                       for i in range(1, 300, 2)}
    sink.clear()
    assert a.outputs == () and b.outputs == () and a.chunks == ()


def test_output_sink_caps_lines():
    a = LogBox()
    sink = OutputSink({}, a, max_lines=5)
    for i in range(12):
        sink(LogLine("agg", str(i)))
    sink.flush()
    assert output_text(a).splitlines() == [f"agg: {i}" for i in range(7, 12)]
    for i in range(12, 15):             # a later flush drops whole older chunks to stay within the cap
        sink(LogLine("agg", str(i)))
    sink.flush()
    assert output_text(a).splitlines() == [f"agg: {i}" for i in range(12, 15)]


def test_output_sink_batches_lines_and_flushes_by_itself():
    a = LogBox()
    sink = OutputSink({}, a, flush_interval=0.1)
    for i in range(50):
        sink(LogLine("agg", str(i)))
    assert wait_for(lambda: len(output_text(a).splitlines()) == 50, 3)   # no flush() call: the timer did it
    assert len(a.chunks) < 5, "lines are appended in batches, not one output per line"
    first = a.chunks[0]
    sink(LogLine("agg", "one more"))
    sink.flush()
    assert a.chunks[0] is first and first.outputs[0]["text"].startswith("agg: 0\n"), \
        "a new batch is a new child: what the browser already shows is left alone"


def test_what_the_browser_already_shows_is_never_redrawn():
    """A burst (a fast consumer publishes a day at once) arrives as one flush ending in a Waiting line; when
    the next line replaces that Waiting line, no chunk already shown may change: changing an Output's outputs
    makes the browser redraw it, which moved a learner who had scrolled to the top (the browser test)."""
    box = LogBox()
    sink = OutputSink({}, box, flush_interval=10)
    wait = "Waiting for new messages in stream temps:averages"
    sink(LogLine("avg", "Starting averages consumer in stream temps:averages at message 0."))
    for day in (1, 2):
        for h in range(24):
            sink(LogLine("avg", f"Average temperature for 2025/01/0{day} at {h} was 50F (3600 observations)."))
        sink(LogLine("avg", wait))
        sink.flush()
    shown = [(c, c.outputs) for c in box.chunks]          # the chunks themselves: an id() could be reused
    for h in range(24):
        sink(LogLine("avg", f"Average temperature for 2025/01/03 at {h} was 50F (3600 observations)."))
    sink(LogLine("avg", wait))
    sink.flush()
    lines = output_text(box).splitlines()
    assert len(lines) == 1 + 72 + 1 and lines.count(f"avg: {wait}") == 1 and lines[-1] == f"avg: {wait}"
    for c, outputs in shown:
        if c in box.chunks:
            assert c.outputs is outputs, "a chunk the browser already shows was rewritten"
    assert shown[0][0] in box.chunks, "the top chunk (with the Starting line) is still shown"


# ---------------------------------------------------------------- what a learner sees

def test_waiting_lines_stand_only_while_their_consumer_waits():
    """A "Waiting …" line is replaced by that consumer's next line, pending or already shown; other lines stay."""
    a, b = LogBox(), LogBox()
    sink = OutputSink({"avg": b}, a, flush_interval=0)      # flush on every line: the already-shown case
    wait_avg = "Waiting for new messages in stream temps:averages"
    for i in range(3):
        sink(LogLine("avg", f"Average temperature for 2025/01/01 at {i} was 50F (3600 observations)."))
        sink(LogLine("avg", wait_avg))
    sink(LogLine("agg", "Waiting for new messages in stream temps:20250101, or new stream partition."))
    sink(LogLine("panel", "Stopped cleanly: both states saved."))        # another source: the agg wait stays
    assert output_text(b).splitlines() == [
        "avg: Average temperature for 2025/01/01 at 0 was 50F (3600 observations).",
        "avg: Average temperature for 2025/01/01 at 1 was 50F (3600 observations).",
        "avg: Average temperature for 2025/01/01 at 2 was 50F (3600 observations).",
        f"avg: {wait_avg}"]
    assert output_text(a).splitlines() == [
        "agg: Waiting for new messages in stream temps:20250101, or new stream partition.",
        "panel: Stopped cleanly: both states saved."]
    sink(LogLine("agg", "Changing partition to consume stream: temps:20250102"))
    assert output_text(a).splitlines() == ["panel: Stopped cleanly: both states saved.",
                                           "agg: Changing partition to consume stream: temps:20250102"]

    batched = LogBox()                                        # and the same within one batch
    sink = OutputSink({}, batched, flush_interval=10)
    for i in range(50):
        sink(LogLine("avg", f"line {i}"))
        sink(LogLine("avg", wait_avg))
    sink.flush()
    lines = output_text(batched).splitlines()
    assert len(lines) == 51 and lines[-1] == f"avg: {wait_avg}" and lines.count(f"avg: {wait_avg}") == 1


def test_a_run_shows_every_average_and_one_waiting_line(r, keys, data, panel):
    p = panel(batch=2000)              # many batches: the averages consumer waits after nearly every one
    p.start()
    assert p.wait_idle(0.5, timeout=60)
    waits = [l for l in p.lines.texts("avg") if "Waiting for new messages" in l]
    assert len(waits) > 3, "the run must have waited several times for this test to mean anything"
    shown = output_text(p.avg_output).splitlines()
    assert shown[-1] == f"avg: Waiting for new messages in stream {keys.averages}"
    assert sum("Waiting" in l for l in shown) == 1
    assert avg_average_lines(p) == expected_avg_lines(r, keys, list_partitions(r, keys))


def test_a_log_token_wider_than_the_box_scrolls_rather_than_breaking_inside():
    """Lines wrap between words; a key such as {temps:averages}aggregating_consumer_state is never cut."""
    import re
    from labkit.notebook.panel import panel_css
    rule = re.search(r"\.labkit-log \.jp-OutputArea-output pre \{([^}]*)\}", panel_css()).group(1)
    assert "word-break: normal" in rule and "overflow-wrap: normal" in rule, rule
    assert not re.search(r"break-word|break-all|anywhere", rule), rule


def test_log_boxes_follow_the_newest_line_and_read_well_in_both_themes(panel, keys, r):
    p = panel()
    css = p.widget.children[0].value
    assert css.startswith("<style>") and ".labkit-log" in css
    for out in (p.agg_output, p.avg_output):
        assert "labkit-log" in out._dom_classes
    assert "flex-direction: column-reverse" in css and "word-break: normal" in css
    from tests.contrast import BACKGROUNDS, contrast
    from labkit.notebook.panel import PALETTE
    for name, (light, dark) in PALETTE.items():
        assert light in css and dark in css, name
        assert all(contrast(light, bg) >= 4.5 for bg in BACKGROUNDS["light"]), (name, light)
        assert all(contrast(dark, bg) >= 4.5 for bg in BACKGROUNDS["dark"]), (name, dark)
    assert contrast("#ddb62b", "#ffffff") < 2          # the course's yellow on white, for the record
    assert "color:#" not in p.status.value.replace(" ", "")   # no fixed colours left in the status line


def test_contrast_matches_wcag():
    from tests.contrast import contrast
    assert contrast("#000000", "#ffffff") == pytest.approx(21)
    assert contrast("#ffffff", "#ffffff") == pytest.approx(1)
    assert contrast("#777777", "#ffffff") == pytest.approx(4.48, abs=0.01)


def test_chart_says_how_many_averages_it_shows_and_why(r, keys, panel):
    from labkit.notebook.plot import chart_title
    assert chart_title("temps:averages", 36, 36, 120) == "temps:averages: 36 hourly averages"
    assert chart_title("temps:averages", 143, 240, 120) == \
        "temps:averages: the newest 143 of 240 hourly averages published (MAXLEN ~ 120 trimmed the oldest)"
    producer.produce(r, producer.Dataset(producer.parse_start("2025-01-01"), 5), keys)   # 120 hours
    p = panel(averages_maxlen=10)
    p.start()
    assert p.wait_idle(0.5, timeout=120)
    p.update()
    st = p.last_status
    assert st["hours_ever_added"] == 120 and st["averages_len"] < 120
    assert len(p.chart_data) == st["averages_len"]
    assert p.chart_caption == chart_title(keys.averages, st["averages_len"], 120, 10)
    assert f"the newest {st['averages_len']} of 120" in p.chart_caption


def test_reload_shows_a_hint_instead_of_the_widget_repr(panel):
    p = panel()
    bundle = p._repr_mimebundle_()
    data = bundle[0] if isinstance(bundle, tuple) else bundle
    assert "application/vnd.jupyter.widget-view+json" in data
    assert "run this cell again" in data["text/plain"] and "VBox" not in data["text/plain"]


def test_an_error_from_start_is_one_red_line(r, keys, data, panel):
    parts = list_partitions(r, keys)
    p = panel()
    p.dropdown.value = parts[1]
    r.delete(parts[1])                       # gone between listing and pressing Start
    p.start_button.click()
    assert not p.running
    msg = p.message.value
    assert 'class="labkit-bad"' in msg and f"partition {parts[1]} does not exist" in msg and "hint:" in msg
    assert "Traceback" not in msg and "\n" not in msg


def test_a_labkit_error_raised_while_starting_is_one_red_line(r, keys, data, panel, monkeypatch):
    """Whatever LabkitError start_consumers raises (e.g. another consumer holds the namespace) shows as one line."""
    import labkit.notebook.panel as widgets

    def refuse(*args, **kwargs):
        raise LabkitError("another aggregating consumer is running in this namespace",
                          "stop it first, or use another LABKIT_NAMESPACE")
    monkeypatch.setattr(widgets, "start_consumers", refuse)
    p = panel()
    p.start_button.click()
    assert not p.running and p.handle is None
    assert p.message.value == ('<span class="labkit-bad">another aggregating consumer is running in this '
                               'namespace (hint: stop it first, or use another LABKIT_NAMESPACE)</span>')
    r.hset(keys.aggregating_state, mapping={"current_stream_key": list_partitions(r, keys)[0],
                                            "last_message_id": "0", "current_hourly_total": "0",
                                            "current_hourly_count": "0"})
    p.update()
    p.message.value = ""
    p.resume_button.click()
    assert "another aggregating consumer is running" in p.message.value and not p.running


def test_start_records_the_partition_and_clears_the_lines(r, keys, data, panel):
    parts = list_partitions(r, keys)
    p = panel()
    assert p.started_from is None
    p.start(parts[0])
    assert p.wait_idle(0.3, timeout=60)
    p.stop()
    p.resume()                                   # Resume keeps the partition the run started from
    assert p.started_from == parts[0]
    assert p.wait_idle(0.3, timeout=60)
    p.stop()
    p.dropdown.value = parts[1]
    p.start_button.click()
    assert p.started_from == parts[1]
    assert p.wait_idle(0.3, timeout=60)
    agg = p.lines.texts("agg")
    assert agg[0] == f"agg: Starting aggregating consumer in stream {parts[1]} at message 0."
    assert not any(parts[0] in line for line in agg)




def test_start_while_a_terminal_consumer_runs_shows_one_line_in_the_panel(r, keys, data, panel, target, lab_home):
    import os
    import subprocess
    import sys
    from pathlib import Path
    root = Path(__file__).resolve().parents[1]
    env = dict(os.environ, LABKIT_HOME=str(lab_home), PYTHONPATH=str(root), LABKIT_NAMESPACE=keys.namespace)
    env.pop("REDIS_URL", None)
    if not target.embedded:
        env["REDIS_URL"] = target.url
    term = subprocess.Popen([sys.executable, "-m", "labkit", "consume", keys.partition_prefix + "20250101"],
                            env=env, cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        assert wait_for(lambda: r.exists(keys.aggregating_lease), timeout=30)
        p = panel()
        p.start_button.click()
        msg = p.message.value
        assert "is held by python -m labkit consume" in msg and f"pid {term.pid}" in msg, msg
        assert "Traceback" not in msg and "\n" not in msg
        assert not p.running and "Traceback" not in output_text(p.agg_output)
    finally:
        term.terminate()
        term.wait(10)
    assert term.returncode == 143


def test_the_charts_title_fits_and_names_the_newest_hour():
    """The longest title (a namespace, the cap's note) is wrapped inside the figure; the newest hour is whole."""
    from labkit.notebook.plot import chart_figure
    t0 = 1735689600000
    data = [(t0 + h * 3_600_000, 50.0 + h % 7) for h in range(240)]
    from labkit.notebook.helpers import figure_png
    fig = chart_figure(data, "learner-with-a-long-name:temps:averages", 360, 120)
    figure_png(fig, dpi=90)                 # laid out as the panel draws it
    title = fig.axes[0].title
    box, page = title.get_window_extent(), fig.bbox
    assert box.x0 >= page.x0 and box.x1 <= page.x1 and box.y1 <= page.y1, (box, page)
    assert title.get_text().endswith("newest 2025/01/10 at 23:00")
    assert "(MAXLEN ~ 120 trimmed the oldest)" in title.get_text().replace("\n", " ").replace("\u00a0", " ")


def test_the_status_line_breaks_between_its_parts_and_knows_a_dead_kernel(panel):
    """Each part of the status line is kept whole (no break inside 'of readings'); the text a view shows once
    its kernel restarted is in the line too, shown by CSS only when JupyterLab marks the view disconnected."""
    import re
    from labkit.notebook.panel import panel_css
    p = panel()
    p.update()
    html = p.status.value
    parts = re.findall(r'<span class="labkit-seg">(.*?)</span>', html)
    assert len(parts) >= 4 and any(part.startswith("lag ") for part in parts), html
    assert '<span class="labkit-dead">' in html and "re-run the cell" in html
    css = panel_css()
    assert ".jupyter-widgets-disconnected .labkit-dead { display: inline; }" in css
    assert ".jupyter-widgets-disconnected .labkit-live { display: none; }" in css
    assert ".labkit-seg { white-space: nowrap; }" in css
    assert "labkit-panel" in p.widget._dom_classes


def test_a_status_error_is_cleared_once_redis_answers_again(panel, monkeypatch):
    """As after a failover in notebook 13: a status read fails, the red line shows it; the next read works and
    the red line goes. An error from a button stays until the next action."""
    import redis
    p = panel()
    real = p._status
    monkeypatch.setattr(p, "_status", lambda: (_ for _ in ()).throw(redis.ConnectionError("connection refused")))
    p.update()
    assert 'class="labkit-bad"' in p.message.value
    monkeypatch.setattr(p, "_status", real)
    p.update()
    assert p.message.value == ""
    p._show_error("the consumers are not running (hint: press Start or Resume first)")
    p.update()
    assert "not running" in p.message.value


def test_a_lost_server_named_in_code_does_not_blame_redis_url(monkeypatch):
    """13's own cluster is named in code, not in REDIS_URL: the red line must not say to unset REDIS_URL."""
    import redis
    from labkit.servers import connection
    t = connection.Target("redis://127.0.0.1:1", embedded=False)
    monkeypatch.delenv("REDIS_URL", raising=False)
    err = str(connection.explain(redis.ConnectionError("Connection refused"), t))
    assert "REDIS_URL" not in err and "is that server running?" in err, err
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1")
    assert "unset REDIS_URL" in str(connection.explain(redis.ConnectionError("Connection refused"), t))
