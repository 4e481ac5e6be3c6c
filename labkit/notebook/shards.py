"""Notebook 13's cluster: the learner's own (``REDIS_URL``), or one the notebook starts and stops itself.

``setup_cluster()`` is the notebook's one set-up call.  If ``REDIS_URL`` names a
Redis Cluster, that is used.  Otherwise (no ``REDIS_URL``, or one naming a single
server) a local cluster is formed with :mod:`labkit.servers.cluster` in a private
directory under ``$LABKIT_HOME/notebook-clusters/`` (never the learner's
``$LABKIT_HOME/cluster.json``), and
:meth:`ClusterLab.stop` stops exactly the nodes it started, by PID.

A master can be *killed* (SIGKILL by PID) only on a cluster labkit formed: the
notebook's own, or the learner's ``python -m labkit cluster start`` one.  On any
other cluster the failover is a planned one (``CLUSTER FAILOVER`` sent to a
replica): nothing the notebook did not start is ever killed.
"""

from __future__ import annotations

import atexit
import contextlib
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pandas as pd
import redis

from ..core.context import Context
from ..core.keyspace import list_partitions
from ..errors import LabkitError
from ..servers import cluster, connection
from ..servers.replies import parse_nodes, text
from ..servers import embedded as server
from .helpers import Lab, dataset, dataset_present, expected_hours

#: The notebook's own cluster calls a silent master failed after 2 s (the CLI's cluster: 5 s), so its
#: replica is promoted a few seconds after the kill.
NODE_TIMEOUT_MS = 2000


# ---------------------------------------------------------------- pure

def nodes_table(nodes_text: str) -> pd.DataFrame:
    """``CLUSTER NODES`` as a table: one row per node, masters first, with the slots each serves."""
    nodes = parse_nodes(nodes_text)
    by_id = {n["id"]: n for n in nodes}
    rows = []
    for n in nodes:
        flags = n["flags"]
        role = "master" if "master" in flags else "replica"
        if flags & {"fail", "fail?"}:
            role += " (failed)"
        master = by_id.get(n["master"]) if n["master"] else None
        rows.append({"node": n["address"], "role": role, "replica of": master["address"] if master else "",
                     "slots": cluster.format_ranges(n["slots"]),
                     "slot count": sum(b - a + 1 for a, b in n["slots"])})
    frame = pd.DataFrame(rows, columns=["node", "role", "replica of", "slots", "slot count"])
    order = sorted(range(len(rows)), key=lambda i: (rows[i]["role"] != "master", rows[i]["node"]))
    return frame.iloc[order].reset_index(drop=True)


def slot_ranges_of(nodes_text: str) -> list[tuple[int, int, str]]:
    """``(first slot, last slot, "host:port" of its master)`` for each range a live master serves."""
    out = []
    for n in parse_nodes(nodes_text):
        if "master" in n["flags"] and not n["flags"] & {"fail", "fail?"}:
            out += [(a, b, n["address"]) for a, b in n["slots"]]
    return sorted(out)


def owner(slot: int, ranges: list[tuple[int, int, str]]) -> str | None:
    """The node whose range holds ``slot`` (labkit's own lookup; exercise 12 asks for the same)."""
    return next((node for a, b, node in ranges if a <= slot <= b), None)


# ---------------------------------------------------------------- the lab

@dataclass
class OwnCluster:
    """A cluster this notebook started: its info, a client, and the private directory it lives in."""

    info: cluster.ClusterInfo
    home: Path
    r: object
    target: connection.Target

    @property
    def shards(self) -> int:
        return self.info.shards


