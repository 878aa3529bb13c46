"""Partition range arithmetic (pure) and the embedded default's plain events table.

The partitions themselves exist only on PostgreSQL: tests/e2e/test_event_partitions.py.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from personalize.partitions import (
    PartitionRange,
    drop_event_partitions_before,
    ensure_event_partitions,
    interval_start,
    next_interval_start,
    planned_ranges,
)


def utc(year: int, month: int, day: int, hour: int = 0) -> datetime:
    return datetime(year, month, day, hour, tzinfo=UTC)


def span(start: datetime, end: datetime) -> PartitionRange:
    return PartitionRange(start=start, end=end)


@pytest.mark.parametrize(
    ("interval", "moment", "start", "following"),
    [
        ("month", utc(2026, 11, 23, 15), utc(2026, 11, 1), utc(2026, 12, 1)),
        ("month", utc(2026, 12, 31, 23), utc(2026, 12, 1), utc(2027, 1, 1)),
        ("week", utc(2026, 11, 23, 15), utc(2026, 11, 23), utc(2026, 11, 30)),  # a Monday
        ("week", utc(2026, 11, 29, 23), utc(2026, 11, 23), utc(2026, 11, 30)),  # a Sunday
        ("day", utc(2026, 11, 23, 15), utc(2026, 11, 23), utc(2026, 11, 24)),
    ],
)
def test_intervals_start_at_utc_midnight(
    interval: Any, moment: datetime, start: datetime, following: datetime
) -> None:
    assert interval_start(moment, interval) == start
    assert next_interval_start(moment, interval) == following


def test_a_moment_in_another_zone_falls_in_its_utc_interval() -> None:
    from zoneinfo import ZoneInfo

    # 20:00 on 31 October in New York is already November in UTC.
    new_york = datetime(2026, 10, 31, 20, tzinfo=ZoneInfo("America/New_York"))

    assert interval_start(new_york, "month") == utc(2026, 11, 1)


def test_it_plans_the_current_month_and_the_months_ahead() -> None:
    planned = planned_ranges(
        existing=[], start=utc(2026, 11, 23), until=utc(2027, 3, 1), interval="month"
    )

    assert [p.name for p in planned] == [
        "personalize_event_p20261101_20261201",
        "personalize_event_p20261201_20270101",
        "personalize_event_p20270101_20270201",
        "personalize_event_p20270201_20270301",
    ]


def test_it_plans_nothing_where_partitions_exist() -> None:
    existing = [
        span(utc(2026, 11, 1), utc(2026, 12, 1)),
        span(utc(2026, 12, 1), utc(2027, 1, 1)),
    ]

    planned = planned_ranges(
        existing=existing, start=utc(2026, 11, 23), until=utc(2027, 2, 1), interval="month"
    )

    assert planned == [span(utc(2027, 1, 1), utc(2027, 2, 1))]


def test_switching_to_weeks_fills_around_monthly_partitions_without_overlap_or_gap() -> None:
    existing = [span(utc(2026, 11, 1), utc(2026, 12, 1))]

    planned = planned_ranges(
        existing=existing, start=utc(2026, 11, 23), until=utc(2026, 12, 15), interval="week"
    )

    # December 1st is a Tuesday: the first weekly range starts where November ends.
    assert planned == [
        span(utc(2026, 12, 1), utc(2026, 12, 7)),
        span(utc(2026, 12, 7), utc(2026, 12, 14)),
        span(utc(2026, 12, 14), utc(2026, 12, 21)),
    ]


def test_a_new_range_stops_where_an_existing_one_begins() -> None:
    existing = [span(utc(2026, 12, 10), utc(2026, 12, 20))]

    planned = planned_ranges(
        existing=existing, start=utc(2026, 12, 1), until=utc(2027, 1, 1), interval="month"
    )

    assert planned == [
        span(utc(2026, 12, 1), utc(2026, 12, 10)),
        span(utc(2026, 12, 20), utc(2027, 1, 1)),
    ]


def test_names_round_trip_and_foreign_tables_are_ignored() -> None:
    december = span(utc(2026, 12, 1), utc(2027, 1, 1))

    assert PartitionRange.from_name(december.name) == december
    assert PartitionRange.from_name("personalize_event_default") is None
    assert PartitionRange.from_name("personalize_event_archive_2019") is None


@pytest.mark.django_db
def test_on_sqlite_the_events_table_is_plain_and_maintenance_does_nothing() -> None:
    assert ensure_event_partitions(now=utc(2026, 11, 23)) == []
    dropped = drop_event_partitions_before(cutoff=utc(2030, 1, 1))
    assert (dropped.names, dropped.events, dropped.profile_ids) == ([], 0, set())


def test_an_unknown_interval_setting_is_refused_by_name(settings: Any) -> None:
    from personalize.partitions import configured_interval

    settings.EVENT_PARTITION_INTERVAL = "quarter"

    with pytest.raises(ValueError, match="EVENT_PARTITION_INTERVAL must be one of"):
        configured_interval()
