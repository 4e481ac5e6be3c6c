"""Operations over the whole key space, on one server or on every master of a cluster.

On a single server SCAN walks all keys.  On a Redis Cluster each master holds
only its own hash slots, and SCAN on one node sees only that node's keys, so
these helpers scan every master.  Deleting many keys at once (UNLINK a b c)
is refused on a cluster unless they share a hash slot (CROSSSLOT), so keys are
grouped by slot first.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from typing import Iterable

import redis
from redis.crc import key_slot

from ..servers.connection import is_cluster
from .keys import Keys
from ..servers.replies import text

#: Keys per UNLINK: large enough for few round trips, small enough not to block the server.
CHUNK = 500


def keys_for(r, keys: Keys | None = None) -> Keys:
    """``keys`` (by default from ``LABKIT_NAMESPACE``) named for the server ``r`` talks to: hash-tagged on a cluster."""
    keys = keys or Keys.from_env()
    return dataclasses.replace(keys, cluster=is_cluster(r))


def scan_keys(r, match: str, _type: str | None = None) -> list[str]:
    """Every key matching ``match`` (SCAN, never KEYS), on every master of a cluster."""
    if not is_cluster(r):
        return list({text(k) for k in r.scan_iter(match=match, count=1000, _type=_type)})
    for attempt in (1, 2):
        try:
            found: set[str] = set()
            for node in r.get_primaries():
                node_client = r.get_redis_connection(node)
                found.update(text(k) for k in node_client.scan_iter(match=match, count=1000, _type=_type))
            return list(found)
        except (redis.ConnectionError, redis.TimeoutError):
            if attempt == 2:
                raise
            # A master may have failed over since the client last read the layout: read it again.
            r.nodes_manager.initialize()
    raise AssertionError("unreachable")


def list_partitions(r, keys: Keys) -> list[str]:
    """The partitions that exist, oldest first."""
    return sorted(scan_keys(r, keys.partition_pattern, _type="stream"))


def by_slot(names: Iterable[str | bytes]) -> dict[int, list]:
    """``names`` grouped by cluster hash slot (what one multi-key command may touch)."""
    groups: dict[int, list] = defaultdict(list)
    for n in names:
        groups[key_slot(n.encode() if isinstance(n, str) else n)].append(n)
    return dict(groups)


def delete_keys(r, names: Iterable[str | bytes]) -> int:
    """UNLINK ``names`` (grouped by slot on a cluster).  Returns how many existed."""
    names = list(names)
    if not is_cluster(r):
        return sum(r.unlink(*names[i:i + CHUNK]) for i in range(0, len(names), CHUNK))
    p = r.pipeline(transaction=False)  # sends each node its commands in one round trip
    for group in by_slot(names).values():
        for i in range(0, len(group), CHUNK):
            p.execute_command("UNLINK", *group[i:i + CHUNK])
    return sum(p.execute()) if len(p) else 0


def claim_scratch(r, keys: Keys, tool: str) -> None:
    """Mark ``keys``' namespace as ``tool``'s scratch space (``<ns>:labkit:<tool>``), or refuse with a
    :class:`LabkitError` if it holds keys the tool did not write.  Only an empty namespace, or one an earlier
    run of the tool marked (and was stopped before cleaning up), is used: a tool that deletes its namespace
    when done must never delete a learner's keys who happened to choose that name."""
    from ..errors import LabkitError
    marker = keys.key(f"labkit:{tool}")
    found = sorted({n for pattern in keys.namespace_patterns for n in scan_keys(r, pattern)})
    if found and marker not in found:
        raise LabkitError(f"namespace {keys.namespace} holds {len(found)} key(s) {tool} did not write "
                          f"(e.g. {found[0]}); {tool} deletes everything in its namespace, so it will not run there",
                          f"set LABKIT_NAMESPACE to another name ({tool} uses <namespace>-{tool}), or delete "
                          "those keys yourself")
    r.set(marker, f"made by python -m labkit {tool}; deleted with the namespace when it ends")


def delete_namespace(r, keys: Keys) -> int:
    """Delete every key under ``keys``' namespace (SCAN + UNLINK; never FLUSHDB).  Returns how many."""
    if not keys.namespace:
        raise ValueError("refusing to delete the un-namespaced key space")
    names = {n for pattern in keys.namespace_patterns for n in scan_keys(r, pattern)}
    return delete_keys(r, names)
