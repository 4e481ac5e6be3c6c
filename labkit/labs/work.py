"""What a lab's workers do with an entry: classify it, slowly or flakily if asked.

A work function takes ``(entry_id, fields)`` and returns a label (or ``None``);
raising leaves the entry pending, so the pool retries it or dead-letters it.
"""

from __future__ import annotations

import random
import threading
import time
from typing import Any, Callable

from ..core.window import BadReading, parse_temp

Work = Callable[[str, dict], Any]


def classify_temp(temp_f: float) -> str:
    if temp_f < 32:
        return "freezing"
    if temp_f < 60:
        return "cool"
    if temp_f < 80:
        return "warm"
    return "hot"


def classify_reading(entry_id: str, fields: dict) -> str:
    """Work on a raw reading: its class.  A bad reading raises :class:`~labkit.core.window.BadReading`."""
    return classify_temp(parse_temp(fields))


def classify_average(entry_id: str, fields: dict) -> str:
    """Work on an hourly average from ``temps:averages``."""
    raw = fields.get(b"average_temp_f", fields.get("average_temp_f"))
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise BadReading(f"average_temp_f is not a number: {raw!r:.40}") from None
    if value != value:
        raise BadReading("average_temp_f is NaN")
    return classify_temp(value)


def slow(work: Work, seconds: float) -> Work:
    """``work`` that takes at least ``seconds`` per entry (to watch workers at a human pace)."""
    def _slow(entry_id, fields):
        time.sleep(seconds)
        return work(entry_id, fields)
    _slow.__name__ = f"slow({getattr(work, '__name__', 'work')}, {seconds})"
    return _slow


class TransientError(RuntimeError):
    """A failure that goes away if the entry is tried again."""


def flaky(work: Work, probability: float, seed: int | None = None) -> Work:
    """``work`` that fails at random with ``probability`` (a transient error: a retry succeeds)."""
    rng = random.Random(seed)
    lock = threading.Lock()

    def _flaky(entry_id, fields):
        with lock:
            fail = rng.random() < probability
        if fail:
            raise TransientError("transient failure")
        return work(entry_id, fields)
    return _flaky
