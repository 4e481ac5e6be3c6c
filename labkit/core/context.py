"""Where and what: the server labkit talks to and the key names it uses there, found once.

Every entry point (a CLI command, ``demo``, ``chaos``, ``soak``, ``bench``, a
notebook's set-up) makes one :class:`Context` and hands it down; the core takes
its client and key names and never asks again which server or which names::

    ctx = Context.open()                   # REDIS_URL or the embedded server; LABKIT_NAMESPACE
    producer.produce(ctx.r, data, ctx.keys)
    handle = start_consumers("temps:20250101", context=ctx)

The key names depend on the server: on a Redis Cluster the keys committed with
``temps:averages`` are hash-tagged into its slot (see :mod:`labkit.core.keys`), so
they are named once the server is known, here.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import redis
from redis.cluster import RedisCluster

from ..servers import connection
from .keys import Keys
from .keyspace import keys_for


@dataclass(frozen=True)
class Context:
    """The server (``target``), a checked client of it (``r``) and the key names for it (``keys``)."""

    target: connection.Target
    r: redis.Redis | RedisCluster
    keys: Keys

    @classmethod
    def open(cls, keys: Keys | None = None, target: connection.Target | None = None) -> "Context":
        """Connect to ``target`` (default: ``REDIS_URL`` or the embedded server) and name ``keys``
        (default: ``LABKIT_NAMESPACE``'s) for it."""
        target = target or connection.target()
        return cls.of(target, connection.connect(target), keys)

    @classmethod
    def of(cls, target: connection.Target, r, keys: Keys | None = None) -> "Context":
        """The context of a client already connected to ``target``."""
        return cls(target, r, keys_for(r, keys))

    @property
    def namespace(self) -> str:
        return self.keys.namespace

    @property
    def cluster(self) -> bool:
        """Whether the server is a Redis Cluster."""
        return self.keys.cluster

    def using(self, keys: Keys) -> "Context":
        """The same server and client, other key names (e.g. a tool's scratch namespace)."""
        return dataclasses.replace(self, keys=keys_for(self.r, keys))

    def connect(self, **overrides) -> redis.Redis | RedisCluster:
        """Another checked client of the same server, e.g. for a thread that blocks on its own connection."""
        return connection.connect(self.target, **overrides)

    def explain(self, exc: Exception):
        """``exc`` as one line naming this server (see :func:`labkit.servers.connection.explain`)."""
        return connection.explain(exc, self.target)

    def close(self) -> None:
        self.r.close()

    def __enter__(self) -> "Context":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
