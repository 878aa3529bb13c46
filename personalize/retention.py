"""Event retention: events past the configured age are purged in bounded chunks."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from personalize.models import Event

PURGE_CHUNK = 5000


def purge_expired_events(*, now: datetime | None = None, chunk: int = PURGE_CHUNK) -> int:
    """Delete events older than EVENT_RETENTION_DAYS; recompute the profiles touched.

    Chunked so one run never holds a long lock over the events table.
    """
    from segments.services import request_recompute

    days: int = settings.EVENT_RETENTION_DAYS
    if days <= 0:
        return 0
    cutoff = (now or timezone.now()) - timedelta(days=days)
    purged = 0
    while True:
        with transaction.atomic():
            rows = list(
                Event.objects.filter(timestamp__lt=cutoff)
                .order_by("timestamp", "id")
                .values_list("id", "profile_id")[:chunk]
            )
            if not rows:
                return purged
            Event.objects.filter(pk__in=[event_id for event_id, _ in rows]).delete()
            # A membership may rest on purged events (an all-time count).
            request_recompute(profile_ids={profile_id for _, profile_id in rows})
        purged += len(rows)
