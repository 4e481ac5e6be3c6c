"""``python -m labkit soak``: live mode at a high rate with both consumers, measured.

The live producer's clock is shifted so an hour ends a few seconds into the
run; the report gives the consumers' largest lag behind the producer and the
end-to-end latency from that hour's end to its average being printed, and
checks that every reading written was aggregated.  Runs in its own namespace, only one it made
(:func:`labkit.core.keyspace.claim_scratch`).
"""

from __future__ import annotations

import threading
import time

from ..core.context import Context
from ..core.keys import Keys
from ..core.keyspace import claim_scratch
from ..core.live import run_live
from ..core.partition import HOUR_MS, id_ms, partition_for_ms
from ..core.runner import delete_namespace, start_consumers
from ..core.truth import check
from ..log import LogLine, Sink, TerminalSink


def run_soak(rate: float = 1000, duration: float = 15, lead_s: float = 4, namespace: str | None = None,
             out: Sink | None = None) -> dict:
    out = out or TerminalSink()
    ctx = Context.open(Keys(namespace) if namespace else Keys.for_tool("soak"))
    r, keys = ctx.r, ctx.keys
    now = time.time()
    hour_end_ms = (int(now * 1000) // HOUR_MS + 1) * HOUR_MS
    offset = hour_end_ms / 1000 - lead_s - now       # the producer's clock reaches an hour's end lead_s in
    clock = lambda: time.time() + offset             # noqa: E731
    printed: list[tuple[float, str]] = []

    def sink(line: LogLine) -> None:
        if line.source == "avg" and line.text.startswith("Average"):
            printed.append((time.time(), line.text))

    stop = threading.Event()
    result: dict = {}
    claim_scratch(r, keys, "soak")      # before the try: a namespace that is not ours is never deleted
    try:
        producer = threading.Thread(target=lambda: result.update(run_live(
            ctx.connect(), keys, rate, duration, stop=stop, clock=clock)), daemon=True)
        producer.start()
        first = partition_for_ms(int(clock() * 1000), keys.partition_prefix)
        deadline = time.monotonic() + 10
        while not r.exists(first) and time.monotonic() < deadline:
            time.sleep(0.005)
        h = start_consumers(first, averages_maxlen=0, sink=sink, context=ctx)
        max_lag_ms, samples = 0, 0
        while producer.is_alive():
            top = r.xrevrange(partition_for_ms(int(clock() * 1000), keys.partition_prefix), count=1)
            last = r.hget(keys.aggregating_state, "last_message_id")
            if top and last and last != b"0":
                max_lag_ms = max(max_lag_ms, id_ms(top[0][0]) - id_ms(last))
                samples += 1
            time.sleep(0.05)
        producer.join()
        h.wait_idle(0.5, timeout=30)
        h.stop()
        hour_end_wall = hour_end_ms / 1000 - offset
        hour_line = [ts for ts, text in printed]
        latency = (hour_line[0] - hour_end_wall) if hour_line else None
        rep, averages, truth = check(r, keys)
        consumed = h.status()["readings"]
        ok = (int(truth["count"].sum()) == result["readings"] == consumed and not rep.mismatched and rep.matched >= 1
              and not rep.missing and rep.open == [hour_end_ms])  # the hour still open when the producer stopped
        res = {"rate": rate, "seconds": duration, "readings": result["readings"], "consumed": consumed,
               "max_lag_ms": max_lag_ms, "lag_samples": samples,
               "hour_end_to_print_ms": None if latency is None else round(latency * 1000, 1),
               "hours_verified": rep.matched, "ok": ok, "error": str(h.error) if h.error else None}
        out(LogLine("soak", f"{res['readings']:,} readings at {rate:g}/s for {duration:g} s; consumed {consumed:,}; "
                            f"max consumer lag {max_lag_ms} ms; hour end → average printed "
                            f"{res['hour_end_to_print_ms']} ms; {rep.matched} closed hour(s) verified, {len(rep.mismatched)} mismatched "
                            f"(the hour still open at the stop is not counted)" + ("" if ok else " -- FAILED")))
        return res
    finally:
        stop.set()
        delete_namespace(r, keys)
