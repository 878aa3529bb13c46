"""Celery tasks: thin interfaces over personalize's services."""

from __future__ import annotations

from celery import shared_task
from django.db import OperationalError

from personalize import partitions, quality, retention

# A task stores at most this many batches, so that a busy inbox cannot keep a
# worker from its other work for long; it queues a successor for the rest.
PENDING_BATCHES_PER_TASK = 50


@shared_task(acks_late=True, autoretry_for=(OperationalError,), retry_backoff=True, max_retries=3)
def purge_expired_events() -> int:
    purged = retention.purge_expired_events()
    retention.purge_expired_quality_counts()
    return purged


@shared_task(acks_late=True, autoretry_for=(OperationalError,), retry_backoff=True, max_retries=3)
def check_data_quality() -> int:
    """Alert on sources whose volume or reject rate left their recent normal."""
    return quality.check_alerts()


@shared_task(
    acks_late=True,
    reject_on_worker_lost=True,
    autoretry_for=(OperationalError,),
    retry_backoff=True,
    max_retries=5,
)
def run_import_job(job_id: int) -> str:
    """Idempotent: a redelivery resumes after the last committed chunk."""
    from personalize.import_jobs import import_job_run

    return import_job_run(job_id=job_id).status


@shared_task(acks_late=True, autoretry_for=(OperationalError,), retry_backoff=True, max_retries=3)
def create_event_partitions() -> list[str]:
    """Keep EVENT_PARTITIONS_AHEAD partitions of the events table ahead of time."""
    return partitions.ensure_event_partitions()


@shared_task(acks_late=True, autoretry_for=(OperationalError,), retry_backoff=True, max_retries=3)
def store_pending_events() -> int:
    """Store the batches the tracking API accepted (queued after them, and swept)."""
    from personalize.services import work_off_pending_batches

    return work_off_pending_batches(limit=PENDING_BATCHES_PER_TASK)
