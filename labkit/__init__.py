"""labkit: a lab kit for Redis Streams in production.

Date-partitioned streams (``temps:YYYYMMDD``), an aggregating consumer that
publishes exact hourly averages to ``temps:averages`` exactly once, an averages
consumer that prints them, and ground truth to verify every hour.

The pieces a notebook or script usually needs::

    from labkit import connect, produce, Dataset, start_consumers
    r = connect()                                   # REDIS_URL, or the embedded server
    produce(r, Dataset(parse_start("2025-01-01"), days=10))
    handle = start_consumers("temps:20250101")      # both consumers, in background threads
    handle.wait_idle(1); handle.stop()
"""

from .connection import connect, target
from .errors import LabkitError
from .keys import Keys
from .producer import Dataset, parse_start, produce
from .runner import Consumers, list_partitions, start_consumers

__all__ = ["connect", "target", "LabkitError", "Keys", "Dataset", "parse_start", "produce",
           "Consumers", "list_partitions", "start_consumers"]
__version__ = "0.1.0"
