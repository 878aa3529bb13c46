"""The Segment-compatible tracking API (/v1/*): status codes, bodies and stored events."""

from __future__ import annotations

import base64
import gzip
import json
from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from personalize.models import Event, Identity, Profile, RejectedEvent, Source
from tests.factories import IdentityFactory, ProfileFactory, SourceFactory


@pytest.fixture
def source(db: None) -> Source:
    source: Source = SourceFactory.create(name="web")
    return source


def _post(client: Client, path: str, payload: Any, *, headers: dict[str, str] | None = None) -> Any:
    return client.post(
        path, data=json.dumps(payload), content_type="application/json", headers=headers or {}
    )


def _basic(write_key: str) -> dict[str, str]:
    token = base64.b64encode(f"{write_key}:".encode()).decode()
    return {"Authorization": f"Basic {token}"}


@pytest.mark.parametrize(
    ("path", "message", "expected_type", "expected_name", "expected_properties"),
    [
        (
            "/v1/track",
            {"event": "product_viewed", "properties": {"sku": "tent", "price": 289}},
            "track",
            "product_viewed",
            {"sku": "tent", "price": 289},
        ),
        (
            "/v1/page",
            {"name": "Home", "properties": {"path": "/"}},
            "page",
            "page",
            {"name": "Home", "path": "/"},
        ),
        (
            "/v1/screen",
            {"name": "Settings", "properties": {"tab": "privacy"}},
            "screen",
            "screen",
            {"name": "Settings", "tab": "privacy"},
        ),
        ("/v1/identify", {"traits": {"email": "a@example.com"}}, "identify", "identify", {}),
        (
            "/v1/group",
            {"groupId": "acme", "traits": {"employees": 40}},
            "group",
            "group",
            {"groupId": "acme", "traits": {"employees": 40}},
        ),
        ("/v1/alias", {"previousId": "old-id"}, "alias", "alias", {}),
    ],
)
def test_each_single_call_returns_exactly_success_and_stores_its_event(
    client: Client,
    source: Source,
    path: str,
    message: dict[str, Any],
    expected_type: str,
    expected_name: str,
    expected_properties: dict[str, Any],
) -> None:
    response = _post(
        client,
        path,
        {**message, "anonymousId": "anon-1", "messageId": "m-1"},
        headers=_basic(source.write_key),
    )

    assert response.status_code == 200
    assert response.json() == {"success": True}
    event = Event.objects.get()
    assert (event.type, event.name, event.properties) == (
        expected_type,
        expected_name,
        expected_properties,
    )
    assert (event.source_id, event.message_id, event.anonymous_id) == (source.pk, "m-1", "anon-1")


@pytest.mark.parametrize("path", ["/v1/batch", "/v1/import"])
def test_batch_and_import_store_every_item_with_its_own_type(
    client: Client, source: Source, path: str
) -> None:
    response = _post(
        client,
        path,
        {
            "writeKey": source.write_key,
            "batch": [
                {"type": "page", "anonymousId": "anon-1", "messageId": "m-1"},
                {
                    "type": "track",
                    "event": "add_to_cart",
                    "anonymousId": "anon-1",
                    "messageId": "m-2",
                    "properties": {"sku": "stove"},
                },
            ],
        },
    )

    assert response.status_code == 200
    assert response.json() == {
        "success": True,
        "accepted": 2,
        "stored": 2,
        "duplicates": 0,
        "rejected": [],
    }
    assert list(Event.objects.order_by("message_id").values_list("message_id", "type", "name")) == [
        ("m-1", "page", "page"),
        ("m-2", "track", "add_to_cart"),
    ]
    assert Event.objects.get(message_id="m-2").properties == {"sku": "stove"}


def test_write_key_in_the_body_authenticates(client: Client, source: Source) -> None:
    response = _post(
        client,
        "/v1/track",
        {"writeKey": source.write_key, "event": "signed_up", "userId": "u-1"},
    )

    assert response.status_code == 200
    assert Event.objects.get().user_id == "u-1"


