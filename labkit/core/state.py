"""Consumer state kept in Redis, so a consumer resumes where it stopped.

Two hashes, with the course's field names:

``aggregating_consumer_state``
    ``current_stream_key``, ``last_message_id``, ``current_hourly_total``,
    ``current_hourly_count``.  The open hour is the hour of ``last_message_id``
    whenever the count is above zero (the consumer closes the open hour when it
    leaves a partition, so this always holds).  Four fields beyond the course's:
    ``partition_run`` (which producer run wrote the partition being read, from
    the manifest, so a rewrite under the consumer is noticed) and
    ``start_stream_key`` (where this run of the consumer started, so ``verify``
    knows which hours to expect), ``partition_read`` (how many entries of the
    current partition it has read, checked against the manifest's count before
    the partition's last hour is closed; -1: unknown, a state from before it
    was kept) and ``averages_maxlen`` (the smallest cap on ``temps:averages``
    any run since the start partition used, 0 = uncapped: ``verify`` accepts
    hours as trimmed only under a cap).
``averages_consumer_state``
    ``last_message_id``, plus ``entries_read`` (how many entries of
    ``temps:averages`` it has accounted for) so it can tell how many were
    trimmed away before it read them.

The aggregating state is written in the same transaction as the averages it
publishes; see :mod:`labkit.core.aggregating`.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field

import redis

from ..errors import LabkitError
from ..servers.replies import text_fields
from .keys import Keys
from .partition import HOUR_MS, id_ms, is_partition
from .window import HourlyWindow

_ID = re.compile(r"(0|[0-9]{1,20}-[0-9]{1,20})")


def _bad(key: str, why: str) -> LabkitError:
    return LabkitError(f"saved state {key} is corrupt: {why}",
                       "start again from a partition: python -m labkit consume temps:YYYYMMDD")


def data_gone(keys: Keys, what: str) -> LabkitError:
    return LabkitError(f"{what} is gone from Redis: the server restarted without persistence, or "
                       "labkit's keys were deleted, so the consumer's saved position is lost",
                       "produce the dataset again (python -m labkit produce), then start from a partition: "
                       f"python -m labkit consume {keys.partition_prefix}YYYYMMDD")


def named(name: str, default=dataclasses.MISSING):
    """A state field stored in its hash as ``name`` (the course's field name) rather than its own."""
    return field(default=default, metadata={"hash_field": name})


def hash_fields(state) -> dict[str, str]:
    """A state dataclass as its hash: every field, under its hash name, as text."""
    return {f.metadata.get("hash_field", f.name): str(getattr(state, f.name)) for f in dataclasses.fields(state)}


#: The field types a state hash holds, and how each is read back from its text.
_READ = {"int": int, "float": float, "str": str}


def from_hash(cls, h: dict[str, str]):
    """A state dataclass from its (decoded, validated) hash; a field the hash lacks keeps its default.

    Fields may be ``int``, ``float`` or ``str``; a ``ValueError`` says a value does not read as its type."""
    values = {}
    for f in dataclasses.fields(cls):
        name = f.metadata.get("hash_field", f.name)
        kind = f.type if isinstance(f.type, str) else f.type.__name__
        if kind not in _READ:
            raise TypeError(f"{cls.__name__}.{f.name}: a state hash holds int, float or str, not {kind}")
        if name in h:
            values[f.name] = _READ[kind](h[name])
    return cls(**values)


@dataclass
class AggregatingState:
    """The aggregating consumer's position and open hour.  A field added here is saved with every commit
    and loaded back (:func:`hash_fields`, :func:`from_hash`): the commit script takes the hash as it is."""

    stream: str = named("current_stream_key")
    last_id: str = named("last_message_id", "0")
    total: int = named("current_hourly_total", 0)
    count: int = named("current_hourly_count", 0)
    partition_run: str = ""
    start_stream: str = named("start_stream_key", "")
    read: int = named("partition_read", 0)
    cap: int = named("averages_maxlen", 0)

    def window(self) -> HourlyWindow:
        if self.count == 0:
            return HourlyWindow()
        ms = id_ms(self.last_id)
        return HourlyWindow(ms - ms % HOUR_MS, self.total, self.count)

    def fields(self) -> dict[str, str]:
        return hash_fields(dataclasses.replace(self, start_stream=self.start_stream or self.stream))

    def position(self) -> dict[str, str]:
        """The fields that say where it is: a commit checks the saved state still holds them."""
        f = self.fields()
        return {name: f[name] for name in ("current_stream_key", "last_message_id")}

    @classmethod
    def load(cls, r: redis.Redis, keys: Keys) -> "AggregatingState | None":
        key = keys.aggregating_state
        h = text_fields(_hgetall(r, key))
        if not h:
            return None
        need = ("current_stream_key", "last_message_id", "current_hourly_total", "current_hourly_count")
        missing = [f for f in need if f not in h]
        if missing:
            raise _bad(key, "missing " + ", ".join(missing))
        if not is_partition(h["current_stream_key"], keys.partition_prefix):
            raise _bad(key, f"current_stream_key {h['current_stream_key']!r:.40} is not a partition")
        if not _ID.fullmatch(h["last_message_id"]):
            raise _bad(key, f"last_message_id {h['last_message_id']!r:.40} is not a stream ID")
        try:
            int(h["current_hourly_total"])
            count = int(h["current_hourly_count"])
        except ValueError:
            raise _bad(key, "current_hourly_total/count are not whole numbers") from None
        if count < 0 or (count > 0 and h["last_message_id"] == "0"):
            raise _bad(key, "current_hourly_count does not fit last_message_id")
        try:
            # A state saved before partition_read/averages_maxlen were kept: both unknown (-1).
            return from_hash(cls, {"start_stream_key": h["current_stream_key"], "partition_read": "-1",
                                   "averages_maxlen": "-1", **h})
        except ValueError as exc:
            raise _bad(key, str(exc)) from None


def combine_caps(recorded: int, this_run: int) -> int:
    """The cap to record once a run with ``this_run`` (0 = uncapped) has published: the smallest cap any run
    used, 0 only if none was capped; -1 (unknown, an old state) stays unknown."""
    if recorded < 0:
        return -1
    caps = [c for c in (recorded, this_run) if c > 0]
    return min(caps) if caps else 0


@dataclass
class AveragesState:
    last_id: str = "0"
    entries_read: int = 0

    def fields(self) -> dict[str, str]:
        return {"last_message_id": self.last_id, "entries_read": str(self.entries_read)}

    @classmethod
    def load(cls, r: redis.Redis, keys: Keys) -> "AveragesState | None":
        key = keys.averages_state
        h = text_fields(_hgetall(r, key))
        if not h:
            return None
        if not _ID.fullmatch(h.get("last_message_id", "")):
            raise _bad(key, "last_message_id is missing or not a stream ID")
        try:
            read = int(h.get("entries_read", "0"))
        except ValueError:
            raise _bad(key, "entries_read is not a whole number") from None
        return cls(h["last_message_id"], read)


def _hgetall(r: redis.Redis, key: str) -> dict:
    try:
        return r.hgetall(key)
    except redis.ResponseError as exc:
        if str(exc).startswith("WRONGTYPE"):
            raise LabkitError(f"{key} is not a hash", f"delete it (DEL {key}) or set LABKIT_NAMESPACE") from None
        raise
