"""Reference solutions to the lab notebooks' exercises.

Each notebook shows the same code in a collapsed "Show a solution" block (a
test keeps the two identical).  With ``LABKIT_SOLUTIONS=1`` the checks in
:mod:`labkit.notebook.exercises` use these instead of the learner's answers, so CI
proves every exercise can be solved and every check passes.
"""

from __future__ import annotations

import datetime as dt

# --------------------------------------------------------------------- 01


def reading_time(entry_id):
    ms = int(entry_id.split("-")[0])
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.timezone.utc)


# --------------------------------------------------------------------- 02


def partition_of(ms):
    day = dt.datetime.fromtimestamp(ms / 1000, tz=dt.timezone.utc)
    return f"temps:{day:%Y%m%d}"


def next_partition_name(name):
    day = dt.datetime.strptime(name.removeprefix("temps:"), "%Y%m%d")
    return f"temps:{day + dt.timedelta(days=1):%Y%m%d}"


ttl_gap_hours = 24

# --------------------------------------------------------------------- 03


def noon_readings(r, partition):
    first_ms = int(r.xrange(partition, count=1)[0][0].split(b"-")[0])
    noon = first_ms + 12 * 3_600_000
    return r.xrange(partition, noon, noon + 9_000)


def hourly_means(readings):
    hour = readings["ms"] // 3_600_000 * 3_600_000
    return readings.groupby(hour)["temp_f"].mean()


# --------------------------------------------------------------------- 04


def hour_of(entry_id):
    ms = int(entry_id.split("-")[0])
    t = dt.datetime.fromtimestamp(ms / 1000, tz=dt.timezone.utc)
    return f"{t:%Y/%m/%d}", t.hour


def hourly_sums(entries):
    sums = {}
    for entry_id, fields in entries:
        ms = int(entry_id.split(b"-")[0])
        hour = ms - ms % 3_600_000
        total, count = sums.get(hour, (0, 0))
        sums[hour] = (total + int(fields[b"temp_f"]), count + 1)
    return sums


# --------------------------------------------------------------------- 05

crash_position = "b"


def open_hour_from_partition(r, state):
    last = state["last_message_id"]
    ms = int(last.split("-")[0])
    entries = r.xrange(state["current_stream_key"], ms - ms % 3_600_000, last)
    temps = [int(fields[b"temp_f"]) for _, fields in entries]
    return sum(temps), len(temps)


# --------------------------------------------------------------------- 06

xlen_after_cap = 140

# --------------------------------------------------------------------- 13


def node_of(slot, ranges):
    for first, last, node in ranges:
        if first <= slot <= last:
            return node
