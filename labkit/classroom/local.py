"""``python -m labkit class start|status|stop``: a class on one machine.

A local JupyterHub on 127.0.0.1: its ``DummyAuthenticator`` with one class password, the
``SimpleLocalProcessSpawner`` (every learner's server runs as this machine's one OS user, in a home of its own
under ``$LABKIT_HOME/class/homes``), configurable-http-proxy from npm, and :func:`labkit.classroom.hub.hook_for`
on the class Redis (``REDIS_URL`` or the embedded server), so each learner works as their own fenced ACL user.
Fine for a workshop on a trusted machine; a real cohort uses TLJH or z2jh with the hook (docs/class.md).

``$LABKIT_HOME/class.json`` (private) says where the hub is and what was started: ``url``, ``pids``,
``learners``, ``password``, ``api_token`` (an admin API token for the instructor's scripts).
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import secrets
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from ..errors import LabkitError
from ..servers import connection
from ..servers import embedded as server
from . import fence

INSTALL = "pip install -r requirements-class.txt && npm install -g configurable-http-proxy"
SERVICE = "labkit-instructor"
START_TIMEOUT_S = 90.0
NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"


def class_dir(h: Path | None = None) -> Path:
    return (h or server.home()) / "class"


def info_path(h: Path | None = None) -> Path:
    return (h or server.home()) / "class.json"


def read_info(h: Path | None = None) -> dict | None:
    with contextlib.suppress(OSError, ValueError):
        return json.loads(info_path(h).read_text())
    return None


def proxy_command() -> str:
    """configurable-http-proxy's path, or one line naming the install command."""
    found = shutil.which("configurable-http-proxy")
    if not found:
        raise LabkitError("configurable-http-proxy is not installed (the hub's proxy, from npm)", INSTALL)
    return found


def check_extras() -> None:
    """The class extras are installed, or one line naming the command that installs them."""
    if importlib.util.find_spec("jupyterhub") is None:
        raise LabkitError("JupyterHub is not installed (the class extras)", INSTALL)
    proxy_command()


def parse_learners(text: str) -> list[str]:
    """``alice,bob`` → their namespaces (pure); the hub's user names must be namespaces already."""
    names = [n.strip() for n in (text or "").split(",") if n.strip()]
    if not names:
        raise LabkitError("--learners names nobody", "e.g. --learners alice,bob")
    for n in names:
        if fence.namespace_for(n) != n:
            raise LabkitError(f"learner name {n!r} is not a plain namespace",
                              "use lower-case letters, digits and '_' (at most 40), e.g. --learners alice,bob")
    if len(set(names)) != len(names):
        raise LabkitError("--learners names someone twice", "list each learner once")
    return names


def hub_config(*, port: int, hub_port: int, proxy_api_port: int, password: str, api_token: str,
               learners: list[str], admin_url: str, homes: Path, as_root: bool, python: str, proxy: str) -> str:
    """The hub's jupyterhub_config.py (pure)."""
    singleuser = str(Path(python).parent / "jupyterhub-singleuser")
    return f'''# Written by python -m labkit class start; rewritten at every start.
import labkit.classroom.hub

c.JupyterHub.bind_url = "http://127.0.0.1:{port}"
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = {hub_port}
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{proxy_api_port}"
c.ConfigurableHTTPProxy.command = [{proxy!r}]
c.JupyterHub.authenticator_class = "dummy"
c.DummyAuthenticator.password = {password!r}
c.Authenticator.allowed_users = {set(learners)!r}
c.JupyterHub.spawner_class = "simple"
c.SimpleLocalProcessSpawner.home_dir_template = {str(homes / "{username}")!r}
c.Spawner.cmd = [{singleuser!r}]
c.Spawner.args = {["--allow-root"] if as_root else []!r}
c.Spawner.default_url = "/lab"
c.Spawner.start_timeout = 120
c.Spawner.http_timeout = 120
c.Spawner.pre_spawn_hook = labkit.classroom.hub.hook_for({admin_url!r})
c.JupyterHub.services = [{{"name": {SERVICE!r}, "api_token": {api_token!r}}}]
c.JupyterHub.load_roles = [{{"name": "labkit-instructor", "services": [{SERVICE!r}],
                            "scopes": ["admin:users", "admin:servers", "access:servers", "list:users"]}}]
'''


