"""Chaos: kill -9 the consume process at ≥ 10 random moments during a 2-day run (CI size)."""

import os

from labkit.commands.chaos import run_chaos
from labkit.log import ListSink
from tests.conftest import ROOT


def test_chaos_kill_9_loses_nothing_and_repeats_nothing(target, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    if not target.embedded:
        monkeypatch.setenv("REDIS_URL", target.url)
    seed = int(os.environ.get("LABKIT_TEST_SEED", "0")) or None
    sink = ListSink()
    res = run_chaos(days=2, kills=10, seed=seed, namespace=f"chaos{os.getpid()}", out=sink)
    print(sink.texts())
    assert res["kills"] >= 10
    assert res["kills_after_last_hour"] < res["kills"] // 2      # most kills interrupted real work
    assert res["ok"], res
    assert res["hours"] == res["expected"] == res["matched"] == 48 and res["duplicates"] == 0
