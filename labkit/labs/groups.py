"""Consumer groups in production, as the companion notebooks (07–12) use them: ``from labkit.labs import groups``.

One import for the notebooks; the code lives in one module per concern:

=====================  =====================================================================
:mod:`.names`          the lab's private namespace and key names (``lab_keys``, ``key``, ``delete_keys``)
:mod:`.group_commands` group commands over one stream (``create_group``, ``pending_entries``, ``autoclaim_all`` …)
:mod:`.work`           what workers do with an entry (``classify_reading``, ``slow``, ``flaky`` …)
:mod:`.pool`           the worker :class:`Pool`: workers, supervisor, chaos, dead letters
:mod:`.audit`          dead letters read back, and the "nothing lost" check (``audit``)
=====================  =====================================================================

The dataset's size (``LABKIT_DAYS``) is set where every notebook's is:
:func:`labkit.notebook.helpers.dataset_days` (``lab_days`` here is the same function).
"""

from __future__ import annotations

from ..notebook.helpers import dataset as _dataset
from ..notebook.helpers import dataset_days as lab_days
from .audit import audit, deadletters
from .group_commands import (PAGE, autoclaim_all, consumers_table, copy_stream, create_group, group_info,
                             pending_count, pending_entries)
from .names import DEFAULT_GROUP, deadletter_key, delete_keys, key, lab_keys
from .pool import DEADLETTER_CONSUMER, LIVE_STATES, Pool, Worker, WorkerState
from .work import (TransientError, Work, classify_average, classify_reading, classify_temp, flaky,
                   slow)

__all__ = ["DEFAULT_GROUP", "DEADLETTER_CONSUMER", "PAGE", "LIVE_STATES", "Work", "lab_keys", "key",
           "deadletter_key", "delete_keys", "lab_days", "lab_dataset", "create_group", "copy_stream",
           "pending_entries", "pending_count", "autoclaim_all", "consumers_table", "group_info",
           "classify_temp", "classify_reading", "classify_average", "slow", "TransientError", "flaky",
           "WorkerState", "Worker", "Pool", "deadletters", "audit"]


def lab_dataset(max_days: float | None = None):
    """The course's dataset, ``LABKIT_DAYS`` long but at most ``max_days`` (:func:`labkit.notebook.helpers.dataset`)."""
    return _dataset(max_days=max_days)
