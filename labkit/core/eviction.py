"""Refuse a server that evicts keys: queues need ``maxmemory-policy noeviction``.

Under ``allkeys-lru`` or ``volatile-lru`` (the default of some hosted Redis
offerings) a full server deletes keys to make room, and partitions, which
carry a TTL, go first: readings would vanish without a word (Sidekiq and
BullMQ warn their users the same way).  Every labkit command reads the policy
when it starts (:func:`check`) and stops with one line unless the learner
explicitly goes on anyway (``--allow-eviction``, or ``LABKIT_ALLOW_EVICTION=1``
in a notebook), with a warning.  :func:`evicting` is pure.
"""

from __future__ import annotations

import os

import redis

from ..errors import LabkitError
from ..log import LogLine, Sink, null_sink
from ..servers import connection

ENV = "LABKIT_ALLOW_EVICTION"


def evicting(policy: str | None) -> bool:
    """Whether a ``maxmemory-policy`` lets the server delete keys on its own (None: unknown, so no)."""
    return policy is not None and policy.strip().lower() != "noeviction"


def allowed() -> bool:
    """``LABKIT_ALLOW_EVICTION=1`` (set by ``--allow-eviction``): go on under an evicting policy, with a warning."""
    return os.environ.get(ENV, "").strip() == "1"


def policy(r: redis.Redis) -> str | None:
    """The server's ``maxmemory-policy`` (on a cluster, the first evicting one of its masters), or None when
    neither ``CONFIG GET`` (refused to an ACL user, or on hosted Redis) nor ``INFO memory`` tells."""
    nodes = [r.get_redis_connection(n) for n in r.get_primaries()] if connection.is_cluster(r) else [r]
    found = None
    for node in nodes:
        got = _one(node)
        if evicting(got):
            return got
        found = found or got
    return found


def _one(r: redis.Redis) -> str | None:
    try:
        got = r.config_get("maxmemory-policy")
        value = got.get("maxmemory-policy", got.get(b"maxmemory-policy"))
        if value is not None:
            return value.decode() if isinstance(value, bytes) else str(value)
    except redis.ResponseError:
        pass            # CONFIG refused: INFO memory says it too
    try:
        value = r.info("memory").get("maxmemory_policy")
        return None if value is None else str(value)
    except redis.ResponseError:
        return None


def check(r: redis.Redis, sink: Sink = null_sink, source: str = "") -> str | None:
    """Read the policy; :class:`LabkitError` if it evicts (unless :func:`allowed`: then a warning).
    Returns the policy (None when it cannot be read: said in one line, and labkit goes on)."""
    got = policy(r)
    if got is None:
        sink(LogLine(source, "warning: could not read maxmemory-policy (CONFIG GET and INFO memory were "
                             "refused); if the server evicts keys, readings can vanish"))
    elif evicting(got):
        if not allowed():
            raise LabkitError(f"the server's maxmemory-policy is {got}: when memory runs short it deletes "
                              "keys, partitions first, and readings vanish",
                              "set it to noeviction (CONFIG SET maxmemory-policy noeviction), or go on anyway "
                              f"with --allow-eviction ({ENV}=1 in a notebook)")
        sink(LogLine(source, f"warning: maxmemory-policy is {got} (allowed by {ENV}): if memory runs short, "
                             "readings can vanish; the consumer and verify will name what was lost"))
    return got
