"""labkit: a lab kit for Redis Streams in production.

Date-partitioned streams (``temps:YYYYMMDD``), an aggregating consumer that
publishes exact hourly averages to ``temps:averages`` exactly once, an averages
consumer that prints them, and ground truth to verify every hour.

The package is laid out by architecture; each module has one import path:

- :mod:`labkit.core` — the pipeline (partitions, the hourly fold, ground truth, producer, consumers, state);
- :mod:`labkit.servers` — where Redis is (``REDIS_URL``, the embedded server, a local cluster);
- :mod:`labkit.notebook` — the notebook front end (set-up helpers, the consumer panel, exercises);
- :mod:`labkit.commands` — the terminal front end (``python -m labkit …``);
- :mod:`labkit.labs` — the companion labs on consumer groups.

The pieces a script usually needs::

    from labkit.core.context import Context
    from labkit.core.producer import Dataset, parse_start, produce
    from labkit.core.runner import start_consumers

    ctx = Context.open()            # REDIS_URL or the embedded server; LABKIT_NAMESPACE's key names for it
    produce(ctx.r, Dataset(parse_start("2025-01-01"), days=10), ctx.keys)
    handle = start_consumers(ctx.keys.partition_prefix + "20250101", context=ctx)   # both, in threads
    handle.wait_idle(1); handle.stop()
"""

__version__ = "0.2.0"
