from __future__ import annotations

import pytest
from django.test import Client
from django.utils import timezone

from personalize.models import Event, RejectedEvent, Source
from personalize.quarantine import replay


def _batch(source: Source, *items: dict[str, object]) -> dict[str, object]:
    response = Client().post(
        "/v1/batch",
        data={
            "writeKey": source.write_key,
            "context": {"app": {"name": "shop"}},
            "batch": list(items),
        },
        content_type="application/json",
    )
    assert response.status_code == 200
    body: dict[str, object] = response.json()
    return body


@pytest.mark.django_db
def test_bad_items_of_a_batch_are_quarantined_with_their_reason_and_good_ones_stored() -> None:
    source = Source.objects.create(name="site")

    body = _batch(
        source,
        {
            "type": "track",
            "event": "order_completed",
            "anonymousId": "a",
            "messageId": "ok",
            "properties": {"revenue": 10},
        },
        {
            "type": "track",
            "event": "order_completed",
            "anonymousId": "a",
            "messageId": "bad",
            "properties": {"revenue": -5},
        },
    )

    assert body["rejected"] == [
        {"index": 1, "field": "properties.revenue", "message": "must not be negative"}
    ]
    assert list(Event.objects.values_list("message_id", flat=True)) == ["ok"]
    kept = RejectedEvent.objects.get()
    assert (kept.field, kept.reason, kept.status) == (
        "properties.revenue",
        "must not be negative",
        "quarantined",
    )
    assert kept.payload["messageId"] == "bad"
    assert kept.payload["context"] == {"app": {"name": "shop"}}


@pytest.mark.django_db
def test_a_fixed_quarantined_message_is_replayed_once_and_a_still_bad_one_stays() -> None:
    source = Source.objects.create(name="site")
    _batch(
        source,
        {
            "type": "track",
            "event": "order_completed",
            "anonymousId": "a",
            "messageId": "m1",
            "properties": {"revenue": -5},
        },
        {"type": "track", "anonymousId": "a", "messageId": "m2"},
    )
    negative, nameless = RejectedEvent.objects.order_by("pk")
    negative.payload["properties"]["revenue"] = 5
    negative.save()

    first = replay(rejected_ids=[negative.pk, nameless.pk])
    second = replay(rejected_ids=[negative.pk])

    assert (first.replayed, first.still_rejected) == (1, 1)
    assert (second.replayed, second.still_rejected) == (0, 0)
    assert list(Event.objects.values_list("message_id", flat=True)) == ["m1"]
    negative.refresh_from_db()
    nameless.refresh_from_db()
    assert negative.status == "replayed"
    assert (nameless.status, nameless.field) == ("quarantined", "event")


@pytest.mark.django_db
def test_a_rejected_single_call_is_quarantined_too() -> None:
    source = Source.objects.create(name="site")
    response = Client().post(
        "/v1/track",
        data={"writeKey": source.write_key, "anonymousId": "a", "messageId": "m3"},
        content_type="application/json",
    )
    assert response.status_code == 400
    kept = RejectedEvent.objects.get()
    assert (kept.field, kept.payload["type"]) == ("event", "track")


@pytest.mark.django_db
def test_an_editor_replays_quarantined_messages_from_admin(admin_client: Client) -> None:
    source = Source.objects.create(name="site")
    kept = RejectedEvent.objects.create(
        source=source,
        payload={"type": "track", "event": "signed_up", "anonymousId": "a", "messageId": "m9"},
        field="event",
        reason="is required for track",
        received_at=timezone.now(),
    )

    response = admin_client.post(
        "/admin/personalize/rejectedevent/",
        {"action": "replay_selected", "_selected_action": [kept.pk]},
        follow=True,
    )

    assert response.status_code == 200
    assert "1 replayed and stored; 0 still rejected." in response.content.decode()
    assert Event.objects.filter(message_id="m9", name="signed_up").count() == 1
