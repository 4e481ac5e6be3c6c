"""A learner's Redis ACL user: keys limited to their namespace, only the commands the lab needs.

One class shares one Redis.  Each learner gets ``LABKIT_NAMESPACE=<namespace>`` and an ACL user
``labkit-<namespace>`` whose key patterns cover exactly what labkit writes for that namespace:

- ``<ns>:*``: the lab's keys (``alice:temps:20250101``, ``alice:labkit:progress``);
- ``{<ns>:*``: the same keys hash-tagged on a cluster (``{alice:temps:averages}aggregating_consumer_state``);
- ``<ns>.*`` and ``<ns>-*`` (and their ``{…`` forms): the companion labs' namespaces (``alice.groups07``,
  :func:`labkit.labs.names.lab_keys`) and the tools' scratch ones (``alice-chaos``, :meth:`Keys.for_tool`).

Those patterns cannot reach another learner's keys because a learner's namespace has no ``.``, ``-`` or ``:``
(:func:`namespace_for` maps every hub user name into ``[a-z0-9_]``).  Commands: everything but Redis's
``@dangerous`` category (FLUSHALL, FLUSHDB, CONFIG, KEYS, DEBUG, SHUTDOWN, ACL, MODULE, SLOWLOG, CLIENT LIST…),
with INFO (labkit checks the server version on connect) and CLIENT UNBLOCK (a consumer's stop wakes its own
blocked read) given back.  ACL users live in each server's memory, so on a cluster the user is set on every node,
and a restarted server forgets them until the learner's next spawn.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from urllib.parse import quote, urlsplit, urlunsplit

import redis

from ..errors import LabkitError
from ..servers.replies import parse_nodes, text

USER_PREFIX = "labkit-"
_PLAIN = re.compile(r"[a-z0-9_]{1,40}")
#: Commands no learner may run, named again after ``-@dangerous`` so the fence does not hang on a category's contents.
DENIED = ("flushall", "flushdb", "config", "keys", "debug", "shutdown", "acl", "module")
#: Given back after ``-@dangerous``: read-only or harmless, and labkit needs them.
ALLOWED_BACK = ("info", "client|unblock")


def namespace_for(username: str) -> str:
    """The namespace of a hub user (pure).  ``alice`` stays ``alice``; anything else (``Jane.Doe``) maps to
    ``jane_doe_<6 hex of its hash>``, so two names never share a namespace.  Refuses an empty name."""
    name = (username or "").strip()
    if not name:
        raise LabkitError("an empty user name has no namespace", "give every learner a user name")
    if _PLAIN.fullmatch(name) and name not in RESERVED:
        return name
    plain = re.sub(r"[^a-z0-9_]", "_", name.lower())[:32].strip("_") or "user"
    return f"{plain}_{hashlib.sha256(name.encode()).hexdigest()[:6]}"


#: Names whose keys (``temps:*``, ``labkit:*``) are the course's own, un-namespaced: never a learner's.
RESERVED = frozenset({"temps", "labkit"})


def is_learner_namespace(namespace: str) -> bool:
    """Whether ``namespace`` can be a learner's: 1-40 of ``[a-z0-9_]``, not a :data:`RESERVED` name (pure)."""
    return bool(_PLAIN.fullmatch(namespace or "")) and namespace not in RESERVED


def acl_user(namespace: str) -> str:
    """The ACL user of a learner namespace (pure)."""
    _check(namespace)
    return USER_PREFIX + namespace


def key_patterns(namespace: str) -> list[str]:
    """The key patterns a learner may touch (pure; see the module's docstring)."""
    _check(namespace)
    return [f"{tag}{namespace}{sep}*" for sep in (":", ".", "-") for tag in ("", "{")]


def acl_rules(namespace: str, password: str) -> list[str]:
    """The ``ACL SETUSER <user> …`` rules of a learner (pure).  ``reset`` first, so the rules are the whole truth."""
    _check(namespace)
    if not password:
        raise ValueError("a learner's ACL user needs a password")
    return (["reset", "on", f">{password}", "resetchannels"]
            + [f"~{p}" for p in key_patterns(namespace)]
            + ["+@all", "-@dangerous"] + [f"+{c}" for c in ALLOWED_BACK] + [f"-{c}" for c in DENIED])


