"""Webhooks: membership changes POSTed, signed, to subscribed endpoints.

A receiver of ``memberships_changed`` (sent after commit) writes one outbox row
per webhook and batch of changes (:class:`WebhookDelivery`) and queues its
delivery; the recompute that changed the memberships never waits on an
endpoint. Profiles that denied consent are never sent. The body is signed:
``X-P13N-Signature: sha256=<hex HMAC-SHA256 of the raw body with the secret>``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from datetime import datetime, timedelta
from functools import partial
from typing import Any

import requests
from django.conf import settings
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from personalize.models import Identity, Profile
from segments.models import Webhook, WebhookDelivery
from segments.signals import SegmentsChanged, memberships_changed

logger = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-P13N-Signature"
DELIVERY_HEADER = "X-P13N-Delivery"


class WebhookUnavailable(Exception):
    """The endpoint timed out, could not be reached or answered 5xx/429: try again later."""


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def encode(payload: dict[str, Any]) -> bytes:
    """The exact bytes sent (and signed)."""
    return json.dumps(payload, separators=(",", ":"), sort_keys=True, default=str).encode()


# --- outbox ----------------------------------------------------------------------------------


def _profile_ids(changes: list[SegmentsChanged]) -> dict[int, dict[str, Any]]:
    """Ids of the changed profiles that may be sent (consent not denied), one query each."""
    allowed = set(
        Profile.objects.filter(pk__in=[c.profile_id for c in changes])
        .exclude(consent=Profile.Consent.DENIED)
        .values_list("pk", flat=True)
    )
    ids: dict[int, dict[str, Any]] = {
        pid: {"user_id": None, "anonymous_ids": []} for pid in allowed
    }
    for profile_id, kind, value in (
        Identity.objects.filter(profile_id__in=allowed)
        .order_by("profile_id", "created_at", "pk")
        .values_list("profile_id", "kind", "value")
    ):
        if kind == Identity.Kind.USER_ID:
            ids[profile_id]["user_id"] = ids[profile_id]["user_id"] or value
        else:
            ids[profile_id]["anonymous_ids"].append(value)
    return ids


def _any_active_webhook() -> bool:
    """Plain SQL: asked after every membership change, mostly to hear "none", where
    building the ORM query cost more than running it."""
    quote = connection.ops.quote_name
    meta: Any = Webhook._meta
    table, active = quote(meta.db_table), quote(meta.get_field("is_active").column)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT 1 FROM {table} WHERE {active} = %s LIMIT 1", [True])
        return cursor.fetchone() is not None


def webhook_deliveries_create(
    *, changes: list[SegmentsChanged], now: datetime | None = None
) -> list[int]:
    """Outbox rows for the active webhooks these changes concern; returns their ids."""
    if not changes or not _any_active_webhook():
        return []
    webhooks = list(Webhook.objects.filter(is_active=True).prefetch_related("segments"))
    now = now or timezone.now()
    ids = _profile_ids(changes)
    batch = settings.P13N_WEBHOOK_BATCH
    deliveries: list[WebhookDelivery] = []
    for webhook in webhooks:
        watched = {s.slug for s in webhook.segments.all()}
        items = []
        for change in changes:
            if change.profile_id not in ids:
                continue
            entered = [s for s in change.entered if not watched or s in watched]
            exited = [s for s in change.exited if not watched or s in watched]
            if not entered and not exited:
                continue
            items.append(
                {
                    "profile_id": change.profile_id,
                    **ids[change.profile_id],
                    "entered": entered,
                    "exited": exited,
                    "segments": change.segments,
                    "at": now.isoformat(),
                }
            )
        for start in range(0, len(items), batch):
            deliveries.append(
                WebhookDelivery(
                    webhook=webhook,
                    payload={"webhook": webhook.name, "changes": items[start : start + batch]},
                    created_at=now,
                )
            )
    created = WebhookDelivery.objects.bulk_create(deliveries)
    delivery_ids = [d.pk for d in created]
    for delivery_id in delivery_ids:
        transaction.on_commit(partial(_enqueue_delivery, delivery_id))
    return delivery_ids


def _enqueue_delivery(delivery_id: int) -> None:
    from segments.tasks import deliver_webhook

    try:
        if settings.CELERY_TASK_ALWAYS_EAGER:
            # Embedded default (no worker): deliver here, retrying at once; Celery's
            # eager retries would raise into the sender instead.
            _deliver_with_retries(delivery_id, retries=settings.P13N_WEBHOOK_MAX_RETRIES)
        else:
            deliver_webhook.delay(delivery_id)
    except Exception:
        # The row stays pending: `deliver_pending_webhooks` queues it again.
        logger.exception("could not queue webhook delivery %s", delivery_id)


def _deliver_with_retries(delivery_id: int, *, retries: int) -> None:
    for attempt in range(retries + 1):
        try:
            deliver(delivery_id=delivery_id, final_attempt=attempt == retries)
        except WebhookUnavailable:
            continue
        return


def queue_webhooks_for_changes(sender: Any, *, changes: list[SegmentsChanged], **_: Any) -> None:
    """The ``memberships_changed`` receiver: never fails the recompute that sent it."""
    try:
        webhook_deliveries_create(changes=changes)
    except Exception:
        logger.exception("could not record webhook deliveries for %d changes", len(changes))


def connect() -> None:
    memberships_changed.connect(queue_webhooks_for_changes, dispatch_uid="segments.webhooks")


# --- delivery --------------------------------------------------------------------------------


def deliver(*, delivery_id: int, final_attempt: bool = False) -> WebhookDelivery | None:
    """POST one delivery. Raises WebhookUnavailable on a transient failure unless
    ``final_attempt``, in which case the delivery is marked failed instead."""
    delivery = (
        WebhookDelivery.objects.select_related("webhook")
        .filter(pk=delivery_id)
        .exclude(status=WebhookDelivery.Status.DELIVERED)
        .first()
    )
    if delivery is None:
        return None  # already delivered (a redelivered task) or deleted
    body = encode(delivery.payload)
    headers = {
        "Content-Type": "application/json",
        SIGNATURE_HEADER: sign(delivery.webhook.secret, body),
        DELIVERY_HEADER: str(delivery.pk),
    }
    now = timezone.now()
    status_code: int | None = None
    error = ""
    try:
        response = requests.post(
            delivery.webhook.url,
            data=body,
            headers=headers,
            timeout=settings.P13N_WEBHOOK_TIMEOUT,
            allow_redirects=False,
        )
        status_code = response.status_code
        if not 200 <= status_code < 300:
            error = f"HTTP {status_code}: {response.text[:200]}"
    except requests.RequestException as exc:
        error = f"{type(exc).__name__}: {exc}"[:500]
    transient = status_code is None or status_code >= 500 or status_code == 429
    if not error:
        status = WebhookDelivery.Status.DELIVERED
    elif transient and not final_attempt:
        status = WebhookDelivery.Status.PENDING
    else:
        status = WebhookDelivery.Status.FAILED
    WebhookDelivery.objects.filter(pk=delivery.pk).update(
        attempts=F("attempts") + 1,
        last_status_code=status_code,
        last_error=error,
        last_attempt_at=now,
        status=status,
        delivered_at=now if status == WebhookDelivery.Status.DELIVERED else None,
    )
    if status == WebhookDelivery.Status.PENDING:
        raise WebhookUnavailable(error)
    delivery.refresh_from_db()
    return delivery


def deliver_pending(*, older_than_seconds: int = 300) -> int:
    """Queue again the deliveries left pending (a lost message, a broker outage)."""
    cutoff = timezone.now() - timedelta(seconds=older_than_seconds)
    stale = list(
        WebhookDelivery.objects.filter(
            status=WebhookDelivery.Status.PENDING, created_at__lte=cutoff
        ).values_list("pk", flat=True)[:1000]
    )
    for delivery_id in stale:
        _enqueue_delivery(delivery_id)
    return len(stale)
