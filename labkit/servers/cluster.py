"""A local Redis Cluster in one command: ``python -m labkit cluster start``.

It runs the embedded server's binary (or any ``redis-server`` 7+) as several
nodes on 127.0.0.1, with a generated password, and forms the cluster the way
``redis-cli --cluster create`` would, with plain commands: each node gets its
own config epoch, each master a range of the 16,384 hash slots (CLUSTER
ADDSLOTSRANGE), the nodes are introduced to each other (CLUSTER MEET), and each
replica follows its master (CLUSTER REPLICATE).  The lab is ready once every
node reports ``cluster_state:ok`` and every replica is in sync.

Like the embedded server, the cluster is found through a file,
``$LABKIT_HOME/cluster.json``; its nodes live under ``$LABKIT_HOME/cluster/``
and are stopped by PID.  A stopped cluster starts again with its data and its
ports; ``start --fresh`` forms a new one.

The helpers at the end (:func:`kill`, :func:`failover`, :func:`cut_replication`,
:func:`restart_node`) stage the failures a cluster exists to survive.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import secrets
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import redis

from ..errors import LabkitError
from . import embedded as server
from .replies import parse_nodes

SLOTS = 16384
DEFAULT_SHARDS, DEFAULT_REPLICAS = 3, 1
MAX_SHARDS, MAX_REPLICAS = 9, 2
#: How long a node may be unreachable before the others call it failed (and its replica takes over).
NODE_TIMEOUT_MS = 5000
#: Base ports come from here: the bus ports (base + 10000) then stay below Linux's ephemeral range.
PORT_RANGE = (12000, 21999)
BUS_OFFSET = 10000


# ---------------------------------------------------------------- pure core

@dataclass
class Node:
    port: int
    pid: int
    dir: str


@dataclass
class ClusterInfo:
    """What ``cluster.json`` holds.  ``nodes`` are listed masters first, as the cluster was formed."""

    host: str
    password: str
    shards: int
    replicas: int
    node_timeout_ms: int
    binary: str
    nodes: list[Node] = field(default_factory=list)
    home: str = ""  # the LABKIT_HOME whose cluster.json this is

    def url_of(self, port: int) -> str:
        return f"redis://default:{self.password}@{self.host}:{port}"   # a user named: redis-cli 7.0 -u needs one

    @property
    def url(self) -> str:
        """A URL for ``REDIS_URL``: a node that is running (any node leads a client to all the others)."""
        live = [n for n in self.nodes if server.is_alive(n.pid)]
        return self.url_of((live or self.nodes)[0].port)

    def node(self, port: int) -> Node:
        for n in self.nodes:
            if n.port == port:
                return n
        raise LabkitError(f"no node of the local cluster listens on port {port}",
                          "see python -m labkit cluster status")

    @classmethod
    def from_json(cls, text: str) -> "ClusterInfo":
        d = json.loads(text)
        d["nodes"] = [Node(**n) for n in d["nodes"]]
        return cls(**d)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1) + "\n"


def slot_ranges(shards: int) -> list[tuple[int, int]]:
    """The 16,384 slots split into ``shards`` contiguous, near-equal ranges (inclusive ends)."""
    edges = [round(i * SLOTS / shards) for i in range(shards + 1)]
    return [(edges[i], edges[i + 1] - 1) for i in range(shards)]


def layout(ports: list[int], shards: int, replicas: int) -> dict[int, int | None]:
    """``{port: master port}``: the first ``shards`` ports are masters (``None``), the rest follow them in turn."""
    roles: dict[int, int | None] = {p: None for p in ports[:shards]}
    for i, p in enumerate(ports[shards:shards * (1 + replicas)]):
        roles[p] = ports[i % shards]
    return roles


def node_conf(port: int, password: str, d: Path, node_timeout_ms: int, persist: bool) -> str:
    """One node's config file: loopback only, password for clients and for replication."""
    lines = [
        "bind 127.0.0.1", f"port {port}", "protected-mode yes",
        f"requirepass {password}", f"masterauth {password}",
        "cluster-enabled yes", "cluster-config-file nodes.conf", f"cluster-node-timeout {node_timeout_ms}",
        f'dir "{d}"', "daemonize yes", f'pidfile "{d / "node.pid"}"', f'logfile "{d / "node.log"}"',
        # A replica syncs at once (the default waits 5 s for more replicas to share one transfer).
        "repl-diskless-sync-delay 0",
        'save ""',
    ]
    lines += ["appendonly yes", "appendfsync everysec"] if persist else ["appendonly no"]
    return "\n".join(lines) + "\n"


