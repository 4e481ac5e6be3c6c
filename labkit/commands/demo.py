"""The main job: produce, consume, verify every hour, plot, with timings."""

from __future__ import annotations

import sys
import time

from ..core import producer
from ..core.context import Context
from ..core.keys import Keys
from ..core.keyspace import delete_keys
from ..core.runner import list_partitions, start_consumers
from ..core.truth import check
from ..errors import LabkitError
from ..log import LogLine, TerminalSink, null_sink
from ..servers import connection


def run_demo(days: float = 10, plot_path: str | None = "labkit-demo.png", quiet: bool = False) -> int:
    """Produce, consume, verify and plot in a namespace of the demo's own (:meth:`Keys.for_tool`), so the
    notebooks, which use ``LABKIT_NAMESPACE`` (or none), find only their own data afterwards."""
    if plot_path:
        check_plot_path(plot_path)
    out = TerminalSink()
    t = connection.target()
    out(LogLine("demo", f"Redis: {t}"))
    ctx = Context.open(keys=Keys.for_tool("demo"), target=t)
    r, keys = ctx.r, ctx.keys
    out(LogLine("demo", f"the demo's data goes to namespace {keys.namespace} ({keys.partition_prefix}YYYYMMDD, "
                        f"{keys.averages}, …), apart from the notebooks' keys"))
    data = producer.Dataset(producer.parse_start(producer.DEFAULT_START), days)
    clear_earlier_run(r, keys, out)
    timings = {}

    t0 = time.perf_counter()
    res = producer.produce(r, data, keys, null_sink if quiet else out)
    timings["produce"] = time.perf_counter() - t0
    partitions = data.partitions(keys)

    t0 = time.perf_counter()
    handle = start_consumers(partitions[0], averages_maxlen=0, sink=null_sink if quiet else out, context=ctx)
    idle = handle.wait_idle(0.5, timeout=600)
    handle.stop()
    if handle.error or not idle:
        raise LabkitError(f"the consumers did not finish: {handle.error or 'timed out'}", "see the lines above")
    timings["consume"] = time.perf_counter() - t0 - 0.5  # less the idle wait that ends the run

    t0 = time.perf_counter()
    rep, averages, truth = check(r, keys, partitions)
    timings["verify"] = time.perf_counter() - t0
    expected = len(truth)
    if plot_path:
        from ..notebook.plot import averages_vs_truth
        fig = averages_vs_truth(rep.table, f"{len(averages)} hourly averages vs ground truth")
        fig.savefig(plot_path, dpi=110)
    status = handle.status()
    lines = [
        f"produced {res['readings']:,} readings into {res['partitions']} partitions in {timings['produce']:.2f} s "
        f"({res['readings'] / timings['produce']:,.0f}/s)",
        f"aggregated them into {status['hours_published']} hourly averages in {timings['consume']:.2f} s "
        f"({status['readings'] / max(timings['consume'], 1e-9):,.0f} readings/s); "
        f"the averages consumer printed {status['averages_printed']}",
        f"verified in {timings['verify']:.2f} s: {rep.summary()}",
    ]
    if plot_path:
        lines.append(f"plot saved to {plot_path}")
    lines.append(f"the data stays in namespace {keys.namespace}: to look at it, set LABKIT_NAMESPACE={keys.namespace} "
                 f"(e.g. LABKIT_NAMESPACE={keys.namespace} python -m labkit verify)")
    ok = rep.ok and rep.matched == expected
    lines.append(f"{rep.matched}/{expected} hours verified" + ("" if ok else " -- FAILED"))
    for l in lines:
        out(LogLine("demo", l))
    sys.stdout.flush()
    return 0 if ok else 1


def check_plot_path(path: str) -> None:
    """Refuse a plot path that cannot be written, before the run rather than after it."""
    import os
    folder = os.path.dirname(os.path.abspath(path))
    if not path.lower().endswith((".png", ".svg", ".pdf")):
        raise LabkitError(f"--plot {path}: the plot is saved as PNG, SVG or PDF", "e.g. --plot labkit-demo.png")
    if not os.path.isdir(folder) or not os.access(folder, os.W_OK):
        raise LabkitError(f"--plot {path}: the folder {folder} does not exist or cannot be written",
                          "name a file in a folder you can write, e.g. --plot labkit-demo.png")


def clear_earlier_run(r, keys: Keys, out) -> None:
    """Delete what an earlier demo wrote in the demo's namespace (its partitions, states, averages, manifest,
    dead letters, progress): a smaller run would otherwise consume the earlier run's later days too.  Keys the
    demo does not write stay; a demo still running there is refused, not cleared under."""
    for lease in (keys.producer_lease, keys.aggregating_lease):
        if r.exists(lease):
            raise LabkitError(f"another demo is running in namespace {keys.namespace} ({lease} is held)",
                              "wait for it to finish, or set LABKIT_NAMESPACE to run a separate demo")
    names = list_partitions(r, keys) + [keys.averages, keys.averages_state, keys.aggregating_state, keys.manifest,
                                        keys.deadletter, keys.progress]
    if delete_keys(r, set(names)):
        out(LogLine("demo", f"cleared the previous demo run's keys in namespace {keys.namespace}"))
