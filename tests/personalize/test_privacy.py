from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from personalize.keys import api_key_create
from personalize.models import Event, Identity, Profile, RejectedEvent, Source
from segments.models import Membership
from segments.services import recompute_profile, segment_save
from shop.models import Order
from tests.factories import EventFactory, IdentityFactory, ProfileFactory


@pytest.fixture
def person(db: None) -> Profile:
    profile = ProfileFactory.create(traits={"email": "ada@example.com"})
    IdentityFactory.create(profile=profile, kind=Identity.Kind.USER_ID, value="u-ada")
    IdentityFactory.create(profile=profile, kind=Identity.Kind.ANONYMOUS_ID, value="a-ada")
    EventFactory.create(
        profile=profile, name="product_viewed", timestamp=timezone.now() - timedelta(hours=1)
    )
    segment_save(
        slug="viewers",
        name="Viewers",
        rule={
            "type": "aggregate",
            "fn": "count",
            "event": "product_viewed",
            "op": "gte",
            "value": 1,
        },
    )
    recompute_profile(profile_id=profile.pk)
    Order.objects.create(profile=profile, total=Decimal("12.50"), email="ada@example.com")
    RejectedEvent.objects.create(
        source=Source.objects.create(name="site"),
        payload={"type": "track", "userId": "u-ada"},
        field="event",
        reason="is required for track",
        received_at=timezone.now(),
    )
    return profile


def _server(method: str, path: str, key: str, **data: Any) -> Any:
    client = Client(headers={"Authorization": f"Bearer {key}"})
    if method == "get":
        return client.get(path, data)
    return client.post(path, data, content_type="application/json")


def test_an_export_holds_ids_traits_events_segments_and_orders(person: Profile) -> None:
    _, key = api_key_create(name="dpo")

    response = _server("get", "/api/v1/profiles/export", key, user_id="u-ada")

    assert response.status_code == 200
    body = response.json()
    assert sorted((i["kind"], i["value"]) for i in body["identities"]) == [
        ("anonymous_id", "a-ada"),
        ("user_id", "u-ada"),
    ]
    assert body["traits"] == {"email": "ada@example.com"}
    assert [e["name"] for e in body["events"]] == ["product_viewed"]
    assert [(s["segment"], s["exited_at"]) for s in body["segments"]] == [("viewers", None)]
    assert [(o["total"], o["email"]) for o in body["orders"]] == [("12.50", "ada@example.com")]


def test_erasing_removes_every_trace_of_the_person_and_nothing_of_others(person: Profile) -> None:
    _, key = api_key_create(name="dpo")
    other = ProfileFactory.create()
    EventFactory.create(profile=other)

    response = _server("post", "/api/v1/profiles/erase", key, anonymous_id="a-ada")

    assert response.status_code == 200
    assert response.json()["erased"] == {
        "events": 1,
        "identities": 2,
        "memberships": 1,
        "rejected_events": 1,
        "pending_messages": 0,
    }
    assert not Profile.objects.filter(pk=person.pk).exists()
    assert Identity.objects.filter(value__in=["u-ada", "a-ada"]).count() == 0
    assert Membership.objects.filter(profile_id=person.pk).count() == 0
    assert Order.objects.filter(profile_id=person.pk).count() == 0
    assert RejectedEvent.objects.count() == 0
    assert Event.objects.filter(profile=other).count() == 1


def test_privacy_endpoints_need_a_server_key(person: Profile) -> None:
    assert Client().get("/api/v1/profiles/export", {"user_id": "u-ada"}).status_code in {401, 403}
    assert Client().post("/api/v1/profiles/erase", {"user_id": "u-ada"}).status_code in {401, 403}
    assert Profile.objects.filter(pk=person.pk).exists()


def test_an_editor_exports_and_erases_from_admin(person: Profile, admin_client: Client) -> None:
    exported = admin_client.post(
        "/admin/personalize/profile/", {"action": "export_json", "_selected_action": [person.pk]}
    )
    erased = admin_client.post(
        "/admin/personalize/profile/",
        {"action": "erase_profiles", "_selected_action": [person.pk]},
        follow=True,
    )

    assert exported["Content-Disposition"] == 'attachment; filename="profiles.json"'
    assert [p["traits"] for p in json.loads(exported.content)] == [{"email": "ada@example.com"}]
    assert "Erased 1 profile(s) and 1 event(s)." in erased.content.decode()
    assert not Profile.objects.filter(pk=person.pk).exists()


def test_an_export_holds_the_merges_that_built_the_profile(db: None) -> None:
    from personalize.services import resolve_profile

    anonymous = resolve_profile(anonymous_id="a-grace")
    EventFactory.create(profile=anonymous, name="page")
    known = resolve_profile(user_id="u-grace")
    EventFactory.create(profile=known, name="page")
    resolve_profile(anonymous_id="a-grace", user_id="u-grace")  # logs in: the two merge
    _, key = api_key_create(name="dpo")

    body = _server("get", "/api/v1/profiles/export", key, user_id="u-grace").json()

    assert [(m["merged_profile_id"], m["trigger"], m["status"]) for m in body["merges"]] == [
        (anonymous.pk, "identify", "merged")
    ]
    assert body["scores"] == []