def learner_url(server_url: str, namespace: str, password: str) -> str:
    """``server_url`` (the class Redis, as the instructor reaches it) with the learner's user and password (pure)."""
    parts = urlsplit(server_url)
    host = parts.hostname or "127.0.0.1"
    netloc = f"{quote(acl_user(namespace), safe='')}:{quote(password, safe='')}@" \
             + (f"[{host}]" if ":" in host else host) + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def _check(namespace: str) -> None:
    if namespace in RESERVED:
        raise LabkitError(f"{namespace!r} is the course's own key prefix ({namespace}:*), never a learner's",
                          "name a learner: python -m labkit cohort lists them")
    if not is_learner_namespace(namespace):
        raise LabkitError(f"{namespace!r} is not a learner namespace",
                          "use 1-40 lower-case letters, digits or '_' (namespace_for maps a hub user name)")


# ---------------------------------------------------------------- the Redis layer (the instructor's client)

def nodes(r) -> list[redis.Redis]:
    """A client per server the ACL must be set on: ``r`` itself, or every node of a cluster, replicas included
    (a replica becomes a master at a failover, and serves reads).  Read from CLUSTER NODES, since redis-py's
    cluster client only knows the masters it routes to."""
    from ..servers.connection import is_cluster
    if not is_cluster(r):
        return [r]
    first = r.get_redis_connection(r.get_primaries()[0])
    pool = first.connection_pool
    kwargs = dict(pool.connection_kwargs)
    out = []
    for node in parse_nodes(first.execute_command("CLUSTER", "NODES")):
        if node["flags"] & {"fail", "noaddr", "handshake"}:
            continue
        out.append(redis.Redis(connection_pool=redis.ConnectionPool(
            connection_class=pool.connection_class,
            **{**kwargs, "host": node["host"] or kwargs.get("host"), "port": node["port"]})))
    return out


def ensure_learner(r, namespace: str, password: str | None = None) -> str:
    """Create or update the learner's ACL user on every node with a new random password; returns the password."""
    password = password or secrets.token_urlsafe(24)
    rules = acl_rules(namespace, password)
    for c in nodes(r):
        try:
            c.execute_command("ACL", "SETUSER", acl_user(namespace), *rules)
        except redis.ResponseError as exc:
            raise LabkitError(f"the class Redis refused to create the learner {namespace!r} ({exc})",
                              "the class REDIS_URL must be an admin user that may run ACL SETUSER") from None
    return password


def remove_learner(r, namespace: str) -> bool:
    """Delete the learner's ACL user on every node (their keys stay: see :func:`labkit.classroom.cohort.reset`)."""
    return bool(sum(int(c.execute_command("ACL", "DELUSER", acl_user(namespace))) for c in nodes(r)))


def learners(r) -> list[str]:
    """The learner namespaces that have an ACL user (on any node)."""
    found: set[str] = set()
    for c in nodes(r):
        for u in map(text, c.execute_command("ACL", "USERS")):
            if u.startswith(USER_PREFIX):
                found.add(u[len(USER_PREFIX):])
    return sorted(found)


# ---------------------------------------------------------------- in a learner's notebook

def in_class(url: str | None = None) -> bool:
    """Whether this kernel works as a class learner: ``url``'s (by default ``REDIS_URL``'s) user is a learner's."""
    from urllib.parse import unquote
    if url is None:
        from ..servers.connection import given
        t = given()
        url = t.url if t else ""
    user = urlsplit(url).username or ""
    return unquote(user).startswith(USER_PREFIX)


def skipped(command: str, part: str = "this demo", url: str | None = None) -> str:
    """The one line a notebook prints when the server refuses an admin command: in a class it says what the
    class setting allows, elsewhere that the server does not offer it."""
    if in_class(url):
        return (f"In a class your Redis user may not run {command} (it would change the server every learner "
                f"shares): {part} is skipped. On a server of your own (unset REDIS_URL) it runs.")
    return f"{command} is not available on this server: skipping {part}."