def format_ranges(ranges: list[tuple[int, int]]) -> str:
    return ",".join(f"{a}-{b}" if a != b else str(a) for a, b in ranges) or "-"


# ---------------------------------------------------------------- processes

def home() -> Path:
    return server.home()


def _paths(h: Path) -> dict[str, Path]:
    return {"conn": h / "cluster.json", "dir": h / "cluster"}


def client_of(info: ClusterInfo, port: int, timeout: float = 5.0) -> redis.Redis:
    """A plain client (decoded replies) of one node of the local cluster."""
    return redis.Redis(host=info.host, port=port, password=info.password, socket_timeout=timeout,
                       socket_connect_timeout=timeout, decode_responses=True)


def call(info: ClusterInfo, port: int, *args, timeout: float = 5.0):
    """One command on one node, e.g. ``call(info, port, "CLUSTER", "NODES")``."""
    with contextlib.closing(client_of(info, port, timeout)) as c:
        return c.execute_command(*args)


def node_info(info: ClusterInfo, port: int, section: str) -> dict:
    """One node's ``INFO <section>``."""
    with contextlib.closing(client_of(info, port)) as c:
        return c.info(section)


def _free_ports(n: int, rng: random.Random) -> list[int]:
    """``n`` base ports whose bus ports (base + 10000) are free too."""
    held: list[socket.socket] = []
    ports: list[int] = []
    try:
        for _ in range(2000):
            if len(ports) == n:
                return ports
            port = rng.randint(*PORT_RANGE)
            if port in ports:
                continue
            pair = []
            for p in (port, port + BUS_OFFSET):
                s = socket.socket()
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server will
                try:
                    s.bind(("127.0.0.1", p))
                except OSError:
                    s.close()
                    break
                pair.append(s)
            held += pair
            if len(pair) == 2:
                ports.append(port)
    finally:
        for s in held:
            s.close()
    raise LabkitError(f"fewer than {n} free port pairs on 127.0.0.1 between {PORT_RANGE[0]} and "
                      f"{PORT_RANGE[1] + BUS_OFFSET}", "close some programs and try again")


def _launch(info: ClusterInfo, node: Node, timeout: float = 15.0) -> None:
    """Start one node from its config file; returns once it answers (``node.pid`` is set)."""
    d = Path(node.dir)
    pidfile = d / "node.pid"
    node.pid = 0
    with contextlib.suppress(FileNotFoundError):
        pidfile.unlink()
    proc = subprocess.run([info.binary, str(d / "node.conf")], capture_output=True, text=True)
    if proc.returncode != 0:
        last = ((proc.stderr or proc.stdout).strip().splitlines() or [f"exit {proc.returncode}"])[-1]
        raise LabkitError(f"cluster node on port {node.port} did not start: {last}", f"see {d / 'node.log'}")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError, ValueError):
            node.pid = int(pidfile.read_text())
        probe = server.ServerInfo(info.host, node.port, info.password, node.pid, node.dir)
        if node.pid and server.answers(probe, 0.5):
            return
        if node.pid and not server.is_alive(node.pid):
            break
        time.sleep(0.05)
    reason = server.log_tail(d / "node.log") or "it did not answer in time"
    if node.pid and server.is_alive(node.pid):
        os.kill(node.pid, signal.SIGKILL)
    raise LabkitError(f"cluster node on port {node.port} did not start: {reason}", f"see {d / 'node.log'}")


