"""Connecting to Redis: ``REDIS_URL`` if set, else the embedded server.

Every failure to connect becomes one :class:`LabkitError` line naming the
address (password masked) and what to do about it.

A Redis Cluster is detected when connecting (INFO says ``cluster_enabled:1``)
and then labkit talks to it through redis-py's :class:`~redis.cluster.RedisCluster`,
which sends each command to the master that owns its key's hash slot.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

import redis
from redis.backoff import ExponentialBackoff, NoBackoff
from redis.cluster import RedisCluster
from redis.exceptions import RedisClusterException
from redis.retry import Retry

from .replies import parse_nodes, text
from ..errors import LabkitError

#: Blocking reads wait at most this long, well under the socket timeout below,
#: so a quiet stream never looks like a dead connection.
SOCKET_TIMEOUT_S = 15.0
MIN_VERSION = (7, 0)
URL_FORM = "redis://[[user]:password@]host[:port][/db] or rediss://… for TLS"


def mask(url: str) -> str:
    """The URL with its password replaced by ``***``."""
    return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", url)


def cli_url(url: str) -> str:
    """The URL as ``redis-cli -u`` takes it: a password without a user names the ``default`` user (redis-cli
    7.0 sends an empty user name otherwise, and the server refuses it)."""
    return re.sub(r"^(rediss?://):(?=[^@/]*@)", r"\1default:", url)


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


def given() -> Target | None:
    """The server ``REDIS_URL`` names, or ``None`` when it is unset: the one place labkit reads ``REDIS_URL``."""
    url = os.environ.get("REDIS_URL", "").strip()
    return Target(url, embedded=False) if url else None


def target() -> Target:
    """Where labkit's Redis is: ``REDIS_URL``'s server, else the embedded one (started if need be)."""
    from . import embedded as server
    return given() or Target(server.ensure().url, embedded=True)


def current_target() -> Target:
    """Where labkit talks to, for an error message: like :func:`target`, but never starts a server."""
    from . import embedded as server
    t = given()
    if t:
        return t
    info = server.read_info()
    return Target(info.url if info else "redis://127.0.0.1:0", embedded=True)


def _check_url(url: str) -> None:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError as exc:
        raise LabkitError(f"REDIS_URL {mask(url)!r} is malformed ({exc})", f"use {URL_FORM}") from None
    if parts.scheme not in ("redis", "rediss", "unix") or (parts.scheme != "unix" and not parts.hostname):
        raise LabkitError(f"REDIS_URL {mask(url)!r} is not a Redis URL", f"use {URL_FORM}")


class _Refused(Exception):
    """A refused login, carried through redis-py's retry loop, which does not catch it."""

    def __init__(self, error: redis.AuthenticationError):
        super().__init__(str(error))
        self.error = error


class LoginOnceRetry(Retry):
    """redis-py's Retry, except that a refused login is not retried: a moment later the credentials are no
    better, and the retries' backoff would delay saying so by seconds.  (redis-py 8 has ``is_retryable`` for
    this; 6.1, the lowest labkit takes, has not.)"""

    def call_with_retry(self, do, fail, *args, **kwargs):
        def once():
            try:
                return do()
            except redis.AuthenticationError as exc:    # a ConnectionError: the loop would retry it
                raise _Refused(exc) from None
        try:
            return super().call_with_retry(once, fail, *args, **kwargs)
        except _Refused as refused:     # raised as redis-py 8 does for an error is_retryable refuses
            raise refused.error from None


def client(t: Target | None = None, cluster: bool = False, **overrides) -> redis.Redis | RedisCluster:
    """A new client (its own connection pool); not yet checked.

    With ``cluster`` a :class:`RedisCluster`, which reads the cluster's layout
    from the node in the URL as it is built.
    """
    t = t or target()
    _check_url(t.url)
    kwargs = dict(socket_timeout=SOCKET_TIMEOUT_S, socket_connect_timeout=5.0,
                  socket_keepalive=True, health_check_interval=30,
                  retry=LoginOnceRetry(ExponentialBackoff(cap=2.0, base=0.1), 3))
    kwargs.update(overrides)
    try:
        if cluster:
            return RedisCluster.from_url(t.url, **kwargs)
        return redis.Redis.from_url(t.url, **kwargs)
    except ValueError as exc:
        raise LabkitError(f"REDIS_URL {mask(t.url)!r} is malformed ({exc})", f"use {URL_FORM}") from None


