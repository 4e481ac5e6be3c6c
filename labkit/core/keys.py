"""The Redis keys labkit owns, optionally under a namespace.

With ``LABKIT_NAMESPACE`` unset the course's own key names are used.  With
``LABKIT_NAMESPACE=alice`` every key is prefixed ``alice:`` so several learners
can share one server.  Resets delete exactly these keys, never anything else.

**On a Redis Cluster** (``Keys(cluster=True)``) partitions and ``temps:averages``
keep their course names, and each lands in the hash slot its name gives.  The
keys that must change in one MULTI/EXEC with ``temps:averages`` (the aggregating
consumer's state and lease, and the dead letters) get a hash tag, the part in
``{…}``, that puts them in ``temps:averages``' slot: ``{temps:averages}aggregating_consumer_state``.
A transaction can only span keys of one slot, on one server.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from ..errors import LabkitError

_NAMESPACE = re.compile(r"[A-Za-z0-9_.-]{1,64}")


@dataclass(frozen=True)
class Keys:
    namespace: str = ""
    cluster: bool = False

    def __post_init__(self):
        if self.namespace and not _NAMESPACE.fullmatch(self.namespace):
            raise LabkitError(f"namespace {self.namespace!r} is not allowed",
                              "use 1-64 letters, digits, '_', '.' or '-'")

    @classmethod
    def from_env(cls) -> "Keys":
        raw = os.environ.get("LABKIT_NAMESPACE", "")
        if raw and not raw.strip():
            raise LabkitError("LABKIT_NAMESPACE is set but blank",
                              "unset it to use the course's key names, or set e.g. LABKIT_NAMESPACE=alice")
        return cls(raw.strip())

    @classmethod
    def for_tool(cls, tool: str) -> "Keys":
        """A scratch namespace for a tool that deletes what it writes (``chaos``, ``soak``, ``bench``):
        ``<LABKIT_NAMESPACE>-<tool>``, or ``labkit-<tool>`` without one, so two learners sharing a
        server with their own namespaces never collide."""
        return cls(f"{cls.from_env().namespace or 'labkit'}-{tool}")

    def companion(self, lab: str) -> "Keys":
        """A companion lab's private namespace under this one: ``alice.groups07``, or ``groups07`` without a
        namespace; never equal to this one, so a companion lab cannot touch the main lab's keys."""
        return Keys(f"{self.namespace}.{lab}" if self.namespace else lab)

    def key(self, name: str) -> str:
        """``name`` under this namespace (unchanged when there is none)."""
        return f"{self.namespace}:{name}" if self.namespace else name

    def with_key(self, anchor: str, name: str) -> str:
        """``name`` for a key committed in one MULTI/EXEC with the key ``anchor``: on a cluster hash-tagged into
        ``anchor``'s slot (``{anchor}name``), on one server just ``name`` in this namespace."""
        return f"{{{anchor}}}{name}" if self.cluster else self.key(name)

    def with_averages(self, name: str) -> str:
        """``name`` for a key committed together with ``temps:averages``: in its hash slot on a cluster."""
        return self.with_key(self.averages, name)

    @property
    def partition_prefix(self) -> str:
        """Partitions are ``<prefix>YYYYMMDD``."""
        return self.key("temps:")

    @property
    def averages(self) -> str:
        return self.key("temps:averages")

    @property
    def manifest(self) -> str:
        """Which partitions are fully written (see :mod:`labkit.core.manifest`)."""
        return self.key("temps:manifest")

    @property
    def producer_lease(self) -> str:
        """Held while a producer writes (see :mod:`labkit.core.lease`)."""
        return self.key("temps:producer")

    @property
    def deadletter(self) -> str:
        return self.with_averages("temps:deadletter")

    @property
    def aggregating_state(self) -> str:
        return self.with_averages("aggregating_consumer_state")

    @property
    def aggregating_lease(self) -> str:
        """Held by the one aggregating consumer allowed to run in this namespace (see :mod:`labkit.core.lease`)."""
        return self.with_averages("aggregating_consumer_lease")

    @property
    def averages_state(self) -> str:
        return self.key("averages_consumer_state")

    @property
    def progress(self) -> str:
        """The learner's progress: exercises, notebook checks, verify, quizzes (see :mod:`labkit.core.progress`)."""
        return self.key("labkit:progress")

    @property
    def namespace_patterns(self) -> list[str]:
        """SCAN patterns matching every key of this namespace, hash-tagged ones included."""
        if not self.namespace:
            raise ValueError("the un-namespaced key space has no pattern of its own")
        return [f"{self.namespace}:*", f"{{{self.namespace}:*"]

    @property
    def partition_pattern(self) -> str:
        """A SCAN pattern matching exactly the partition keys."""
        return self.partition_prefix + "[0-9]" * 8
