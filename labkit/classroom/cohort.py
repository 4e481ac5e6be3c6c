"""The instructor's view of a class: one row per learner namespace, and resetting one learner.

Everything is read from the learners' own keys on the class Redis (the instructor's admin client):
partitions, the aggregating consumer's lease, ``temps:averages``, and the learner's progress hash
(:mod:`labkit.core.progress`: exercise checks, notebooks' final checks, ``verify``, quizzes).
A learner is a namespace with an ACL user (:mod:`.fence`) or a progress hash.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import redis

from ..core import keyspace, progress
from ..core.keys import Keys
from ..core.lease import Holder
from ..errors import LabkitError
from . import fence


@dataclass(frozen=True)
class Row:
    namespace: str
    partitions: int                 # days produced
    consumer: str | None            # who holds the aggregating consumer's lease
    consumer_since: str | None
    hours_published: int            # entries ever added to temps:averages
    verified: bool | None           # the last verify: ok, failed, or never run
    verified_at: str | None
    exercises_solved: int
    exercises_total: int
    last_activity: str | None
    notebooks_passed: int = 0       # notebooks whose final checks all passed (their latest run)

    def as_json(self) -> dict:
        return asdict(self)


def _iso(ms: int | None) -> str | None:
    return None if ms is None else time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ms / 1000))


def exercises_total() -> int:
    from ..notebook.exercises import EXERCISES
    return len(EXERCISES)


def row_of(namespace: str, partitions: int, holder: Holder | None, hours: int, prog: progress.Progress,
           total: int) -> Row:
    """One learner's row from what was read (pure)."""
    last_verify = prog.entries.get(("verify", "last"))
    solved = sum(1 for e in prog.of("exercise") if e.status == "solved")
    times = [e.at_ms for e in prog.entries.values()] + ([prog.last_activity_ms] if prog.last_activity_ms else [])
    return Row(namespace, partitions,
               holder.describe() if holder else None, _iso(holder.since_ms) if holder else None,
               hours,
               None if last_verify is None else last_verify.status == "ok",
               _iso(last_verify.at_ms) if last_verify else None,
               solved, total, _iso(max(times)) if times else None,
               sum(1 for e in prog.of("notebook") if e.status == "passed"))


def read_row(r, namespace: str, total: int | None = None) -> Row:
    """One learner's row, read from the class Redis."""
    keys = keyspace.keys_for(r, Keys(namespace))
    try:
        hours = int(r.xinfo_stream(keys.averages).get("entries-added", 0))
    except redis.ResponseError:  # no such key
        hours = 0
    return row_of(namespace, len(keyspace.list_partitions(r, keys)), Holder.decode(r.get(keys.aggregating_lease)), hours,
                  progress.read(r, keys), exercises_total() if total is None else total)


def namespaces(r) -> list[str]:
    """The learners: namespaces with an ACL user or a progress hash (companion and tool namespaces excluded)."""
    suffix = ":" + Keys("x").progress.split(":", 1)[1]
    found = set(fence.learners(r))
    for name in keyspace.scan_keys(r, "*" + suffix):
        ns = name[:-len(suffix)].lstrip("{")
        if fence.is_learner_namespace(ns):
            found.add(ns)
    return sorted(found)


def read_cohort(r) -> list[Row]:
    total = exercises_total()
    return [read_row(r, ns, total) for ns in namespaces(r)]


def table(rows: list[Row]) -> str:
    """The rows as a plain-text table (pure)."""
    head = ("learner", "days", "consumer", "hours", "verify", "exercises", "notebooks", "last activity")
    body = [(row.namespace, str(row.partitions),
             f"running since {row.consumer_since[11:19]}" if row.consumer else "-",
             str(row.hours_published),
             "-" if row.verified is None else ("ok" if row.verified else "FAILED") + f" {row.verified_at[11:16]}",
             f"{row.exercises_solved}/{row.exercises_total}", str(row.notebooks_passed),
             (row.last_activity or "-").replace("T", " ").replace("Z", " UTC"))
            for row in rows]
    widths = [max(len(x) for x in col) for col in zip(head, *body)]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(line, widths)).rstrip() for line in [head, *body])


def learner_names(r, namespace: str) -> set[str]:
    """Every key of a learner: their namespace, hash-tagged keys, companion labs and scratch namespaces."""
    return {n for pattern in fence.key_patterns(namespace) for n in keyspace.scan_keys(r, pattern)}


def check_learner(r, namespace: str) -> None:
    """Refuse, in one line, a name that is not a learner of this server: a reset deletes every key under it, so
    it must be a learner's namespace (an ACL user of theirs, or their progress), never ``temps`` or another app's."""
    fence.key_patterns(namespace)  # refuses what cannot be a learner namespace, before anything is read
    if namespace not in namespaces(r):
        raise LabkitError(f"{namespace} is not a learner on this server (no Redis user {fence.USER_PREFIX}{namespace}, "
                          "no progress of theirs), so its keys are not a learner's to reset",
                          "python -m labkit cohort lists the learners")


def reset(r, namespace: str, force: bool = False) -> int:
    """Delete exactly the learner's keys (their ACL user stays).  Refuses while their consumer or producer holds
    its lease, unless ``force``.  Returns how many keys were deleted."""
    check_learner(r, namespace)
    keys = keyspace.keys_for(r, Keys(namespace))
    for lease_key, what in ((keys.aggregating_lease, "consumer"), (keys.producer_lease, "producer")):
        h = Holder.decode(r.get(lease_key))
        if h and not force:
            raise LabkitError(f"{namespace}'s {what} is running: {h.describe()}",
                              "wait until it stops, or add --force (it then fails at its next step)")
    return keyspace.delete_keys(r, learner_names(r, namespace))