def is_cluster(r) -> bool:
    """Whether ``r`` talks to a Redis Cluster (its keys are spread over several masters)."""
    return isinstance(r, RedisCluster)


_DOWN_HINT = ("wait for the failover to finish, or restart the failed node "
              "(python -m labkit cluster status shows which), then rerun")


def _cluster_error(exc: Exception, msg: str, where: str) -> LabkitError | None:
    """The one line for an error only a Redis Cluster gives, else ``None``."""
    low = msg.lower()
    code = (getattr(exc, "status_code", None) or msg.split(" ")[0]).upper()
    if isinstance(exc, redis.exceptions.AskError) or code in ("MOVED", "ASK"):
        kind = "ASK" if code == "ASK" or type(exc) is redis.exceptions.AskError else "MOVED"
        detail = msg if msg.upper().startswith(kind) else f"{kind} {msg}"
        return LabkitError(f"Redis at {where} is a cluster node that does not serve that key's hash slot "
                           f"({detail}): a client that is not cluster-aware was used",
                           "labkit detects clusters when it connects: rerun the command; in your own code "
                           "connect with labkit.servers.connection.connect() or redis.cluster.RedisCluster")
    if isinstance(exc, (redis.exceptions.ClusterCrossSlotError, redis.exceptions.CrossSlotTransactionError)) \
            or code == "CROSSSLOT" or "same slot" in low or "same key slot" in low:
        return LabkitError(f"Redis Cluster at {where} refused one command over keys in different hash slots "
                           f"(CROSSSLOT: {msg})",
                           "keys used in one command or transaction must share a hash tag, the part in "
                           "{…}, e.g. {temps:averages}mykey; labkit's own keys do (see docs/cluster.md)")
    if "select is not allowed in cluster mode" in low:  # the URL names a database other than 0
        return LabkitError(f"a Redis Cluster has only database 0 ({msg})", "drop the /N database number from REDIS_URL")
    if isinstance(exc, redis.exceptions.TryAgainError) or code == "TRYAGAIN":
        return LabkitError(f"Redis Cluster at {where} is moving a hash slot and could not serve the command "
                           f"now (TRYAGAIN)", "rerun it in a moment")
    if isinstance(exc, (redis.exceptions.ClusterDownError, redis.exceptions.SlotNotCoveredError)) \
            or code in ("CLUSTERDOWN", "MASTERDOWN"):
        return LabkitError(f"the Redis Cluster at {where} is down: a hash slot has no live master ({msg})",
                           _DOWN_HINT)
    if isinstance(exc, redis.exceptions.ClusterError):
        return LabkitError(f"the Redis Cluster at {where} kept redirecting labkit ({msg})",
                           "its layout is changing (failover or resharding): check it with "
                           "python -m labkit cluster status, then rerun")
    if isinstance(exc, RedisClusterException):
        if "db" in low and ("cluster mode" in low or "only be 0" in low):
            return LabkitError(f"a Redis Cluster has only database 0 ({msg})",
                               "drop the /N database number from REDIS_URL")
        if "not covered" in low:
            return LabkitError(f"the Redis Cluster at {where} does not serve every hash slot ({msg})",
                               _DOWN_HINT)
        if "cannot be connected" in low:
            return LabkitError(f"cannot reach the Redis Cluster at {where} ({msg})",
                               "is the node in REDIS_URL running? (python -m labkit cluster status)")
        if "unix domain socket" in low:
            return LabkitError(f"redis-py cannot reach a Redis Cluster over a Unix socket ({msg})",
                               "use redis://host:port in REDIS_URL")
        return LabkitError(f"cannot use the Redis Cluster at {where} ({msg})",
                           "check it with python -m labkit cluster status (local cluster) or CLUSTER INFO")
    return None


