"""Connecting to Redis: ``REDIS_URL`` if set, else the embedded server.

Every failure to connect becomes one :class:`LabkitError` line naming the
address (password masked) and what to do about it.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import redis
from redis.backoff import ExponentialBackoff, NoBackoff
from redis.retry import Retry

from .errors import LabkitError

#: Blocking reads wait at most this long, well under the socket timeout below,
#: so a quiet stream never looks like a dead connection.
SOCKET_TIMEOUT_S = 15.0
MIN_VERSION = (7, 0)
URL_FORM = "redis://[[user]:password@]host[:port][/db] or rediss://… for TLS"


def mask(url: str) -> str:
    """The URL with its password replaced by ``***``."""
    return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", url)


@dataclass(frozen=True)
class Target:
    """Where labkit's Redis is."""

    url: str
    embedded: bool

    @property
    def address(self) -> str:
        parts = urlsplit(self.url)
        return f"{parts.hostname}:{parts.port or 6379}"

    def __str__(self) -> str:
        kind = "embedded server" if self.embedded else "REDIS_URL"
        return f"{mask(self.url)} ({kind})"


def target() -> Target:
    url = os.environ.get("REDIS_URL", "").strip()
    if url:
        return Target(url, embedded=False)
    from . import server
    return Target(server.ensure().url, embedded=True)


def _check_url(url: str) -> None:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError as exc:
        raise LabkitError(f"REDIS_URL {mask(url)!r} is malformed ({exc})", f"use {URL_FORM}") from None
    if parts.scheme not in ("redis", "rediss", "unix") or (parts.scheme != "unix" and not parts.hostname):
        raise LabkitError(f"REDIS_URL {mask(url)!r} is not a Redis URL", f"use {URL_FORM}")


def client(t: Target | None = None, **overrides) -> redis.Redis:
    """A new client (its own connection pool); not yet checked."""
    t = t or target()
    _check_url(t.url)
    kwargs = dict(socket_timeout=SOCKET_TIMEOUT_S, socket_connect_timeout=5.0,
                  socket_keepalive=True, health_check_interval=30,
                  retry=Retry(ExponentialBackoff(cap=2.0, base=0.1), 3))
    kwargs.update(overrides)
    try:
        return redis.Redis.from_url(t.url, **kwargs)
    except ValueError as exc:
        raise LabkitError(f"REDIS_URL {mask(t.url)!r} is malformed ({exc})", f"use {URL_FORM}") from None


def explain(exc: Exception, t: Target) -> LabkitError:
    """Turn a redis-py exception into a one-line error with a hint."""
    where = t.address
    msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    low = msg.lower()
    if isinstance(exc, redis.AuthenticationError) or "wrongpass" in low or "noauth" in low \
            or "invalid username-password" in low or "auth" in low and "called without" in low:
        return LabkitError(f"Redis at {where} refused the credentials ({msg})",
                           "check the user and password in REDIS_URL")
    if "ssl" in low or "tls" in low or "wrong version number" in low:
        hint = ("the server may not speak TLS: use redis:// instead of rediss://"
                if t.url.startswith("rediss") else "the server may need TLS: use rediss://")
        return LabkitError(f"TLS problem talking to Redis at {where} ({msg})", hint)
    if isinstance(exc, (redis.ConnectionError, redis.TimeoutError, ConnectionError, TimeoutError, OSError)):
        if t.url.startswith("rediss"):  # a TLS hello to a plain server just goes unanswered
            return LabkitError(f"cannot reach Redis at {where} over TLS ({msg})",
                               "if that server does not speak TLS, use redis:// instead of rediss://; "
                               "else check the host and port")
        hint = ("restart it with: python -m labkit server start" if t.embedded else
                "is the server running and the host/port in REDIS_URL right? unset REDIS_URL to use the embedded server")
        return LabkitError(f"cannot reach Redis at {where} ({msg})", hint)
    if isinstance(exc, redis.ResponseError) and low.startswith("wrongtype"):
        return LabkitError(f"a key labkit uses holds the wrong type ({msg})",
                           "another program uses labkit's key names: set LABKIT_NAMESPACE, or delete that key")
    return LabkitError(f"Redis at {where} answered an error ({msg})", "see the README's troubleshooting section")


def connect(t: Target | None = None, **overrides) -> redis.Redis:
    """A checked client: reachable, authenticated, Redis 7 command set."""
    t = t or target()
    # Probe with a short timeout and no retries, so a wrong address or a TLS
    # mismatch fails in seconds, not after every retry of a long timeout.
    probe = client(t, socket_timeout=5.0, retry=Retry(NoBackoff(), 0))
    try:
        info = probe.info("server")
    except redis.RedisError as exc:
        raise explain(exc, t) from None
    finally:
        probe.close()
    version = tuple(int(x) for x in re.findall(r"\d+", str(info.get("redis_version", "0")))[:2])
    if version < MIN_VERSION:
        raise LabkitError(f"Redis at {t.address} is version {info.get('redis_version')}; labkit needs 7.0 or newer",
                          "use the embedded server (unset REDIS_URL) or a Redis 7 server")
    return client(t, **overrides)


def pooled_connection(r: redis.Redis):
    """A connection of ``r``'s pool, for raw protocol work (release it with ``r.connection_pool.release``)."""
    try:
        return r.connection_pool.get_connection()
    except TypeError:  # redis-py before 5.3 requires a (never used) command name
        return r.connection_pool.get_connection("_")


#: How long consumers and producers keep trying to reach a server that went away before they give up.
RECONNECT_S = 60.0


def reconnect(r: redis.Redis, say, exc: Exception, seconds: float = RECONNECT_S, stop=None,
              where: str = "") -> bool:
    """Ping ``r`` with capped exponential backoff until the server answers (True), ``stop`` is set or
    ``seconds`` pass (False).  ``say(text)`` reports what happens, once when the connection is lost
    and once when it is back."""
    at = f" at {where}" if where else ""
    say(f"lost the connection to Redis{at} ({str(exc).splitlines()[0][:80]}); reconnecting for up to {seconds:g} s")
    deadline, delay = time.monotonic() + seconds, 0.05
    while not (stop is not None and stop.is_set()) and time.monotonic() < deadline:
        try:
            r.ping()
            say(f"reconnected to Redis{at}")
            return True
        except (redis.ConnectionError, redis.TimeoutError):
            (stop.wait if stop is not None else time.sleep)(delay)
            delay = min(delay * 2, 2.0)
    return False
