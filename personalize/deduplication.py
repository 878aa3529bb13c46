"""Exactly-once ingestion: each (source, message id) is stored once, across retries.

The events table cannot hold that uniqueness on PostgreSQL (it is partitioned by
time, and a unique constraint there must include the timestamp), so the ids
live in ``personalize_event_message_id`` (EventMessageId) on every database,
and the same code runs everywhere. docs/partitioning.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from django.db import connection

from personalize.codec import encode_json
from personalize.models import EventMessageId, Source

# SQLite: three parameters a row, well under its limit per statement.
CLAIM_CHUNK = 500


def claim_message_ids(
    *, source: Source, message_ids: Sequence[str], timestamps: Sequence[datetime]
) -> list[int]:
    """Record the batch's message ids; return the positions whose id this call
    recorded, in batch order. Every other position is a duplicate: its id was
    recorded before, or earlier in the same batch.

    Must run inside the transaction that stores those events. A concurrent batch
    inserting the same id waits on the row this one inserted, then gets nothing
    back if this one commits (it claims the id if this one rolls back): exactly
    one of them stores the event. Ids are inserted in sorted order so that two
    batches naming the same ids lock them in the same order and cannot deadlock.
    """
    first_index: dict[str, int] = {}
    for index, message_id in enumerate(message_ids):
        first_index.setdefault(message_id, index)
    ordered = sorted(first_index)
    at = [timestamps[first_index[message_id]] for message_id in ordered]
    if connection.vendor == "postgresql":
        claimed = _claim_unnest(source, ordered, at)
    else:
        claimed = _claim_values(source, ordered, at)
    return sorted(index for message_id, index in first_index.items() if message_id in claimed)


def _claim_unnest(source: Source, message_ids: list[str], timestamps: list[datetime]) -> set[str]:
    """One statement whose rows travel as one JSON document (personalize.codec): no
    SQL text growing with the batch for PostgreSQL to parse. ORDER BY keeps the
    insertion (locking) order."""
    table = connection.ops.quote_name(EventMessageId._meta.db_table)
    rows = [{"id": m, "at": at} for m, at in zip(message_ids, timestamps, strict=True)]
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (source_id, message_id, timestamp) "
            "SELECT %s, m.id, m.at FROM json_to_recordset(%s::json) AS m(id varchar, at timestamptz) "
            "ORDER BY m.id "
            "ON CONFLICT (source_id, message_id) DO NOTHING RETURNING message_id",
            [source.pk, encode_json(rows).decode()],
        )
        return {message_id for (message_id,) in cursor.fetchall()}


def _claim_values(source: Source, message_ids: list[str], timestamps: list[datetime]) -> set[str]:
    meta = EventMessageId._meta
    quote = connection.ops.quote_name
    timestamp_field = meta.get_field("timestamp")
    sql_head = (
        f"INSERT INTO {quote(meta.db_table)}"
        f" ({quote('source_id')}, {quote('message_id')}, {quote('timestamp')}) VALUES "
    )
    sql_tail = (
        f" ON CONFLICT ({quote('source_id')}, {quote('message_id')}) DO NOTHING"
        f" RETURNING {quote('message_id')}"
    )
    claimed: set[str] = set()
    with connection.cursor() as cursor:
        for offset in range(0, len(message_ids), CLAIM_CHUNK):
            chunk = range(offset, min(offset + CLAIM_CHUNK, len(message_ids)))
            params: list[Any] = []
            for n in chunk:
                at = timestamp_field.get_db_prep_save(timestamps[n], connection)
                params += [source.pk, message_ids[n], at]
            cursor.execute(sql_head + ", ".join(["(%s, %s, %s)"] * len(chunk)) + sql_tail, params)
            claimed.update(message_id for (message_id,) in cursor.fetchall())
    return claimed