def _acl_refusal(msg: str, t: Target) -> LabkitError:
    """NOPERM: the server's ACL refused labkit's keys (a namespace the user may not use) or a command."""
    reply = re.sub(r"^Command # \d+ \(.*?\) of pipeline caused error: ", "", msg)
    name = unquote(urlsplit(t.url).username or "")
    user = f"user {name!r}" if name else "the default user"
    command = re.search(r"'([^']+)' command", reply)
    if command or "command" in reply.lower():
        what = command.group(1).replace("|", " ").upper() if command else "a command"
        return LabkitError(f"the ACL of Redis at {t.address} refused the command {what} to {user} (NOPERM: {reply})",
                           "your Redis user may not run it: ask the instructor (or whoever runs the server) to "
                           "allow it, or use a server of your own (unset REDIS_URL)")
    if "key" in reply.lower():
        ns = os.environ.get("LABKIT_NAMESPACE", "").strip()
        which = f"for namespace {ns!r}" if ns else "under the course's own names (LABKIT_NAMESPACE is unset)"
        return LabkitError(f"the ACL of Redis at {t.address} refused labkit's keys {which} to {user} "
                           f"(NOPERM: {reply})",
                           "set LABKIT_NAMESPACE to the namespace your Redis user may use (in a class: your own "
                           "name), or ask the instructor")
    return LabkitError(f"the ACL of Redis at {t.address} refused {user} (NOPERM: {reply})",
                       "ask the instructor (or whoever runs the server) what your Redis user may do")


def explain(exc: Exception, t: Target) -> LabkitError:
    """Turn a redis-py exception (cluster ones included) into a one-line error with a hint."""
    where = t.address
    msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    low = msg.lower()
    if isinstance(exc, redis.AuthenticationError) or "wrongpass" in low or "noauth" in low \
            or "invalid username-password" in low or "auth" in low and "called without" in low:
        return LabkitError(f"Redis at {where} refused the credentials ({msg})",
                           "check the user and password in REDIS_URL")
    if isinstance(exc, redis.exceptions.NoPermissionError) or "no permissions" in low:
        return _acl_refusal(msg, t)
    if "ssl" in low or "tls" in low or "wrong version number" in low:
        hint = ("the server may not speak TLS: use redis:// instead of rediss://"
                if t.url.startswith("rediss") else "the server may need TLS: use rediss://")
        return LabkitError(f"TLS problem talking to Redis at {where} ({msg})", hint)
    if isinstance(exc, (redis.ConnectionError, redis.TimeoutError, ConnectionError, TimeoutError, OSError)):
        if t.url.startswith("rediss"):  # a TLS hello to a plain server just goes unanswered
            return LabkitError(f"cannot reach Redis at {where} over TLS ({msg})",
                               "if that server does not speak TLS, use redis:// instead of rediss://; "
                               "else check the host and port")
        if t.embedded:
            hint = "restart it with: python -m labkit server start"
        elif os.environ.get("REDIS_URL", "").strip():
            hint = "is the server running and the host/port in REDIS_URL right? unset REDIS_URL to use the embedded server"
        else:   # a server labkit was pointed at in code (e.g. a cluster a notebook started): REDIS_URL is not the cause
            hint = "is that server running? a server a notebook started stops with it (run its set-up cell again)"
        return LabkitError(f"cannot reach Redis at {where} ({msg})", hint)
    clustered = _cluster_error(exc, msg, where)
    if clustered is not None:
        return clustered
    if isinstance(exc, redis.ResponseError) and low.startswith("wrongtype"):
        return LabkitError(f"a key labkit uses holds the wrong type ({msg})",
                           "another program uses labkit's key names: set LABKIT_NAMESPACE, or delete that key")
    return LabkitError(f"Redis at {where} answered an error ({msg})", "see docs/troubleshooting.md")


@dataclass(frozen=True)
class Failure:
    """What a background thread reports when an error ends (or interrupts) its work: it is never lost."""

    error: BaseException    # what to keep, e.g. for ``status()``: a Redis error as its one-line LabkitError
    text: str               # one line: the error's own, or ``TypeName: message`` for an unexpected one
    unexpected: bool        # neither a LabkitError nor a Redis error: a bug, said as such

    def said(self, doing: str) -> str:
        """``stopped: …``, or ``stopped by an unexpected error: …``."""
        return f"{doing} by an unexpected error: {self.text}" if self.unexpected else f"{doing}: {self.text}"


