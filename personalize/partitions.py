"""Time partitions of the events table on PostgreSQL (docs/partitioning.md).

``personalize_event`` is partitioned by RANGE (timestamp) there: one partition
per interval (a month by default), named for its bounds
(``personalize_event_p20261101_20261201``), and a DEFAULT partition that takes
any event outside them, so an insert never fails for its timestamp. Partitions
are created ahead by a scheduled task and after every ``migrate``; retention
drops whole partitions past its cutoff (personalize.retention).

On SQLite (the embedded default) the table is a plain table and every function
here does nothing. The range arithmetic is pure and tested without a database.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

EVENT_TABLE = "personalize_event"
DEFAULT_PARTITION = f"{EVENT_TABLE}_default"
PARTITION_NAME = re.compile(rf"^{EVENT_TABLE}_p(\d{{8}})_(\d{{8}})$")
# One key for every process that creates or drops partitions: two beat
# schedulers or a migrate racing a worker take turns instead of failing.
MAINTENANCE_LOCK = "personalize_event partitions"

LOCK_TIMEOUT_SECONDS = 10

Interval = Literal["day", "week", "month"]
INTERVALS: tuple[Interval, ...] = ("day", "week", "month")


@dataclass(frozen=True, order=True)
class PartitionRange:
    """[start, end) in UTC, both at midnight."""

    start: datetime
    end: datetime

    @property
    def name(self) -> str:
        return f"{EVENT_TABLE}_p{self.start:%Y%m%d}_{self.end:%Y%m%d}"

    @classmethod
    def from_name(cls, name: str) -> PartitionRange | None:
        match = PARTITION_NAME.match(name)
        if match is None:
            return None
        start, end = (
            datetime.strptime(part, "%Y%m%d").replace(tzinfo=UTC) for part in match.groups()
        )
        return cls(start=start, end=end)


@dataclass
class DroppedPartitions:
    names: list[str]
    events: int
    # Events per profile, for the recompute of those whose memberships rested on them.
    profile_ids: set[int]


# --- pure range arithmetic ----------------------------------------------------------------


def interval_start(moment: datetime, interval: Interval) -> datetime:
    """The start (UTC midnight) of the interval holding ``moment``; weeks start on Monday."""
    day = moment.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    if interval == "month":
        return day.replace(day=1)
    if interval == "week":
        return day - timedelta(days=day.weekday())
    return day


def next_interval_start(moment: datetime, interval: Interval) -> datetime:
    """The first interval start after ``moment``."""
    start = interval_start(moment, interval)
    if interval == "month":
        return start.replace(year=start.year + start.month // 12, month=start.month % 12 + 1)
    return start + timedelta(days=7 if interval == "week" else 1)


def planned_ranges(
    *,
    existing: Sequence[PartitionRange],
    start: datetime,
    until: datetime,
    interval: Interval,
) -> list[PartitionRange]:
    """Ranges to create so that [interval start of ``start``, ``until``) is covered.

    Existing partitions are kept as they are, even from another interval
    setting: a new range is cut short where an existing one begins, and
    continues where it ends, so the ranges never overlap (PostgreSQL refuses
    that) and leave no gap.
    """
    ordered = sorted(existing)
    planned: list[PartitionRange] = []
    cursor = interval_start(start, interval)
    while cursor < until:
        covering = next((r for r in ordered if r.start <= cursor < r.end), None)
        if covering is not None:
            cursor = covering.end
            continue
        end = next_interval_start(cursor, interval)
        following = next((r.start for r in ordered if cursor < r.start < end), None)
        end = following or end
        planned.append(PartitionRange(start=cursor, end=end))
        cursor = end
    return planned


def configured_interval() -> Interval:
    value = settings.EVENT_PARTITION_INTERVAL
    if value not in INTERVALS:
        raise ValueError(f"EVENT_PARTITION_INTERVAL must be one of {INTERVALS}, not {value!r}")
    return value


# --- the database -------------------------------------------------------------------------


def events_are_partitioned() -> bool:
    """True on PostgreSQL once migration 0008 has run."""
    if connection.vendor != "postgresql":
        return False
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT 1 FROM pg_partitioned_table WHERE partrelid = to_regclass(%s)", [EVENT_TABLE]
        )
        return cursor.fetchone() is not None


def event_partitions() -> list[PartitionRange]:
    """The ranged partitions attached to the events table, oldest first (not the default)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
            " WHERE i.inhparent = to_regclass(%s)",
            [EVENT_TABLE],
        )
        names = [name for (name,) in cursor.fetchall()]
    return sorted(r for r in map(PartitionRange.from_name, names) if r is not None)