@pytest.mark.parametrize(
    "headers",
    [_basic("not-a-key"), {}],
    ids=["unknown-key-in-basic-auth", "no-key-at-all"],
)
def test_unknown_or_missing_write_key_is_401_json_and_stores_nothing(
    client: Client, source: Source, headers: dict[str, str]
) -> None:
    response = _post(client, "/v1/track", {"event": "x", "anonymousId": "anon-1"}, headers=headers)

    assert response.status_code == 401
    body = response.json()
    assert set(body) == {"code", "message"}
    assert body["code"] == "unauthorized"
    assert Event.objects.count() == 0
    assert Profile.objects.count() == 0


def test_disabled_source_is_401_and_stores_nothing(client: Client, source: Source) -> None:
    Source.objects.filter(pk=source.pk).update(enabled=False)

    response = _post(
        client, "/v1/track", {"writeKey": source.write_key, "event": "x", "anonymousId": "a"}
    )

    assert response.status_code == 401
    assert response.json() == {"code": "unauthorized", "message": "unknown or disabled write key"}
    assert Event.objects.count() == 0


def test_malformed_json_is_400(client: Client, source: Source) -> None:
    response = client.post(
        "/v1/track",
        data=b"{not json",
        content_type="application/json",
        headers=_basic(source.write_key),
    )

    assert response.status_code == 400
    assert response.json() == {"code": "invalid_json", "message": "the body is not valid JSON"}
    assert Event.objects.count() == 0


@pytest.mark.parametrize("batch", [{"type": "track"}, None, "events"])
def test_batch_body_without_a_list_is_400(client: Client, source: Source, batch: Any) -> None:
    response = _post(client, "/v1/batch", {"writeKey": source.write_key, "batch": batch})

    assert response.status_code == 400
    assert response.json() == {
        "code": "invalid_batch",
        "message": "batch: must be a list of messages",
    }


def test_gzip_body_is_accepted(client: Client, source: Source) -> None:
    body = gzip.compress(
        json.dumps(
            {"batch": [{"type": "track", "event": "zipped", "anonymousId": "a", "messageId": "z"}]}
        ).encode()
    )

    response = client.post(
        "/v1/batch",
        data=body,
        content_type="application/json",
        headers={"Content-Encoding": "gzip", **_basic(source.write_key)},
    )

    assert response.status_code == 200
    assert response.json()["stored"] == 1
    assert Event.objects.get().name == "zipped"


def test_body_that_claims_gzip_but_is_not_is_400(client: Client, source: Source) -> None:
    response = client.post(
        "/v1/batch",
        data=b'{"batch": []}',
        content_type="application/json",
        headers={"Content-Encoding": "gzip", **_basic(source.write_key)},
    )

    assert response.status_code == 400
    assert response.json()["code"] == "bad_gzip"


def test_oversized_body_is_413_and_stores_nothing(client: Client, source: Source) -> None:
    padding = "x" * (600 * 1024)
    response = _post(
        client,
        "/v1/batch",
        {
            "writeKey": source.write_key,
            "batch": [{"type": "track", "event": "big", "anonymousId": "a"}],
            "padding": padding,
        },
    )

    assert response.status_code == 413
    assert response.json()["code"] == "too_large"
    assert Event.objects.count() == 0


def test_gzip_body_inflating_past_the_limit_is_413(client: Client, source: Source) -> None:
    body = gzip.compress(json.dumps({"batch": [], "padding": "x" * (600 * 1024)}).encode())
    assert len(body) < 10 * 1024

    response = client.post(
        "/v1/batch",
        data=body,
        content_type="application/json",
        headers={"Content-Encoding": "gzip", **_basic(source.write_key)},
    )

    assert response.status_code == 413


