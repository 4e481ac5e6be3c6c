"""The spawn hook (without a hub: a spawner is just a user name and an environment), then a class of two
started through ``python -m labkit class start`` with the real JupyterHub and configurable-http-proxy."""

from __future__ import annotations

import logging
import subprocess
import sys
import uuid
from types import SimpleNamespace

import pytest
import redis

from labkit.classroom import fence, hub
from labkit.core.keys import Keys
from labkit.errors import LabkitError
from labkit.servers import connection
from tests.conftest import ROOT

pytestmark = pytest.mark.classroom


def test_the_hook_module_does_not_import_jupyterhub():
    code = "import sys, labkit.classroom.hub; assert not [m for m in sys.modules if m.startswith('jupyterhub')]"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_the_hook_gives_a_spawn_its_namespace_and_fenced_url(r, target, monkeypatch):
    monkeypatch.setenv(hub.ADMIN_URL_ENV, target.url)
    name = f"Carol.{uuid.uuid4().hex[:6]}"
    spawner = SimpleNamespace(user=SimpleNamespace(name=name), environment={"KEEP": "1"},
                              log=logging.getLogger("test-hub"))
    hub.pre_spawn_hook(spawner)
    ns = spawner.environment["LABKIT_NAMESPACE"]
    try:
        assert ns == fence.namespace_for(name) and ns != name and spawner.environment["KEEP"] == "1"
        url = spawner.environment["REDIS_URL"]
        assert url.startswith("redis://labkit-" + ns + ":") and connection.Target(url, False).address == target.address
        mine = connection.connect(connection.Target(url, embedded=False))
        mine.set(Keys(ns).key("x"), "1")
        with pytest.raises(redis.exceptions.NoPermissionError):
            mine.set("x", "1")
        mine.close()
    finally:
        fence.remove_learner(r, ns)
        r.delete(Keys(ns).key("x"))


def test_the_hook_without_the_class_redis_says_so(monkeypatch):
    monkeypatch.delenv(hub.ADMIN_URL_ENV, raising=False)
    with pytest.raises(LabkitError, match="LABKIT_CLASS_REDIS_URL is not set"):
        hub.learner_env("alice")


def test_a_hook_bound_to_a_url_needs_no_environment(r, target, monkeypatch):
    monkeypatch.delenv(hub.ADMIN_URL_ENV, raising=False)
    spawner = SimpleNamespace(user=SimpleNamespace(name="dora" + uuid.uuid4().hex[:6]), environment={},
                              log=logging.getLogger("test-hub"))
    hub.hook_for(target.url)(spawner)
    try:
        assert spawner.environment["LABKIT_NAMESPACE"] == spawner.user.name
        assert fence.acl_user(spawner.user.name) in {u.decode() for u in r.execute_command("ACL", "USERS")}
    finally:
        fence.remove_learner(r, spawner.user.name)
