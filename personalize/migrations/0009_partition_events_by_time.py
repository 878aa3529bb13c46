"""Events partitioned by time on PostgreSQL; exactly-once moves to its own table.

On PostgreSQL ``personalize_event`` becomes a table partitioned by RANGE
(timestamp): monthly partitions for the retention window (or two years) up to
three months ahead, and a DEFAULT partition for anything else. The rows are
copied in, the table swapped, the indexes and foreign keys recreated on the
partitioned table, and the id sequence set past the highest id. The primary key
becomes (id, timestamp), as PostgreSQL requires of a partitioned table; Django
keeps ``id`` as its primary key (ids stay unique from the sequence).

On every database the (source, message_id) uniqueness moves to
``personalize_event_message_id``, filled here from the stored events.

Self-contained on purpose (no import of personalize.partitions): a migration
must keep doing what it did when it was written. docs/partitioning.md.
"""

from datetime import UTC, datetime, timedelta

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

TABLE = "personalize_event"
OLD_TABLE = "personalize_event_unpartitioned"
DEFAULT_PARTITION = "personalize_event_default"
MONTHS_AHEAD = 3
MONTHS_BACK_WITHOUT_RETENTION = 24


def fill_message_ids(apps, schema_editor):
    schema_editor.execute(
        "INSERT INTO personalize_event_message_id (source_id, message_id, timestamp)"
        " SELECT source_id, message_id, MIN(timestamp) FROM personalize_event"
        " GROUP BY source_id, message_id"
    )


def _month_start(moment: datetime) -> datetime:
    return datetime(moment.year, moment.month, 1, tzinfo=UTC)


