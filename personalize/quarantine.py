"""Rejected messages: kept with their reasons, replayed once the data or rules are fixed."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from personalize import quality
from personalize.codec import without_nul
from personalize.models import RejectedEvent, Source
from personalize.plans import PlanViolation, plan_for, violations_payload
from personalize.tracking import MessageError, TrackedMessage, Violation, parse_message


@dataclass(frozen=True)
class Rejection:
    payload: Any
    field: str
    reason: str
    violations: tuple[Violation, ...] = ()

    @classmethod
    def of(cls, payload: Any, error: MessageError) -> Rejection:
        violations = error.violations if isinstance(error, PlanViolation) else ()
        return cls(payload=payload, field=error.field, reason=error.reason, violations=violations)


def event_name_of(payload: Any) -> str:
    """The name the event would have had: a track call's event, else its type."""
    if not isinstance(payload, dict):
        return ""
    kind = payload.get("type")
    name = payload.get("event") if kind == "track" else kind
    return name[:255] if isinstance(name, str) else ""


def rejection_payload(item: Any, *, message_type: str | None, defaults: Mapping[str, Any]) -> Any:
    """What to keep so a replay sees the message as it was validated (any NUL
    replaced: PostgreSQL cannot store one, and the reason names the field)."""
    if not isinstance(item, dict):
        return {"raw": without_nul(item)}
    payload = {**defaults, **item}
    if message_type is not None:
        payload["type"] = message_type
    return without_nul(payload)


def quarantine(*, source: Source, rejections: Iterable[Rejection], received_at: datetime) -> int:
    rows = [
        RejectedEvent(
            source=source,
            payload=r.payload,
            event_name=event_name_of(r.payload),
            field=r.field[:255],
            reason=r.reason,
            violations=violations_payload(r.violations),
            received_at=received_at,
        )
        for r in rejections
    ]
    RejectedEvent.objects.bulk_create(rows, batch_size=500)
    quality.record_rejections(source=source, rows=rows, received_at=received_at)
    return len(rows)


@dataclass
class ReplayResult:
    replayed: int = 0
    still_rejected: int = 0


def replay(*, rejected_ids: Iterable[int]) -> ReplayResult:
    """Validate quarantined messages again, against their source's current tracking
    plan; the ones that pass are ingested once."""
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
        plans = {row.source_id: plan_for(row.source) for row in pending}
        for row in pending:
            try:
                message = plans[row.source_id].apply(
                    parse_message(row.payload, message_type=None, received_at=row.received_at)
                )
            except MessageError as exc:
                again = Rejection.of(row.payload, exc)
                row.field, row.reason = again.field, again.reason
                row.violations = violations_payload(again.violations)
                row.save(update_fields=["field", "reason", "violations"])
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
