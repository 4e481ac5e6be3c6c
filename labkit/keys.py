"""The Redis keys labkit owns, optionally under a namespace.

With ``LABKIT_NAMESPACE`` unset the course's own key names are used.  With
``LABKIT_NAMESPACE=alice`` every key is prefixed ``alice:`` so several learners
can share one server.  Resets delete exactly these keys, never anything else.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from .errors import LabkitError

_NAMESPACE = re.compile(r"[A-Za-z0-9_.-]{1,64}")


@dataclass(frozen=True)
class Keys:
    namespace: str = ""

    def __post_init__(self):
        if self.namespace and not _NAMESPACE.fullmatch(self.namespace):
            raise LabkitError(f"namespace {self.namespace!r} is not allowed",
                              "use 1-64 letters, digits, '_', '.' or '-'")

    @classmethod
    def from_env(cls) -> "Keys":
        return cls(os.environ.get("LABKIT_NAMESPACE", "").strip())

    def key(self, name: str) -> str:
        """``name`` under this namespace (unchanged when there is none)."""
        return f"{self.namespace}:{name}" if self.namespace else name

    @property
    def partition_prefix(self) -> str:
        """Partitions are ``<prefix>YYYYMMDD``."""
        return self.key("temps:")

    @property
    def averages(self) -> str:
        return self.key("temps:averages")

    @property
    def watermark(self) -> str:
        """Epoch ms below which the producer has written every reading."""
        return self.key("temps:watermark")

    @property
    def deadletter(self) -> str:
        return self.key("temps:deadletter")

    @property
    def aggregating_state(self) -> str:
        return self.key("aggregating_consumer_state")

    @property
    def averages_state(self) -> str:
        return self.key("averages_consumer_state")

    @property
    def partition_pattern(self) -> str:
        """A SCAN pattern matching exactly the partition keys."""
        return self.partition_prefix + "[0-9]" * 8