def _literal(moment: datetime) -> str:
    # Bounds are our own UTC midnights; DDL takes literals, not parameters.
    return f"'{moment.astimezone(UTC):%Y-%m-%d %H:%M:%S}+00'"


def _lock_maintenance() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [MAINTENANCE_LOCK])
        # Attaching and detaching wait for queries on the events table, and queries
        # queue behind them: give up instead (the task retries) than stall ingestion.
        cursor.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT_SECONDS}s'")


def ensure_event_partitions(
    *,
    now: datetime | None = None,
    ahead: int | None = None,
    interval: Interval | None = None,
) -> list[str]:
    """Create the partitions from the current interval to ``ahead`` intervals after it.

    Events the DEFAULT partition holds for a new range move into it, so
    partitions can be added for times already received. Returns the names created.
    """
    if not events_are_partitioned():
        return []
    interval = interval or configured_interval()
    ahead = settings.EVENT_PARTITIONS_AHEAD if ahead is None else ahead
    at = now or timezone.now()
    until = interval_start(at, interval)
    for _ in range(ahead + 1):
        until = next_interval_start(until, interval)
    created: list[str] = []
    with transaction.atomic():
        _lock_maintenance()
        for partition in planned_ranges(
            existing=event_partitions(), start=at, until=until, interval=interval
        ):
            _create_partition(partition)
            created.append(partition.name)
    return created


def _create_partition(partition: PartitionRange) -> None:
    """Create, fill from the DEFAULT partition, attach: the default must hold no row of
    the range when it is attached, and no insert can land there meanwhile (locked)."""
    name, start, end = partition.name, _literal(partition.start), _literal(partition.end)
    with connection.cursor() as cursor:
        cursor.execute(f"LOCK TABLE {DEFAULT_PARTITION} IN ACCESS EXCLUSIVE MODE")
        cursor.execute(
            f"CREATE TABLE {name} (LIKE {EVENT_TABLE} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)"
        )
        cursor.execute(
            f"WITH moved AS (DELETE FROM {DEFAULT_PARTITION}"
            f' WHERE "timestamp" >= {start} AND "timestamp" < {end} RETURNING *)'
            f" INSERT INTO {name} SELECT * FROM moved"
        )
        cursor.execute(
            f"ALTER TABLE {EVENT_TABLE} ATTACH PARTITION {name}"
            f" FOR VALUES FROM ({start}) TO ({end})"
        )


def drop_event_partitions_before(*, cutoff: datetime) -> DroppedPartitions:
    """Detach and drop every partition whose events are all older than ``cutoff``.

    Rows of the partition straddling the cutoff, and old rows in the DEFAULT
    partition, are left to the row-wise purge.
    """
    dropped = DroppedPartitions(names=[], events=0, profile_ids=set())
    if not events_are_partitioned():
        return dropped
    with transaction.atomic():
        _lock_maintenance()
        for partition in event_partitions():
            if partition.end > cutoff:
                continue
            with connection.cursor() as cursor:
                cursor.execute(
                    f"SELECT profile_id, COUNT(*) FROM {partition.name} GROUP BY profile_id"
                )
                counts = Counter(dict(cursor.fetchall()))
                cursor.execute(f"ALTER TABLE {EVENT_TABLE} DETACH PARTITION {partition.name}")
                cursor.execute(f"DROP TABLE {partition.name}")
            dropped.names.append(partition.name)
            dropped.events += sum(counts.values())
            dropped.profile_ids.update(counts)
    return dropped
