"""labkit: a lab kit for Redis Streams in production.

Date-partitioned streams (``temps:YYYYMMDD``), an aggregating consumer that
publishes exact hourly averages to ``temps:averages`` exactly once, an averages
consumer that prints them, and ground truth to verify every hour.

The package is laid out by architecture:

- :mod:`labkit.core` — the pipeline (partitions, the hourly fold, ground truth, producer, consumers, state);
- :mod:`labkit.servers` — where Redis is (``REDIS_URL``, the embedded server, a local cluster);
- :mod:`labkit.notebook` — the notebook front end (set-up helpers, the consumer panel, exercises);
- :mod:`labkit.commands` — the terminal front end (``python -m labkit …``);
- :mod:`labkit.labs` — the companion labs on consumer groups.

The pieces a notebook or script usually needs::

    from labkit import connect, produce, Dataset, parse_start, start_consumers
    r = connect()                                   # REDIS_URL, or the embedded server
    produce(r, Dataset(parse_start("2025-01-01"), days=10))
    handle = start_consumers("temps:20250101")      # both consumers, in background threads
    handle.wait_idle(1); handle.stop()
"""

import importlib
import importlib.abc
import importlib.util
import sys

from .core.keys import Keys
from .core.producer import Dataset, parse_start, produce
from .core.runner import Consumers, list_partitions, start_consumers
from .errors import LabkitError
from .servers.connection import connect, target

__all__ = ["connect", "target", "LabkitError", "Keys", "Dataset", "parse_start", "produce",
           "Consumers", "list_partitions", "start_consumers"]
__version__ = "0.2.0"

#: Where the modules of the flat layout (labkit 0.1) live now.  ``import labkit.runner`` and
#: ``from labkit.widgets import ConsumerPanel`` keep working: they give the module at its new place.
MOVED = {
    "partition": "core.partition", "window": "core.window", "truth": "core.truth", "keys": "core.keys",
    "state": "core.state", "lease": "core.lease", "manifest": "core.manifest", "producer": "core.producer",
    "live": "core.live", "aggregating": "core.aggregating", "averages": "core.averages", "runner": "core.runner",
    "keyspace": "core.keyspace", "fastfold": "core.fastfold",
    "connection": "servers.connection", "server": "servers.embedded", "cluster": "servers.cluster",
    "widgets": "notebook.panel", "plot": "notebook.plot", "exercises": "notebook.exercises",
    "solutions": "notebook.solutions",
    "cli": "commands.cli", "demo": "commands.demo", "bench": "commands.bench", "chaos": "commands.chaos",
    "soak": "commands.soak",
    "groups": "labs.groups", "group_widgets": "labs.panel",
}


class _MovedModules(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Resolves ``labkit.<old name>`` to the module at its new place (the same module object)."""

    def find_spec(self, fullname, path=None, target=None):
        prefix, _, name = fullname.partition(".")
        if prefix == __name__ and name in MOVED:
            return importlib.util.spec_from_loader(fullname, self)
        return None

    def create_module(self, spec):
        return importlib.import_module(f"{__name__}.{MOVED[spec.name.partition('.')[2]]}")

    def exec_module(self, module):
        pass  # already executed at its new place


if not any(isinstance(f, _MovedModules) for f in sys.meta_path):
    sys.meta_path.append(_MovedModules())
