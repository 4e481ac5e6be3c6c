"""Leases: at most one aggregating consumer, and one producer, per namespace.

A lease is a Redis string set with ``SET key value NX PX ttl``: whoever sets
it holds it until it deletes it or stops renewing it.  The value says who
holds it (host, pid, what, since when) and carries a random token, so only
the holder can renew or release it (compare-and-set scripts below).  A holder
that is killed stops renewing, and its lease expires within ``ttl`` — or at
once, when the holder ran on this machine and its process (or, inside this
process, its thread) is gone.

The aggregating consumer also checks its token inside every commit (see
:mod:`labkit.core.aggregating`), so a consumer that lost its lease can never write.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import sys
import threading
import time
from dataclasses import asdict, dataclass, field

import redis

from ..errors import LabkitError

TTL_MS = 10_000
#: Tokens of the leases held by live threads of this process (a simulated crash drops its token).
_LIVE: set[str] = set()
_LIVE_LOCK = threading.Lock()


@dataclass(frozen=True)
class Holder:
    """Who holds a lease.  ``first``/``last``: the partitions a producer is writing (``last`` None: open-ended)."""

    what: str
    token: str = field(default_factory=lambda: secrets.token_hex(8))
    host: str = field(default_factory=socket.gethostname)
    pid: int = field(default_factory=os.getpid)
    since_ms: int = field(default_factory=lambda: int(time.time() * 1000))
    first: str | None = None
    last: str | None = None

    @classmethod
    def here(cls, role: str, command: str, **where) -> "Holder":
        """This process as a holder: ``a notebook kernel's <role>`` in a kernel, else ``python -m labkit <command>``."""
        return cls(what=f"a notebook kernel's {role}" if "ipykernel" in sys.modules else f"python -m labkit {command}",
                   **where)

    def encode(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def decode(cls, raw: bytes | str | None) -> "Holder | None":
        if raw is None:
            return None
        try:
            d = json.loads(raw)
            return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})
        except (ValueError, TypeError, KeyError):
            return cls(what=f"an unknown holder ({str(raw)[:40]!r})", token="", host="?", pid=0)

    def describe(self) -> str:
        since = time.strftime("%H:%M:%S UTC", time.gmtime(self.since_ms / 1000))
        return f"{self.what} (pid {self.pid} on {self.host}, since {since})"

    def covers(self, partition: str) -> bool:
        """Whether this producer may still write ``partition`` (names compare in date order)."""
        return (self.first is None or self.first <= partition) and (self.last is None or partition <= self.last)

    def is_stale_here(self) -> bool:
        """Held by a process or thread on this machine that no longer runs."""
        if self.host != socket.gethostname() or not self.pid:
            return False
        if self.pid == os.getpid():
            with _LIVE_LOCK:
                return self.token not in _LIVE
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        return False


# KEYS[1] = lease; ARGV = token, ttl ms.  1 if renewed, 0 if the lease is not ours.
_RENEW = """
if redis.call('GET', KEYS[1]) == false then return 0 end
local ok, h = pcall(cjson.decode, redis.call('GET', KEYS[1]))
if ok and type(h) == 'table' and h['token'] == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1
end
return 0
"""
# KEYS[1] = lease; ARGV = token.  Deletes it only if it is ours.
_RELEASE = """
local v = redis.call('GET', KEYS[1])
if v == false then return 0 end
local ok, h = pcall(cjson.decode, v)
if ok and type(h) == 'table' and h['token'] == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class Lease:
    """One lease on ``key``.  ``acquire()``, then ``renew()`` more often than ``ttl_ms``, then ``release()``."""

    def __init__(self, r: redis.Redis, key: str, holder: Holder, ttl_ms: int = TTL_MS):
        self.r, self.key, self.holder, self.ttl_ms = r, key, holder, ttl_ms
        self._renew = r.register_script(_RENEW)
        self._release = r.register_script(_RELEASE)
        self.renewed_at = 0.0

    @property
    def token(self) -> str:
        return self.holder.token

    def acquire(self, busy_hint: str, wait_s: float | None = None) -> "Lease":
        """Take the lease, or raise a :class:`LabkitError` naming the holder.

        A holder on this machine whose process or thread is gone is replaced at
        once; one elsewhere is given up to ``wait_s`` (default: the TTL) to
        renew before its lease is taken to be alive.
        """
        wait_s = self.ttl_ms / 1000 + 0.5 if wait_s is None else wait_s
        deadline = time.monotonic() + wait_s
        while True:
            if self.r.set(self.key, self.holder.encode(), nx=True, px=self.ttl_ms):
                break
            raw = self.r.get(self.key)
            held = Holder.decode(raw)
            if held is None:
                continue                       # expired between SET and GET: try again
            if held.is_stale_here():
                # compare-and-delete on the exact value we saw, then retry SET NX
                with self.r.pipeline(transaction=True) as p:
                    try:
                        p.watch(self.key)
                        if p.get(self.key) == raw:
                            p.multi()
                            p.delete(self.key)
                            p.execute()
                    except redis.WatchError:
                        pass
                continue
            if time.monotonic() >= deadline or held.host == socket.gethostname():
                raise LabkitError(f"{self.key} is held by {held.describe()}", busy_hint)
            time.sleep(0.2)
        with _LIVE_LOCK:
            _LIVE.add(self.token)
        self.renewed_at = time.monotonic()
        return self

    def renew(self) -> bool:
        """Extend the lease; False if it is no longer ours."""
        ok = bool(self._renew(keys=[self.key], args=[self.token, self.ttl_ms]))
        if ok:
            self.renewed_at = time.monotonic()
        return ok

    def due(self) -> bool:
        """Time to renew (a quarter of the TTL has passed)."""
        return time.monotonic() - self.renewed_at > self.ttl_ms / 4000

    def forget(self) -> None:
        """This process no longer runs the holder (a simulated crash): the lease may be taken over."""
        with _LIVE_LOCK:
            _LIVE.discard(self.token)

    def release(self) -> None:
        self.forget()
        try:
            self._release(keys=[self.key], args=[self.token])
        except redis.RedisError:
            pass  # it expires by itself within the TTL
