"""Unit tests of the pure pieces the CLI and consumers are built from (no Redis)."""

from __future__ import annotations

import datetime as dt

import pytest

from labkit.errors import LabkitError
from labkit.core.lease import Holder
from labkit.core.manifest import COMPLETE, WRITING, Record
from labkit.core.partition import DAY_MS, HOUR_MS
from labkit.core.producer import Dataset, expire_at_ms, parse_start
from labkit.core.state import AggregatingState

T0 = 1735689600000  # 2025-01-01 00:00 UTC


def test_dataset_errors_speak_library_terms_and_the_cli_maps_them_to_flags():
    with pytest.raises(LabkitError) as exc:
        Dataset(T0, days=0)
    assert str(exc.value).startswith("days 0 is out of range") and "--" not in str(exc.value)
    assert str(exc.value.with_flag("--days")).startswith("--days 0 is out of range")
    with pytest.raises(LabkitError, match=r"^interval_ms 0 is out of range"):
        Dataset(T0, days=1, interval_ms=0)
    with pytest.raises(LabkitError, match=r"^start 'yesterday' is not a date"):
        parse_start("yesterday")


def test_dataset_slices_cut_at_utc_midnight_and_cover_every_reading_once():
    d = Dataset(T0 + 23 * HOUR_MS, days=1.5, interval_ms=7_000)   # starts at 23:00, ends mid-day 3
    slices = list(d.slices())
    assert [s[0] for s in slices] == [dt.date(2025, 1, 1), dt.date(2025, 1, 2), dt.date(2025, 1, 3)]
    assert slices[0][1] == 0 and slices[-1][2] == d.count
    assert all(a[2] == b[1] for a, b in zip(slices, slices[1:]))            # contiguous, no overlap
    for day, lo, hi in slices:                                              # each reading in its own day
        start = (day - dt.date(1970, 1, 1)).days * DAY_MS
        assert start <= d.start_ms + lo * d.interval_ms and d.start_ms + (hi - 1) * d.interval_ms < start + DAY_MS
    assert d.partitions() == ["temps:20250101", "temps:20250102", "temps:20250103"]


def test_expiry_of_a_past_dataset_keeps_order_and_never_deletes_today():
    first = dt.date(2025, 1, 1)
    now = T0 + 700 * DAY_MS
    days = [first + dt.timedelta(days=i) for i in range(3)]
    at = [expire_at_ms(d, first, now, 2 * DAY_MS) for d in days]
    assert at == sorted(at) and at[1] - at[0] == DAY_MS                    # oldest first, a day apart
    assert at[0] == now + 2 * DAY_MS                                        # first day "ended now"
    live = expire_at_ms(first, first, T0 + HOUR_MS, 2 * DAY_MS)            # today's data: the course's rule
    assert live == T0 + DAY_MS + 2 * DAY_MS


def test_aggregating_state_round_trips_its_window():
    s = AggregatingState("temps:20250101", f"{T0 + 5 * HOUR_MS + 17_000}-0", 1234, 17, "run1", "temps:20250101")
    w = s.window()
    assert (w.hour_start_ms, w.total, w.count) == (T0 + 5 * HOUR_MS, 1234, 17)
    assert AggregatingState("temps:20250101").window().hour_start_ms is None
    f = s.fields()
    assert f["current_hourly_count"] == "17" and f["partition_run"] == "run1"


@pytest.mark.parametrize("raw,want", [
    (b"complete abc 86400 1735775999000", Record(COMPLETE, "abc", 86400, 1735775999000)),
    ("writing abc 0 0", Record(WRITING, "abc")),
    (b"done abc 1 2", None), (b"complete abc x 2", None), (b"", None), (None, None),
])
def test_manifest_records_decode_only_what_labkit_wrote(raw, want):
    assert Record.decode(raw) == want
    if want:
        assert Record.decode(want.encode()) == want


def test_a_producer_lease_covers_its_partitions_in_date_order():
    h = Holder(what="p", first="temps:20250102", last="temps:20250104")
    assert h.covers("temps:20250103") and not h.covers("temps:20250101") and not h.covers("temps:20250105")
    assert Holder(what="live", first="temps:20250102").covers("temps:20300101")
    back = Holder.decode(h.encode())
    assert back == h and "p (pid" in back.describe()
    assert Holder.decode(b"not json").token == ""                       # someone else's value: never ours


def test_a_lease_holder_names_this_process_as_a_person_would(monkeypatch):
    import sys
    monkeypatch.delitem(sys.modules, "ipykernel", raising=False)
    h = Holder.here("producer", "produce", first="temps:20250101", last=None)
    assert h.what == "python -m labkit produce" and h.first == "temps:20250101" and h.last is None
    monkeypatch.setitem(sys.modules, "ipykernel", sys)             # as inside a notebook kernel
    assert Holder.here("consumers", "consume").what == "a notebook kernel's consumers"


