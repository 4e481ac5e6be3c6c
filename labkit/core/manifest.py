"""The partition manifest: which partitions are fully written.

The producer records each partition it writes in one hash, ``temps:manifest``
(field = partition name).  Before it (re)writes a partition the record says
``writing``; once the server has acknowledged every reading of it, the record
says ``complete`` with how many readings it holds and the ID times of the last
and the first one (so ``verify`` knows every hour, and how many readings of it, were promised).  The aggregating consumer closes a partition's final hour only when its
record says complete, and checks it read everything the record promises; a
record that outlives its partition tells "expired" apart from "never written".

Completeness is per partition, so no run of the producer can make another
partition's hours look complete.  The record format is pure and tested
without Redis; the two writers at the bottom are the thin Redis layer.
"""

from __future__ import annotations

from dataclasses import dataclass

import redis

from ..servers.replies import text
from .keys import Keys
from .partition import HOUR_MS

WRITING, COMPLETE = "writing", "complete"


@dataclass(frozen=True)
class Record:
    """One partition's record.  ``run`` names the producer run that wrote it."""

    status: str
    run: str
    count: int = 0
    last_ms: int = 0
    first_ms: int = -1      # the first reading's time (-1: not recorded, e.g. live mode)

    def promised_hours(self) -> dict[int, int]:
        """Readings promised per hour start, when the span and count describe a regular series (the
        dataset producer's: ``count`` readings evenly from ``first_ms`` to ``last_ms``); else {}."""
        if not self.complete or self.count < 1 or self.first_ms < 0 or self.last_ms < self.first_ms:
            return {}
        if self.count == 1:
            return {self.first_ms - self.first_ms % HOUR_MS: 1}
        span = self.last_ms - self.first_ms
        if span % (self.count - 1):
            return {}
        step = span // (self.count - 1)
        out, h = {}, self.first_ms - self.first_ms % HOUR_MS
        while h <= self.last_ms:
            # readings first + k*step (0 <= k < count) inside [h, h + HOUR_MS)
            lo = max(0, -(-(h - self.first_ms) // step))
            hi = min(self.count, -(-(h + HOUR_MS - self.first_ms) // step))
            if hi > lo:
                out[h] = hi - lo
            h += HOUR_MS
        return out

    @property
    def complete(self) -> bool:
        return self.status == COMPLETE

    def encode(self) -> str:
        return f"{self.status} {self.run} {self.count} {self.last_ms}" + (
            f" {self.first_ms}" if self.first_ms >= 0 else "")

    @classmethod
    def decode(cls, raw: bytes | str | None) -> "Record | None":
        """The record, or None when there is none (or it is not one labkit wrote)."""
        if raw is None:
            return None
        parts = text(raw, errors="replace").split(" ")
        if len(parts) not in (4, 5) or parts[0] not in (WRITING, COMPLETE):
            return None
        try:
            return cls(parts[0], parts[1], int(parts[2]), int(parts[3]), int(parts[4]) if len(parts) == 5 else -1)
        except ValueError:
            return None


def mark_writing(r: redis.Redis, keys: Keys, partitions: list[str], run: str) -> None:
    if partitions:
        r.hset(keys.manifest, mapping={p: Record(WRITING, run).encode() for p in partitions})


def mark_complete(r: redis.Redis, keys: Keys, partition: str, run: str, count: int, last_ms: int,
                  first_ms: int = -1) -> None:
    r.hset(keys.manifest, partition, Record(COMPLETE, run, count, last_ms, first_ms).encode())


def read(r: redis.Redis, keys: Keys) -> dict[str, Record]:
    """Every record, by partition name."""
    out = {}
    for k, v in r.hgetall(keys.manifest).items():
        rec = Record.decode(v)
        if rec:
            out[text(k)] = rec
    return out
