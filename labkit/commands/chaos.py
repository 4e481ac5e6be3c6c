"""``python -m labkit chaos``: kill -9 the ``consume`` process again and again, then prove nothing was lost.

One full run of the dataset is interrupted ``kills`` times at moments spread
uniformly over its progress (and, every third kill, right after a publish),
each time restarting ``consume`` *without* a partition so it resumes from the
state it saved.  At the end ``temps:averages`` (uncapped) must hold every hour
exactly once, each equal to ground truth, and the averages consumer's state
must point at the last entry.  Runs in its own namespace (``<LABKIT_NAMESPACE>-chaos``, or ``labkit-chaos``),
and only in one it made: it marks the namespace (:func:`~labkit.core.keyspace.claim_scratch`) before writing, and refuses one that holds
keys it did not write, so a learner who chose that name never loses their keys.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time

from ..core import producer
from ..core.context import Context
from ..core.keys import Keys
from ..core.keyspace import claim_scratch
from ..core.partition import id_ms
from ..core.runner import delete_namespace
from ..core.truth import check
from ..log import LogLine, TerminalSink


def _consume(env: dict, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "labkit", "consume", *args, "--averages-maxlen", "0"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def run_chaos(days: float = 10, kills: int = 30, seed: int | None = None, namespace: str | None = None,
              out=None) -> dict:
    out = out or TerminalSink()
    seed = int(time.time()) if seed is None else seed
    rnd = random.Random(seed)
    ctx = Context.open(Keys(namespace) if namespace else Keys.for_tool("chaos"))
    r, keys = ctx.r, ctx.keys
    env = dict(os.environ, LABKIT_NAMESPACE=keys.namespace)
    if ctx.target.embedded:
        env.pop("REDIS_URL", None)
    else:
        env["REDIS_URL"] = ctx.target.url
    t0 = time.monotonic()
    claim_scratch(r, keys, "chaos")     # before the try: a namespace that is not ours is never deleted
    try:
        data = producer.Dataset(producer.parse_start(producer.DEFAULT_START), days)
        producer.produce(r, data, keys)
        span = data.end_ms - data.start_ms
        targets = sorted(rnd.uniform(0, span) for _ in range(kills))
        first = data.partitions(keys)[0]
        done, after_publish, early = 0, 0, 0
        for i, target in enumerate(targets):
            p = _consume(env, *([first] if i == 0 else []))
            mode = "publish" if i % 3 == 2 else "progress"
            published = r.xlen(keys.averages)
            deadline = time.monotonic() + 60
            hours = len(data.partitions(keys)) * 24
            while p.poll() is None and time.monotonic() < deadline:
                now_published = r.xlen(keys.averages)
                if mode == "publish" and now_published > published:
                    break
                last = r.hget(keys.aggregating_state, "last_message_id")
                if mode == "progress" and last and last != b"0" and id_ms(last) - data.start_ms >= target:
                    break
                if now_published >= hours - 1:
                    early += 1   # the run got there first: kill anyway
                    break
            p.send_signal(signal.SIGKILL)
            p.wait(10)
            done += 1
            after_publish += mode == "publish"
        before_final = r.xlen(keys.averages)
        final = subprocess.run([sys.executable, "-m", "labkit", "consume", "--averages-maxlen", "0",
                                "--idle-exit", "1"], env=env, capture_output=True, text=True, timeout=600)
        rep, averages, truth = check(r, keys)
        state_last = r.hget(keys.averages_state, "last_message_id")
        points_at_last = bool(len(averages)) and state_last == averages["id"].iloc[-1].encode()
        result = {"seed": seed, "kills": done, "right_after_publish": after_publish, "hours": len(averages),
                  "expected": len(truth), "matched": rep.matched, "mismatched": len(rep.mismatched),
                  "missing": len(rep.missing), "duplicates": rep.duplicates, "left_for_final_run": len(truth) - before_final,
                  "kills_after_last_hour": early,
                  "state_points_at_last": points_at_last, "final_exit": final.returncode,
                  "seconds": round(time.monotonic() - t0, 1)}
        result["first_mismatches"] = rep.mismatched[:5]
        result["ok"] = (final.returncode == 0 and rep.ok and rep.matched == len(truth) == len(averages)
                        and points_at_last)
        out(LogLine("chaos", f"{done} kill -9s ({after_publish} right after a publish), seed {seed}: "
                             f"{rep.summary()}; averages state at last entry: {points_at_last}; "
                             f"{result['seconds']} s" + ("" if result["ok"] else " -- FAILED")))
        if final.returncode:
            out(LogLine("chaos", f"final consume failed: {final.stderr.strip()[-300:]}"))
        return result
    finally:
        delete_namespace(r, keys)
