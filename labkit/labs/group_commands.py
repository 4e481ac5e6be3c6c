"""The consumer-group commands the labs use, each a small function over one stream.

``XGROUP CREATE`` that tolerates an existing group, paged ``XPENDING`` and
``XAUTOCLAIM`` loops that run to the end, and ``XINFO`` replies as plain rows.
Every command names a single stream key, so each works on Redis Cluster too.
"""

from __future__ import annotations

import redis

from ..servers.replies import decoded, text
from .names import DEFAULT_GROUP

#: Entries per XPENDING / XAUTOCLAIM call.
PAGE = 100


def create_group(r: redis.Redis, stream: str, group: str = DEFAULT_GROUP, start: str = "$",
                 mkstream: bool = False) -> bool:
    """``XGROUP CREATE stream group start [MKSTREAM]``; False if the group already exists.

    ``start="0"`` delivers the whole history, ``"$"`` only entries added from
    now on; ``mkstream`` creates an empty stream if there is none (without it,
    creating a group on a missing key is an error).
    """
    try:
        return bool(r.xgroup_create(stream, group, id=start, mkstream=mkstream))
    except redis.ResponseError as exc:
        if "BUSYGROUP" in str(exc):
            return False
        raise


def copy_stream(r: redis.Redis, src: str, dst: str, limit: int | None = None, batch: int = 5000,
                after: str | None = None) -> int:
    """Copy entries (same IDs) from ``src`` to the end of ``dst``, from the start or from the first entry
    after ID ``after``; returns how many."""
    start, n = "-" if after is None else "(" + after, 0
    while limit is None or n < limit:
        want = batch if limit is None else min(batch, limit - n)
        page = r.xrange(src, start, "+", count=want)
        if not page:
            break
        p = r.pipeline(transaction=False)
        for eid, fields in page:
            p.xadd(dst, fields, id=eid)
        p.execute()
        n += len(page)
        start = "(" + text(page[-1][0])
    return n


def pending_entries(r: redis.Redis, stream: str, group: str, idle_ms: int | None = None,
                    consumer: str | None = None, page: int = PAGE) -> list[dict]:
    """Every pending entry (extended XPENDING, paged), optionally only those idle ≥ ``idle_ms``."""
    out, start = [], "-"
    while True:
        rows = r.xpending_range(stream, group, start, "+", page, consumername=consumer, idle=idle_ms)
        out += rows
        if len(rows) < page:
            return out
        start = "(" + text(rows[-1]["message_id"])


def pending_count(r: redis.Redis, stream: str, group: str) -> int:
    return int(r.xpending(stream, group)["pending"])


def autoclaim_all(r: redis.Redis, stream: str, group: str, consumer: str, min_idle_ms: int,
                  count: int = PAGE) -> tuple[list, list, int]:
    """XAUTOCLAIM until the cursor is ``0-0``.

    Returns ``(entries, deleted_ids, rounds)``: the claimed ``(id, fields)``
    (``fields`` is ``{}`` or ``None`` for an entry trimmed away but still
    pending, on servers that report it that way), the IDs the server removed
    from the pending list because their entries no longer exist (Redis 7's
    third element), and how many calls it took.  Never uses ``justid=True``:
    redis-py then returns only the IDs and drops the cursor, so a loop could not
    know where to continue.
    """
    cursor, entries, deleted, rounds = "0-0", [], [], 0
    while True:
        res = r.xautoclaim(stream, group, consumer, min_idle_ms, cursor, count=count)
        rounds += 1
        cursor = text(res[0])
        entries += res[1]
        if len(res) > 2 and res[2]:
            deleted += [text(x) for x in res[2]]
        if cursor == "0-0":
            return entries, deleted, rounds


def consumers_table(r: redis.Redis, stream: str, group: str) -> list[dict]:
    """XINFO CONSUMERS as plain rows: name, pending, idle ms (and inactive ms on 7.2+)."""
    try:
        rows = r.xinfo_consumers(stream, group)
    except redis.ResponseError:
        return []
    return [{"name": text(c["name"]), "pending": int(c["pending"]), "idle_ms": int(c["idle"]),
             "inactive_ms": int(c["inactive"]) if c.get("inactive") is not None else None} for c in rows]


def group_info(r: redis.Redis, stream: str, group: str) -> dict | None:
    try:
        for g in r.xinfo_groups(stream):
            if text(g["name"]) == group:
                return {k: decoded(v) for k, v in g.items()}
    except redis.ResponseError:
        pass
    return None
