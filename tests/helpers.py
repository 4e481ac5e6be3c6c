"""Shared test helpers (not fixtures): small datasets and full verification."""

from __future__ import annotations

from labkit import producer
from labkit.keys import Keys
from labkit.runner import list_partitions
from labkit.truth import hourly_truth, load_averages, load_readings, verify

T0 = 1735689600000  # 2025-01-01 00:00 UTC


def produce(r, keys: Keys, start: str = "2025-01-01", days: float = 2, interval_ms: int = 1000, seed: int = 0):
    data = producer.Dataset(producer.parse_start(start), days, interval_ms, seed)
    producer.produce(r, data, keys)
    return data


def check(r, keys: Keys):
    """Verify temps:averages against ground truth from every partition; returns the report."""
    averages, trimmed = load_averages(r, keys)
    truth = hourly_truth(load_readings(r, list_partitions(r, keys)))
    return verify(truth, averages, trimmed), averages, truth