def test_batch_stores_the_good_items_and_lists_rejected_indexes_with_the_field(
    client: Client, source: Source
) -> None:
    response = _post(
        client,
        "/v1/batch",
        {
            "writeKey": source.write_key,
            "batch": [
                {"type": "track", "event": "ok_1", "anonymousId": "a", "messageId": "m-0"},
                {"type": "track", "anonymousId": "a", "messageId": "m-1"},
                {"type": "track", "event": "ok_2", "anonymousId": "a", "messageId": "m-2"},
                {"type": "track", "event": "no_ids", "messageId": "m-3"},
                {"type": "bogus", "anonymousId": "a", "messageId": "m-4"},
            ],
        },
    )

    assert response.status_code == 200
    body = response.json()
    assert (body["success"], body["stored"], body["duplicates"]) == (True, 2, 0)
    assert [(r["index"], r["field"]) for r in body["rejected"]] == [
        (1, "event"),
        (3, "userId"),
        (4, "type"),
    ]
    assert sorted(Event.objects.values_list("name", flat=True)) == ["ok_1", "ok_2"]


def test_negative_revenue_is_rejected_naming_properties_revenue(
    client: Client, source: Source
) -> None:
    response = _post(
        client,
        "/v1/track",
        {
            "writeKey": source.write_key,
            "event": "order_completed",
            "anonymousId": "a",
            "properties": {"revenue": -10},
        },
    )

    assert response.status_code == 400
    assert response.json() == {
        "code": "invalid_message",
        "message": "properties.revenue: must not be negative",
        "field": "properties.revenue",
    }
    assert Event.objects.count() == 0


def test_identify_traits_sent_only_in_context_traits_are_applied_to_the_profile(
    client: Client, source: Source
) -> None:
    response = _post(
        client,
        "/v1/identify",
        {
            "writeKey": source.write_key,
            "userId": "u-1",
            "context": {"traits": {"email": "ann@example.com", "plan": "gold"}},
        },
    )

    assert response.status_code == 200
    profile = Identity.objects.get(kind=Identity.Kind.USER_ID, value="u-1").profile
    assert profile.traits == {"email": "ann@example.com", "plan": "gold"}


def test_identify_merges_new_traits_into_existing_ones(client: Client, source: Source) -> None:
    identity = IdentityFactory.create(
        kind=Identity.Kind.USER_ID,
        value="u-1",
        profile=ProfileFactory.create(traits={"plan": "free", "city": "Oslo"}),
    )

    _post(
        client,
        "/v1/identify",
        {"writeKey": source.write_key, "userId": "u-1", "traits": {"plan": "gold"}},
    )

    identity.profile.refresh_from_db()
    assert identity.profile.traits == {"plan": "gold", "city": "Oslo"}


def test_group_traits_are_kept_under_group_and_leave_the_person_s_own_traits_untouched(
    client: Client, source: Source
) -> None:
    identity = IdentityFactory.create(
        kind=Identity.Kind.USER_ID,
        value="u-1",
        profile=ProfileFactory.create(traits={"name": "Ann"}),
    )

    response = _post(
        client,
        "/v1/group",
        {
            "writeKey": source.write_key,
            "userId": "u-1",
            "groupId": "initech",
            "traits": {"name": "Initech", "employees": 40},
        },
    )

    assert response.status_code == 200
    identity.profile.refresh_from_db()
    assert identity.profile.traits == {
        "name": "Ann",
        "group": {"id": "initech", "name": "Initech", "employees": 40},
    }
    assert Event.objects.get().properties == {
        "groupId": "initech",
        "traits": {"name": "Initech", "employees": 40},
    }


def test_batch_level_context_applies_to_items_without_their_own(
    client: Client, source: Source
) -> None:
    _post(
        client,
        "/v1/batch",
        {
            "writeKey": source.write_key,
            "context": {"library": {"name": "analytics-python"}},
            "batch": [
                {"type": "track", "event": "inherits", "anonymousId": "a"},
                {
                    "type": "track",
                    "event": "own",
                    "anonymousId": "a",
                    "context": {"library": {"name": "custom"}},
                },
            ],
        },
    )

    contexts = dict(Event.objects.values_list("name", "context"))
    # Each also records the caller's network, as Segment records its IP.
    assert contexts == {
        "inherits": {"library": {"name": "analytics-python"}, "ip": "127.0.0.0"},
        "own": {"library": {"name": "custom"}, "ip": "127.0.0.0"},
    }