@dataclass(repr=False)   # Lab's own repr: a table of what set-up gives
class ClusterLab(Lab):
    """:class:`~labkit.notebook.helpers.Lab` on a cluster.

    ``local`` is the cluster's :class:`~labkit.servers.cluster.ClusterInfo` when
    labkit formed it (so a master may be killed by PID), else ``None``;
    ``started`` the clusters this notebook started (stopped by :meth:`stop`);
    ``note_text`` says where the cluster came from.
    """

    local: cluster.ClusterInfo | None = None
    started: list[OwnCluster] = field(default_factory=list)
    note_text: str = ""
    killed: list[int] = field(default_factory=list)   # ports of nodes killed on the learner's local cluster

    @property
    def shards(self) -> int:
        """How many masters serve slots now."""
        return len({node for *_, node in slot_ranges_of(self.cluster_nodes())})

    def note(self) -> str:
        return self.note_text + ". " + super().note()

    def rows(self) -> list[tuple[str, str, str]]:
        node = self.r.get_primaries()[0]
        info = self.r.get_redis_connection(node).info("server")
        table = nodes_table(self.cluster_nodes())
        masters = int((table["role"] == "master").sum())
        rows = []
        rows.append(("lab.r", "the connection (RedisCluster)",
                     f"{connection.mask(self.target.url)} · {info.get('server_name', 'redis')} {info.get('redis_version')}"
                     f" · {masters} masters, {len(table) - masters} replicas"))
        where = f"namespace {self.keys.namespace!r}" if self.keys.namespace else "the course's own key names"
        rows += [
            ("lab.keys", "key names", f"{where}: {self.keys.partition_prefix}YYYYMMDD, {self.keys.averages}, "
                                      f"{self.keys.aggregating_state}, …"),
            ("lab.data", "the dataset (LABKIT_DAYS)", f"{self.data.days:g} days, {self.data.count:,} readings"),
            ("lab.names", "its partitions", ", ".join(self.names)),
        ]
        return rows

    def node_client(self, address: str) -> redis.Redis:
        """A plain client of one node, ``host:port`` (same password as the cluster's URL); close it after use."""
        host, port = address.rsplit(":", 1)
        return self._node(host, int(port))

    def where(self, names: list[str]) -> dict[str, str]:
        """``{key: "host:port"}``: the master found holding each key (``EXISTS`` on every master, slots not used)."""
        found = {}
        for _, row in nodes_table(self.cluster_nodes()).iterrows():
            if row["role"] != "master":
                continue
            with contextlib.closing(self.node_client(row["node"])) as c:
                for name in names:
                    with contextlib.suppress(redis.ResponseError):   # MOVED: not this node's slot
                        if c.exists(name):
                            found[name] = row["node"]
        return found

    def cluster_nodes(self) -> str:
        """``CLUSTER NODES`` as text, from a live master (the reply a plain client gets, unparsed)."""
        for node in self.r.get_primaries():
            with contextlib.suppress(redis.RedisError):
                return text(self.r.get_redis_connection(node).execute_command("CLUSTER", "NODES"))
        raise LabkitError("no master of the cluster answered CLUSTER NODES",
                          "see python -m labkit cluster status, or restart the notebook")

    def nodes(self) -> pd.DataFrame:
        """Every node: role, which master a replica follows, the slots a master serves, keys and memory."""
        table = nodes_table(self.cluster_nodes())
        keys, memory = [], []
        for addr in table["node"]:
            host, port = addr.rsplit(":", 1)
            try:
                with contextlib.closing(self._node(host, int(port))) as c:
                    keys.append(c.dbsize())
                    memory.append(round(c.info("memory")["used_memory"] / 1e6, 2))
            except (redis.RedisError, OSError):
                keys.append(None)
                memory.append(None)
        table["keys"], table["used_memory (MB)"] = keys, memory
        return table

    def _node(self, host: str, port: int) -> redis.Redis:
        """A plain client of one node (same password and options as ``REDIS_URL``)."""
        parts = urlsplit(self.target.url)
        return redis.Redis(host=host, port=port, username=parts.username or None, password=parts.password,
                           ssl=parts.scheme == "rediss", socket_timeout=5, socket_connect_timeout=2)

    def start_cluster(self, shards: int, replicas: int = 0) -> OwnCluster:
        """Start another private cluster (e.g. one node, for a comparison); :meth:`stop` stops it."""
        own = _start_own(shards, replicas)
        self.started.append(own)
        return own

    # ------------------------------------------------------------ failover

    def fail_master_of(self, key: str) -> "Failover":
        """Make the master that serves ``key`` fail, now; its replica takes over (watch :class:`Failover`).

        On a cluster labkit formed the master is killed (SIGKILL by PID: a crash,
        nothing saved) and the cluster promotes its replica by itself after
        ``cluster-node-timeout``.  On any other cluster the replica is told to
        take over (``CLUSTER FAILOVER``): a planned failover, nothing killed.
        """
        node = self.r.get_node_from_key(key)
        old = f"{node.host}:{node.port}"
        table = nodes_table(self.cluster_nodes())
        replicas = [row["node"] for _, row in table.iterrows() if row["role"] == "replica" and row["replica of"] == old]
        if not replicas:
            raise LabkitError(f"the master {old} has no replica, so nothing could take over its slots",
                              "start a cluster with --replicas 1 (the notebook's own cluster has one)")
        how = "killed"
        watch = [n for n in table["node"] if n != old]
        if self.local is not None:
            cluster.kill(self.local, node.port)
            if all(o.info is not self.local for o in self.started):   # the learner's cluster: restarted at the end
                self.killed.append(node.port)
        else:
            how = "planned"
            host, port = replicas[0].rsplit(":", 1)
            with contextlib.closing(self._node(host, int(port))) as c:
                c.execute_command("CLUSTER", "FAILOVER")
        return Failover(self, key, old, replicas, how, watch)

    def restart_failed(self) -> list[int]:
        """Start the killed nodes again: each rejoins as a replica of the master that replaced it."""
        info = self.local
        back = []
        if info is None:
            return back
        for n in info.nodes:
            if not server.is_alive(n.pid):
                cluster.restart_node(info, n.port)
                back.append(n.port)
        self.killed = [p for p in self.killed if p not in back]
        return back

    # ------------------------------------------------------------ the end

    def stop(self) -> list[str]:
        """Stop every cluster this notebook started (by PID) and delete its directory; restart a node it
        killed on the learner's cluster.  Returns what it did, one line each."""
        done = []
        if self.killed and self.local is not None:
            done += [f"restarted node {p} of your cluster" for p in self.restart_failed()]
        with contextlib.suppress(Exception):
            self.r.close()
        for own in self.started:
            with contextlib.suppress(Exception):
                own.r.close()
            _stop_own(own)
            done.append(f"stopped the {own.info.shards}-master cluster it started "
                        f"({len(own.info.nodes)} node{'s' * (len(own.info.nodes) != 1)})")
        return done

    def still_running(self) -> list[int]:
        """PIDs of nodes this notebook started that are still alive (none after :meth:`stop`)."""
        return [n.pid for own in self.started for n in own.info.nodes if server.is_alive(n.pid)]


