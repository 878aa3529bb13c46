"""The ingest inbox: with a worker, /v1/batch answers once a batch is validated and
committed, and the worker stores its events later (personalize.services)."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from typing import Any
from unittest import mock

import pytest
from django.test import Client, override_settings

from personalize.keys import api_key_create
from personalize.models import (
    Event,
    EventMessageId,
    Identity,
    PendingBatch,
    Profile,
    QualityCount,
    Source,
)
from personalize.services import store_pending_batches
from personalize.tracking import (
    TrackedMessage,
    Violation,
    decode_messages,
    encode_messages,
    parse_message,
)
from tests.factories import IdentityFactory, SourceFactory

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("deferred")]


@pytest.fixture
def deferred() -> Any:
    # Every batch through the inbox, however small (by default a browser's few
    # events are stored in the request: see the last test).
    with override_settings(P13N_DEFER_INGEST=True, P13N_INLINE_BATCH_MAX=0):
        yield


@pytest.fixture
def source() -> Source:
    source: Source = SourceFactory.create(name="web")
    return source


def _batch(client: Client, source: Source, *messages: dict[str, Any]) -> Any:
    token = base64.b64encode(f"{source.write_key}:".encode()).decode()
    return client.post(
        "/v1/batch",
        data=json.dumps({"batch": list(messages)}),
        content_type="application/json",
        headers={"Authorization": f"Basic {token}"},
    )


def _view(n: int, visitor: str = "anon-1") -> dict[str, Any]:
    return {
        "type": "track",
        "event": "product_viewed",
        "anonymousId": visitor,
        "messageId": f"m-{n}",
        "timestamp": f"2026-11-20T10:00:0{n}.123456Z",
        "properties": {"category": "camping", "price": 10 + n},
    }


def test_a_batch_is_answered_once_committed_to_the_inbox_and_stored_by_the_worker(
    client: Client, source: Source
) -> None:
    response = _batch(client, source, _view(1), _view(2), {"type": "track", "userId": "u-1"})

    assert response.status_code == 200
    body = response.json()
    assert body["accepted"] == 2
    assert "stored" not in body  # not known yet: the worker drops duplicates
    assert [entry["field"] for entry in body["rejected"]] == ["event"]
    # In the database, not yet events: the worker's task runs after commit.
    assert PendingBatch.objects.get().size == 2
    assert not Event.objects.exists()

    assert store_pending_batches() == 1

    assert not PendingBatch.objects.exists()
    events = Event.objects.order_by("timestamp")
    assert [e.properties["price"] for e in events] == [11, 12]
    assert {e.profile_id for e in events} == {
        Identity.objects.get(value="anon-1").profile_id,
    }
    assert Profile.objects.get().last_seen_at == events[1].timestamp
    assert EventMessageId.objects.count() == 2


def test_the_queued_task_stores_the_batch_after_commit(
    client: Client, source: Source, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        response = _batch(client, source, _view(1))

    assert response.status_code == 200
    assert not PendingBatch.objects.exists()
    assert Event.objects.get().message_id == "m-1"


def test_a_retried_batch_is_stored_once_and_its_duplicates_counted(
    client: Client, source: Source
) -> None:
    first = _batch(client, source, _view(1), _view(2)).json()
    retried = _batch(client, source, _view(2), _view(3)).json()

    assert (first["accepted"], retried["accepted"]) == (2, 2)
    assert store_pending_batches() == 2
    assert sorted(Event.objects.values_list("message_id", flat=True)) == ["m-1", "m-2", "m-3"]
    counts = QualityCount.objects.get(source=source, event_name="product_viewed")
    assert (counts.received, counts.stored, counts.duplicates) == (4, 3, 1)


def test_a_batch_whose_task_could_not_be_queued_is_kept_for_the_sweep(
    client: Client, source: Source, django_capture_on_commit_callbacks: Any
) -> None:
    from personalize.tasks import store_pending_events

    with (
        mock.patch.object(store_pending_events, "delay", side_effect=ConnectionError("no broker")),
        django_capture_on_commit_callbacks(execute=True),
    ):
        response = _batch(client, source, _view(1))

    assert response.status_code == 200
    assert PendingBatch.objects.count() == 1
    # Beat's sweep runs the same task.
    assert store_pending_events.apply().get() == 1
    assert Event.objects.get().message_id == "m-1"


def test_erasing_a_person_first_stores_what_was_accepted_so_nothing_brings_them_back(
    client: Client, source: Source
) -> None:
    _batch(client, source, {**_view(1), "userId": "u-ada"}, _view(2, visitor="anon-2"))
    _, key = api_key_create(name="dpo")

    response = Client(headers={"Authorization": f"Bearer {key}"}).post(
        "/api/v1/profiles/erase", {"user_id": "u-ada"}, content_type="application/json"
    )

    assert response.status_code == 200, response.content
    assert response.json()["erased"]["events"] == 1
    assert not PendingBatch.objects.exists()
    assert not Identity.objects.filter(value__in=["u-ada", "anon-1"]).exists()
    assert list(Event.objects.values_list("anonymous_id", flat=True)) == ["anon-2"]


def test_messages_come_back_from_the_inbox_exactly_as_validated() -> None:
    at = datetime(2026, 11, 20, 10, 0, 1, 123456, tzinfo=UTC)
    # What a client sent with an offset of seconds, as parse_message keeps it (in UTC).
    odd_offset = parse_message(
        {"type": "track", "event": "e", "userId": "u", "timestamp": "2026-11-20T10:00:00+05:30:15"},
        message_type=None,
        received_at=at,
    )
    messages = [
        TrackedMessage(
            type="track",
            name="order_completed",
            message_id="m-1",
            anonymous_id="anon-1",
            user_id="u-1",
            properties={"revenue": 12.5, "items": [{"sku": "tent", "n": 2**70}]},
            context={"ip": "203.0.113.0"},
            timestamp=at,
            original_timestamp=at,
            sent_at=None,
            violations=(
                Violation(field="properties.coupon", reason="is required", rule="required"),
            ),
            absent_fields=("context",),
        ),
        TrackedMessage(
            type="identify",
            name="identify",
            message_id="m-2",
            anonymous_id="",
            user_id="u-1",
            traits={"plan": "pro"},
        ),
    ]

    messages.append(odd_offset)

    assert decode_messages(encode_messages(messages)) == messages
    assert decode_messages(encode_messages(messages[1:])) == messages[1:]
    assert odd_offset.timestamp == datetime(2026, 11, 20, 4, 29, 45, tzinfo=UTC)


def test_a_batch_that_keeps_failing_is_set_aside_with_its_error_and_blocks_nothing(
    client: Client, source: Source, admin_client: Client
) -> None:
    import personalize.services as services

    _batch(client, source, _view(1))
    _batch(client, source, _view(2, visitor="anon-2"))
    poisoned = PendingBatch.objects.order_by("pk").first()
    assert poisoned is not None
    store = services._store_claimed

    def failing_for_the_first(**kwargs: Any) -> Any:
        if kwargs["messages"][0].message_id == "m-1":
            raise ValueError("a bug meets this batch")
        return store(**kwargs)

    with mock.patch.object(services, "_store_claimed", side_effect=failing_for_the_first):
        # One try per task (the sweep comes back later), the batch behind stored at once.
        assert store_pending_batches() == 1
        for _ in range(services.PENDING_BATCH_ATTEMPTS - 1):
            assert store_pending_batches() == 0

    # The batch behind it was stored; the failing one is kept, set aside, with why.
    assert list(Event.objects.values_list("message_id", flat=True)) == ["m-2"]
    poisoned.refresh_from_db()
    assert poisoned.failed_attempts == services.PENDING_BATCH_ATTEMPTS
    assert "a bug meets this batch" in poisoned.last_error
    assert store_pending_batches() == 0

    # Once fixed, an operator stores it again from admin.
    listing = admin_client.get("/admin/personalize/pendingbatch/")
    assert "a bug meets this batch" in listing.content.decode()
    response = admin_client.post(
        "/admin/personalize/pendingbatch/",
        {"action": "store_selected_again", "_selected_action": [poisoned.pk]},
    )
    assert response.status_code == 302
    assert store_pending_batches() == 1
    assert sorted(Event.objects.values_list("message_id", flat=True)) == ["m-1", "m-2"]


def test_a_small_batch_is_stored_in_the_request_and_a_large_one_goes_to_the_inbox(
    client: Client, source: Source
) -> None:
    with override_settings(P13N_INLINE_BATCH_MAX=2):
        small = _batch(client, source, _view(1), _view(2)).json()
        large = _batch(client, source, _view(3), _view(4), _view(5)).json()

    assert small == {"success": True, "accepted": 2, "stored": 2, "duplicates": 0, "rejected": []}
    assert large == {"success": True, "accepted": 3, "rejected": []}
    assert sorted(Event.objects.values_list("message_id", flat=True)) == ["m-1", "m-2"]
    assert PendingBatch.objects.get().size == 3


def test_erasing_a_person_removes_their_messages_from_set_aside_batches(
    client: Client, source: Source
) -> None:
    import personalize.services as services

    _batch(client, source, {**_view(1), "userId": "u-ada"}, _view(2, visitor="anon-2"))
    with mock.patch.object(services, "_store_claimed", side_effect=ValueError("bug")):
        for _ in range(services.PENDING_BATCH_ATTEMPTS):
            store_pending_batches()
    assert PendingBatch.objects.get().failed_attempts == services.PENDING_BATCH_ATTEMPTS
    IdentityFactory.create(value="u-ada", kind=Identity.Kind.USER_ID)
    _, key = api_key_create(name="dpo")

    response = Client(headers={"Authorization": f"Bearer {key}"}).post(
        "/api/v1/profiles/erase", {"user_id": "u-ada"}, content_type="application/json"
    )

    assert response.json()["erased"]["pending_messages"] == 1
    left = PendingBatch.objects.get()
    assert [m.anonymous_id for m in decode_messages(bytes(left.messages))] == ["anon-2"]
    assert (left.size, left.last_error) == (1, "")


def test_batches_committed_while_a_task_is_queued_are_stored_by_it_without_another(
    client: Client, source: Source, django_capture_on_commit_callbacks: Any
) -> None:
    from django.core.cache import cache

    from personalize.tasks import store_pending_events

    cache.clear()
    with mock.patch.object(store_pending_events, "delay") as delay:
        with django_capture_on_commit_callbacks(execute=True):
            _batch(client, source, _view(1))
        with django_capture_on_commit_callbacks(execute=True):
            _batch(client, source, _view(2))
        assert delay.call_count == 1

        # The task, when it runs, stores both; a batch after its start queues anew.
        assert store_pending_events.apply().get() == 2
        with django_capture_on_commit_callbacks(execute=True):
            _batch(client, source, _view(3))
        assert delay.call_count == 2
    assert sorted(Event.objects.values_list("message_id", flat=True)) == ["m-1", "m-2"]
