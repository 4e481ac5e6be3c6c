"""Small helpers the lab notebooks call, so their cells stay short.

Everything here returns data (pandas DataFrames, dicts, figures); nothing
prints.  The dataset size comes from ``LABKIT_DAYS`` (default 10, the course's
dataset) so CI can run the notebooks on a small one.

``python -m labkit.notebook strip notebooks/*.ipynb`` removes outputs and
execution counts before committing a notebook.
"""

from __future__ import annotations

import datetime as dt
import io
import math
import os
import platform
import sys
import time
import uuid

import pandas as pd
import redis

from . import connection, producer
from .errors import LabkitError
from .keys import Keys
from .log import null_sink
from .partition import HOUR_MS, id_ms
from .runner import list_partitions

DEFAULT_DAYS = 10.0


# ---------------------------------------------------------------- dataset

def dataset_days() -> float:
    """Days of readings to produce: ``LABKIT_DAYS`` or 10."""
    raw = os.environ.get("LABKIT_DAYS", "").strip()
    if not raw:
        return DEFAULT_DAYS
    try:
        days = float(raw)
    except ValueError:
        raise LabkitError(f"LABKIT_DAYS={raw!r} is not a number", "use e.g. LABKIT_DAYS=10 (or 1 for a quick run)") from None
    if not (math.isfinite(days) and 0 < days <= 3660):
        raise LabkitError(f"LABKIT_DAYS={raw!r} is out of range", "use a number of days above 0, at most 3660")
    return days


def dataset(days: float | None = None) -> producer.Dataset:
    """The course's dataset (2025-01-01, one reading a second), ``days`` long."""
    return producer.Dataset(producer.parse_start(producer.DEFAULT_START), dataset_days() if days is None else days)


def expected_counts(data: producer.Dataset, keys: Keys) -> dict[str, int]:
    """Readings each partition of ``data`` should hold."""
    names = data.partitions(keys)
    return {name: hi - lo for name, (_, lo, hi) in zip(names, data.slices())}


def expected_hours(data: producer.Dataset) -> int:
    """How many hours hold at least one reading of ``data``."""
    first = data.start_ms - data.start_ms % HOUR_MS
    last = data.start_ms + (data.count - 1) * data.interval_ms
    return (last - last % HOUR_MS - first) // HOUR_MS + 1


def dataset_present(r: redis.Redis, data: producer.Dataset, keys: Keys) -> bool:
    """Do all partitions of ``data`` exist with the right number of readings?"""
    want = expected_counts(data, keys)
    p = r.pipeline(transaction=False)
    for name in want:
        p.xlen(name)
    try:
        got = p.execute()
    except redis.ResponseError:
        return False
    return list(got) == list(want.values())


def produce_with_progress(r: redis.Redis, data: producer.Dataset, keys: Keys, sink=null_sink,
                          retention_days: float = producer.DEFAULT_RETENTION_DAYS) -> dict:
    """:func:`labkit.producer.produce` with a tqdm progress bar (a widget in Jupyter)."""
    from tqdm.auto import tqdm
    bar = tqdm(total=data.count, unit=" readings", unit_scale=True, desc="producing")
    done = [0]

    def progress(n: int) -> None:
        bar.update(n - done[0])
        done[0] = n
    try:
        return producer.produce(r, data, keys, sink, retention_days, progress)
    finally:
        bar.close()


def ensure_dataset(r: redis.Redis, data: producer.Dataset, keys: Keys) -> bool:
    """Produce ``data`` unless it is already there (so a notebook can run on its own).

    Returns whether it produced.
    """
    if dataset_present(r, data, keys):
        return False
    producer.produce(r, data, keys, null_sink)
    return True


# ---------------------------------------------------------------- server

def server_description(r: redis.Redis, target: connection.Target) -> dict:
    """Which server labkit talks to, and what it is."""
    info = r.info("server")
    mem = r.info("memory")
    d = {
        "labkit uses": "the embedded server" if target.embedded else "REDIS_URL",
        "address": connection.mask(target.url),
        "redis_version": info.get("redis_version"),
        "server": ("valkey " + str(info["valkey_version"])) if "valkey_version" in info
        else info.get("server_name", "redis"),
        "memory used": mem.get("used_memory_human"),
        "python": f"{platform.python_version()} ({sys.executable})",
        "redis-py": redis.__version__,
    }
    if target.embedded:
        from . import server
        d["LABKIT_HOME"] = str(server.home())
    return d


def redis7_checks(r: redis.Redis, keys: Keys) -> pd.DataFrame:
    """Try the Redis 7 stream features the lab relies on; one row per check.

    Uses one scratch key in labkit's namespace and deletes it afterwards.
    """
    rows = []
    version = r.info("server").get("redis_version", "0")
    major = int(str(version).split(".")[0] or 0)
    rows.append(("redis_version ≥ 7", major >= 7, version))
    scratch = keys.key(f"labkit-check:{uuid.uuid4().hex[:8]}")
    try:
        def check(name, fn):
            try:
                ok, detail = fn()
            except redis.RedisError as exc:
                ok, detail = False, str(exc).splitlines()[0]
            rows.append((name, ok, detail))

        def xadd_ms_star():
            eid = r.xadd(scratch, {"temp_f": 50}, id="1735689600000-*")
            return eid == b"1735689600000-0", eid.decode()
        check("XADD with <ms>-* IDs (7.0)", xadd_ms_star)

        def xinfo_counters():
            info = r.xinfo_stream(scratch)
            return "entries-added" in info, f"entries-added={info.get('entries-added')}"
        check("XINFO STREAM entries-added (7.0)", xinfo_counters)

        def xautoclaim():
            r.xgroup_create(scratch, "g", id="0")
            r.xreadgroup("g", "c1", {scratch: ">"}, count=1)
            res = r.xautoclaim(scratch, "g", "c2", min_idle_time=0, start_id="0-0")
            return len(res) == 3, "reply has deleted-IDs list (7.0 form)"
        check("XAUTOCLAIM (6.2) with 7.0 reply", xautoclaim)

        def lag():
            g = r.xinfo_groups(scratch)[0]
            return "lag" in g, f"lag={g.get('lag')}"
        check("XINFO GROUPS lag (7.0)", lag)

        def expiretime():
            r.pexpire(scratch, 60_000)
            t = r.pexpiretime(scratch)
            return t > 0, "PEXPIRETIME answers"
        check("PEXPIRETIME (7.0)", expiretime)
    finally:
        r.delete(scratch)
    return pd.DataFrame(rows, columns=["check", "ok", "detail"])


