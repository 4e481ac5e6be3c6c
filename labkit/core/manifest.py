"""The partition manifest: which partitions are fully written.

The producer records each partition it writes in one hash, ``temps:manifest``
(field = partition name).  Before it (re)writes a partition the record says
``writing``; once the server has acknowledged every reading of it, the record
says ``complete`` with how many readings it holds and the ID time of the last
one.  The aggregating consumer closes a partition's final hour only when its
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

WRITING, COMPLETE = "writing", "complete"


@dataclass(frozen=True)
class Record:
    """One partition's record.  ``run`` names the producer run that wrote it."""

    status: str
    run: str
    count: int = 0
    last_ms: int = 0

    @property
    def complete(self) -> bool:
        return self.status == COMPLETE

    def encode(self) -> str:
        return f"{self.status} {self.run} {self.count} {self.last_ms}"

    @classmethod
    def decode(cls, raw: bytes | str | None) -> "Record | None":
        """The record, or None when there is none (or it is not one labkit wrote)."""
        if raw is None:
            return None
        parts = text(raw, errors="replace").split(" ")
        if len(parts) != 4 or parts[0] not in (WRITING, COMPLETE):
            return None
        try:
            return cls(parts[0], parts[1], int(parts[2]), int(parts[3]))
        except ValueError:
            return None


def mark_writing(r: redis.Redis, keys: Keys, partitions: list[str], run: str) -> None:
    if partitions:
        r.hset(keys.manifest, mapping={p: Record(WRITING, run).encode() for p in partitions})


def mark_complete(r: redis.Redis, keys: Keys, partition: str, run: str, count: int, last_ms: int) -> None:
    r.hset(keys.manifest, partition, Record(COMPLETE, run, count, last_ms).encode())


def read(r: redis.Redis, keys: Keys) -> dict[str, Record]:
    """Every record, by partition name."""
    out = {}
    for k, v in r.hgetall(keys.manifest).items():
        rec = Record.decode(v)
        if rec:
            out[text(k)] = rec
    return out
