"""The JupyterHub spawn hook: each learner's server gets their namespace and their own fenced Redis user.

In any JupyterHub configuration (The Littlest JupyterHub, Zero to JupyterHub, or ``python -m labkit class``)::

    import labkit.classroom.hub
    c.Spawner.pre_spawn_hook = labkit.classroom.hub.pre_spawn_hook

with ``LABKIT_CLASS_REDIS_URL`` in the hub's environment: the class Redis as an admin user that may run
``ACL SETUSER`` (a learner's server never sees it).  At every spawn the hook creates or updates the learner's
ACL user with a new random password (:mod:`labkit.classroom.fence`) and sets, in the server's environment,
``LABKIT_NAMESPACE=<namespace>`` and ``REDIS_URL=redis://labkit-<namespace>:<password>@<class Redis>``.

This module does not import JupyterHub: it only reads ``spawner.user.name`` and writes ``spawner.environment``.
"""

from __future__ import annotations

import os

from ..errors import LabkitError
from . import fence

ADMIN_URL_ENV = "LABKIT_CLASS_REDIS_URL"

_admin = None     # (url, client): one admin connection per hub process


def _admin_client(url: str):
    global _admin
    from ..servers import connection
    if _admin is None or _admin[0] != url:
        _admin = (url, connection.connect(connection.Target(url, embedded=False)))
    return _admin[1]


def learner_env(username: str, admin_url: str | None = None) -> dict[str, str]:
    """Create or update ``username``'s ACL user; the environment their server needs."""
    url = (admin_url or os.environ.get(ADMIN_URL_ENV, "")).strip()
    if not url:
        raise LabkitError(f"{ADMIN_URL_ENV} is not set in the hub's environment",
                          "set it to the class Redis as an admin user, e.g. redis://default:PASSWORD@redis:6379/0")
    namespace = fence.namespace_for(username)
    password = fence.ensure_learner(_admin_client(url), namespace)
    return {"LABKIT_NAMESPACE": namespace, "REDIS_URL": fence.learner_url(url, namespace, password)}


def pre_spawn_hook(spawner) -> None:
    """``c.Spawner.pre_spawn_hook``: the learner's namespace and fenced ``REDIS_URL`` into their server's
    environment (the class Redis from ``LABKIT_CLASS_REDIS_URL``)."""
    hook_for("")(spawner)


def hook_for(admin_url: str):
    """A ``pre_spawn_hook`` bound to ``admin_url`` (for a configuration that reads the URL from a file or secret)."""
    def hook(spawner) -> None:
        env = learner_env(spawner.user.name, admin_url or None)
        if env["LABKIT_NAMESPACE"] != spawner.user.name:
            spawner.log.info("labkit: hub user %r works in the namespace %r", spawner.user.name, env["LABKIT_NAMESPACE"])
        spawner.environment.update(env)
    return hook