def _get(url: str, token: str | None = None, timeout: float = 5.0) -> int:
    req = urllib.request.Request(url, headers={"Authorization": f"token {token}"} if token else {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0


def _tail(path: Path, n: int = 3) -> str:
    with contextlib.suppress(OSError):
        return " | ".join(l.strip() for l in path.read_text(errors="replace").splitlines()[-n:])
    return ""


def start(learners: list[str], port: int | None = None, password: str | None = None,
          h: Path | None = None) -> tuple[dict, bool]:
    """Start the class (or find it running).  Returns ``(class.json's content, started)``."""
    h = h or server.home()
    running = read_info(h)
    if running and server.is_alive(running["pids"]["hub"]):
        return running, False
    check_extras()
    t = connection.target()                      # REDIS_URL, or the embedded server (started if need be)
    admin = connection.connect(t)
    for n in learners:                            # the cohort lists them before they log in
        fence.ensure_learner(admin, n)
    admin.close()
    d = class_dir(h)
    homes = d / "homes"
    for n in learners:
        home = homes / n
        if not home.exists() and NOTEBOOKS.is_dir():
            shutil.copytree(NOTEBOOKS, home / "notebooks")
        home.mkdir(parents=True, exist_ok=True)
    if port and server.free_port(port) != port:
        raise LabkitError(f"port {port} on 127.0.0.1 is in use", "choose another --port, or omit it for a free one")
    port = port or server.free_port()
    password = password or secrets.token_urlsafe(9)
    api_token = secrets.token_hex(32)
    cfg = hub_config(port=port, hub_port=server.free_port(), proxy_api_port=server.free_port(),
                     password=password, api_token=api_token, learners=learners, admin_url=t.url, homes=homes,
                     as_root=os.geteuid() == 0, python=sys.executable, proxy=proxy_command())
    server.write_private(d / "jupyterhub_config.py", cfg)
    log = d / "jupyterhub.log"
    with open(log, "ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", "jupyterhub", "-f", str(d / "jupyterhub_config.py")],
                                cwd=d, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + START_TIMEOUT_S
    while _get(f"{url}/hub/api/users", api_token) != 200:
        if proc.poll() is not None or time.monotonic() > deadline:
            if proc.poll() is None:
                proc.terminate()
            raise LabkitError(f"the class hub did not start: {_tail(log) or 'no output'}", f"see {log}")
        time.sleep(0.3)
    info = {"url": url, "learners": learners, "password": password, "api_token": api_token,
            "redis": connection.mask(t.url), "log": str(log),
            "pids": {"hub": proc.pid, "proxy": _proxy_pid(d)}}
    server.write_private(info_path(h), json.dumps(info, indent=1) + "\n")
    return info, True


def _proxy_pid(d: Path) -> int | None:
    with contextlib.suppress(OSError, ValueError):
        return int((d / "jupyterhub-proxy.pid").read_text())
    return None


def server_pids(h: Path | None = None) -> dict[str, int]:
    """The learners' running servers, by user name, from the hub's database (the spawners' saved state)."""
    db = class_dir(h) / "jupyterhub.sqlite"
    if not db.exists():
        return {}
    out = {}
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)) as c:
        rows = c.execute("select users.name, spawners.state from spawners join users on users.id = spawners.user_id")
        for name, state in rows:
            with contextlib.suppress(ValueError, TypeError):
                pid = json.loads(state or "{}").get("pid")
                if pid:
                    out[name] = int(pid)
    return out


def status(h: Path | None = None) -> dict | None:
    """class.json plus what runs: ``running`` (the hub answers), ``servers`` (learners' servers by pid)."""
    info = read_info(h)
    if info is None:
        return None
    alive = {k: bool(p) and server.is_alive(p) for k, p in info["pids"].items()}
    return {**info, "alive": alive,
            "answers": _get(f"{info['url']}/hub/api/users", info["api_token"]) == 200,
            "servers": {n: p for n, p in server_pids(h).items() if server.is_alive(p)}}


def stop(h: Path | None = None, timeout: float = 30.0) -> list[int]:
    """Stop the hub (it stops the learners' servers and the proxy), then any of those still running, by PID.
    Returns the PIDs that were running."""
    info = read_info(h)
    if info is None:
        return []
    pids = [p for p in [info["pids"].get("hub"), info["pids"].get("proxy"), _proxy_pid(class_dir(h)),
                        *server_pids(h).values()] if p]
    pids = sorted({p for p in pids if server.is_alive(p)})
    hub = info["pids"].get("hub")

    def wait(seconds: float) -> bool:
        deadline = time.monotonic() + seconds
        while any(server.is_alive(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.1)
        return not any(server.is_alive(p) for p in pids)

    if hub in pids:
        os.kill(hub, signal.SIGTERM)   # the hub's own shutdown stops the learners' servers and the proxy
    for sig in (None, signal.SIGTERM, signal.SIGKILL):
        if sig is not None:
            for p in pids:
                with contextlib.suppress(ProcessLookupError):
                    if server.is_alive(p):
                        os.kill(p, sig)
        if wait(timeout if sig is None else 10):
            break
    info_path(h).unlink(missing_ok=True)
    return pids
