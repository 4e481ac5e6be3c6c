"""Partition naming: pure, no Redis."""

import datetime as dt

import pytest

from labkit.errors import LabkitError
from labkit.core.partition import (day_start_ms, id_ms, message_id, next_partition, parse_partition,
                              partition_for_ms, partition_name, partitions_between)


@pytest.mark.parametrize("name,after", [
    ("temps:20250101", "temps:20250102"),
    ("temps:20250131", "temps:20250201"),   # month end
    ("temps:20241231", "temps:20250101"),   # year end
    ("temps:20240228", "temps:20240229"),   # leap day exists in 2024
    ("temps:20240229", "temps:20240301"),
    ("temps:20250228", "temps:20250301"),   # ...and not in 2025
    ("temps:21000228", "temps:21000301"),   # 2100 is not a leap year
    ("temps:20000228", "temps:20000229"),   # 2000 is
])
def test_next_partition_crosses_month_year_and_leap_ends(name, after):
    assert next_partition(name) == after


def test_course_ids_and_names():
    assert day_start_ms(dt.date(2025, 1, 1)) == 1735689600000
    assert message_id(1736035200000) == "1736035200000-0"
    assert partition_for_ms(1736035200000) == "temps:20250105"
    assert partition_for_ms(1736035200000 - 1) == "temps:20250104"   # 23:59:59.999 belongs to the day before
    assert id_ms(b"1736035201000-0") == 1736035201000
    assert partition_name(dt.date(2025, 1, 5), "alice:temps:") == "alice:temps:20250105"


@pytest.mark.parametrize("bad", ["temps:2025-01-01", "temps:20251301", "temps:20250230", "temps:", "other:20250101",
                                 "", " temps:20250101", "temps:2025010", "temps:202501011",
                                 "temps:２０２５０１０１", "temps:٢٠٢٥٠١٠١", "temps:20250101 "])
def test_parse_partition_rejects_with_a_hint(bad):
    with pytest.raises(LabkitError) as e:
        parse_partition(bad)
    assert e.value.hint and "temps:" in e.value.hint


def test_partitions_between_half_open():
    start = day_start_ms(dt.date(2025, 1, 1)) + 10 * 3600_000
    assert partitions_between(start, start + 86_400_000) == ["temps:20250101", "temps:20250102"]
    assert partitions_between(day_start_ms(dt.date(2025, 1, 1)), day_start_ms(dt.date(2025, 1, 3))) == \
        ["temps:20250101", "temps:20250102"]
    assert partitions_between(5, 5) == []