def test_each_module_has_one_import_path_and_the_version_is_one_number():
    """The flat layout's names (labkit 0.1) are gone: a module answers to its place in the architecture only."""
    import importlib
    import importlib.metadata

    import labkit
    for old in ("runner", "widgets", "truth", "connection", "groups", "cli"):
        with pytest.raises(ModuleNotFoundError):
            importlib.import_module(f"labkit.{old}")
    assert importlib.metadata.version("labkit") == labkit.__version__


def test_dead_letter_record_starts_with_source_id_reason_payload_and_caps_lengths():
    from labkit.core import deadletters
    rec = deadletters.record(b"temps:20250101", b"1-0", "bad " * 200, {b"temp_f": b"NaN"}, deliveries=4)
    assert list(rec) == ["source", "id", "reason", "payload", "deliveries"]
    assert rec["source"] == "temps:20250101" and rec["id"] == "1-0" and rec["deliveries"] == 4
    assert len(rec["reason"]) == deadletters.REASON_MAX and rec["payload"] == "{'temp_f': 'NaN'}"
    assert len(deadletters.payload({"x": "y" * 2000})) == deadletters.PAYLOAD_MAX
    assert deadletters.payload(None) == "{}"         # an entry trimmed away: nothing left to show


def test_replies_as_text_from_bytes_or_str():
    from labkit.servers.replies import decoded, text, text_fields
    assert text(b"0-0") == "0-0" == text("0-0") and text(7) == "7"
    assert text_fields({b"a": b"1", "b": 2}) == {"a": "1", "b": "2"}
    assert text(b"\xff!", errors="replace") == "\ufffd!" and text_fields({b"k": b"\xff"}, "replace") == {"k": "\ufffd"}
    with pytest.raises(UnicodeDecodeError):
        text(b"\xff")                               # strict unless the caller says the text may be damaged
    assert decoded(b"lag") == "lag" and decoded(3) == 3 and decoded(None) is None   # numbers stay numbers


def test_worker_states_are_strings_for_existing_comparisons_and_display():
    from labkit.labs.pool import LIVE_STATES, WorkerState
    assert WorkerState.RUNNING == "running" and f"{WorkerState.KILLED}" == "killed" == str(WorkerState.KILLED)
    assert "stopped" not in LIVE_STATES and "replaying" in LIVE_STATES


def test_which_errors_mean_the_layout_changed_and_which_are_real_refusals():
    """A failover's replies are "ask again" (reread the layout, carry on); a real refusal is not.  redis-py
    parses MOVED into MovedError whose text lacks the word, and a planned failover ends a blocked read with
    UNBLOCKED; a CLIENT UNBLOCK … ERROR sent by labkit itself to stop a consumer is not a failover."""
    import redis
    from labkit.servers import connection as c
    assert c.relayout(redis.exceptions.MovedError("10574 127.0.0.1:7001"))
    assert c.relayout(redis.ResponseError("MOVED 10574 127.0.0.1:7001"))     # as hiredis hands it over
    assert c.relayout(redis.exceptions.ClusterDownError("The cluster is down"))
    planned = redis.ResponseError("UNBLOCKED force unblock from blocking operation, instance state changed "
                                  "(master -> replica?)")
    assert c.relayout(planned) and c.is_lost(planned)
    assert c.is_lost(redis.ConnectionError("reset")) and c.is_lost(redis.exceptions.TryAgainError("x"))
    for real in (redis.ResponseError("WRONGTYPE Operation against a key holding the wrong kind of value"),
                 redis.ResponseError("UNBLOCKED client unblocked via CLIENT UNBLOCK"),
                 redis.ResponseError("OOM command not allowed when used memory > 'maxmemory'.")):
        assert not c.relayout(real) and not c.is_lost(real)


def test_progress_records_round_trip_and_unreadable_fields_are_skipped():
    from labkit.core import progress
    f, v = progress.encode("exercise", "partition_of", "solved", 1_700_000_000_000, tries=2)
    assert f == "exercise:partition_of"
    got = progress.decode({f.encode(): v.encode(), b"last_activity": b"1700000000000",
                           b"exercise:broken": b"not json", b"nokind:x": v.encode()})
    (entry,) = got.entries.values()
    assert (entry.kind, entry.name, entry.status, entry.at_ms, entry.detail) == \
        ("exercise", "partition_of", "solved", 1_700_000_000_000, {"tries": 2})
    assert got.last_activity_ms == 1_700_000_000_000 and got.of("exercise") == [entry]
    with pytest.raises(ValueError):
        progress.encode("homework", "x", "done", 0)


