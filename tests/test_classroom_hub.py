"""The spawn hook (without a hub: a spawner is just a user name and an environment), then a class of two
started through ``python -m labkit class start`` with the real JupyterHub and configurable-http-proxy."""

from __future__ import annotations

import logging
import time
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
from tests.helpers import need_program

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


# ---------------------------------------------------------------- a class of two on the real JupyterHub

def _run_cells(base: str, user: str, token: str, cells: list[str], timeout: float = 120) -> list[str]:
    """Run ``cells`` one by one in a new kernel of ``user``'s server (the Jupyter server's REST and websocket
    API, through the hub's proxy); each cell's printed text, or its error as ``ERROR <name>: <value>``."""
    import asyncio
    import json as _json
    import requests
    from tornado.httpclient import HTTPRequest
    from tornado.websocket import websocket_connect

    headers = {"Authorization": f"token {token}"}
    api = f"{base}/user/{user}/api/kernels"
    kernel = requests.post(api, headers=headers, json={"name": "python3"}, timeout=60)
    assert kernel.status_code == 201, kernel.text
    kid = kernel.json()["id"]

    async def run() -> list[str]:
        ws = await websocket_connect(HTTPRequest(api.replace("http", "ws", 1) + f"/{kid}/channels", headers=headers))
        outputs = []
        for code in cells:
            msg_id = uuid.uuid4().hex
            ws.write_message(_json.dumps({
                "header": {"msg_id": msg_id, "username": "test", "session": kid, "msg_type": "execute_request",
                           "version": "5.3"},
                "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
                "content": {"code": code, "silent": False, "store_history": True, "user_expressions": {},
                            "allow_stdin": False, "stop_on_error": True}}))
            text = []
            while True:
                msg = _json.loads(await asyncio.wait_for(ws.read_message(), timeout))
                if msg.get("parent_header", {}).get("msg_id") != msg_id:
                    continue
                kind, content = msg["msg_type"], msg["content"]
                if kind == "stream":
                    text.append(content["text"])
                elif kind == "error":
                    text.append(f"ERROR {content['ename']}: {content['evalue']}")
                elif kind == "status" and content["execution_state"] == "idle":
                    break
            outputs.append("".join(text))
        ws.close()
        return outputs
    try:
        return asyncio.run(run())
    finally:
        requests.delete(f"{api}/{kid}", headers=headers, timeout=30)


def _spawn(base: str, user: str, token: str, timeout: float = 180) -> None:
    import requests
    headers = {"Authorization": f"token {token}"}
    resp = requests.post(f"{base}/hub/api/users/{user}/server", headers=headers, timeout=60)
    assert resp.status_code in (201, 202), resp.text
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        server = requests.get(f"{base}/hub/api/users/{user}", headers=headers, timeout=30).json()["servers"].get("")
        if server and server["ready"]:
            return
        time.sleep(0.5)
    raise AssertionError(f"{user}'s server did not start in {timeout} s")


def _log_in(base: str, user: str, password: str):
    """A browser's session: the hub's login form, as a person fills it in."""
    import re
    import requests
    s = requests.Session()
    page = s.get(f"{base}/hub/login", timeout=30)
    xsrf = re.search(r'name="_xsrf"\s+value="([^"]+)"', page.text)
    resp = s.post(f"{base}/hub/login", data={"username": user, "password": password,
                                             "_xsrf": xsrf.group(1) if xsrf else ""}, timeout=60)
    assert resp.status_code == 200 and "/hub/login" not in resp.url, (resp.status_code, resp.url)
    return s


