"""Celery tasks: thin interfaces over segments.services."""

from __future__ import annotations

from celery import shared_task
from django.db import OperationalError

from segments import services


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


@shared_task(acks_late=True, autoretry_for=(OperationalError,), retry_backoff=True, max_retries=5)
def recompute_segment(segment_id: int) -> int:
    return services.recompute_segment(segment_id=segment_id).members


@shared_task(acks_late=True, autoretry_for=(OperationalError,), retry_backoff=True, max_retries=3)
def recompute_due_profiles() -> int:
    return services.recompute_due_profiles()
