"""``python -m labkit cohort …`` and ``python -m labkit class …``: the instructor's commands (see docs/class.md)."""

from __future__ import annotations

import json
import sys

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
    r = connection.connect()
    if args.action == "reset":
        return _reset(r, args)
    if args.name or args.yes or args.force:
        raise LabkitError("a name, --yes and --force go with cohort reset", "e.g. cohort reset alice --yes")
    rows = cohort.read_cohort(r)
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
    if not fence._PLAIN.fullmatch(ns):
        raise LabkitError(f"{ns!r} is not a learner namespace", "python -m labkit cohort lists them")
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