def _next_month(moment: datetime) -> datetime:
    return datetime(moment.year + moment.month // 12, moment.month % 12 + 1, 1, tzinfo=UTC)


def _literal(moment: datetime) -> str:
    return f"'{moment:%Y-%m-%d %H:%M:%S}+00'"


def _fetch(schema_editor, sql, params=()):
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def partition_events(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    run = schema_editor.execute
    # What the plain table has besides its primary key, to recreate by name.
    index_definitions = [
        definition
        for (definition,) in _fetch(
            schema_editor,
            "SELECT pg_get_indexdef(i.indexrelid) FROM pg_index i"
            " WHERE i.indrelid = %s::regclass AND NOT i.indisprimary",
            [TABLE],
        )
    ]
    foreign_keys = _fetch(
        schema_editor,
        "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint"
        " WHERE conrelid = %s::regclass AND contype = 'f'",
        [TABLE],
    )
    (first,) = _fetch(schema_editor, f'SELECT MIN("timestamp") FROM {TABLE}')[0]

    run(f"ALTER TABLE {TABLE} RENAME TO {OLD_TABLE}")
    run(f"ALTER INDEX {TABLE}_pkey RENAME TO {OLD_TABLE}_pkey")
    # LIKE copies columns, NOT NULL and defaults, but not the identity: a
    # partitioned table takes its ids from a plain sequence (below).
    run(
        f"CREATE TABLE {TABLE} (LIKE {OLD_TABLE} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)"
        ' PARTITION BY RANGE ("timestamp")'
    )
    run(f'ALTER TABLE {TABLE} ADD CONSTRAINT {TABLE}_pkey PRIMARY KEY (id, "timestamp")')
    run(f"CREATE TABLE {DEFAULT_PARTITION} PARTITION OF {TABLE} DEFAULT")

    now = datetime.now(tz=UTC)
    days = settings.EVENT_RETENTION_DAYS
    window_start = now - timedelta(days=days if days > 0 else MONTHS_BACK_WITHOUT_RETENTION * 31)
    start = _month_start(max(first, window_start) if first is not None else now)
    until = _month_start(now)
    for _ in range(MONTHS_AHEAD + 1):
        until = _next_month(until)
    while start < until:
        end = _next_month(start)
        run(
            f"CREATE TABLE {TABLE}_p{start:%Y%m%d}_{end:%Y%m%d} PARTITION OF {TABLE}"
            f" FOR VALUES FROM ({_literal(start)}) TO ({_literal(end)})"
        )
        start = end

    run(f"INSERT INTO {TABLE} SELECT * FROM {OLD_TABLE}")
    run(f"DROP TABLE {OLD_TABLE}")  # and its identity sequence
    run(f"CREATE SEQUENCE {TABLE}_id_seq OWNED BY {TABLE}.id")
    run(f"ALTER TABLE {TABLE} ALTER COLUMN id SET DEFAULT nextval('{TABLE}_id_seq')")
    run(
        f"SELECT setval('{TABLE}_id_seq', COALESCE((SELECT MAX(id) FROM {TABLE}), 0) + 1, false)"
    )
    # Created after the copy (faster); on the parent, so every partition has them.
    for definition in index_definitions:
        run(definition)
    for name, definition in foreign_keys:
        run(f"ALTER TABLE {TABLE} ADD CONSTRAINT {name} {definition}")


def unpartition_events(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    run = schema_editor.execute
    index_definitions = [
        definition.replace(" ON ONLY ", " ON ")
        for (definition,) in _fetch(
            schema_editor,
            "SELECT pg_get_indexdef(i.indexrelid) FROM pg_index i"
            " WHERE i.indrelid = %s::regclass AND NOT i.indisprimary",
            [TABLE],
        )
    ]
    foreign_keys = _fetch(
        schema_editor,
        "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint"
        " WHERE conrelid = %s::regclass AND contype = 'f' AND conparentid = 0",
        [TABLE],
    )
    run(f"ALTER TABLE {TABLE} RENAME TO {OLD_TABLE}")
    run(f"ALTER INDEX {TABLE}_pkey RENAME TO {OLD_TABLE}_pkey")
    run(f"CREATE TABLE {TABLE} (LIKE {OLD_TABLE} INCLUDING CONSTRAINTS)")
    run(f"INSERT INTO {TABLE} SELECT * FROM {OLD_TABLE}")
    run(f"ALTER TABLE {TABLE} ADD CONSTRAINT {TABLE}_pkey PRIMARY KEY (id)")
    run(f"DROP TABLE {OLD_TABLE}")  # with its partitions and its sequence
    run(f"ALTER TABLE {TABLE} ALTER COLUMN id ADD GENERATED BY DEFAULT AS IDENTITY")
    run(
        f"SELECT setval(pg_get_serial_sequence('{TABLE}', 'id'),"
        f" COALESCE((SELECT MAX(id) FROM {TABLE}), 0) + 1, false)"
    )
    for definition in index_definitions:
        run(definition)
    for name, definition in foreign_keys:
        run(f"ALTER TABLE {TABLE} ADD CONSTRAINT {name} {definition}")


class Migration(migrations.Migration):
    dependencies = [
        ("personalize", "0008_import_job"),
    ]

    operations = [
        migrations.CreateModel(
            name="EventMessageId",
            fields=[
                (
                    "pk",
                    models.CompositePrimaryKey(
                        "source",
                        "message_id",
                        blank=True,
                        editable=False,
                        primary_key=True,
                        serialize=False,
                    ),
                ),
                (
                    "source",
                    models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to="personalize.source",
                    ),
                ),
                ("message_id", models.CharField(max_length=255)),
                ("timestamp", models.DateTimeField()),
            ],
            options={
                "db_table": "personalize_event_message_id",
                "indexes": [models.Index(fields=["timestamp"], name="event_message_id_ts")],
            },
        ),
        migrations.RunPython(fill_message_ids, migrations.RunPython.noop),
        migrations.RemoveConstraint(
            model_name="event",
            name="event_source_message_unique",
        ),
        migrations.RunPython(partition_events, unpartition_events),
    ]
