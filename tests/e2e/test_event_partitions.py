"""The events table partitioned by time on real PostgreSQL (docs/partitioning.md).

Each test runs a short script in a process set up with ``config.settings`` against
a fresh database migrated with ``manage.py migrate`` (what a deploy does), and
reads back one JSON line. The SQLite side of the same code is tested in
tests/personalize/test_event_deduplication.py and test_partition_ranges.py.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.conftest import HOST, REPO, _postgres, _server_env

pytestmark = pytest.mark.stack

PRELUDE = """
import json, threading
from datetime import UTC, datetime, timedelta
import django
django.setup()
from django.conf import settings
from django.db import connection
from django.utils import timezone
from personalize import partitions
from personalize.models import Event, EventMessageId, Profile, Source
from personalize.partitions import PartitionRange, interval_start, next_interval_start
from personalize.retention import purge_expired_events
from personalize.services import ingest_messages
from personalize.tracking import parse_message

NOW = timezone.now()

def rows(sql, *params):
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return [list(row) for row in cursor.fetchall()]

def partition_of(message_id):
    return [r[0] for r in rows(
        "SELECT tableoid::regclass::text FROM personalize_event WHERE message_id = %s"
        " ORDER BY id", message_id)]

def ingest(source, *items):
    messages = [
        parse_message(
            {"type": "track", "event": "viewed", "anonymousId": "a-" + source.name,
             "messageId": message_id, "timestamp": at.isoformat()},
            message_type=None, received_at=NOW,
        )
        for message_id, at in items
    ]
    result = ingest_messages(source=source, messages=messages, received_at=NOW)
    return [result.stored, result.duplicates, result.duplicate_indexes]

def months(start, count):
    names, cursor = [], interval_start(start, "month")
    for _ in range(count):
        following = next_interval_start(cursor, "month")
        names.append(PartitionRange(start=cursor, end=following).name)
        cursor = following
    return names

def out(value):
    print(json.dumps(value, default=str))
"""


def _run(env: dict[str, str], body: str) -> Any:
    done = subprocess.run(
        [sys.executable, "-c", PRELUDE + body],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def _migrate(env: dict[str, str], *target: str) -> None:
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v0", *target],
        cwd=REPO,
        env=env,
        check=True,
        timeout=300,
    )


@pytest.fixture
def fresh_database() -> Iterator[dict[str, str]]:
    """The environment of a process using a new, empty PostgreSQL database."""
    database = f"p13n_e2e_part_{uuid.uuid4().hex[:10]}"
    admin = _postgres()
    admin.execute(f'CREATE DATABASE "{database}"')
    try:
        yield _server_env(DATABASE_URL=f"postgres://postgres@{HOST}:5432/{database}")
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        admin.close()


@pytest.fixture(scope="module")
def migrated() -> Iterator[dict[str, str]]:
    """One migrated database shared by the module's tests (each uses its own source)."""
    database = f"p13n_e2e_part_{uuid.uuid4().hex[:10]}"
    admin = _postgres()
    admin.execute(f'CREATE DATABASE "{database}"')
    try:
        env = _server_env(DATABASE_URL=f"postgres://postgres@{HOST}:5432/{database}")
        _migrate(env)
        yield env
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        admin.close()


def test_events_are_range_partitioned_by_timestamp_with_months_ahead_and_a_default(
    migrated: dict[str, str],
) -> None:
    outcome = _run(
        migrated,
        """
out({
    "key": rows("SELECT pg_get_partkeydef('personalize_event'::regclass)")[0][0],
    "primary_key": rows(
        "SELECT pg_get_constraintdef(oid) FROM pg_constraint"
        " WHERE conrelid = 'personalize_event'::regclass AND contype = 'p'")[0][0],
    "default": rows(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
        " WHERE i.inhparent = 'personalize_event'::regclass"
        " AND pg_get_expr(c.relpartbound, c.oid) = 'DEFAULT'"),
    "indexes": sorted(r[0] for r in rows(
        "SELECT indexname FROM pg_indexes WHERE tablename = 'personalize_event'")),
    "has_months_ahead": set(months(NOW, 4)) <= {p.name for p in partitions.event_partitions()},
    "again": partitions.ensure_event_partitions(now=NOW),
    "two_more": partitions.ensure_event_partitions(now=NOW, ahead=5),
    "expected_two_more": months(NOW, 6)[4:],
})
""",
    )

    assert outcome["key"] == 'RANGE ("timestamp")'
    assert outcome["primary_key"] == 'PRIMARY KEY (id, "timestamp")'
    assert outcome["default"] == [["personalize_event_default"]]
    assert outcome["indexes"][:2] == ["event_profile_name_ts", "event_ts"]
    assert "personalize_event_pkey" in outcome["indexes"]
    assert outcome["has_months_ahead"] is True
    # Already there after migrate (post_migrate ran the maintenance): nothing to create.
    assert outcome["again"] == []
    assert outcome["two_more"] == outcome["expected_two_more"]


