"""Where a companion lab keeps its keys: a private namespace, and the names inside it."""

from __future__ import annotations

import redis

from ..core.keys import Keys
from ..core.keyspace import delete_namespace
from ..errors import LabkitError

DEFAULT_GROUP = "workers"


def lab_keys(lab: str, base: Keys | None = None) -> Keys:
    """A private namespace for one companion lab, e.g. ``groups07`` or ``alice.groups07``.

    It is derived from ``LABKIT_NAMESPACE`` (if set) but never equal to it, so
    nothing a companion lab writes can collide with the main lab's keys, and
    :func:`delete_keys` can remove exactly what the lab created.
    """
    return (base if base is not None else Keys.from_env()).companion(lab)


def key(keys: Keys, name: str) -> str:
    """``<namespace>:groups:<name>`` (just ``groups:<name>`` without a namespace)."""
    return keys.key(f"groups:{name}")


def deadletter_key(keys: Keys) -> str:
    """The lab's dead-letter stream (records laid out as in :mod:`labkit.core.deadletters`)."""
    return key(keys, "deadletter")


def delete_keys(r: redis.Redis, keys: Keys) -> int:
    """Delete every key of ``keys``' namespace (on every master of a cluster); refuses the empty namespace."""
    if not keys.namespace:
        raise LabkitError("refusing to delete keys without a namespace",
                          "use lab_keys('...') so only the lab's own keys are removed")
    return delete_namespace(r, keys)