# ---------------------------------------------------------------- inspecting

def _utc(ms: int | float | None) -> pd.Timestamp | None:
    return None if ms is None else pd.Timestamp(int(ms), unit="ms", tz="UTC")


def dataset_table(r: redis.Redis, keys: Keys, first: int = 2, memory: bool = True) -> pd.DataFrame:
    """One row per existing partition: XLEN, TTL, expiry time, first entries, MEMORY USAGE."""
    names = list_partitions(r, keys)
    p = r.pipeline(transaction=False)
    for name in names:
        p.xlen(name)
        p.pttl(name)
        p.xrange(name, count=first)
        if memory:
            p.memory_usage(name, samples=0)
    res = p.execute()
    step = 4 if memory else 3
    rows = []
    now = time.time() * 1000
    for i, name in enumerate(names):
        xlen, pttl, head = res[i * step:i * step + 3]
        row = {
            "partition": name,
            "XLEN": xlen,
            "TTL (h)": round(pttl / 3_600_000, 1) if pttl >= 0 else None,
            "expires (UTC)": _utc(now + pttl).floor("min") if pttl >= 0 else None,
            "first IDs": ", ".join(e[0].decode() for e in head),
            "first temp_f": ", ".join(e[1].get(b"temp_f", b"?").decode() for e in head),
        }
        if memory:
            used = res[i * step + 3] or 0
            row["MEMORY USAGE (MB)"] = round(used / 1e6, 2)
            row["bytes/reading"] = round(used / xlen, 1) if xlen else None
        rows.append(row)
    return pd.DataFrame(rows)


def entries_frame(entries) -> pd.DataFrame:
    """``XRANGE``/``XREVRANGE`` replies as a table, with each ID's time in UTC."""
    rows = []
    for eid, fields in entries:
        eid = eid.decode() if isinstance(eid, bytes) else eid
        row = {"id": eid, "id time (UTC)": _utc(id_ms(eid))}
        row.update({(k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
                    for k, v in fields.items()})
        rows.append(row)
    return pd.DataFrame(rows)


def state_frame(r: redis.Redis, keys: Keys) -> pd.DataFrame:
    """Both consumers' state hashes side by side (``HGETALL`` of each)."""
    rows = []
    from .keyspace import keys_for
    keys = keys_for(r, keys)   # on a cluster the aggregating state is hash-tagged
    for key in (keys.aggregating_state, keys.averages_state):
        for f, v in sorted(r.hgetall(key).items()):
            rows.append({"hash": key, "field": f.decode(), "value": v.decode()})
    return pd.DataFrame(rows, columns=["hash", "field", "value"])


def describe_id(entry_id: str) -> str:
    """``1735702767000-0`` → ``2025-01-01 03:39:27 UTC``."""
    if entry_id in ("0", "0-0"):
        return "the beginning of the stream"
    return f"{_utc(id_ms(entry_id)):%Y-%m-%d %H:%M:%S} UTC"


# ---------------------------------------------------------------- running

def verify_now(r: redis.Redis, keys: Keys, partitions: list[str] | None = None):
    """Ground truth from the raw partitions vs ``temps:averages``: a :class:`labkit.truth.Report`."""
    from .truth import hourly_truth, load_averages, load_readings, verify
    averages, trimmed = load_averages(r, keys)
    truth = hourly_truth(load_readings(r, partitions if partitions is not None else list_partitions(r, keys)))
    return verify(truth, averages, trimmed), truth, averages


def figure_png(fig, dpi: int = 100) -> bytes:
    """A matplotlib Figure as PNG bytes (no pyplot)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def show_figure(fig, dpi: int = 100):
    """Display a matplotlib Figure in a notebook (works without ``%matplotlib``)."""
    from IPython.display import Image
    return Image(data=figure_png(fig, dpi), format="png")


def day_of_ms(ms: int) -> dt.date:
    return dt.datetime.fromtimestamp(ms / 1000, dt.timezone.utc).date()


# ---------------------------------------------------------------- hygiene tool

def strip_outputs(path: str) -> bool:
    """Remove outputs and execution counts from a notebook in place; returns whether it changed."""
    import nbformat
    nb = nbformat.read(path, as_version=4)
    changed = False
    for cell in nb.cells:
        if cell.cell_type == "code":
            if cell.outputs or cell.execution_count is not None:
                changed = True
            cell.outputs, cell.execution_count = [], None
        if cell.get("metadata", {}).pop("execution", None) is not None:
            changed = True
    if changed:
        nbformat.write(nb, path)
    return changed


def _main(argv: list[str]) -> int:
    if len(argv) < 2 or argv[0] != "strip":
        print("usage: python -m labkit.notebook strip NOTEBOOK.ipynb …", file=sys.stderr)
        return 2
    for path in argv[1:]:
        if strip_outputs(path):
            print(f"stripped {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(_main(sys.argv[1:]))
