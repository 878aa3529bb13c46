"""Rejected messages: kept with their reasons, replayed once the data or rules are fixed."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from personalize.models import RejectedEvent, Source
from personalize.tracking import MessageError, TrackedMessage, parse_message


@dataclass(frozen=True)
class Rejection:
    payload: Any
    field: str
    reason: str


def rejection_payload(item: Any, *, message_type: str | None, defaults: Mapping[str, Any]) -> Any:
    """What to keep so a replay sees the message as it was validated."""
    if not isinstance(item, dict):
        return {"raw": item}
    payload = {**defaults, **item}
    if message_type is not None:
        payload["type"] = message_type
    return payload


def quarantine(*, source: Source, rejections: Iterable[Rejection], received_at: datetime) -> int:
    rows = [
        RejectedEvent(
            source=source,
            payload=r.payload,
            field=r.field[:255],
            reason=r.reason,
            received_at=received_at,
        )
        for r in rejections
    ]
    RejectedEvent.objects.bulk_create(rows, batch_size=500)
    return len(rows)


@dataclass
class ReplayResult:
    replayed: int = 0
    still_rejected: int = 0


def replay(*, rejected_ids: Iterable[int]) -> ReplayResult:
    """Validate quarantined messages again; the ones that pass are ingested once."""
    from personalize.services import ingest_messages

    result = ReplayResult()
    now = timezone.now()
    with transaction.atomic():
        pending = list(
            RejectedEvent.objects.select_for_update()
            .select_related("source")
            .filter(pk__in=list(rejected_ids), status=RejectedEvent.Status.QUARANTINED)
            .order_by("pk")
        )
        by_source: dict[int, list[tuple[RejectedEvent, TrackedMessage]]] = {}
        for row in pending:
            try:
                message = parse_message(row.payload, message_type=None, received_at=row.received_at)
            except MessageError as exc:
                row.field, row.reason = exc.field, exc.reason
                row.save(update_fields=["field", "reason"])
                result.still_rejected += 1
                continue
            by_source.setdefault(row.source_id, []).append((row, message))
        for entries in by_source.values():
            source = entries[0][0].source
            ingest_messages(source=source, messages=[m for _, m in entries], received_at=now)
            RejectedEvent.objects.filter(pk__in=[row.pk for row, _ in entries]).update(
                status=RejectedEvent.Status.REPLAYED, replayed_at=now
            )
            result.replayed += len(entries)
    return result
