"""The averages consumer: a plain blocking XREAD of ``temps:averages``.

It prints each hour (yellow on a terminal, as in the course) and saves its
last ID in ``averages_consumer_state``.  Because ``temps:averages`` is capped,
entries can be trimmed before a slow consumer reads them; it compares the
stream's ``entries-added`` counter (Redis 7) with how many it has accounted
for and says how many it missed, instead of losing them silently.

Printing is at-least-once: a crash after printing but before saving state
prints those hours again on restart (publishing stays exactly-once).
"""

from __future__ import annotations

import threading
import time
from decimal import Decimal
from fractions import Fraction

import redis

from ..errors import LabkitError, SimulatedCrash
from ..log import LogLine, Sink
from ..servers import connection
from . import deadletters
from .keys import Keys
from .partition import id_ms
from ..servers.replies import text, text_fields
from .state import AveragesState, data_gone
from .window import round_half_up

BLOCK_MS = 500
#: The cap on ``temps:averages``: the aggregating consumer publishes with ``XADD … MAXLEN ~ 120``.
DEFAULT_MAXLEN = 120


def describe(fields: dict) -> str:
    """The course's line for one average, or ``ValueError`` if the entry is malformed."""
    f = text_fields(fields)
    count = int(f["num_observations"])
    if "sum_temp_f" in f:
        whole = int(round_half_up(Fraction(int(f["sum_temp_f"]), count)))
    else:  # an entry from a producer that sends only the rounded average
        whole = int(round_half_up(Fraction(Decimal(f["average_temp_f"]))))
    return f"Average temperature for {f['date']} at {int(f['hour'])} was {whole}F ({count} observations)."


class AveragesConsumer:
    def __init__(self, r: redis.Redis, keys: Keys, sink: Sink, block_ms: int = BLOCK_MS):
        self.r, self.keys, self.sink, self.block_ms = r, keys, sink, block_ms
        self.state = AveragesState()
        self.printed = 0
        self.missed = 0
        self.malformed = 0
        self.idle_since: float | None = None
        self.client_id: int | None = None  # of the connection that blocks, for CLIENT UNBLOCK
        self.blocker: redis.Redis | None = None  # on a cluster: the node client where that connection is

    def log(self, text: str) -> None:
        self.sink(LogLine("avg", text))

    def run(self, stop: threading.Event, crash: threading.Event) -> None:
        saved = AveragesState.load(self.r, self.keys)
        if saved is None and self.state.last_id != "0":
            # We had read and saved a position (this is a restart after a lost
            # connection): its absence means Redis lost labkit's data.
            raise data_gone(self.keys, self.keys.averages_state)
        s = self.state = saved or AveragesState()
        stream = self.keys.averages
        self.log(f"Starting averages consumer in stream {stream} at message {s.last_id}.")
        waiting = False
        while not stop.is_set():
            entries, added, first = self._snapshot(s.last_id)
            if crash.is_set():
                raise SimulatedCrash()
            if (s.entries_read and added < s.entries_read + len(entries)
                    and (first is None or id_ms(first) > id_ms(s.last_id))):
                # Fewer entries ever added than it has seen, and none of the ones it read left: deleted (and
                # perhaps re-created).  A failover that lost the newest entries leaves the older ones (and
                # the aggregating consumer publishes the lost ones again): that is not this.
                raise self._deleted(added)
            if entries:
                # Everything up to last_id is accounted for and everything after
                # it is in hand, so any other entry ever added was removed unread.
                missed = added - s.entries_read - len(entries)
                if missed > 0:
                    self.missed += missed
                    self.log(f"Missed {missed} entries of {stream}: trimmed by MAXLEN before they were read.")
                for eid, fields in entries:
                    try:
                        line = describe(fields)
                    except (KeyError, ValueError, ArithmeticError) as exc:
                        self.malformed += 1
                        self.r.xadd(self.keys.deadletter, deadletters.record(stream, eid, f"malformed average: {exc!r}",
                                                                             fields), maxlen=deadletters.MAXLEN,
                                    approximate=True)
                        self.log(f"Dead-lettered malformed entry {text(eid)} of {stream} to {self.keys.deadletter}.")
                        continue
                    self.log(line)
                    self.printed += 1
                s = self.state = AveragesState(text(entries[-1][0]), max(added, s.entries_read + len(entries)))
                self.r.hset(self.keys.averages_state, mapping=s.fields())
                waiting, self.idle_since = False, None
                continue
            if not waiting:
                self.log(f"Waiting for new messages in stream {stream}")
                waiting, self.idle_since = True, time.monotonic()
                self.client_id, self.blocker = connection.blocking_id(self.r, stream)
            self.r.xread({stream: s.last_id}, count=1, block=self.block_ms)

    def _deleted(self, added: int) -> LabkitError:
        """``temps:averages`` was deleted (and perhaps re-created) under the running consumers."""
        s, stream = self.state, self.keys.averages
        now = "is gone" if added == 0 else f"was re-created ({added} entries added since)"
        return LabkitError(f"{stream} {now}: it was deleted under the running consumers (by hand or by another "
                           f"tool), so the {s.entries_read} entries this consumer had read (up to {s.last_id}) "
                           "are gone", f"start again from a partition (python -m labkit consume {self.keys.partition_prefix}YYYYMMDD), "
                           "and keep other tools off labkit's keys (or set LABKIT_NAMESPACE)")

    def _snapshot(self, last_id: str):
        """Everything after ``last_id`` plus the stream's counters, read atomically."""
        # On a cluster, MULTI on the node that serves temps:averages (redis-py's cluster
        # transactions return unparsed replies); a failover there reads as a lost connection.
        p = connection.node_client(self.r, self.keys.averages).pipeline(transaction=True)
        p.xrange(self.keys.averages, min=f"({last_id}" if last_id != "0" else "-")
        p.xinfo_stream(self.keys.averages)
        try:
            entries, info = p.execute(raise_on_error=False)
        except redis.ResponseError as exc:
            raise connection.moved_to_lost(self.r, exc) from None
        if isinstance(entries, Exception) and connection.relayout(entries):
            raise connection.moved_to_lost(self.r, entries)
        if isinstance(entries, Exception):
            raise entries
        if isinstance(info, Exception):  # no stream (yet)
            return [], 0, None
        first = info.get("first-entry")
        return entries, int(info.get("entries-added", 0)), first[0] if first else None