def failure(exc: BaseException, t: Target) -> Failure:
    """``exc`` as a thread reports it: a :class:`LabkitError` as it is, a Redis error explained (:func:`explain`)."""
    if isinstance(exc, LabkitError):
        return Failure(exc, str(exc), False)
    if isinstance(exc, (redis.RedisError, RedisClusterException)):
        err = explain(exc, t)
        return Failure(err, str(err), False)
    return Failure(exc, f"{type(exc).__name__}: {exc}", True)


def connect(t: Target | None = None, **overrides) -> redis.Redis | RedisCluster:
    """A checked client: reachable, authenticated, Redis 7 command set; a :class:`RedisCluster` for a cluster."""
    t = t or target()
    # Probe with a short timeout and no retries, so a wrong address or a TLS
    # mismatch fails in seconds, not after every retry of a long timeout.
    probe = client(t, socket_timeout=5.0, retry=Retry(NoBackoff(), 0))
    try:
        info = probe.info("server")
        clustered = info.get("redis_mode") == "cluster" or info.get("server_mode") == "cluster" \
            or bool(probe.info("cluster").get("cluster_enabled"))
    except redis.RedisError as exc:
        raise explain(exc, t) from None
    finally:
        probe.close()
    version = tuple(int(x) for x in re.findall(r"\d+", str(info.get("redis_version", "0")))[:2])
    if version < MIN_VERSION:
        raise LabkitError(f"Redis at {t.address} is version {info.get('redis_version')}; labkit needs 7.0 or newer",
                          "use the embedded server (unset REDIS_URL) or a Redis 7 server")
    if not clustered:
        return client(t, **overrides)
    try:
        return client(t, cluster=True, **overrides)
    except (redis.RedisError, RedisClusterException) as exc:
        raise explain(exc, t) from None


def pooled_connection(r: redis.Redis):
    """A connection of ``r``'s pool, for raw protocol work (release it with ``r.connection_pool.release``)."""
    return r.connection_pool.get_connection()


def node_client(r, key: str | bytes) -> redis.Redis:
    """The plain client of the master that serves ``key`` (on a single server, ``r`` itself).

    For work that must run on one server: raw protocol streams, MULTI/EXEC,
    and a blocking read whose connection must be named to CLIENT UNBLOCK.  It
    does not follow redirections: after a failover call :func:`refresh` and ask again.
    """
    if not is_cluster(r):
        return r
    return r.get_redis_connection(r.get_node_from_key(key))


def confirm_replicas(r, key: str, expire_at_ms: int, timeout_ms: int) -> tuple[int, int]:
    """On a cluster, wait until the replicas of ``key``'s master hold everything written to it so far.

    ``WAIT`` counts what *its own connection* wrote, so a write goes first on
    the same connection: re-setting ``key``'s expiry (to the same time) is a
    write that changes nothing.  Returns (replicas that confirmed, replicas the
    master has); (0, 0) on a single server or a master without replicas.
    """
    if not is_cluster(r):
        return 0, 0
    node = node_client(r, key)
    nodes = parse_nodes(node.execute_command("CLUSTER", "NODES"))
    me = next(n["id"] for n in nodes if "myself" in n["flags"])
    wanted = sum(1 for n in nodes if n["master"] == me)    # its replicas, reachable or not
    if wanted <= 0:
        return 0, 0
    p = node.pipeline(transaction=False)
    p.pexpireat(key, expire_at_ms)
    p.execute_command("WAIT", wanted, timeout_ms)
    return int(p.execute()[1]), wanted


def blocking_id(r, key: str) -> tuple[int, redis.Redis | None]:
    """The id of the connection a blocking read of ``key`` will use, for CLIENT UNBLOCK, and (on a cluster)
    the node client that serves ``key``: the read blocks on that node, so the unblock must be sent there.

    One thread per client: its next command takes the same pooled connection this one used.
    """
    if not is_cluster(r):
        return r.client_id(), None
    node = node_client(r, key)
    return node.client_id(), node   # the cluster client sends ``key``'s commands through this node's pool


def refresh(r) -> None:
    """Reread a cluster's layout (who serves which slots), e.g. after a failover; nothing on a single server."""
    if is_cluster(r):
        r.nodes_manager.initialize()


#: Replies that mean "ask again elsewhere, or in a moment": the cluster's layout changed under a node client.
_RELAYOUT = ("MOVED", "ASK", "CLUSTERDOWN", "TRYAGAIN", "MASTERDOWN", "READONLY")


