from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from personalize.models import Identity, Profile
from segments.models import WebhookDelivery
from segments.signals import SegmentsChanged, memberships_changed
from tests.factories import IdentityFactory, ProfileFactory, SegmentFactory, WebhookFactory

pytestmark = pytest.mark.django_db


class Receiver:
    """A real HTTP endpoint on 127.0.0.1 answering from a script of status codes."""

    def __init__(self, statuses: list[int]) -> None:
        self.statuses = statuses
        self.requests: list[tuple[dict[str, str], bytes]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append((dict(self.headers.items()), body))
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                self.send_response(status)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver([])
    yield server
    server.close()


def _send(changes: list[SegmentsChanged], capture: Any) -> None:
    with capture(execute=True):
        memberships_changed.send(sender=None, changes=changes)


def test_a_change_is_posted_signed_with_the_profiles_ids(
    receiver: Receiver, django_capture_on_commit_callbacks: Any
) -> None:
    profile = ProfileFactory.create()
    IdentityFactory.create(profile=profile, kind=Identity.Kind.ANONYMOUS_ID, value="anon-1")
    IdentityFactory.create(profile=profile, kind=Identity.Kind.USER_ID, value="u-1")
    WebhookFactory.create(name="crm", url=receiver.url, secret="topsecret")

    _send(
        [SegmentsChanged(profile_id=profile.pk, entered=["keen"], exited=[], segments=["keen"])],
        django_capture_on_commit_callbacks,
    )

    assert len(receiver.requests) == 1
    headers, body = receiver.requests[0]
    expected = "sha256=" + hmac.new(b"topsecret", body, hashlib.sha256).hexdigest()
    assert headers["X-P13N-Signature"] == expected
    payload = json.loads(body)
    change = payload["changes"][0]
    assert payload["webhook"] == "crm"
    assert len(payload["changes"]) == 1
    assert {k: v for k, v in change.items() if k != "at"} == {
        "profile_id": profile.pk,
        "user_id": "u-1",
        "anonymous_ids": ["anon-1"],
        "entered": ["keen"],
        "exited": [],
        "segments": ["keen"],
    }
    delivery = WebhookDelivery.objects.get()
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("delivered", 1, 200)
    assert headers["X-P13N-Delivery"] == str(delivery.pk)


def test_a_failing_endpoint_is_retried_until_it_accepts(
    receiver: Receiver, django_capture_on_commit_callbacks: Any
) -> None:
    receiver.statuses = [503, 500]
    profile = ProfileFactory.create()
    WebhookFactory.create(url=receiver.url)

    _send(
        [SegmentsChanged(profile_id=profile.pk, entered=[], exited=["keen"], segments=[])],
        django_capture_on_commit_callbacks,
    )

    delivery = WebhookDelivery.objects.get()
    assert len(receiver.requests) == 3
    # The same signed body every time.
    assert len({body for _, body in receiver.requests}) == 1
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("delivered", 3, 200)


def test_a_client_error_is_not_retried_and_is_recorded(
    receiver: Receiver, django_capture_on_commit_callbacks: Any
) -> None:
    receiver.statuses = [410]
    profile = ProfileFactory.create()
    WebhookFactory.create(url=receiver.url)

    _send(
        [SegmentsChanged(profile_id=profile.pk, entered=["keen"], exited=[], segments=["keen"])],
        django_capture_on_commit_callbacks,
    )

    delivery = WebhookDelivery.objects.get()
    assert len(receiver.requests) == 1
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("failed", 1, 410)
    assert delivery.last_error == "HTTP 410: ok"


def test_profiles_that_denied_consent_and_unwatched_segments_are_not_sent(
    receiver: Receiver, django_capture_on_commit_callbacks: Any
) -> None:
    denied = ProfileFactory.create(consent=Profile.Consent.DENIED)
    granted = ProfileFactory.create(consent=Profile.Consent.GRANTED)
    keen = SegmentFactory.create(slug="keen")
    hook = WebhookFactory.create(url=receiver.url)
    hook.segments.set([keen])

    _send(
        [
            SegmentsChanged(profile_id=denied.pk, entered=["keen"], exited=[], segments=["keen"]),
            SegmentsChanged(
                profile_id=granted.pk, entered=["keen", "vip"], exited=[], segments=["keen", "vip"]
            ),
            SegmentsChanged(profile_id=granted.pk, entered=["vip"], exited=[], segments=["vip"]),
        ],
        django_capture_on_commit_callbacks,
    )

    assert len(receiver.requests) == 1
    changes = json.loads(receiver.requests[0][1])["changes"]
    assert [(c["profile_id"], c["entered"]) for c in changes] == [(granted.pk, ["keen"])]


def test_an_unreachable_endpoint_never_fails_the_sender(
    django_capture_on_commit_callbacks: Any, settings: Any
) -> None:
    settings.P13N_WEBHOOK_TIMEOUT = 1
    settings.P13N_WEBHOOK_MAX_RETRIES = 1
    profile = ProfileFactory.create()
    WebhookFactory.create(url="http://127.0.0.1:9/closed")

    _send(
        [SegmentsChanged(profile_id=profile.pk, entered=["keen"], exited=[], segments=[])],
        django_capture_on_commit_callbacks,
    )

    delivery = WebhookDelivery.objects.get()
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("failed", 2, None)
    assert delivery.last_error.startswith("ConnectionError")


def test_the_celery_task_retries_a_server_error_with_the_same_delivery(
    receiver: Receiver,
) -> None:
    from segments.tasks import deliver_webhook

    receiver.statuses = [502]
    hook = WebhookFactory.create(url=receiver.url)
    delivery = WebhookDelivery.objects.create(webhook=hook, payload={"changes": []})

    result = deliver_webhook.apply(args=(delivery.pk,), throw=False)

    delivery.refresh_from_db()
    assert result.get() == "delivered"
    assert len(receiver.requests) == 2
    assert (delivery.status, delivery.attempts) == ("delivered", 2)
    # A redelivered task finds it delivered and sends nothing again.
    assert deliver_webhook.apply(args=(delivery.pk,)).get() is None
    assert len(receiver.requests) == 2


def test_a_batch_recompute_reaches_the_webhook_in_one_post(
    receiver: Receiver, django_capture_on_commit_callbacks: Any
) -> None:
    from datetime import timedelta

    from django.utils import timezone

    from segments.services import recompute_segment
    from tests.factories import EventFactory

    keen = [ProfileFactory.create() for _ in range(3)]
    for profile in keen:
        for hours in (1, 2, 3):
            EventFactory.create(
                profile=profile,
                name="product_viewed",
                timestamp=timezone.now() - timedelta(hours=hours),
            )
    segment = SegmentFactory.create(slug="keen")
    WebhookFactory.create(url=receiver.url)

    with django_capture_on_commit_callbacks(execute=True):
        recompute_segment(segment_id=segment.pk)

    assert len(receiver.requests) == 1
    changes = json.loads(receiver.requests[0][1])["changes"]
    assert sorted(c["profile_id"] for c in changes) == sorted(p.pk for p in keen)
    assert {tuple(c["entered"]) for c in changes} == {("keen",)}