def test_events_outside_every_range_land_in_the_default_and_move_into_a_new_partition(
    migrated: dict[str, str],
) -> None:
    outcome = _run(
        migrated,
        """
source = Source.objects.create(name="far")
stored = ingest(source, ("old", NOW - timedelta(days=4 * 365)), ("now", NOW))
profile = Profile.objects.get(identities__value="a-far")
future = NOW + timedelta(days=3 * 365)
Event.objects.create(source=source, profile=profile, message_id="future", type="track",
                     name="viewed", timestamp=future, received_at=NOW)
before = {m: partition_of(m) for m in ("old", "now", "future")}
created = partitions.ensure_event_partitions(now=future, ahead=0)
out({"stored": stored, "before": before, "created": created,
     "after": partition_of("future"), "month": months(future, 1), "this_month": months(NOW, 1),
     "in_default": rows("SELECT message_id FROM personalize_event_default"
                        " WHERE source_id = %s ORDER BY message_id", source.pk)})
""",
    )

    assert outcome["stored"] == [2, 0, []]
    assert outcome["before"]["old"] == ["personalize_event_default"]
    assert outcome["before"]["future"] == ["personalize_event_default"]
    assert outcome["before"]["now"] == outcome["this_month"]
    assert outcome["created"] == outcome["month"]
    assert outcome["after"] == outcome["month"]
    assert outcome["in_default"] == [["old"]]


def test_retention_drops_whole_old_partitions_and_deletes_the_straddling_rows(
    migrated: dict[str, str],
) -> None:
    outcome = _run(
        migrated,
        """
settings.EVENT_DEDUPE_GRACE_DAYS = 30
source = Source.objects.create(name="retention")
first = interval_start(NOW - timedelta(days=200), "month")
second = next_interval_start(first, "month")
straddled = next_interval_start(second, "month")
partitions.ensure_event_partitions(now=first, ahead=8)
# The cutoff falls 10 days into the third month.
settings.EVENT_RETENTION_DAYS = (NOW - (straddled + timedelta(days=10))).days
cutoff = NOW - timedelta(days=settings.EVENT_RETENTION_DAYS)
ingest(source,
       ("first", first + timedelta(days=5)),
       ("second", second + timedelta(days=5)),
       ("straddled-old", straddled + timedelta(days=5)),
       ("straddled-new", straddled + timedelta(days=15)),
       ("now", NOW))
profile = Profile.objects.get(identities__value="a-retention")
Event.objects.create(source=source, profile=profile, message_id="ancient", type="track",
                     name="viewed", timestamp=datetime(2001, 1, 1, tzinfo=UTC), received_at=NOW)
names = [PartitionRange(start=s, end=next_interval_start(s, "month")).name
         for s in (first, second, straddled)]
# Retention is global: other tests' old events in this database go too.
others = Event.objects.exclude(source=source).filter(timestamp__lt=cutoff).count()
purged = purge_expired_events(now=NOW)
existing = {p.name for p in partitions.event_partitions()}
out({
    "purged": purged - others,
    "cutoff_in_straddled": straddled < cutoff < next_interval_start(straddled, "month"),
    "dropped": [name not in existing for name in names],
    "left": sorted(Event.objects.filter(source=source).values_list("message_id", flat=True)),
    "ids_left": sorted(EventMessageId.objects.filter(source=source)
                       .values_list("message_id", flat=True)),
    "retried": ingest(source, ("straddled-old", straddled + timedelta(days=5))),
})
""",
    )

    assert outcome["cutoff_in_straddled"] is True
    assert outcome["purged"] == 4
    # The two months wholly before the cutoff are gone; the straddled one stays.
    assert outcome["dropped"] == [True, True, False]
    assert outcome["left"] == ["now", "straddled-new"]
    # Message ids older than the cutoff's grace (30 days) are forgotten; the
    # straddled month's are within it, so a retry is still a duplicate.
    assert outcome["ids_left"] == ["now", "straddled-new", "straddled-old"]
    assert outcome["retried"] == [0, 1, [0]]


def test_one_message_id_is_stored_once_across_partitions_and_concurrent_requests(
    migrated: dict[str, str],
) -> None:
    outcome = _run(
        migrated,
        """
source = Source.objects.create(name="dedupe")
same_batch = ingest(source, ("m", NOW - timedelta(days=40)), ("m", NOW))
other_month = ingest(source, ("m", NOW - timedelta(days=80)))

barrier = threading.Barrier(2)
results = {}

def send(name, at):
    barrier.wait()
    try:
        results[name] = ingest(source, ("raced", at), ("own-" + name, at))
    finally:
        connection.close()

threads = [threading.Thread(target=send, args=(name, NOW - timedelta(days=days)))
           for name, days in (("one", 1), ("two", 45))]
for thread in threads: thread.start()
for thread in threads: thread.join()
out({
    "same_batch": same_batch, "other_month": other_month,
    "partitions_of_m": partition_of("m"),
    "expected_partition": months(NOW - timedelta(days=40), 1),
    "raced": sorted(results.values()),
    "stored": sorted(Event.objects.filter(source=source).values_list("message_id", flat=True)),
})
""",
    )

    assert outcome["same_batch"] == [1, 1, [1]]
    assert outcome["other_month"] == [0, 1, [0]]
    assert outcome["partitions_of_m"] == outcome["expected_partition"]
    # Exactly one of the two concurrent requests stored "raced"; both stored their own.
    assert outcome["raced"] == [[1, 1, [0]], [2, 0, []]]
    assert outcome["stored"] == ["m", "own-one", "own-two", "raced"]


