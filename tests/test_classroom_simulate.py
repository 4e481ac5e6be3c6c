"""``python -m labkit cohort simulate``: N learners at once, each as their own fenced user, all exact."""

from __future__ import annotations

import re

import pytest

from labkit.classroom import fence, simulate

pytestmark = pytest.mark.classroom


def test_learner_names():
    assert simulate.names(3) == ["learner01", "learner02", "learner03"]
    assert simulate.names(100)[-1] == "learner100" and simulate.names(100)[0] == "learner001"


@pytest.mark.slow
def test_three_learners_at_once_are_all_exact_and_leave_nothing(cli, r):
    run = cli("cohort", "simulate", "--learners", "3", "--days", "0.25", timeout=300)
    assert run.returncode == 0, run.stderr
    lines = (run.stdout + run.stderr).splitlines()
    for ns in simulate.names(3):
        assert any(re.match(rf"{ns}: exact in [\d.]+ s, [\d.]+ MiB: 6 hours compared: 6 matched, 0 mismatched", l)
                   for l in lines), lines
    summary = lines[-1]
    assert summary.startswith("simulate: 3 of 3 learners exact; total ") and "MiB by MEMORY USAGE" in summary
    assert not any(u.startswith("learner") for u in fence.learners(r))
    assert not [k for k in r.scan_iter(match="learner0*", count=1000)]


def test_bad_sizes_are_one_line(cli):
    for args in (["--learners", "0"], ["--days", "0"], ["--learners", "1000"]):
        run = cli("cohort", "simulate", *args)
        assert run.returncode == 2 and "out of range" in run.stderr and "Traceback" not in run.stderr
