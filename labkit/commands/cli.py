"""``python -m labkit …``: the terminal front end (a thin shell over the library)."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time

import redis

from .. import progressbar
from ..core.averages import DEFAULT_MAXLEN
from ..core.context import Context
from ..core.partition import DEFAULT_RETENTION_DAYS, is_partition
from ..errors import LabkitError
from ..log import LogLine, TerminalSink
from ..servers import connection
from ..servers import embedded as server

PROG = "python -m labkit"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, not argparse's usage dump
        raise LabkitError(message, f"see {self.prog} --help")


def _err(text: str) -> None:
    print(f"labkit: error: {text}", file=sys.stderr)


# ---------------------------------------------------------------- commands

def cmd_server(args) -> int:
    out = TerminalSink()
    if args.action == "start":
        if connection.given():
            out(LogLine("", "note: REDIS_URL is set, so labkit uses that server, not this one"))
        info, started = server.start()
        out(LogLine("", f"{'started' if started else 'already running'}: embedded server "
                        f"{connection.mask(info.url)} (pid {info.pid}, data in {info.data_dir})"))
    elif args.action == "stop":
        out(LogLine("", "stopped the embedded server" if server.stop() else "the embedded server is not running"))
    elif args.action == "status":
        t = connection.given()
        info = server.read_info()
        emb = (f"running at {connection.mask(info.url)}, pid {info.pid}, data in {info.data_dir}"
               if info else "not running")
        out(LogLine("", f"embedded server: {emb}"))
        out(LogLine("", f"labkit uses: {t if t else 'the embedded server'}"))
        if t or info:
            r = connection.connect(t)
            if connection.is_cluster(r):
                out(LogLine("", _cluster_summary(r)))
            else:
                i = r.info()
                out(LogLine("", f"server: redis_version {i.get('redis_version')}"
                                + (f" (valkey {i['valkey_version']})" if "valkey_version" in i else "")
                                + f", {i.get('used_memory_human')} used, {r.dbsize()} keys"))
        return 0 if (info or t) else 1
    elif args.action == "url":
        url = connection.cli_url(connection.target().url)
        print(url if args.reveal else connection.mask(url))
    return 0


def _cluster_summary(r) -> str:
    """One line for a cluster: version, and memory and keys summed over its masters."""
    infos = [r.get_redis_connection(n).info() for n in r.get_primaries()]
    version = infos[0].get("redis_version") if infos else "?"
    used = sum(int(i.get("used_memory", 0)) for i in infos)
    keys = sum(int(i.get("db0", {}).get("keys", 0)) if isinstance(i.get("db0"), dict) else 0 for i in infos)
    return (f"server: Redis Cluster, redis_version {version}, {len(infos)} masters, "
            f"{used / 2**20:.2f}M used, {keys} keys (summed over the masters)")


def cmd_cluster(args) -> int:
    from ..servers import cluster
    out = TerminalSink()
    if args.action != "start" and (args.shards is not None or args.replicas is not None or args.fresh):
        raise LabkitError("--shards, --replicas and --fresh go with cluster start", "drop them")
    show = (lambda url: url) if args.reveal else connection.mask
    if args.action == "start":
        info, started = cluster.start(shards=args.shards, replicas=args.replicas, fresh=args.fresh)
        ports = sorted(n.port for n in info.nodes)
        out(LogLine("", f"{'started' if started else 'already running'}: local Redis Cluster, {info.shards} "
                        f"shard(s) x {info.replicas} replica(s), {len(info.nodes)} node(s) on 127.0.0.1 "
                        f"ports {', '.join(map(str, ports))}"))
        out(LogLine("", f"use it with: export REDIS_URL='{show(info.url)}'"
                        + ("" if args.reveal else "   (python -m labkit cluster url --reveal shows the password)")))
        return 0
    info = cluster.read_info()
    if args.action == "stop":
        out(LogLine("", "stopped the local cluster" if cluster.stop() else "the local cluster is not running"))
        return 0
    if info is None:
        if args.action == "url":
            raise LabkitError("there is no local cluster", "start one: python -m labkit cluster start")
        out(LogLine("", "local cluster: none (start one: python -m labkit cluster start)"))
        return 1
    if args.action == "url":
        print(show(info.url))
        return 0
    st = cluster.status(info)
    out(LogLine("", f"local cluster: {info.shards} shard(s) x {info.replicas} replica(s), cluster_state "
                    f"{st['state']}, url {show(info.url)}"))
    for n in st["nodes"]:
        if not n["running"]:
            out(LogLine("", f"  127.0.0.1:{n['port']}  down (pid {n['pid']} not running)"))
            continue
        role = (f"master  slots {cluster.format_ranges(n['slots'])}" if n["role"] == "master"
                else f"replica of {n['master_port']}" if n["role"] == "replica" else "role unknown")
        out(LogLine("", f"  127.0.0.1:{n['port']}  {role}{'  FAILED' if n['failed'] else ''}  pid {n['pid']}  "
                        f"{n['keys']} keys  {n['memory']} used"))
    using = connection.given()
    ours = using and using.address in {f"{info.host}:{n.port}" for n in info.nodes}
    out(LogLine("", "labkit uses: " + ("this cluster (REDIS_URL)" if ours else
                                       f"{connection.mask(using.url)} (REDIS_URL)" if using else "the embedded server "
                                       "(set REDIS_URL to use the cluster)")))
    return 0 if st["state"] == "ok" else 1


def cmd_produce(args) -> int:
    from ..core import producer     # here, not at the top: numpy is not for every command (verify starts fast)
    if args.live:
        return _produce_live(args)
    if args.rate is not None or args.duration is not None:
        raise LabkitError("--rate and --duration go with --live", "add --live, or drop them")
    args.start = args.start or producer.DEFAULT_START
    args.days = 10 if args.days is None else args.days
    args.interval = 1 if args.interval is None else args.interval
    data = producer.Dataset(producer.parse_start(args.start), args.days, _interval_ms(args.interval), args.seed)
    ctx = Context.open()
    update, close = progressbar.bar(data.count, "producing") if not args.no_progress else (None, lambda: None)
    try:
        res = producer.produce(ctx.r, data, ctx.keys, TerminalSink(), args.retention_days, update)
    finally:
        close()
    print(f"Wrote {res['readings']:,} readings to {res['partitions']} partitions in {res['seconds']:.2f} s "
          f"({res['rate']:,.0f} readings/s).", file=sys.stderr)
    return 0


def _produce_live(args) -> int:
    from ..core.live import run_live
    given = [f for f in ("start", "days", "interval") if getattr(args, f) is not None]
    if given:
        raise LabkitError(f"--{given[0]} does not apply to --live (readings are stamped with the current time)",
                          "drop it, or drop --live to produce a dataset")
    ctx = Context.open()
    try:
        res = run_live(ctx.r, ctx.keys, 1.0 if args.rate is None else args.rate, args.duration, TerminalSink(),
                       seed=args.seed, retention_days=args.retention_days)
    except KeyboardInterrupt as exc:
        print("live: stopped.", file=sys.stderr)
        return getattr(exc, "exit_code", 130)
    print(f"live: wrote {res['readings']:,} readings.", file=sys.stderr)
    return 0


def _interval_ms(seconds: float) -> int:
    ms = seconds * 1000
    if not (ms == ms and 1 <= ms <= 86_400_000 and abs(ms - round(ms)) < 1e-6):
        raise LabkitError(f"--interval {seconds:g} is out of range",
                          "use seconds between 0.001 and 86400 in whole milliseconds, e.g. --interval 1")
    return round(ms)


def cmd_consume(args) -> int:
    from ..core.runner import start_consumers
    if args.idle_exit is not None and not args.idle_exit > 0:
        raise LabkitError(f"--idle-exit {args.idle_exit} must be above 0", "e.g. --idle-exit 2")
    partition = None if args.partition is None else args.partition.strip()  # tolerate shell-quoting spaces
    if not 0 <= args.reconnect_seconds <= 86_400:
        raise LabkitError(f"--reconnect-seconds {args.reconnect_seconds:g} is out of range", "use 0 to 86400")
    with Context.open() as ctx:
        handle = start_consumers(partition, averages_maxlen=args.averages_maxlen,
                                 reconnect_s=args.reconnect_seconds, context=ctx)
    interrupted = False
    try:
        while handle.running:
            if args.idle_exit and handle.idle_for() >= args.idle_exit:
                break
            time.sleep(0.05)
    except KeyboardInterrupt as exc:
        interrupted = getattr(exc, "exit_code", 130)
    handle.stop()
    if handle.error:
        raise handle.error if isinstance(handle.error, LabkitError) else LabkitError(
            f"a consumer stopped: {handle.error}", "see the lines above")
    losses = handle.status()["losses"]
    if losses and not interrupted:
        raise LabkitError(f"the aggregating consumer named {losses} loss(es) of readings: partitions, their tails "
                          f"or hours (above, and in {handle.keys.deadletter})", "python -m labkit verify names each hour lost; "
                          "produce the days again and start from a partition, or acknowledge them with verify --accept")
    return interrupted or 0


def cmd_verify(args) -> int:
    from ..core import eviction, progress
    from ..core.audit import ACKNOWLEDGEABLE, check_hours   # not truth.check: pandas would be most of its time
    ctx = Context.open()
    keys, r = ctx.keys, ctx.r
    for name in args.accept:
        if name != keys.averages and not is_partition(name, keys.partition_prefix):
            raise LabkitError(f"--accept {name}: that names neither a partition nor {keys.averages}",
                              f"give the source a problem line names, e.g. --accept {keys.partition_prefix}20250101")
    eviction.check(r, TerminalSink(), "verify")
    if not r.exists(keys.averages) and not r.exists(keys.aggregating_state):
        raise LabkitError(f"nothing to verify: {keys.averages} is empty and no consumer has run in this namespace",
                          f"run python -m labkit consume {keys.partition_prefix}YYYYMMDD first")
    rep, _, _ = check_hours(r, keys, accept=args.accept)
    for name in sorted(set(args.accept) - {p.source for p in rep.accepted}):
        print(f"verify: --accept {name}: it has no loss to acknowledge")
    shown = 40
    for problem in rep.problems[:shown]:
        print(problem.line())
    if len(rep.problems) > shown:
        print(f"… and {len(rep.problems) - shown} more problem(s)")
    for problem in rep.accepted[:shown]:
        print(f"acknowledged {problem.line()}")
    for note in rep.notes:
        print(note.line())
    print(f"verify: {keys.averages}: {rep.summary()}")
    kinds = sorted({p.kind for p in rep.problems})
    progress.record(r, keys, "verify", "last", "ok" if rep.ok else "failed", hours=rep.compared,
                    problems=len(rep.problems), kinds=kinds)
    if not rep.compared and not rep.problems:
        raise LabkitError(f"nothing to verify: {keys.averages} is empty" + (
                          ", and the only hour so far is still open" if rep.open else ""),
                          "wait for an hour to close (see above), then verify again" if rep.open else
                          f"run python -m labkit consume {keys.partition_prefix}YYYYMMDD first")
    if rep.problems:
        sources = sorted({p.source for p in rep.problems if p.kind in ACKNOWLEDGEABLE})
        hint = (f"; once you have read why, acknowledge a named loss with --accept {sources[0]}" if sources else "")
        print(f"verify: failed: {len(rep.problems)} hour(s) not published once with the exact value "
              f"({', '.join(kinds)}){hint}", file=sys.stderr)
    return 0 if rep.ok else 1


def cmd_demo(args) -> int:
    from .demo import run_demo
    return run_demo(days=args.days, plot_path=args.plot, quiet=args.quiet)


def cmd_lab(args) -> int:
    from .lab import run_lab
    return run_lab(port=args.port, browser=not args.no_browser)


def cmd_bench(args) -> int:
    from .bench import run_bench
    return run_bench(days=args.days, baseline_readings=args.baseline_readings)


def cmd_chaos(args) -> int:
    from .chaos import run_chaos
    if args.kills < 1 or not args.days > 0:
        raise LabkitError("--kills and --days must be above 0", "e.g. --days 2 --kills 10")
    return 0 if run_chaos(args.days, args.kills, args.seed)["ok"] else 1


def cmd_soak(args) -> int:
    from .soak import run_soak
    if not (0 < args.rate <= 100_000 and 5 < args.duration <= 3600):
        raise LabkitError("--rate or --duration out of range", "rate 1..100000 readings/s, duration 6..3600 s")
    return 0 if run_soak(args.rate, args.duration)["ok"] else 1


# ---------------------------------------------------------------- parser

def _port(text: str) -> int:
    """A TCP port number (argparse type)."""
    try:
        port = int(text)
    except ValueError:
        port = 0
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port: use 1 to 65535")
    return port


def _eviction_flag(s: argparse.ArgumentParser) -> None:
    s.add_argument("--allow-eviction", action="store_true",
                   help="go on (with a warning) although the server's maxmemory-policy evicts keys "
                        "(same as LABKIT_ALLOW_EVICTION=1)")

def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog=PROG, description="Redis Streams lab kit: partitioned streams, hourly averages, crash-safe consumers.")
    sub = p.add_subparsers(dest="command", parser_class=_Parser, metavar="COMMAND")

    s = sub.add_parser("server", help="start, stop or inspect the embedded server")
    s.add_argument("action", choices=["start", "stop", "status", "url"])
    s.add_argument("--reveal", action="store_true", help="with url: print the password instead of ***")
    s.set_defaults(func=cmd_server)

    s = sub.add_parser("cluster", help="start, stop or inspect a local Redis Cluster (use it through REDIS_URL)")
    s.add_argument("action", choices=["start", "stop", "status", "url"])
    s.add_argument("--shards", type=int, default=None, help="with start: masters (default 3)")
    s.add_argument("--replicas", type=int, default=None, help="with start: replicas per master (default 1)")
    s.add_argument("--fresh", action="store_true", help="with start: delete the stopped cluster, form a new one")
    s.add_argument("--reveal", action="store_true", help="print the password instead of ***")
    s.set_defaults(func=cmd_cluster)

    s = sub.add_parser("produce", help="write the temperature dataset into date partitions")
    s.add_argument("--start", default=None, help="first reading, UTC (default 2025-01-01)")
    s.add_argument("--days", type=float, default=None, help="days of readings (default 10)")
    s.add_argument("--interval", type=float, default=None, help="seconds between readings (default 1)")
    s.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    s.add_argument("--retention-days", type=float, default=DEFAULT_RETENTION_DAYS,
                   help="each partition expires this long after its day ends (default 2; see docs/design.md, Expiry)")
    s.add_argument("--no-progress", action="store_true", help="no progress bar")
    s.add_argument("--live", action="store_true", help="write real-time readings into today's partition until stopped")
    s.add_argument("--rate", type=float, default=None, help="with --live: readings per second (default 1)")
    s.add_argument("--duration", type=float, default=None, help="with --live: stop after this many seconds")
    _eviction_flag(s)
    s.set_defaults(func=cmd_produce)

    s = sub.add_parser("consume", help="run the aggregating and averages consumers")
    s.add_argument("partition", nargs="?", help="start here (resets state); omit to resume from saved state")
    s.add_argument("--averages-maxlen", type=int, default=DEFAULT_MAXLEN, help="cap temps:averages (~N; 0 = uncapped)")
    s.add_argument("--idle-exit", type=float, default=None, metavar="SECONDS",
                   help="exit once both consumers had nothing to do for SECONDS")
    s.add_argument("--reconnect-seconds", type=float, default=connection.RECONNECT_S, metavar="SECONDS",
                   help="if Redis goes away, keep trying this long, then exit with state intact (default %(default)g)")
    _eviction_flag(s)
    s.set_defaults(func=cmd_consume)

    s = sub.add_parser("verify", help="audit temps:averages: every promised hour published once, exact")
    s.add_argument("--accept", action="append", default=[], metavar="NAME",
                   help="acknowledge the named problems of a partition (or of temps:averages) you have read; "
                        "repeatable")
    _eviction_flag(s)
    s.set_defaults(func=cmd_verify)

    s = sub.add_parser("demo", help="the main job: produce, consume, verify every hour, plot")
    s.add_argument("--days", type=float, default=10)
    s.add_argument("--plot", default="labkit-demo.png", help="where to save the plot (PNG)")
    s.add_argument("--quiet", action="store_true", help="do not print the consumers' lines")
    s.set_defaults(func=cmd_demo)

    s = sub.add_parser("lab", help="open JupyterLab on the notebooks (127.0.0.1, --allow-root when root); prints the URL")
    s.add_argument("--port", type=_port, default=None, help="port to listen on (default: a free one)")
    s.add_argument("--no-browser", action="store_true", help="do not open a browser, only print the URL")
    s.set_defaults(func=cmd_lab)

    s = sub.add_parser("bench", help="measure produce and aggregate rates against the course's pattern")
    s.add_argument("--days", type=float, default=10)
    s.add_argument("--baseline-readings", type=int, default=20_000,
                   help="readings the one-message-per-call baseline consumes (default 20000)")
    s.set_defaults(func=cmd_bench)
    s = sub.add_parser("chaos", help="kill -9 consume at random moments, then verify nothing was lost or repeated")
    s.add_argument("--days", type=float, default=10)
    s.add_argument("--kills", type=int, default=30)
    s.add_argument("--seed", type=int, default=None, help="random seed for the kill moments (default: time)")
    s.set_defaults(func=cmd_chaos)

    s = sub.add_parser("soak", help="live mode at a high rate with both consumers: lag, latency, nothing lost")
    s.add_argument("--rate", type=float, default=1000)
    s.add_argument("--duration", type=float, default=15)
    s.set_defaults(func=cmd_soak)

    from .classroom import add_parsers as add_class_parsers
    add_class_parsers(sub)
    return p


class Terminated(KeyboardInterrupt):
    """SIGTERM: stop cleanly, as on Ctrl+C, but exit 143 (128 + 15) as a terminated process does."""

    exit_code = 143


def _on_sigterm(signum, frame):
    raise Terminated


def main(argv: list[str] | None = None) -> int:
    signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        args = build_parser().parse_args(argv)
        if not getattr(args, "func", None):
            build_parser().print_help()
            return 2
        if getattr(args, "allow_eviction", False):
            from ..core.eviction import ENV
            os.environ[ENV] = "1"       # read by every check, in this process and the ones it starts
        return args.func(args)
    except LabkitError as exc:
        _err(str(exc.with_flag("--" + exc.param.replace("_", "-")) if exc.param else exc))
        return exc.exit_code
    except (redis.RedisError, redis.exceptions.RedisClusterException) as exc:
        _err(str(connection.explain(exc, connection.current_target())))
        return 1
    except KeyboardInterrupt as exc:
        _err("terminated" if isinstance(exc, Terminated) else "interrupted")
        return getattr(exc, "exit_code", 130)
    except BrokenPipeError:
        return 1
    except Exception as exc:  # a bug: still one line, with the way to see more
        if os.environ.get("LABKIT_DEBUG"):
            raise
        _err(f"unexpected {type(exc).__name__}: {exc} (hint: rerun with LABKIT_DEBUG=1 for the traceback "
             "and report it)")
        return 1
