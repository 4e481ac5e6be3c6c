"""Date partitions: one stream per UTC day, named ``temps:YYYYMMDD``.

A reading taken at epoch milliseconds ``ms`` lives in the partition of its UTC
date, under the entry ID ``<ms>-0``.  Everything here is pure: no Redis.
"""

from __future__ import annotations

import datetime as dt
import re

from ..errors import LabkitError

DAY_MS = 86_400_000
HOUR_MS = 3_600_000
#: Each partition expires this many days after its day ends (docs/design.md, Expiry).
DEFAULT_RETENTION_DAYS = 2.0
PREFIX = "temps:"
_DIGITS = re.compile(r"[0-9]{8}")  # ASCII only: str.isdigit() accepts other scripts' digits


def day_of(ms: int) -> dt.date:
    """The UTC date of epoch milliseconds ``ms``."""
    return dt.datetime.fromtimestamp(ms / 1000, dt.timezone.utc).date()


def day_start_ms(day: dt.date) -> int:
    """Epoch milliseconds of 00:00:00 UTC on ``day``."""
    return (day - dt.date(1970, 1, 1)).days * DAY_MS


def partition_name(day: dt.date, prefix: str = PREFIX) -> str:
    """``2025-01-01`` → ``temps:20250101``."""
    return f"{prefix}{day:%Y%m%d}"


def partition_for_ms(ms: int, prefix: str = PREFIX) -> str:
    return partition_name(day_of(ms), prefix)


def parse_partition(name: str, prefix: str = PREFIX) -> dt.date:
    """``temps:20250101`` → ``date(2025, 1, 1)``; anything else is a :class:`LabkitError`."""
    example = partition_name(dt.date(2025, 1, 1), prefix)
    if not isinstance(name, str) or not name.startswith(prefix):
        raise LabkitError(f"{name!r} is not a partition name", f"partitions are named like {example}")
    digits = name[len(prefix):]
    if not _DIGITS.fullmatch(digits):
        raise LabkitError(f"{name!r} is not a partition name",
                          f"use {prefix}YYYYMMDD with 8 ASCII digits, e.g. {example}")
    try:
        return dt.date(int(digits[:4]), int(digits[4:6]), int(digits[6:]))
    except ValueError:
        raise LabkitError(f"{name!r} names no calendar date", f"use a real UTC date, e.g. {example}") from None


def next_partition(name: str, prefix: str = PREFIX) -> str:
    """The partition of the following UTC day (across month, year and leap-day ends)."""
    return partition_name(parse_partition(name, prefix) + dt.timedelta(days=1), prefix)


def is_partition(name: str, prefix: str = PREFIX) -> bool:
    try:
        parse_partition(name, prefix)
    except LabkitError:
        return False
    return True


def message_id(ms: int) -> str:
    """The stream entry ID of a reading taken at ``ms``: its epoch milliseconds, sequence 0."""
    return f"{ms}-0"


def id_ms(entry_id: str | bytes) -> int:
    """The millisecond part of a stream entry ID (``b'1735689600000-0'`` → 1735689600000)."""
    if isinstance(entry_id, bytes):
        entry_id = entry_id.decode()
    return int(entry_id.split("-", 1)[0])


def partitions_between(first_ms: int, end_ms: int, prefix: str = PREFIX) -> list[str]:
    """Partitions covering readings in ``[first_ms, end_ms)``, oldest first."""
    if end_ms <= first_ms:
        return []
    day, last = day_of(first_ms), day_of(end_ms - 1)
    out = []
    while day <= last:
        out.append(partition_name(day, prefix))
        day += dt.timedelta(days=1)
    return out