def test_duplicate_message_id_is_stored_once_and_counted_as_duplicate(
    client: Client, source: Source
) -> None:
    item = {"type": "track", "event": "retry", "anonymousId": "a", "messageId": "same"}
    first = _post(client, "/v1/batch", {"writeKey": source.write_key, "batch": [item, item]})
    second = _post(client, "/v1/batch", {"writeKey": source.write_key, "batch": [item]})

    assert (first.json()["stored"], first.json()["duplicates"]) == (1, 1)
    assert (second.json()["stored"], second.json()["duplicates"]) == (0, 1)
    assert Event.objects.count() == 1


def test_timestamp_is_corrected_for_client_clock_skew(client: Client, source: Source) -> None:
    # The client's clock runs an hour fast; it queued the event 5 s before sending.
    client_now = timezone.now() + timedelta(hours=1)
    original = client_now - timedelta(seconds=5)

    _post(
        client,
        "/v1/batch",
        {
            "writeKey": source.write_key,
            "sentAt": client_now.isoformat(),
            "batch": [
                {
                    "type": "track",
                    "event": "skewed",
                    "anonymousId": "a",
                    "timestamp": original.isoformat(),
                }
            ],
        },
    )

    event = Event.objects.get()
    assert event.timestamp == event.received_at - timedelta(seconds=5)
    assert event.original_timestamp == original
    assert event.sent_at == client_now


def test_null_anonymous_id_beside_a_user_id_is_accepted(client: Client, source: Source) -> None:
    response = _post(
        client,
        "/v1/track",
        {"writeKey": source.write_key, "event": "x", "userId": "u-9", "anonymousId": None},
    )

    assert response.status_code == 200
    event = Event.objects.get()
    assert (event.user_id, event.anonymous_id) == ("u-9", "")
    assert list(event.profile.identities.values_list("kind", "value")) == [("user_id", "u-9")]


@pytest.mark.django_db
def test_a_source_over_its_rate_gets_429_with_retry_after_and_nothing_stored(settings: Any) -> None:
    from django.core.cache import cache

    cache.clear()
    settings.TRACKING_RATE_LIMIT = 3
    source = Source.objects.create(name="burst")
    batch = [
        {"type": "track", "event": "e", "anonymousId": "a", "messageId": f"r{i}"} for i in range(4)
    ]

    response = Client().post(
        "/v1/batch",
        data={"writeKey": source.write_key, "batch": batch},
        content_type="application/json",
    )

    assert response.status_code == 429
    assert response["Retry-After"] == "1"
    assert response.json()["code"] == "rate_limited"
    assert Event.objects.filter(source=source).count() == 0


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("sent", "stored"),
    [
        ({"ip": "203.0.113.77"}, "203.0.113.0"),
        ({"ip": "2001:db8:85a3:8d3:1319:8a2e:370:7348"}, "2001:db8:85a3::"),
        ({}, "127.0.0.0"),  # the caller's own address when the client sends none
        ({"ip": "not-an-ip"}, ""),
    ],
)
def test_ip_addresses_are_anonymized_before_storage(sent: dict[str, str], stored: str) -> None:
    source = Source.objects.create(name="ips")
    Client().post(
        "/v1/track",
        data={"writeKey": source.write_key, "event": "e", "anonymousId": "a", "context": sent},
        content_type="application/json",
    )
    assert Event.objects.get(source=source).context["ip"] == stored


@pytest.mark.django_db
def test_the_full_ip_is_kept_when_configured(settings: Any) -> None:
    settings.P13N_KEEP_FULL_IP = True
    source = Source.objects.create(name="ips")
    Client().post(
        "/v1/track",
        data={
            "writeKey": source.write_key,
            "event": "e",
            "anonymousId": "a",
            "context": {"ip": "203.0.113.77"},
        },
        content_type="application/json",
    )
    assert Event.objects.get(source=source).context["ip"] == "203.0.113.77"


