"""Reading a stream in whole batches, as the server sends them, one batch read ahead.

The consumer's fast path (:mod:`labkit.core.aggregating`) and ground truth
(:mod:`labkit.core.audit`, :mod:`labkit.core.truth`) read partitions here:
:func:`xrange_raw` is one XRANGE with nothing decoded or wrapped, and
:class:`BatchReader` asks for batch N+1 before handing over batch N, so the
server prepares the next batch while the caller works on this one.  On a
Redis Cluster both talk to the master that serves the stream.

This is the Redis I/O layer only: what a batch means is decided by the pure
folds (:mod:`labkit.core.fastfold`) and the tally (:mod:`labkit.core.tally`).
"""

from __future__ import annotations

import gc
from contextlib import contextmanager
from typing import Callable

import redis

from ..servers import connection


def xrange_raw(r: redis.Redis, key: str, start: bytes | str, count: int) -> list:
    """XRANGE as the server sends it, ``[[id, [field, value, …]], …]`` (no dicts built, nothing hidden).
    On a cluster it asks the node that serves ``key``, rereading the layout once if a failover moved it."""
    for attempt in (1, 2):
        node = connection.node_client(r, key)
        conn = connection.pooled_connection(node)
        try:
            conn.send_command("XRANGE", key, start, "+", "COUNT", count)
            return conn.read_response(disable_decoding=True) or []
        except redis.ResponseError as exc:
            if attempt == 2 or not (connection.is_cluster(r) and connection.relayout(exc)):
                raise
            connection.refresh(r)
        except BaseException:
            conn.disconnect()
            raise
        finally:
            node.connection_pool.release(conn)
    raise AssertionError("unreachable")


@contextmanager
def paused_gc():
    """Pause Python's cyclic garbage collector inside the block (restoring it after, if it was on).

    A batch reply is hundreds of thousands of small lists; collection passes
    over them while they are built cost more than building them.  None of them
    form cycles, so nothing is lost: they are freed by reference counting.
    """
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


class BatchReader:
    """Reads stream batches over one dedicated connection, one request ahead.

    ``read(stream, after)`` returns ``(replies, entries)``: the raw entries after
    ID ``after`` (at most ``count``), and the replies to the commands
    ``before(stream)`` names, which are sent in the same pipeline just before
    the read (e.g. a completeness marker), so they describe the same moment as
    the batch.  When a batch is full the next request, for ``(stream, last ID)``,
    is sent before the batch is returned; the next ``read`` with that
    position takes its reply, any other position throws it away.

    On a Redis Cluster the connection is to the master that serves ``stream``
    (:func:`~labkit.servers.connection.node_client`), so ``before`` may name
    only keys of its slot; ``first(stream)`` runs before each request is sent
    (through the cluster client: any key) and its replies come first.  A
    redirection (a failover moved the slot) rereads the layout and is raised
    as a lost connection, which the callers resume from.

    Holds at most the batch it returned and the one in flight.
    """

    def __init__(self, r: redis.Redis, count: int = 50_000,
                 before: Callable[[str], list[tuple]] | None = None,
                 first: Callable[[str], list] | None = None):
        self.r, self.count, self.before, self.first = r, count, before, first
        self.node: redis.Redis | None = None      # the client whose pool ``conn`` came from
        self.conn = None
        self.ahead: tuple[str, bytes] | None = None    # the request in flight
        self.ahead_replies = 0
        self.ahead_first: list = []

    def _connection(self, stream: str):
        """The connection to the server of ``stream`` (on one server: always the same one)."""
        node = connection.node_client(self.r, stream)
        if node is not self.node:
            self._release()
            self.node, self.conn = node, connection.pooled_connection(node)
        return self.conn

    def _send(self, stream: str, after: bytes) -> None:
        pre = list(self.first(stream)) if self.first else []
        conn = self._connection(stream)
        cmds = list(self.before(stream)) if self.before else []
        start = b"-" if after in (b"0", b"0-0") else b"(" + after
        cmds.append(("XRANGE", stream, start, "+", "COUNT", self.count))
        conn.send_packed_command(conn.pack_commands(cmds), check_health=False)
        self.ahead, self.ahead_replies, self.ahead_first = (stream, after), len(cmds), pre

    def _receive(self) -> tuple[list, list]:
        with paused_gc():
            replies = [self.conn.read_response(disable_decoding=True) for _ in range(self.ahead_replies)]
        self.ahead = None
        return self.ahead_first + replies[:-1], replies[-1] or []

    def read(self, stream: str, after: str | bytes) -> tuple[list, list]:
        after = after.encode() if isinstance(after, str) else after
        try:
            if self.ahead is not None and self.ahead != (stream, after):
                self._receive()                 # asked for the wrong position: drop it
            if self.ahead is None:
                self._send(stream, after)
            replies, entries = self._receive()
            if len(entries) == self.count:
                self._send(stream, entries[-1][0])
        except BaseException as exc:
            if self.conn is not None:
                self.conn.disconnect()          # replies may be left unread: start afresh next time
            self.ahead = None
            if connection.is_cluster(self.r) and connection.relayout(exc):
                raise connection.moved_to_lost(self.r, exc) from None
            raise
        return replies, entries

    def _release(self) -> None:
        if self.conn is not None:
            self.node.connection_pool.release(self.conn)
            self.node, self.conn = None, None

    def close(self) -> None:
        if self.ahead is not None:
            self.conn.disconnect()
            self.ahead = None
        self._release()