def test_progress_is_kept_in_the_namespace_and_read_back(r, keys):
    from labkit.core import progress
    assert progress.record(r, keys, "verify", "last", "ok", hours=24)
    assert keys.progress.startswith(keys.namespace + ":")
    got = progress.read(r, keys)
    assert got.entries[("verify", "last")].detail == {"hours": 24} and got.last_activity_ms


def test_an_exercise_check_records_its_outcome_for_the_attached_learner(r, keys, monkeypatch):
    from labkit.core import progress
    from labkit.notebook import exercises as ex
    monkeypatch.delenv("LABKIT_SOLUTIONS", raising=False)
    monkeypatch.setattr(progress, "_attached", None)
    assert not progress.note("exercise", "x", "solved")                  # no notebook set-up: nothing written
    progress.attach(r, keys)
    ex.check("partition_of", lambda ms: "temps:19700101")                # wrong for most readings
    assert progress.read(r, keys).entries[("exercise", "partition_of")].status == "wrong"
    ex.check("partition_of", None)
    assert progress.read(r, keys).entries[("exercise", "partition_of")].status == "unsolved"


def test_redis_url_is_read_in_one_place_and_an_error_never_starts_a_server(monkeypatch, tmp_path):
    import pathlib
    import re
    from labkit.servers import connection
    monkeypatch.setenv("REDIS_URL", "  redis://db.example:6390/0 ")
    assert connection.given() == connection.Target("redis://db.example:6390/0", embedded=False)
    assert connection.current_target() == connection.given() == connection.target()
    monkeypatch.delenv("REDIS_URL")
    monkeypatch.setenv("LABKIT_HOME", str(tmp_path))      # no embedded server runs there
    assert connection.given() is None
    assert connection.current_target() == connection.Target("redis://127.0.0.1:0", embedded=True)
    assert not list(tmp_path.iterdir()), "current_target() started a server"
    package = pathlib.Path(connection.__file__).parents[1]
    readers = sorted(str(p.relative_to(package)) for p in package.rglob("*.py")
                     if re.search(r"environ[^\n]*\(\s*[\"']REDIS_URL", p.read_text()))
    assert readers == ["servers/connection.py"]


def test_a_thread_reports_any_error_in_one_line_and_never_loses_it():
    import redis
    from labkit.servers import connection
    t = connection.Target("redis://127.0.0.1:7999", embedded=False)
    mine = connection.failure(LabkitError("lost the lease", "resume"), t)
    assert mine.error.message == "lost the lease" and mine.said("stopped") == "stopped: lost the lease (hint: resume)"
    gone = connection.failure(redis.ConnectionError("Connection refused"), t)
    assert isinstance(gone.error, LabkitError) and not gone.unexpected
    assert gone.said("stopped").startswith("stopped: cannot reach Redis at 127.0.0.1:7999")
    bug = connection.failure(KeyError("x"), t)
    assert bug.unexpected and isinstance(bug.error, KeyError)
    assert bug.said("stopped") == "stopped by an unexpected error: KeyError: 'x'"


def test_a_companion_lab_has_its_own_namespace_under_the_learners():
    from labkit.core.keys import Keys
    from labkit.labs.names import lab_keys
    assert Keys("alice").companion("groups07") == Keys("alice.groups07") == lab_keys("groups07", Keys("alice"))
    assert Keys().companion("groups07") == Keys("groups07") != Keys()


def test_the_terminal_prints_a_repeated_waiting_line_once():
    """Live mode: the aggregating consumer catches up several times a second and says it waits each time (381
    identical lines in 5 s on a terminal); a repeat of the same source's last line is not printed again, and
    the course's console is unchanged (a waiting line after another line is printed)."""
    import io
    from labkit.log import LogLine, TerminalSink
    out = io.StringIO()
    sink = TerminalSink(out, colour=False)
    wait = "Waiting for new messages in stream temps:20261205, or new stream partition."
    for _ in range(50):
        sink(LogLine("agg", wait))
    sink(LogLine("avg", "Waiting for new messages in stream temps:averages"))
    sink(LogLine("avg", "Average temperature for 2026/12/05 at 7 was 50F (3600 observations)."))
    sink(LogLine("avg", "Waiting for new messages in stream temps:averages"))
    sink(LogLine("agg", "Changing partition to consume stream: temps:20261206"))
    sink(LogLine("agg", wait))
    assert out.getvalue().splitlines() == [
        f"agg: {wait}", "avg: Waiting for new messages in stream temps:averages",
        "avg: Average temperature for 2026/12/05 at 7 was 50F (3600 observations).",
        "avg: Waiting for new messages in stream temps:averages",
        "agg: Changing partition to consume stream: temps:20261206", f"agg: {wait}"]
