"""Celery tasks: thin interfaces over content's services."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from celery import shared_task
from django.db import OperationalError

from content import measurement, recommendations


# Idempotent (same events, same results; each run replaces the last whole), so a
# redelivery after a worker crash is harmless: acks_late.
@shared_task(acks_late=True, autoretry_for=(OperationalError,), retry_backoff=True, max_retries=3)
def recompute_recommendations() -> dict[str, int]:
    return asdict(recommendations.recompute_recommendations())


# Not acks_late: impressions get fresh message ids, so a redelivery would count
# them twice; losing one batch to a worker crash is the lesser harm for measurement.
@shared_task(autoretry_for=(OperationalError,), retry_backoff=True, max_retries=3)
def record_impressions(**kwargs: Any) -> int:
    return measurement.record_impression_batches(**kwargs)
