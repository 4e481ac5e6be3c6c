"""Dead letters: one record layout wherever labkit gives up on an entry.

Every dead letter is an entry of a dead-letter stream (``temps:deadletter`` for
the pipeline, ``groups:deadletter`` in a companion lab's namespace) whose
fields start with the same four, in this order:

========  ============================================================
source    the stream the entry came from
id        the entry's ID in ``source``
reason    why it was given up on (at most :data:`REASON_MAX` characters)
payload   the entry's fields as text (at most :data:`PAYLOAD_MAX`)
========  ============================================================

A writer may add fields of its own after these (the consumer-group pool adds
``group``, ``deliveries`` and ``consumer``).  The writers:

* :mod:`labkit.core.aggregating` — bad readings and lost partitions, written by
  its ``COMMIT`` script together with the averages and the state (the script
  takes the four fields of :func:`record` as arguments);
* :mod:`labkit.core.averages` — malformed entries of ``temps:averages``
  (:func:`record`);
* :mod:`labkit.labs.pool` — poison pills and entries trimmed while pending
  (:func:`record` with the extra fields).
"""

from __future__ import annotations

from ..servers.replies import text

REASON_MAX = 300
PAYLOAD_MAX = 500
#: The pipeline's dead-letter stream is capped near this many entries (``MAXLEN ~``).
MAXLEN = 10_000


def payload(fields: dict | None) -> str:
    """An entry's fields as one short line of text (``{}`` for an entry that no longer exists)."""
    # bytes that are not UTF-8 are shown as escapes, never an error
    if isinstance(fields, (list, tuple)):      # the raw [name, value, …] of an entry with a repeated name
        return repr([text(x, "backslashreplace") for x in fields])[:PAYLOAD_MAX]
    return repr({text(k, "backslashreplace"): text(v, "backslashreplace")
                 for k, v in (fields or {}).items()})[:PAYLOAD_MAX]


def record(source: str, entry_id, reason: str, fields: dict | None, **extra) -> dict:
    """The fields of one dead letter: ``source, id, reason, payload``, then ``extra`` in the order given."""
    return {"source": text(source), "id": text(entry_id), "reason": str(reason)[:REASON_MAX],
            "payload": payload(fields), **extra}
