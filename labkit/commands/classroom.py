"""``python -m labkit cohort …`` and ``python -m labkit class …``: the instructor's commands (see docs/class.md)."""

from __future__ import annotations

import json
import sys

import redis

from ..errors import LabkitError
from ..log import LogLine, TerminalSink
from ..servers import connection


def cmd_cohort(args) -> int:
    from ..classroom import cohort
    if args.action == "simulate":
        if args.name:
            raise LabkitError(f"cohort simulate takes no name ({args.name!r})", "e.g. cohort simulate --learners 10 --days 2")
        from ..classroom.simulate import run_simulation
        return run_simulation(args.learners, args.days)
    if args.action != "reset" and (args.name or args.yes or args.force):
        raise LabkitError("a name, --yes and --force go with cohort reset", "e.g. cohort reset alice --yes")
    r = connection.connect()
    try:
        if args.action == "reset":
            return _reset(r, args)
        rows = cohort.read_cohort(r)
    except redis.exceptions.NoPermissionError as exc:
        raise LabkitError(f"the cohort needs the class Redis as an admin user ({str(exc).splitlines()[0]})",
                          "run it where the class runs with REDIS_URL unset, or with the admin URL "
                          "(LABKIT_CLASS_REDIS_URL), never a learner's") from None
    if args.json:
        print(json.dumps([row.as_json() for row in rows], indent=1))
    else:
        print(cohort.table(rows) if rows else "no learners on this server yet (python -m labkit class start, or the "
                                                "spawn hook, creates them)")
    return 0


def _reset(r, args) -> int:
    from ..classroom import cohort, fence
    if not args.name:
        raise LabkitError("cohort reset needs a learner's name", "e.g. python -m labkit cohort reset alice")
    ns = args.name.strip()
    if not fence.is_learner_namespace(ns) and ns not in fence.RESERVED:
        raise LabkitError(f"{ns!r} is not a learner namespace", "python -m labkit cohort lists them")
    cohort.check_learner(r, ns)
    names = cohort.learner_names(r, ns)
    if not names:
        TerminalSink()(LogLine("", f"{ns} has no keys on this server: nothing to reset"))
        return 0
    if not args.yes:
        if not sys.stdin.isatty():
            raise LabkitError(f"cohort reset {ns} would delete {len(names)} keys", "add --yes to confirm")
        if input(f"delete {len(names)} keys of {ns}? [y/N] ").strip().lower() not in ("y", "yes"):
            print("nothing deleted")
            return 1
    n = cohort.reset(r, ns, force=args.force)
    TerminalSink()(LogLine("", f"reset {ns}: deleted {n} keys (their Redis user stays)"))
    return 0


def cmd_class(args) -> int:
    from ..classroom import local
    out = TerminalSink()
    if args.action != "start" and (args.learners or args.port is not None or args.password):
        raise LabkitError("--learners, --port and --password go with class start", "drop them")
    if args.action == "start":
        if not args.learners:
            raise LabkitError("class start needs its learners", "e.g. python -m labkit class start --learners alice,bob")
        if args.port is not None and not 0 < args.port < 65536:
            raise LabkitError(f"--port {args.port} is out of range", "e.g. --port 8000")
        info, started = local.start(local.parse_learners(args.learners), args.port, args.password)
        out(LogLine("", f"{'started' if started else 'already running'}: the class hub at {info['url']} "
                        f"(learners: {', '.join(info['learners'])}; Redis {info['redis']})"))
        out(LogLine("", f"learners open {info['url']}, log in with their name and the class password: "
                        f"{info['password']}"))
        out(LogLine("", f"instructor: python -m labkit cohort; API token and PIDs in {local.info_path()}; "
                        "python -m labkit class stop ends it"))
        return 0
    if args.action == "stop":
        pids = local.stop()
        out(LogLine("", f"stopped the class (pids {', '.join(map(str, pids))})" if pids else "no class is running"))
        return 0
    st = local.status()
    if st is None:
        out(LogLine("", "no class is running (python -m labkit class start --learners alice,bob)"))
        return 1
    out(LogLine("", f"class hub {st['url']}: {'answering' if st['answers'] else 'NOT answering'}; "
                    + ", ".join(f"{k} pid {st['pids'][k]} {'running' if ok else 'gone'}" for k, ok in st['alive'].items())))
    out(LogLine("", f"learners: {', '.join(st['learners'])}; servers running: "
                    + (", ".join(f"{n} (pid {p})" for n, p in sorted(st['servers'].items())) or "none")))
    return 0 if st["answers"] else 1


def add_parsers(sub) -> None:
    """The instructor's subcommands, added to the CLI's parser."""
    s = sub.add_parser("cohort", help="the instructor's view of a class; reset one learner; simulate a class")
    s.add_argument("action", nargs="?", choices=["reset", "simulate"], help="omit to list the learners")
    s.add_argument("name", nargs="?", help="with reset: the learner's namespace")
    s.add_argument("--json", action="store_true", help="print a JSON list, one object per learner")
    s.add_argument("--yes", action="store_true", help="with reset: do not ask")
    s.add_argument("--force", action="store_true", help="with reset: even while the learner's consumer runs")
    s.add_argument("--learners", type=int, default=10, help="with simulate: how many learners (default 10)")
    s.add_argument("--days", type=float, default=1, help="with simulate: days each learner produces (default 1)")
    s.set_defaults(func=cmd_cohort)

    s = sub.add_parser("class", help="a class on this machine: a local JupyterHub, each learner fenced in Redis")
    s.add_argument("action", choices=["start", "status", "stop"])
    s.add_argument("--learners", default="", help="with start: the learners' names, e.g. alice,bob")
    s.add_argument("--port", type=int, default=None, help="with start: the hub's port on 127.0.0.1 (default: free)")
    s.add_argument("--password", default=None, help="with start: the class password (default: random)")
    s.set_defaults(func=cmd_class)