def _batch_with_literal(source: Source, literal: str) -> str:
    """A batch whose one property is ``literal`` as written (json.dumps could not)."""
    batch = {"type": "track", "event": "x", "anonymousId": "a", "properties": {"score": "@"}}
    body = json.dumps({"writeKey": source.write_key, "batch": [batch]})
    return body.replace('"@"', literal)


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity", "1e400", "-1e400"])
def test_nan_and_infinity_are_not_json_and_get_400(
    client: Client, source: Source, constant: str
) -> None:
    body = _batch_with_literal(source, constant)

    response = client.post("/v1/batch", data=body, content_type="application/json")

    assert response.status_code == 400
    assert response.json()["code"] == "invalid_json"
    assert Event.objects.count() == 0


@pytest.mark.parametrize(
    "big",
    [2**70 + 1, -(2**63) - 1],  # a float has not the bits for either (the second has 19 digits)
)
def test_integers_beyond_64_bits_are_json_and_kept(
    client: Client, source: Source, big: int
) -> None:
    body = _batch_with_literal(source, str(big))

    response = client.post("/v1/batch", data=body, content_type="application/json")

    assert response.status_code == 200
    assert response.json()["rejected"] == []
    assert Event.objects.get().properties == {"score": big}


def test_a_nul_character_rejects_only_its_message_naming_the_field_and_quarantines_it(
    client: Client, source: Source
) -> None:
    response = _post(
        client,
        "/v1/batch",
        {
            "writeKey": source.write_key,
            "batch": [
                {"type": "track", "event": "ok", "anonymousId": "a", "messageId": "m-1"},
                {
                    "type": "track",
                    "event": "bad",
                    "anonymousId": "a",
                    "messageId": "m-2",
                    "properties": {"items": [{"note": "a\u0000b"}]},
                },
            ],
        },
    )

    assert response.status_code == 200
    assert response.json()["rejected"] == [
        {
            "index": 1,
            "field": "properties.items[0].note",
            "message": "must not contain the NUL character (\\u0000)",
        }
    ]
    assert list(Event.objects.values_list("message_id", flat=True)) == ["m-1"]
    kept = RejectedEvent.objects.get()
    assert kept.payload["properties"] == {"items": [{"note": "a\ufffdb"}]}
    assert kept.field == "properties.items[0].note"


def test_a_nul_character_in_the_batch_context_is_400_naming_it(
    client: Client, source: Source
) -> None:
    response = _post(
        client,
        "/v1/batch",
        {
            "writeKey": source.write_key,
            "context": {"page": {"title": "\u0000"}},
            "batch": [{"type": "track", "event": "ok", "anonymousId": "a"}],
        },
    )

    assert response.status_code == 400
    assert response.json() == {
        "code": "invalid_batch",
        "message": "context.page.title: must not contain the NUL character (\\u0000)",
    }
    assert Event.objects.count() == 0


@pytest.mark.parametrize(
    ("timestamp", "sent_at", "field"),
    [
        ("0001-01-01T00:00:00+14:00", "2026-11-20T10:00:00Z", "timestamp"),
        ("0001-01-01T10:00:00Z", "9999-12-31T23:59:59Z", "sentAt"),
    ],
)
def test_dates_and_clock_corrections_beyond_the_calendar_reject_the_message_naming_the_field(
    client: Client, source: Source, timestamp: str, sent_at: str, field: str
) -> None:
    message = {
        "type": "track",
        "event": "x",
        "anonymousId": "a",
        "timestamp": timestamp,
        "sentAt": sent_at,
    }

    response = _post(client, "/v1/batch", {"batch": [message]}, headers=_basic(source.write_key))

    assert response.status_code == 200
    assert [entry["field"] for entry in response.json()["rejected"]] == [field]
