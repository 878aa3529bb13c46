from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from personalize.keys import api_key_create
from personalize.models import Identity
from segments.models import Segment
from tests.factories import EventFactory, IdentityFactory, ProfileFactory


@pytest.fixture
def api(db: None) -> Client:
    _, key = api_key_create(name="marketing-tool")
    return Client(headers={"Authorization": f"Bearer {key}"})


@pytest.fixture
def viewer(db: None) -> int:
    profile = ProfileFactory.create()
    IdentityFactory.create(profile=profile, kind=Identity.Kind.USER_ID, value="u-1")
    for hours in (1, 2, 3, 4):
        EventFactory.create(
            profile=profile,
            name="product_viewed",
            timestamp=timezone.now() - timedelta(hours=hours),
        )
    return profile.pk


def _post(api: Client, **body: Any) -> Any:
    return api.post("/api/v1/segments", body, content_type="application/json")


def test_a_segment_created_in_the_text_form_gets_its_members_at_once(
    api: Client, viewer: int, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        created = _post(
            api, slug="keen", name="Keen", rule_text="count(product_viewed, last 48h) >= 3"
        )

    assert created.status_code == 201
    assert created.json()["rule"] == {
        "type": "aggregate",
        "fn": "count",
        "event": "product_viewed",
        "window": {"last": "48h"},
        "op": "gte",
        "value": 3,
    }
    assert created.json()["rule_text"] == "count(product_viewed, last 48h) >= 3"
    members = api.get("/api/v1/segments/keen/members").json()
    assert (members["count"], [m["ids"] for m in members["results"]]) == (1, [["u-1"]])
    mine = api.get("/api/v1/profiles/segments", {"user_id": "u-1"}).json()
    assert [s["slug"] for s in mine["segments"]] == ["keen"]


def test_explain_says_which_conditions_held_with_their_values(api: Client, viewer: int) -> None:
    _post(api, slug="keen", name="Keen", rule_text="count(product_viewed, last 48h) >= 5")

    explained = api.get("/api/v1/segments/keen/explain", {"user_id": "u-1"}).json()

    assert explained["matched"] is False
    assert explained["conditions"] == [
        {"text": "count of product_viewed in the last 48h is 4; needs ≥ 5", "held": False}
    ]


def test_an_invalid_rule_is_refused_naming_the_place_and_nothing_is_saved(
    api: Client, db: None
) -> None:
    bad_text = _post(api, slug="bad", name="Bad", rule_text="count(product_viewed, last 48x) >= 3")
    bad_json = _post(api, slug="bad", name="Bad", rule={"type": "aggregate", "fn": "count"})

    assert bad_text.status_code == 400
    assert bad_text.json()["field"] == "rule_text"
    assert "line 1, column 28" in bad_text.json()["message"]
    assert bad_json.status_code == 400
    assert bad_json.json()["field"] == "rule.op"
    assert Segment.objects.count() == 0


def test_put_changes_the_rule_and_members_follow(api: Client, viewer: int) -> None:
    _post(api, slug="keen", name="Keen", rule_text="count(product_viewed, last 48h) >= 3")

    changed = api.put(
        "/api/v1/segments/keen",
        {"name": "Keener", "rule_text": "count(product_viewed, last 48h) >= 10"},
        content_type="application/json",
    )

    assert changed.status_code == 200
    assert (changed.json()["name"], changed.json()["members"]) == ("Keener", 0)


def test_the_segment_api_needs_a_server_key_or_staff(db: None) -> None:
    assert Client().get("/api/v1/segments").status_code in {401, 403}
