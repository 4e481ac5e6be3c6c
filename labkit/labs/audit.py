"""Reading dead letters back, and checking that a group lost nothing.

The invariant the labs check under chaos: every entry of the stream was
acknowledged after successful work or dead-lettered, and none is left pending.
"""

from __future__ import annotations

import redis

from ..servers.replies import text, text_fields
from .group_commands import pending_count


def deadletters(r: redis.Redis, deadletter: str, source: str | None = None) -> list[dict]:
    """The dead-letter stream's records (optionally only those from ``source``), oldest first."""
    out = []
    for eid, f in r.xrange(deadletter):
        row = text_fields(f)
        if source is None or row.get("source") == source:
            row["deadletter_id"] = text(eid)
            out.append(row)
    return out


def audit(r: redis.Redis, stream: str, group: str, deadletter: str, done_ids: set[str]) -> dict:
    """Every entry of ``stream`` must be acknowledged after work or dead-lettered, and none pending.

    Returns the counts; ``ok`` is True only if ``lost == 0 and pending == 0``.
    """
    ids, start = [], "-"
    while True:
        page = r.xrange(stream, start, "+", count=5000)
        ids += [text(e[0]) for e in page]
        if len(page) < 5000:
            break
        start = "(" + ids[-1]
    dl = {row["id"] for row in deadletters(r, deadletter, stream)}
    entries = set(ids)
    lost = entries - done_ids - dl
    pending = pending_count(r, stream, group)
    return {"entries": len(entries), "acked_after_work": len(entries & done_ids),
            "deadlettered": len(entries & dl), "both": len(entries & done_ids & dl),
            "pending": pending, "lost": len(lost), "lost_ids": sorted(lost)[:10],
            "ok": not lost and pending == 0}