def stop_pids(pids: list[int], timeout: float = 15.0) -> None:
    """SIGTERM (a node saves its data, then exits), then SIGKILL whatever is left after ``timeout``."""
    pids = [p for p in pids if p and server.is_alive(p)]
    for p in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(p, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while any(server.is_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    for p in pids:
        if server.is_alive(p):
            with contextlib.suppress(ProcessLookupError):
                os.kill(p, signal.SIGKILL)


def wait_until(what: str, check, timeout: float, hint: str):
    """Poll ``check()`` until it returns something true; :class:`LabkitError` after ``timeout``."""
    deadline, last = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        try:
            got = check()
            if got:
                return got
        except (redis.RedisError, OSError) as exc:
            last = exc
        time.sleep(0.05)
    raise LabkitError(f"the local cluster did not {what} within {timeout:g} s"
                      + (f" ({str(last).splitlines()[0]})" if last else ""), hint)


def _form(info: ClusterInfo, roles: dict[int, int | None], timeout: float) -> None:
    """Turn freshly started, empty nodes into one cluster (see the module docstring)."""
    ports = [n.port for n in info.nodes]
    ids = {p: call(info, p, "CLUSTER", "MYID") for p in ports}
    for epoch, p in enumerate(ports, 1):
        call(info, p, "CLUSTER", "SET-CONFIG-EPOCH", epoch)
    masters = [p for p in ports if roles[p] is None]
    for p, (a, b) in zip(masters, slot_ranges(len(masters))):
        call(info, p, "CLUSTER", "ADDSLOTSRANGE", a, b)
    for p in ports[1:]:
        call(info, ports[0], "CLUSTER", "MEET", info.host, p)
    hint = f"see the node logs under {Path(info.nodes[0].dir).parent}"

    def all_known():
        for p in ports:
            known = parse_nodes(call(info, p, "CLUSTER", "NODES"))
            if len(known) < len(ports) or any(f & {"handshake", "noaddr"} for f in (k["flags"] for k in known)):
                return False
        return True
    wait_until("introduce its nodes to each other", all_known, timeout, hint)
    for p, master in roles.items():
        if master is not None:
            call(info, p, "CLUSTER", "REPLICATE", ids[master])
    wait_ok(info, timeout)


def wait_ok(info: ClusterInfo, timeout: float = 30.0) -> None:
    """Until every running node says ``cluster_state:ok``, agrees who serves each slot, and every replica is in sync."""
    live = [n.port for n in info.nodes if server.is_alive(n.pid)]

    def ok():
        views = []
        for p in live:
            if "cluster_state:ok" not in call(info, p, "CLUSTER", "INFO"):
                return False
            nodes = parse_nodes(call(info, p, "CLUSTER", "NODES"))
            views.append(sorted((n["port"], n["master"] or "", tuple(n["slots"])) for n in nodes
                                if not n["flags"] & {"fail", "handshake", "noaddr"}))
            repl = node_info(info, p, "replication")
            if repl.get("role") == "slave" and repl.get("master_link_status") != "up":
                return False
        return all(v == views[0] for v in views)
    wait_until("reach cluster_state:ok", ok, timeout, f"see the node logs under {Path(info.nodes[0].dir).parent}")


def read_info(h: Path | None = None) -> ClusterInfo | None:
    """The local cluster this lab formed (running or stopped), or ``None``."""
    h = h or home()
    with contextlib.suppress(OSError, ValueError, TypeError, KeyError):
        info = ClusterInfo.from_json(_paths(h)["conn"].read_text())
        info.home = str(h)  # where the file is, wherever it was written from
        return info
    return None


def running(info: ClusterInfo) -> list[Node]:
    return [n for n in info.nodes if server.is_alive(n.pid)]


def start(h: Path | None = None, shards: int | None = None, replicas: int | None = None, *,
          fresh: bool = False, binary: str | None = None, node_timeout_ms: int = NODE_TIMEOUT_MS,
          persist: bool = True, timeout: float = 60.0) -> tuple[ClusterInfo, bool]:
    """Start the local cluster (or restart the stopped one).  Returns ``(info, started)``.

    ``binary`` defaults to the embedded server's; ``persist`` keeps an append-only file per node.
    """
    h = h or home()
    if not (shards is None or 1 <= shards <= MAX_SHARDS) or not (replicas is None or 0 <= replicas <= MAX_REPLICAS):
        raise LabkitError(f"--shards {shards} / --replicas {replicas} out of range",
                          f"use 1..{MAX_SHARDS} shards and 0..{MAX_REPLICAS} replicas per shard")
    with server.locked(h, "cluster.lock"):
        old = read_info(h)
        if old and running(old):
            if fresh:
                raise LabkitError("the local cluster is running", "stop it first: python -m labkit cluster stop")
            if not _same_shape(old, shards, replicas):
                raise LabkitError(f"the local cluster is already running with {old.shards} shard(s) "
                                  f"x {old.replicas} replica(s)",
                                  "stop it, then start a new one with --fresh")
            return old, False
        if old and not fresh:
            return _restart(h, old, shards, replicas, timeout), True
        shards = DEFAULT_SHARDS if shards is None else shards
        replicas = DEFAULT_REPLICAS if replicas is None else replicas
        return _create(h, shards, replicas, binary, node_timeout_ms, persist, timeout), True


def _same_shape(old: ClusterInfo, shards: int | None, replicas: int | None) -> bool:
    """Whether ``--shards``/``--replicas`` (``None``: not given) describe the existing cluster."""
    return shards in (None, old.shards) and replicas in (None, old.replicas)


def _create(h: Path, shards: int, replicas: int, binary: str | None, node_timeout_ms: int,
            persist: bool, timeout: float) -> ClusterInfo:
    p = _paths(h)
    shutil.rmtree(p["dir"], ignore_errors=True)
    with contextlib.suppress(FileNotFoundError):
        p["conn"].unlink()
    binary = str(binary or server.server_binary())
    rng = random.Random()
    last: LabkitError | None = None
    for _ in range(3):  # a free port can be taken between our check and a node's bind
        ports = _free_ports(shards * (1 + replicas), rng)
        info = ClusterInfo("127.0.0.1", secrets.token_urlsafe(24), shards, replicas, node_timeout_ms, binary,
                           [Node(port, 0, str(p["dir"] / str(port))) for port in ports], str(h))
        try:
            for n in info.nodes:
                Path(n.dir).mkdir(mode=0o700, parents=True)
                server.write_private(Path(n.dir) / "node.conf",
                                      node_conf(n.port, info.password, Path(n.dir), node_timeout_ms, persist))
            for n in info.nodes:
                _launch(info, n)
            _form(info, layout(ports, shards, replicas), timeout)
        except (LabkitError, redis.RedisError) as exc:
            stop_pids([n.pid for n in info.nodes], timeout=5)
            shutil.rmtree(p["dir"], ignore_errors=True)
            last = exc if isinstance(exc, LabkitError) else LabkitError(
                f"could not form the local cluster: {exc}", "try again; see python -m labkit cluster status")
            if "did not start" not in str(exc):
                break
            continue
        _save(info)
        return info
    raise last


def _restart(h: Path, old: ClusterInfo, shards: int | None, replicas: int | None, timeout: float) -> ClusterInfo:
    if not _same_shape(old, shards, replicas):
        raise LabkitError(f"the stopped local cluster has {old.shards} shard(s) x {old.replicas} replica(s)",
                          "start it as it was (no --shards/--replicas), or add --fresh to form a new one "
                          "(its data is deleted)")
    try:
        for n in old.nodes:
            _launch(old, n)
        wait_ok(old, timeout)
    except (LabkitError, redis.RedisError) as exc:
        stop_pids([n.pid for n in old.nodes], timeout=5)
        raise LabkitError(f"the stopped local cluster did not come back: {exc}",
                          "add --fresh to form a new one (its data is deleted)") from None
    _save(old)
    return old


def stop(h: Path | None = None) -> bool:
    """Stop every node of the local cluster (each saves its data first).  Returns whether any was running."""
    h = h or home()
    with server.locked(h, "cluster.lock"):
        info = read_info(h)
        if info is None or not running(info):
            return False
        stop_pids([n.pid for n in info.nodes])
        return True


def status(info: ClusterInfo) -> dict:
    """The cluster as its running nodes see it: per node role, slots, keys, memory."""
    live = {n.port for n in running(info)}
    view: dict[int, dict] = {}
    state = "down"
    for port in sorted(live):
        with contextlib.suppress(redis.RedisError, OSError):
            for n in parse_nodes(call(info, port, "CLUSTER", "NODES")):
                view[n["port"]] = n
            state = "ok" if "cluster_state:ok" in call(info, port, "CLUSTER", "INFO") else "fail"
            break
    by_id = {n["id"]: n["port"] for n in view.values()}
    rows = []
    for node in info.nodes:
        v = view.get(node.port, {})
        row = {"port": node.port, "pid": node.pid, "running": node.port in live,
               "role": ("master" if "master" in v.get("flags", ()) else "replica" if v else "?"),
               "master_port": by_id.get(v.get("master")), "slots": v.get("slots", []),
               "failed": bool(v.get("flags", set()) & {"fail", "fail?"}), "keys": None, "memory": None}
        if row["running"]:
            with contextlib.suppress(redis.RedisError, OSError), contextlib.closing(client_of(info, node.port)) as c:
                row["keys"] = c.dbsize()
                row["memory"] = c.info("memory").get("used_memory_human")
        rows.append(row)
    return {"state": state if live else "stopped", "nodes": rows}


# ---------------------------------------------------------------- failures, staged

def _save(info: ClusterInfo) -> None:
    """Write ``info`` to its cluster.json (a restarted node's new PID must be there for ``stop``)."""
    server.write_private(_paths(Path(info.home))["conn"], info.to_json())


def masters(info: ClusterInfo) -> dict[int, list[int]]:
    """``{master port: [its replicas' ports]}`` as the running nodes see it now."""
    rows = status(info)["nodes"]
    out = {r["port"]: [] for r in rows if r["role"] == "master" and r["running"] and not r["failed"]}
    for r in rows:
        if r["role"] == "replica" and r["master_port"] in out:
            out[r["master_port"]].append(r["port"])
    return out


def master_for(info: ClusterInfo, key: str) -> int:
    """The port of the master that serves ``key`` now."""
    from redis.crc import key_slot
    slot = key_slot(key.encode())
    for r in status(info)["nodes"]:
        if r["role"] == "master" and not r["failed"] and any(a <= slot <= b for a, b in r["slots"]):
            return r["port"]
    raise LabkitError(f"no live master serves slot {slot} ({key})", "see python -m labkit cluster status")


def kill(info: ClusterInfo, port: int) -> None:
    """SIGKILL one node (a crash: nothing saved), and wait until it is gone."""
    node = info.node(port)
    if server.is_alive(node.pid):
        os.kill(node.pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while server.is_alive(node.pid) and time.monotonic() < deadline:
        time.sleep(0.02)


def cut_replication(info: ClusterInfo, master_port: int) -> list[int]:
    """Stop replication from ``master_port`` to its replicas: its writes from now on exist only on the master.

    (Each replica is given a wrong replication password and dropped by the master,
    so it keeps failing to reconnect.)  Then a failover loses those writes,
    as asynchronous replication can in production.  Returns the replicas' ports.
    """
    replicas = masters(info).get(master_port, [])
    for p in replicas:
        call(info, p, "CONFIG", "SET", "masterauth", "labkit-replication-cut-" + secrets.token_hex(4))
    call(info, master_port, "CLIENT", "KILL", "TYPE", "replica")
    for p in replicas:
        wait_until("cut replication", lambda p=p: node_info(info, p, "replication").get("master_link_status") == "down",
              10, "see python -m labkit cluster status")
    return replicas


def failover(info: ClusterInfo, master_port: int, *, takeover: bool = True, timeout: float = 30.0) -> int:
    """Promote a replica of ``master_port``; returns the new master's port once the cluster is ok again.

    With ``takeover`` the replica is told to take over at once (CLUSTER FAILOVER
    TAKEOVER: no vote, works with its master dead); else this waits for the
    cluster's own failover, which starts ``node_timeout_ms`` after the master stops answering.
    """
    rows = {r["port"]: r for r in status(info)["nodes"]}
    candidates = [p for p, r in rows.items() if r["role"] == "replica" and r["master_port"] == master_port
                  and r["running"]]
    if not candidates:
        raise LabkitError(f"no running replica follows the master on port {master_port}",
                          "start the cluster with --replicas 1 or more")
    for p in candidates:  # undo a cut_replication: they follow the new master from now on
        call(info, p, "CONFIG", "SET", "masterauth", info.password)
    chosen = candidates[0] if takeover else None
    if chosen:
        call(info, chosen, "CLUSTER", "FAILOVER", "TAKEOVER")

    def promoted():
        for p in ([chosen] if chosen else candidates):
            if node_info(info, p, "replication").get("role") == "master":
                return p
        return None
    new = wait_until("promote a replica", promoted, timeout, "see python -m labkit cluster status")
    wait_ok(info, timeout)
    return new


def restart_node(info: ClusterInfo, port: int, timeout: float = 30.0) -> None:
    """Start a stopped or killed node again with its own config; it rejoins (as a replica, if it lost its slots)."""
    node = info.node(port)
    if server.is_alive(node.pid):
        return
    _launch(info, node)
    _save(info)
    wait_ok(info, timeout)