class Failover:
    """A master made to fail by :meth:`ClusterLab.fail_master_of`.

    A thread watches the other nodes (each through its own plain client, so
    nothing is shared with the producer or the consumers) until a former replica
    serves the failed master's slot and every slot is served again; :meth:`wait`
    joins it.
    """

    def __init__(self, lab: ClusterLab, key: str, old: str, replicas: list[str], how: str, others: list[str],
                 timeout: float = 60.0):
        self.lab, self.key, self.old, self.replicas, self.how = lab, key, old, replicas, how
        self.slot = lab.r.keyslot(key)
        self.new: str | None = None
        self.seconds: float | None = None
        self._others = others
        self._t0 = time.monotonic()
        self._thread = threading.Thread(target=self._watch, args=(timeout,), daemon=True)
        self._thread.start()

    def _view(self) -> str | None:
        for addr in self._others:
            host, port = addr.rsplit(":", 1)
            with contextlib.suppress(redis.RedisError, OSError), contextlib.closing(self.lab._node(host, int(port))) as c:
                return text(c.execute_command("CLUSTER", "NODES"))
        return None

    def _watch(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            view = self._view()
            if view:
                ranges = slot_ranges_of(view)
                now = owner(self.slot, ranges)
                if now in self.replicas and sum(b - a + 1 for a, b, _ in ranges) == cluster.SLOTS:
                    self.new, self.seconds = now, time.monotonic() - self._t0
                    return
            time.sleep(0.05)

    def wait(self, timeout: float = 60.0) -> "Failover":
        """Until a replica has taken over (:class:`LabkitError` if none has within the watcher's time)."""
        self._thread.join(timeout)
        if self.new is None:
            raise LabkitError(f"no replica of {self.old} took over its slots in time",
                              "see python -m labkit cluster status")
        connection.refresh(self.lab.r)
        return self

    def __repr__(self) -> str:
        what = "killed (SIGKILL)" if self.how == "killed" else "handed over (CLUSTER FAILOVER on its replica)"
        if self.new is None:
            return f"master {self.old} {what}; waiting for a replica to take over"
        return f"master {self.old} {what}; its replica {self.new} serves its slots {self.seconds:.1f} s later"


#: Where the notebook's own clusters live: ``$LABKIT_HOME/notebook-clusters/<random>/`` (each a cluster home).
OWN_DIR = "notebook-clusters"


def stop_leftovers(labkit_home: Path) -> int:
    """Stop every cluster a notebook started under ``labkit_home`` and left running (a kernel killed before its
    ``stop()``); returns how many nodes were still alive.  Only PIDs from those clusters' own files are touched."""
    alive = 0
    for d in sorted((Path(labkit_home) / OWN_DIR).glob("*")):
        info = cluster.read_info(d)
        if info:
            pids = [n.pid for n in info.nodes if server.is_alive(n.pid)]
            alive += len(pids)
            cluster.stop_pids(pids, timeout=5)
        shutil.rmtree(d, ignore_errors=True)
    return alive


def _start_own(shards: int, replicas: int) -> OwnCluster:
    base = server.home() / OWN_DIR
    base.mkdir(parents=True, exist_ok=True)
    home = Path(tempfile.mkdtemp(prefix="13-", dir=base))
    try:
        info, _ = cluster.start(home, shards, replicas, fresh=True, persist=False, node_timeout_ms=NODE_TIMEOUT_MS)
    except BaseException:
        shutil.rmtree(home, ignore_errors=True)
        raise
    own = OwnCluster(info, home, None, connection.Target(info.url, embedded=False))
    atexit.register(_stop_own, own)       # a kernel that exits without stop() still stops its nodes
    own.r = connection.connect(own.target)
    return own


def _stop_own(own: OwnCluster) -> None:
    cluster.stop_pids([n.pid for n in own.info.nodes], timeout=5)
    shutil.rmtree(own.home, ignore_errors=True)


def _local_info_for(url: str) -> cluster.ClusterInfo | None:
    """The learner's local cluster (``$LABKIT_HOME/cluster.json``) if ``url`` names one of its nodes."""
    info = cluster.read_info()
    port = urlsplit(url).port
    if info and port in [n.port for n in info.nodes] and urlsplit(url).hostname in ("127.0.0.1", "localhost"):
        return info
    return None


def _can_fail_over(r) -> bool:
    """At least two masters, and a replica for each (what the notebook needs)."""
    node = r.get_primaries()[0]
    table = nodes_table(text(r.get_redis_connection(node).execute_command("CLUSTER", "NODES")))
    masters = set(table.loc[table["role"] == "master", "node"])
    followed = set(table.loc[table["role"] == "replica", "replica of"])
    return len(masters) >= 2 and masters <= followed


def setup_cluster(shards: int = 3, replicas: int = 1, days: float | None = None) -> ClusterLab:
    """Notebook 13's one set-up call: a cluster (``REDIS_URL``'s, or one it starts), the key names, the dataset.

    Nothing is produced here: the notebook produces the dataset itself and measures it.  A class learner
    (:func:`labkit.classroom.fence.in_class`) never fails the shared cluster over: they get a cluster of their own.
    """
    from ..classroom.fence import in_class
    started: list[OwnCluster] = []
    target = connection.given()
    r, local = None, None
    if target is not None:
        r = connection.connect(target)
        if not connection.is_cluster(r):
            r.close()
            r, text = None, "REDIS_URL names a single server, not a cluster, so this notebook started its own"
        elif in_class():
            r.close()
            r, text = None, ("in a class your Redis user may not fail the shared cluster's masters over, "
                             "so this notebook started a cluster of your own")
        elif not _can_fail_over(r):
            r.close()
            r, text = None, ("REDIS_URL names a cluster with fewer than 2 masters, or a master without a replica, "
                             "so this notebook started its own (it spreads partitions and fails a master over)")
        else:
            local = _local_info_for(target.url)
            text = (f"REDIS_URL names a Redis Cluster ({connection.mask(target.url)})"
                    + (": labkit's local cluster" if local else ""))
    else:
        text = "no REDIS_URL, so this notebook started its own cluster"
    if r is None:
        own = _start_own(shards, replicas)
        started.append(own)
        r, target, local = own.r, own.target, own.info
        text += f" ({shards} masters × {replicas} replica{'s' * (replicas != 1)}, in {own.home}; stopped at the end)"
    keys = Context.of(target, r).keys      # on a cluster the aggregating state is hash-tagged
    data = dataset(days)
    names = data.partitions(keys)
    others = [p for p in list_partitions(r, keys) if p not in names]
    return ClusterLab(target, r, keys, data, names, expected_hours(data), dataset_present(r, data, keys), False,
                      others, local=local, started=started, note_text=text)
