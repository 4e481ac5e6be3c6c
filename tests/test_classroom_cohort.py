"""The instructor's view (``python -m labkit cohort``) and resetting one learner, with learners working as their
own fenced ACL users on the test server (a cluster too when REDIS_URL names one)."""

from __future__ import annotations

import json
import time

import pytest

from labkit.classroom import cohort, fence
from labkit.core import keyspace, progress
from labkit.core.keys import Keys
from labkit.core.lease import Holder
from labkit.core.progress import Progress, Entry

pytestmark = pytest.mark.classroom


def test_a_row_from_what_was_read():
    prog = Progress({("exercise", "a"): Entry("exercise", "a", "solved", 1_000, {}),
                     ("exercise", "b"): Entry("exercise", "b", "wrong", 2_000, {}),
                     ("verify", "last"): Entry("verify", "last", "failed", 3_000, {}),
                     ("notebook", "02-x"): Entry("notebook", "02-x", "passed", 500, {"passed": 5, "total": 5}),
                     ("notebook", "03-x"): Entry("notebook", "03-x", "failed", 600, {"passed": 4, "total": 5})}, 3_000)
    row = cohort.row_of("alice", 3, Holder("aggregating consumer", since_ms=0), 48, prog, 12)
    assert (row.partitions, row.hours_published, row.verified, row.exercises_solved, row.exercises_total) == (3, 48, False, 1, 12)
    assert row.consumer.startswith("aggregating consumer") and row.consumer_since == "1970-01-01T00:00:00Z"
    assert row.last_activity == "1970-01-01T00:00:03Z" and row.verified_at == row.last_activity
    assert row.notebooks_passed == 1
    empty = cohort.row_of("bob", 0, None, 0, Progress({}, None), 12)
    assert (empty.consumer, empty.verified, empty.last_activity) == (None, None, None)
    text = cohort.table([row, empty])
    assert "alice" in text and "FAILED" in text and "1/12" in text and "0/12" in text


def test_cohort_shows_each_learner_and_reset_removes_exactly_one(r, cli, two_learners):
    (alice, a_url), (bob, b_url) = two_learners.items()
    for ns, url in two_learners.items():
        env = {"REDIS_URL": url}
        run = cli("produce", "--days", "0.25", "--no-progress", namespace=ns, env=env)
        assert run.returncode == 0, run.stderr
    run = cli("consume", f"{alice}:temps:20250101", "--idle-exit", "1", namespace=alice, env={"REDIS_URL": a_url})
    assert run.returncode == 0, run.stderr
    run = cli("verify", namespace=alice, env={"REDIS_URL": a_url})
    assert run.returncode == 0, run.stdout + run.stderr
    progress.record(r, keyspace.keys_for(r, Keys(alice)), "exercise", "partition_of", "solved")
    progress.record(r, keyspace.keys_for(r, Keys(alice)), "verify", "last", "ok")

    run = cli("cohort", "--json")
    assert run.returncode == 0, run.stderr
    rows = {row["namespace"]: row for row in json.loads(run.stdout)}
    assert {alice, bob} <= set(rows)
    a, b = rows[alice], rows[bob]
    for field in ("namespace", "partitions", "consumer", "hours_published", "verified", "exercises_solved",
                  "exercises_total", "last_activity"):
        assert field in a
    assert (a["partitions"], a["hours_published"], a["verified"], a["exercises_solved"]) == (1, 6, True, 1)
    assert a["exercises_total"] == cohort.exercises_total() > 1 and a["last_activity"].endswith("Z")
    assert (b["partitions"], b["hours_published"], b["verified"], b["exercises_solved"], b["consumer"]) == (1, 0, None, 0, None)
    assert alice in cli("cohort").stdout

    run = cli("cohort", "reset", bob)  # no terminal to ask on
    assert run.returncode != 0 and "--yes" in run.stderr and cohort.learner_names(r, bob)
    run = cli("cohort", "reset", bob, "--yes")
    assert run.returncode == 0, run.stderr
    assert not cohort.learner_names(r, bob)
    after = cohort.read_row(r, alice)
    assert (after.partitions, after.hours_published, after.verified) == (1, 6, True)
    assert bob in fence.learners(r)  # the user stays: bob can start again