def relayout(exc: Exception) -> bool:
    """Whether ``exc`` is a cluster node's redirection or a failover in progress (not a real refusal)."""
    # redis-py turns MOVED/ASK replies into MovedError/AskError, whose text no longer starts with the word.
    return isinstance(exc, redis.ResponseError) and str(exc).split(" ")[0].upper() in _RELAYOUT \
        or isinstance(exc, (redis.exceptions.ClusterDownError, redis.exceptions.TryAgainError,
                            redis.exceptions.MovedError, redis.exceptions.AskError)) or layout_changed(exc)


def moved_to_lost(r, exc: Exception) -> Exception:
    """A redirection seen through a node client, as a lost connection (after rereading the layout), so the
    reconnect-and-resume paths of consumers and producers handle a failover like a dropped connection."""
    if relayout(exc):
        try:
            refresh(r)
        except (redis.RedisError, RedisClusterException):
            pass
        return redis.ConnectionError(f"the cluster's layout changed ({str(exc).splitlines()[0][:60]})")
    return exc


#: How long consumers and producers keep trying to reach a server that went away before they give up.
RECONNECT_S = 60.0


def layout_changed(exc: Exception) -> bool:
    """A reply that means "the server you were using changed role": a read blocked on a master that a planned
    failover made a replica ends with ``UNBLOCKED … instance state changed``.  Handled like a lost
    connection: reread the layout and carry on from what Redis holds."""
    return isinstance(exc, redis.ResponseError) and str(exc).startswith("UNBLOCKED") \
        and "instance state changed" in str(exc)


def is_lost(exc: Exception) -> bool:
    """Errors after which a client waits for Redis and carries on from what it holds: a dropped connection
    or timeout, a cluster without a master for a slot yet (CLUSTERDOWN), a slot being moved (TRYAGAIN), or
    a changed role (:func:`layout_changed`).  Refused credentials are not among them (see :func:`reconnect`)."""
    if isinstance(exc, redis.AuthenticationError):
        return False
    return isinstance(exc, (redis.ConnectionError, redis.TimeoutError, redis.exceptions.ClusterDownError,
                            redis.exceptions.TryAgainError)) or layout_changed(exc)


def _answers(r) -> None:
    """PING the server; on a cluster every master, and the cluster must say every slot is served.

    One node answering is not enough: until a dead master's replica is
    promoted, its slots' commands still fail.
    """
    if not is_cluster(r):
        r.ping()
        return
    primaries = r.get_primaries()
    for node in primaries:
        r.get_redis_connection(node).ping()
    state = text(r.get_redis_connection(primaries[0]).execute_command("CLUSTER", "INFO"))
    if "cluster_state:ok" not in state:
        raise redis.exceptions.ClusterDownError("cluster_state is not ok")


def reconnect(r: redis.Redis, say, exc: Exception, seconds: float = RECONNECT_S, stop=None,
              where: str = "") -> bool:
    """Ping ``r`` with capped exponential backoff until the server answers (True), ``stop`` is set or
    ``seconds`` pass (False).  ``say(text)`` reports what happens, once when the connection is lost
    and once when it is back.

    Raises :class:`redis.AuthenticationError` at once when the server refuses the credentials (e.g. a
    password rotated mid-run): waiting would not change them, and :func:`explain` names it.
    """
    # redis-py's AuthenticationError is a ConnectionError, so it is picked out before the ones waited for.
    if isinstance(exc, redis.AuthenticationError):
        raise exc
    at = f" at {where}" if where else ""
    say(f"lost the connection to Redis{at} ({str(exc).splitlines()[0][:80]}); reconnecting for up to {seconds:g} s")
    deadline, delay = time.monotonic() + seconds, 0.05
    while not (stop is not None and stop.is_set()) and time.monotonic() < deadline:
        try:
            refresh(r)  # a cluster: a failed master's slots may have a new master by now
            _answers(r)
            say(f"reconnected to Redis{at}")
            return True
        except redis.AuthenticationError:
            raise
        except (redis.ConnectionError, redis.TimeoutError, redis.exceptions.ClusterDownError,
                RedisClusterException):
            (stop.wait if stop is not None else time.sleep)(delay)
            delay = min(delay * 2, 2.0)
    return False