def test_a_segment_query_reads_only_the_partitions_its_window_overlaps(
    migrated: dict[str, str],
) -> None:
    outcome = _run(
        migrated,
        """
from segments.rules.sql import compile_rule
from segments.rules.text import parse_text
rule = parse_text("count(viewed, last 7d) >= 1")
query = compile_rule(rule, now=NOW, segments={}, vendor="postgresql")
plan = rows("EXPLAIN (FORMAT JSON) " + query.sql, *query.params)[0][0]

def relations(node):
    found = [node["Relation Name"]] if "Relation Name" in node else []
    for child in node.get("Plans", []):
        found += relations(child)
    return found

scanned = sorted(r for r in relations(plan[0]["Plan"]) if r.startswith("personalize_event"))
window = sorted({
    PartitionRange(start=interval_start(at, "month"),
                   end=next_interval_start(at, "month")).name
    for at in (NOW - timedelta(days=7), NOW)
})
out({"scanned": scanned, "window": window})
""",
    )

    # Plan-time pruning: neither older months nor the DEFAULT partition are read.
    assert outcome["scanned"] == outcome["window"]


def test_the_migration_moves_existing_rows_into_partitions_and_back(
    fresh_database: dict[str, str],
) -> None:
    _migrate(fresh_database, "personalize", "0008")
    snapshot = """
out({
    "events": rows(
        "SELECT id, source_id, profile_id, message_id, name, properties::text, timestamp,"
        " received_at FROM personalize_event ORDER BY id"),
    "partitioned": rows("SELECT count(*) FROM pg_partitioned_table"
                        " WHERE partrelid = 'personalize_event'::regclass")[0][0],
    "placed": [
        [message_id, table == "personalize_event_default"
         or PartitionRange.from_name(table).start <= at < PartitionRange.from_name(table).end]
        for message_id, table, at in rows(
            "SELECT message_id, tableoid::regclass::text, timestamp FROM personalize_event"
            " WHERE tableoid <> 'personalize_event'::regclass ORDER BY id")
    ],
    "tables": [r[0] for r in rows(
        "SELECT tableoid::regclass::text FROM personalize_event ORDER BY id")],
    "unique": rows("SELECT count(*) FROM pg_constraint WHERE conname = %s",
                   "event_source_message_unique")[0][0],
})
"""
    _run(
        fresh_database,
        """
source = Source.objects.create(name="legacy")
profile = Profile.objects.create()
for n, days in enumerate([1500, 400, 40, 3, 0, -30]):
    Event.objects.create(source=source, profile=profile, message_id=f"m{n}", type="track",
                         name="viewed", properties={"n": n}, timestamp=NOW - timedelta(days=days),
                         received_at=NOW)
out("ok")
""",
    )
    before = _run(fresh_database, snapshot)

    _migrate(fresh_database)
    after = _run(fresh_database, snapshot)
    added = _run(
        fresh_database,
        """
source = Source.objects.get(name="legacy")
out({
    "ids": sorted(EventMessageId.objects.values_list("message_id", flat=True)),
    "retry": ingest(source, ("m2", NOW), ("m6", NOW)),
    "next_id": Event.objects.get(message_id="m6").pk,
    "default": rows("SELECT message_id FROM personalize_event_default ORDER BY message_id"),
})
""",
    )
    _migrate(fresh_database, "personalize", "0008")
    reverted = _run(fresh_database, snapshot)

    assert (before["partitioned"], before["unique"]) == (0, 1)
    assert len(before["events"]) == 6
    assert after["events"] == before["events"]
    assert (after["partitioned"], after["unique"]) == (1, 0)
    assert after["placed"] == [[f"m{n}", True] for n in range(6)]
    assert after["tables"][0] == "personalize_event_default"
    assert "personalize_event_default" not in after["tables"][1:]
    assert added["ids"] == ["m0", "m1", "m2", "m3", "m4", "m5"]
    assert added["retry"] == [1, 1, [0]]
    assert added["next_id"] == 7
    # Older than the 24 months the migration partitions when nothing is purged.
    assert added["default"] == [["m0"]]
    assert (reverted["partitioned"], reverted["unique"]) == (0, 1)
    assert reverted["events"][:6] == before["events"]
    assert len(reverted["events"]) == 7
