"""The official segment-analytics-python library, pointed at a live server, gets every call accepted."""

from __future__ import annotations

from typing import Any

import pytest
from segment.analytics import Client as SegmentClient

from personalize.models import Event, Identity, Profile, Source


@pytest.mark.parametrize("gzip", [False, True])
@pytest.mark.django_db(transaction=True)
def test_every_call_of_the_official_python_client_is_stored(live_server: Any, gzip: bool) -> None:
    source = Source.objects.create(name="backend")
    errors: list[Exception] = []
    client = SegmentClient(
        write_key=source.write_key,
        host=live_server.url,
        sync_mode=True,
        gzip=gzip,
        on_error=lambda error, batch: errors.append(error),
        max_retries=0,
    )

    client.identify("u-1", {"email": "ada@example.com", "plan": "pro"})
    client.track("u-1", "order_completed", {"revenue": 42.5, "currency": "EUR"})
    client.page("u-1", "Docs", "Install", {"path": "/docs/install"})
    client.screen("u-1", "App", "Home")
    client.group("u-1", "g-7", {"name": "Initech"})
    client.alias("u-1", "u-1-new")
    client.track(anonymous_id="anon-9", event="product_viewed", properties={"category": "camping"})
    client.flush()

    assert errors == []
    stored = list(Event.objects.filter(source=source).order_by("id").values_list("type", "name"))
    assert stored == [
        ("identify", "identify"),
        ("track", "order_completed"),
        ("page", "page"),
        ("screen", "screen"),
        ("group", "group"),
        ("alias", "alias"),
        ("track", "product_viewed"),
    ]
    # The alias stitched u-1's profile into u-1-new's: one person, one profile.
    profile = Profile.objects.get(
        identities__kind=Identity.Kind.USER_ID, identities__value="u-1-new"
    )
    assert set(profile.identities.values_list("value", flat=True)) == {"u-1", "u-1-new"}
    assert profile.traits == {
        "email": "ada@example.com",
        "plan": "pro",
        "group": {"id": "g-7", "name": "Initech"},
    }
    assert Event.objects.filter(source=source, user_id="u-1").exclude(profile=profile).count() == 0
    revenue = Event.objects.get(source=source, name="order_completed").properties["revenue"]
    assert revenue == 42.5


@pytest.mark.django_db
def test_an_alias_in_the_same_batch_as_the_anonymous_history_stitches_it_to_the_user() -> None:
    from django.test import Client

    source = Source.objects.create(name="web")
    response = Client().post(
        "/v1/batch",
        data={
            "writeKey": source.write_key,
            "batch": [
                {
                    "type": "track",
                    "event": "product_viewed",
                    "anonymousId": "anon-1",
                    "messageId": "m1",
                },
                {"type": "alias", "previousId": "anon-1", "userId": "user-1", "messageId": "m2"},
                {
                    "type": "track",
                    "event": "order_completed",
                    "userId": "user-1",
                    "messageId": "m3",
                },
            ],
        },
        content_type="application/json",
    )

    assert response.status_code == 200
    profile = Profile.objects.get(identities__value="user-1")
    assert set(profile.identities.values_list("kind", "value")) == {
        ("anonymous_id", "anon-1"),
        ("user_id", "user-1"),
    }
    assert list(profile.events.order_by("id").values_list("message_id", flat=True)) == [
        "m1",
        "m2",
        "m3",
    ]
    assert Profile.objects.count() == 1
