"""A learner's progress, kept in their own namespace so an instructor can see who is where.

One hash per namespace, ``<namespace>:labkit:progress`` (:attr:`Keys.progress`).  Each field is
``<kind>:<name>`` (``exercise:partition_of``, ``notebook:04-running-the-consumers``, ``verify:last``,
``quiz:quiz-1``) and its value a small JSON object: ``{"status": …, "at_ms": …, …detail}``.  The field
``last_activity`` holds the time of the newest record.

Recording is best effort by design: a learner's notebook must never stop because the progress write was
refused (a read-only replica, a server that went away).  :func:`record` says whether it was kept.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field

import redis
from redis.exceptions import RedisClusterException

from ..servers.replies import text
from .keys import Keys

KINDS = ("exercise", "notebook", "verify", "quiz")
LAST_ACTIVITY = "last_activity"


@dataclass(frozen=True)
class Entry:
    kind: str
    name: str
    status: str                  # exercise: solved/wrong/unsolved; notebook: passed/failed; verify: ok/failed; quiz: a score
    at_ms: int                   # when it was recorded (UTC, ms)
    detail: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Progress:
    entries: dict[tuple[str, str], Entry]
    last_activity_ms: int | None

    def of(self, kind: str) -> list[Entry]:
        return [e for (k, _), e in sorted(self.entries.items()) if k == kind]


def encode(kind: str, name: str, status: str, at_ms: int, **detail) -> tuple[str, str]:
    """The hash field and value of one record (pure)."""
    if kind not in KINDS:
        raise ValueError(f"progress kind {kind!r} is not one of {KINDS}")
    return f"{kind}:{name}", json.dumps({"status": status, "at_ms": at_ms, **detail}, sort_keys=True)


def decode(fields: dict) -> Progress:
    """A :class:`Progress` from HGETALL's reply (bytes or str); unreadable fields are skipped (pure)."""
    entries: dict[tuple[str, str], Entry] = {}
    last = None
    for f, v in fields.items():
        f, v = text(f), text(v, errors="replace")
        if f == LAST_ACTIVITY:
            last = int(v) if v.isdigit() else None
            continue
        kind, _, name = f.partition(":")
        try:
            data = json.loads(v)
            status, at_ms = str(data.pop("status")), int(data.pop("at_ms"))
        except (ValueError, KeyError, TypeError, AttributeError):
            continue
        if kind in KINDS and name:
            entries[(kind, name)] = Entry(kind, name, status, at_ms, data)
    return Progress(entries, last)


def record(r, keys: Keys, kind: str, name: str, status: str, **detail) -> bool:
    """Record one outcome (and the learner's last activity); False if the server would not keep it."""
    now = int(time.time() * 1000)
    f, v = encode(kind, name, status, now, **detail)
    try:
        r.hset(keys.progress, mapping={f: v, LAST_ACTIVITY: str(now)})
    except (redis.RedisError, RedisClusterException):   # the latter is not a RedisError (a closed cluster client)
        return False
    return True


def read(r, keys: Keys) -> Progress:
    return decode(r.hgetall(keys.progress))


# ------------------------------------------------------------ the kernel's learner

_attached: tuple | None = None     # (client, keys) of the learner this kernel works for


def attach(r, keys: Keys | None) -> None:
    """Record this kernel's progress in ``keys``' namespace (the notebooks' set-up call does it); None detaches."""
    global _attached
    _attached = (r, keys) if r is not None else None


def note(kind: str, name: str, status: str, **detail) -> bool:
    """:func:`record` for the attached learner; False (and nothing written) when no notebook set-up ran."""
    if _attached is None:
        return False
    return record(*_attached, kind, name, status, **detail)