def test_reset_refuses_while_the_consumer_holds_its_lease(r, two_learners):
    from labkit.core.lease import Lease
    alice = next(iter(two_learners))
    keys = keyspace.keys_for(r, Keys(alice))
    r.xadd(keys.partition_prefix + "20250101", {"temp_f": "1"})
    lease = Lease(r, keys.aggregating_lease, Holder("aggregating consumer")).acquire("busy")
    try:
        with pytest.raises(Exception, match="consumer is running"):
            cohort.reset(r, alice)
        assert cohort.read_row(r, alice).consumer.startswith("aggregating consumer")
        assert cohort.reset(r, alice, force=True) >= 2
        assert not cohort.learner_names(r, alice)
    finally:
        lease.release()


def test_reset_refuses_what_is_not_a_learner(cli, r, two_learners):
    """Only a learner of this server is reset: never the course's own keys (``temps``) nor another app's that
    happens to look like a namespace (both used to be deleted whole)."""
    run = cli("cohort", "reset", "a.b", "--yes")
    assert run.returncode == 2 and "not a learner namespace" in run.stderr and "Traceback" not in run.stderr
    tag = next(iter(two_learners))[len("alice"):]
    other = f"otherapp{tag}"
    r.set(f"{other}:cache", "theirs")
    try:
        for name, words in (("temps", "the course's own key prefix"), (other, "is not a learner on this server")):
            run = cli("cohort", "reset", name, "--yes")
            assert run.returncode == 2 and words in run.stderr and "Traceback" not in run.stderr, run.stderr
        assert r.get(f"{other}:cache") == b"theirs"
        with pytest.raises(Exception, match="not a learner on this server"):
            cohort.reset(r, other, force=True)
    finally:
        r.delete(f"{other}:cache")
    assert fence.namespace_for("temps") != "temps" and not fence.is_learner_namespace("labkit")


def test_the_view_table_in_html():
    from labkit.classroom.view import html_table
    row = cohort.row_of("<alice>", 2, None, 24, Progress({("verify", "last"): Entry("verify", "last", "failed", 0, {})}, 0), 12)
    page = html_table([row], 0)
    assert "&lt;alice&gt;" in page and "failed" in page and "0 of 12" in page and "1 learner, read at 00:00:00 UTC" in page


def test_the_refreshing_view_shows_a_new_learner_without_being_asked(r, two_learners):
    from labkit.classroom.view import CohortView
    alice, bob = two_learners
    view = CohortView(r, interval=0.2)
    try:
        assert {alice, bob} <= {row.namespace for row in view.rows} and alice in view.widget.value
        progress.record(r, keyspace.keys_for(r, Keys(bob)), "exercise", "partition_of", "solved")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            rows = {row.namespace: row for row in view.rows}
            if rows[bob].exercises_solved == 1:
                break
            time.sleep(0.1)
        assert rows[bob].exercises_solved == 1 and view.running and view.error is None
    finally:
        view.close()
    assert not view.running


@pytest.mark.slow
def test_the_instructor_notebook_shows_the_class(two_learners, target, lab_home, kernel_dir):
    from pathlib import Path
    from tests.helpers import execute_notebook
    path = Path(__file__).resolve().parents[1] / "instructor" / "cohort.ipynb"
    nb, _ = execute_notebook(path, target, lab_home, kernel_dir, "", "1", 120)
    out = "".join(o.get("text", "") + o.get("data", {}).get("text/html", "")
                  for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
    for ns in two_learners:
        assert ns in out
    assert "refreshing every 5 s" in out and "last read failed" not in out


def test_cohort_with_a_learners_url_says_it_needs_the_admin(cli, r, two_learners):
    (alice, url), (bob, _) = two_learners.items()
    r.set(f"{bob}:x", "1")
    for args in (["cohort"], ["cohort", "reset", bob, "--yes"]):
        run = cli(*args, env={"REDIS_URL": url})
        assert run.returncode == 2 and "needs the class Redis as an admin user" in run.stderr, run.stderr
        assert "Traceback" not in run.stderr
    assert r.get(f"{bob}:x") == b"1"
