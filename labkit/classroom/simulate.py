"""``python -m labkit cohort simulate --learners N --days D``: a class under load, before the class meets.

N learners (``learner01`` … ``learnerNN``, each its own fenced ACL user on the class Redis) run the lab's
pipeline at once, each in its own processes as a learner's kernel would: produce D days, consume them, verify.
It prints each learner's exactness and time, the total time, and the server memory each learner's data takes
(MEMORY USAGE of their keys, and the growth of ``used_memory`` over all masters divided by N), and the CPU time
the server spent (on one core: a single Redis server runs commands on one thread).  Their keys
and users are deleted before and after.  Exit 0 only if every learner is exact.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass

from ..core import keyspace
from ..core.producer import DEFAULT_START
from ..errors import LabkitError
from ..log import LogLine, TerminalSink
from ..servers import connection
from . import cohort, fence

MAX_LEARNERS = 200


@dataclass(frozen=True)
class Outcome:
    namespace: str
    exact: bool
    seconds: float
    summary: str          # verify's summary, or the error line


def names(n: int) -> list[str]:
    """``learner01`` … (pure)."""
    width = max(2, len(str(n)))
    return [f"learner{i:0{width}d}" for i in range(1, n + 1)]


def _script(days: float) -> str:
    first = "temps:" + DEFAULT_START.replace("-", "")
    return (f"{sys.executable} -m labkit produce --days {days:g} --no-progress"
            f" && {sys.executable} -m labkit consume \"$LABKIT_NAMESPACE:{first}\" --idle-exit 1"
            f" && {sys.executable} -m labkit verify")


def _masters(r) -> list:
    return [r] if not connection.is_cluster(r) else [r.get_redis_connection(n) for n in r.get_primaries()]


def used_memory(r) -> int:
    """``used_memory`` summed over the masters."""
    return sum(int(m.info("memory")["used_memory"]) for m in _masters(r))


def cpu_seconds(r) -> float:
    """The server's CPU time so far (user + system), summed over the masters."""
    return sum(float(i["used_cpu_user"]) + float(i["used_cpu_sys"]) for i in (m.info("cpu") for m in _masters(r)))


def learner_bytes(r, namespace: str) -> int:
    """MEMORY USAGE (every sample) of the learner's keys."""
    return sum(int(r.memory_usage(k, samples=0) or 0) for k in cohort.learner_names(r, namespace))


def _clean(r, learners: list[str]) -> None:
    for ns in learners:
        keyspace.delete_keys(r, cohort.learner_names(r, ns))


def run_simulation(n: int, days: float, out=None) -> int:
    out = out or TerminalSink()
    if not 1 <= n <= MAX_LEARNERS:
        raise LabkitError(f"--learners {n} is out of range", f"use 1 to {MAX_LEARNERS}")
    if not 0 < days <= 30:
        raise LabkitError(f"--days {days:g} is out of range", "use more than 0 and at most 30, e.g. --days 1")
    t = connection.target()
    r = connection.connect(t)
    learners = names(n)
    _clean(r, learners)
    before, cpu_before = used_memory(r), cpu_seconds(r)
    urls = {ns: fence.learner_url(t.url, ns, fence.ensure_learner(r, ns)) for ns in learners}
    out(LogLine("", f"simulate: {n} learners, {days:g} days each, on {connection.mask(t.url)}"))
    t0 = time.monotonic()
    procs = {}
    try:
        for ns in learners:
            procs[ns] = (time.monotonic(), subprocess.Popen(
                ["sh", "-c", _script(days)], env={**os.environ, "REDIS_URL": urls[ns], "LABKIT_NAMESPACE": ns},
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True))
        outcomes = []
        for ns, (started, p) in procs.items():
            text, _ = p.communicate()
            last = [line for line in text.splitlines() if line.startswith(("verify:", "labkit: error"))]
            summary = re.sub(r"^verify: \S+: ", "", last[-1]) if last else (text.strip().splitlines() or ["no output"])[-1]
            outcomes.append(Outcome(ns, p.returncode == 0, time.monotonic() - started, summary))
        total = time.monotonic() - t0
        per_learner = [learner_bytes(r, ns) for ns in learners]
        grown, cpu = used_memory(r) - before, cpu_seconds(r) - cpu_before
        for o, b in zip(outcomes, per_learner):
            out(LogLine("", f"{o.namespace}: {'exact' if o.exact else 'NOT EXACT'} in {o.seconds:.1f} s, "
                            f"{b / 2**20:.1f} MiB: {o.summary}"))
        exact = sum(o.exact for o in outcomes)
        mean = sum(per_learner) / n
        out(LogLine("", f"simulate: {exact} of {n} learners exact; total {total:.1f} s; memory per learner "
                        f"{mean / 2**20:.1f} MiB by MEMORY USAGE ({mean / 2**20 / days:.1f} MiB per day produced), "
                        f"used_memory grew {grown / 2**20 / n:.1f} MiB per learner; the server's CPU {cpu:.1f} s "
                        f"({cpu / total:.0%} of one core); learners took {min(o.seconds for o in outcomes):.1f}-"
                        f"{max(o.seconds for o in outcomes):.1f} s"))
        return 0 if exact == n else 1
    finally:
        for _, p in procs.values():
            if p.poll() is None:
                p.kill()
                p.wait()
        _clean(r, learners)
        for ns in learners:
            fence.remove_learner(r, ns)
        r.close()
