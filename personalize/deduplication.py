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

from personalize.models import EventMessageId, Source

# Three parameters a row: well under SQLite's and PostgreSQL's limits.
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
    ordered = sorted(first_index)
    with connection.cursor() as cursor:
        for offset in range(0, len(ordered), CLAIM_CHUNK):
            chunk = ordered[offset : offset + CLAIM_CHUNK]
            params: list[Any] = []
            for message_id in chunk:
                at = timestamps[first_index[message_id]]
                params += [source.pk, message_id, timestamp_field.get_db_prep_save(at, connection)]
            cursor.execute(sql_head + ", ".join(["(%s, %s, %s)"] * len(chunk)) + sql_tail, params)
            claimed.update(message_id for (message_id,) in cursor.fetchall())
    return sorted(index for message_id, index in first_index.items() if message_id in claimed)