@pytest.mark.slow
@pytest.mark.jupyterhub
def test_a_class_of_two_on_jupyterhub(r, cli, lab_home):
    from labkit.classroom import local
    need_program("configurable-http-proxy", "npm install -g configurable-http-proxy")
    tag = uuid.uuid4().hex[:4]
    alice, bob = f"alice{tag}", f"bob{tag}"
    run = cli("class", "start", "--learners", f"{alice},{bob}", timeout=180)
    assert run.returncode == 0, run.stderr
    info = local.read_info(lab_home)
    try:
        assert {"url", "pids", "learners", "api_token"} <= set(info) and info["learners"] == [alice, bob]
        base, token = info["url"], info["api_token"]
        for user in (alice, bob):          # both spawned through the hub's REST API
            _spawn(base, user, token)
        status = cli("class", "status")
        assert status.returncode == 0 and alice in status.stderr + status.stdout, status.stderr

        out = _run_cells(base, alice, token, [
            "import os; print(os.environ['LABKIT_NAMESPACE'], os.environ['REDIS_URL'].split(':')[1])",
            "import redis\n"
            "from labkit.servers import connection\n"
            "from labkit.core.keyspace import keys_for\n"
            "from labkit.core.keys import Keys\n"
            "r = connection.connect(); k = keys_for(r)\n"
            "r.set(k.key('hello'), 'from the notebook'); print(r.get(k.key('hello')).decode())",
            "for what, call in [('bob', lambda: r.get(keys_for(r, Keys(%r)).key('hello'))),\n"
            "                   ('flushall', r.flushall), ('config', lambda: r.config_get('maxmemory')),\n"
            "                   ('keys', lambda: r.keys('*')), ('acl', lambda: r.acl_list())]:\n"
            "    try:\n"
            "        call(); print(what, 'ALLOWED')\n"
            "    except redis.exceptions.NoPermissionError:\n"
            "        print(what, 'NOPERM')" % bob,
        ])
        assert out[0].split() == [alice, f"//labkit-{alice}"], out
        assert out[1].strip() == "from the notebook", out
        assert out[2].split("\n")[:5] == [f"{w} NOPERM" for w in ("bob", "flushall", "config", "keys", "acl")], out
        assert r.get(f"{alice}:hello") == b"from the notebook"

        browser = _log_in(base, alice, info["password"])
        mine = browser.get(f"{base}/user/{alice}/lab", timeout=60)
        assert mine.status_code == 200 and f"/user/{alice}/" in mine.url
        theirs = browser.get(f"{base}/user/{bob}/lab", timeout=60)
        assert theirs.status_code == 403, (theirs.status_code, theirs.url)

        rows = {row["namespace"]: row for row in __import__("json").loads(cli("cohort", "--json").stdout)}
        assert {alice, bob} <= set(rows)
        r.set(f"{bob}:hello", "bob's")
        assert cli("cohort", "reset", bob, "--yes").returncode == 0
        assert r.get(f"{bob}:hello") is None and r.get(f"{alice}:hello") == b"from the notebook"

        pids = [info["pids"]["hub"], info["pids"]["proxy"], *local.server_pids(lab_home).values()]
        assert len(pids) == 4 and all(pids)
    finally:
        stop = cli("class", "stop", timeout=120)
        for ns in (alice, bob):
            fence.remove_learner(r, ns)
            r.delete(f"{ns}:hello")
    assert stop.returncode == 0, stop.stderr
    from labkit.servers.embedded import is_alive   # a zombie not yet reaped by init counts as gone
    assert not [pid for pid in pids if is_alive(pid)]
    assert local.read_info(lab_home) is None


def test_a_missing_proxy_is_one_line_naming_the_install_command(cli, tmp_path):
    run = cli("class", "start", "--learners", "alice", env={"PATH": str(tmp_path)})
    assert run.returncode == 2 and "Traceback" not in run.stderr
    assert run.stderr.strip().count("\n") == 0
    assert "configurable-http-proxy is not installed" in run.stderr and "npm install -g configurable-http-proxy" in run.stderr


def test_class_flags_and_names_are_checked_in_one_line(cli):
    for args, says in ((["class", "start"], "needs its learners"),
                       (["class", "start", "--learners", "Alice.B"], "not a plain namespace"),
                       (["class", "stop", "--learners", "a"], "go with class start"),
                       (["class", "start", "--learners", "a,a"], "twice")):
        run = cli(*args)
        assert run.returncode == 2 and says in run.stderr and "Traceback" not in run.stderr, (args, run.stderr)


def test_the_hub_configuration_is_python_with_the_hook_and_allow_root_only_as_root(tmp_path):
    from labkit.classroom import local
    kw = dict(port=8000, hub_port=8081, proxy_api_port=8001, password="pw", api_token="tok", learners=["alice", "bob"],
              admin_url="redis://:a@127.0.0.1:6379/0", homes=tmp_path, python="/v/bin/python", proxy="/usr/bin/chp")
    root, user = local.hub_config(as_root=True, **kw), local.hub_config(as_root=False, **kw)
    for cfg in (root, user):
        compile(cfg, "jupyterhub_config.py", "exec")
        assert 'bind_url = "http://127.0.0.1:8000"' in cfg and 'authenticator_class = "dummy"' in cfg
        assert "hook_for('redis://:a@127.0.0.1:6379/0')" in cfg and 'spawner_class = "simple"' in cfg
    assert "c.Spawner.args = ['--allow-root']" in root and "c.Spawner.args = []" in user
