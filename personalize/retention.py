"""Event retention: events past the configured age are purged.

On PostgreSQL whole time partitions past the cutoff are detached and dropped
(personalize.partitions); what remains older than the cutoff (the partition
straddling it, the DEFAULT partition, or the whole table on SQLite) is deleted
in bounded chunks. Message ids outlive their events by a grace period, so a
client retrying a purged message within it is still told it is a duplicate
(docs/partitioning.md). Quarantined messages, which hold personal data like
events, go at the same age. The data-quality counters (no personal data, one row
per source, hour and event name) are kept for ``P13N_QUALITY_RETENTION_DAYS``.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from personalize import partitions
from personalize.models import Event, EventMessageId, QualityCount, RejectedEvent

PURGE_CHUNK = 5000


def purge_expired_events(*, now: datetime | None = None, chunk: int = PURGE_CHUNK) -> int:
    """Delete events older than EVENT_RETENTION_DAYS; recompute the profiles touched.

    Chunked so one run never holds a long lock over the events table.
    """
    from segments.services import request_recompute

    days: int = settings.EVENT_RETENTION_DAYS
    if days <= 0:
        return 0
    at = now or timezone.now()
    cutoff = at - timedelta(days=days)
    with transaction.atomic():
        dropped = partitions.drop_event_partitions_before(cutoff=cutoff)
        # A membership may rest on purged events (an all-time count).
        request_recompute(profile_ids=dropped.profile_ids)
    purged = dropped.events
    while True:
        with transaction.atomic():
            rows = list(
                Event.objects.filter(timestamp__lt=cutoff)
                .order_by("timestamp", "id")
                .values_list("id", "profile_id")[:chunk]
            )
            if not rows:
                break
            # The timestamp bound lets PostgreSQL skip the partitions past the cutoff.
            Event.objects.filter(
                pk__in=[event_id for event_id, _ in rows], timestamp__lt=cutoff
            ).delete()
            request_recompute(profile_ids={profile_id for _, profile_id in rows})
        purged += len(rows)
    purge_expired_message_ids(
        before=cutoff - timedelta(days=settings.EVENT_DEDUPE_GRACE_DAYS), chunk=chunk
    )
    _delete_in_chunks(RejectedEvent, "received_at", before=cutoff, chunk=chunk)
    return purged


def purge_expired_quality_counts(*, now: datetime | None = None, chunk: int = PURGE_CHUNK) -> int:
    """Delete data-quality counters older than P13N_QUALITY_RETENTION_DAYS (0: keep).

    Never younger than the alerts' baseline (P13N_QUALITY_BASELINE_DAYS and the day
    being compared), which the alerts need to tell a drop from the usual.
    """
    days: int = settings.P13N_QUALITY_RETENTION_DAYS
    if days <= 0:
        return 0
    days = max(days, settings.P13N_QUALITY_BASELINE_DAYS + 1)
    cutoff = (now or timezone.now()) - timedelta(days=days)
    return _delete_in_chunks(QualityCount, "hour", before=cutoff, chunk=chunk)


def _delete_in_chunks(
    model: type[RejectedEvent] | type[QualityCount], field: str, *, before: datetime, chunk: int
) -> int:
    deleted = 0
    while True:
        with transaction.atomic():
            ids = list(
                model._default_manager.filter(**{f"{field}__lt": before})
                .order_by(field)
                .values_list("pk", flat=True)[:chunk]
            )
            if not ids:
                return deleted
            model._default_manager.filter(pk__in=ids).delete()
        deleted += len(ids)


def purge_expired_message_ids(*, before: datetime, chunk: int = PURGE_CHUNK) -> int:
    """Forget the message ids of events older than ``before``: a message sent again
    after this is stored as new (and purged again if it is past retention)."""
    forgotten = 0
    while True:
        with transaction.atomic():
            keys = list(
                EventMessageId.objects.filter(timestamp__lt=before)
                .order_by("timestamp")
                .values_list("source_id", "message_id")[:chunk]
            )
            if not keys:
                return forgotten
            EventMessageId.objects.filter(pk__in=keys).delete()
        forgotten += len(keys)
