"""Celery tasks: thin interfaces over segments.services."""

from __future__ import annotations

from typing import Any

from celery import Task, shared_task
from django.conf import settings
from django.db import OperationalError

from segments import history, services, webhooks
from segments.webhooks import WebhookUnavailable


@shared_task(
    acks_late=True,
    autoretry_for=(OperationalError,),
    retry_backoff=True,
    retry_backoff_max=60,
    max_retries=8,
)
def recompute_profile(profile_id: int) -> list[str]:
    change = services.recompute_profile(profile_id=profile_id)
    return change.current


@shared_task(
    acks_late=True,
    autoretry_for=(OperationalError,),
    retry_backoff=True,
    retry_backoff_max=60,
    max_retries=8,
)
def recompute_profiles(profile_ids: list[int]) -> dict[int, list[str]]:
    """The recomputes an ingest batch requested; each profile's segments after it.
    A retry re-runs the profiles done before the failure too: recompute_profile
    is idempotent."""
    return {
        profile_id: services.recompute_profile(profile_id=profile_id).current
        for profile_id in profile_ids
    }


@shared_task(acks_late=True, autoretry_for=(OperationalError,), retry_backoff=True, max_retries=5)
def recompute_segment(segment_id: int) -> int:
    return services.recompute_segment(segment_id=segment_id).members


@shared_task(acks_late=True, autoretry_for=(OperationalError,), retry_backoff=True, max_retries=3)
def recompute_due_profiles() -> int:
    return services.recompute_due_profiles()


@shared_task(
    bind=True,
    acks_late=True,
    autoretry_for=(WebhookUnavailable,),
    retry_backoff=True,
    retry_backoff_max=600,
    retry_jitter=True,
    max_retries=settings.P13N_WEBHOOK_MAX_RETRIES,
)
def deliver_webhook(self: Task[Any, Any], delivery_id: int) -> str | None:
    """POST one webhook delivery; 5xx, 429 and timeouts retry with backoff."""
    delivery = webhooks.deliver(
        delivery_id=delivery_id, final_attempt=self.request.retries >= (self.max_retries or 0)
    )
    return None if delivery is None else delivery.status


@shared_task(acks_late=True, autoretry_for=(OperationalError,), retry_backoff=True, max_retries=3)
def deliver_pending_webhooks() -> int:
    return webhooks.deliver_pending()


@shared_task(acks_late=True, autoretry_for=(OperationalError,), retry_backoff=True, max_retries=3)
def record_segment_sizes() -> int:
    return history.record_segment_sizes()
