"""Who a visitor is: the analytics.js cookies, and profiles resolved and merged from ids."""

from __future__ import annotations

import json

import pytest
from django.conf import settings
from django.test import Client
from pytest_django import DjangoCaptureOnCommitCallbacks

from personalize.models import Event, Identity, Profile
from personalize.services import resolve_profile
from personalize.visitors import clean_cookie_id
from segments.models import Membership
from tests.factories import (
    EventFactory,
    IdentityFactory,
    ProfileFactory,
    SegmentFactory,
    SourceFactory,
)


def test_first_visit_sets_a_script_readable_lax_anonymous_id_cookie(
    client: Client, db: None
) -> None:
    response = client.get("/shop/")

    cookie = response.cookies["ajs_anonymous_id"]
    assert len(cookie.value) == 36  # a UUID
    assert cookie["samesite"] == "Lax"
    assert cookie["httponly"] == ""
    assert cookie["max-age"] == settings.P13N_COOKIE_MAX_AGE
    assert cookie["path"] == "/"


def test_second_visit_keeps_the_anonymous_id_cookie(client: Client, db: None) -> None:
    first = client.get("/shop/")
    anonymous_id = first.cookies["ajs_anonymous_id"].value

    second = client.get("/shop/")

    assert "ajs_anonymous_id" not in second.cookies
    assert second.wsgi_request.visitor.anonymous_id == anonymous_id  # type: ignore[attr-defined]


def test_analytics_js_quoted_cookie_is_read_without_quotes(client: Client, db: None) -> None:
    client.cookies["ajs_anonymous_id"] = "%22abc-123%22"
    client.cookies["ajs_user_id"] = "%22user-7%22"

    response = client.get("/shop/")

    assert "ajs_anonymous_id" not in response.cookies
    visitor = response.wsgi_request.visitor  # type: ignore[attr-defined]
    assert (visitor.anonymous_id, visitor.user_id) == ("abc-123", "user-7")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("abc", "abc"),
        ("%22abc%22", "abc"),
        ('"abc"', "abc"),
        ("%22null%22", None),
        ("", None),
        ("<script>", None),
        ("a" * 256, None),
    ],
)
def test_cookie_ids_are_cleaned(raw: str, expected: str | None) -> None:
    assert clean_cookie_id(raw) == expected


def test_visitor_with_only_a_user_id_cookie_gets_a_fresh_anonymous_id(
    client: Client, db: None
) -> None:
    client.cookies["ajs_user_id"] = "user-7"

    response = client.get("/shop/")

    visitor = response.wsgi_request.visitor  # type: ignore[attr-defined]
    assert visitor.user_id == "user-7"
    assert response.cookies["ajs_anonymous_id"].value == visitor.anonymous_id


def test_resolve_profile_creates_one_profile_for_the_same_ids(db: None) -> None:
    first = resolve_profile(anonymous_id="anon-1", user_id="user-1")
    second = resolve_profile(anonymous_id="anon-1", user_id="user-1")

    assert first.pk == second.pk
    assert Profile.objects.count() == 1
    assert sorted(first.identities.values_list("kind", "value")) == [
        ("anonymous_id", "anon-1"),
        ("user_id", "user-1"),
    ]


def test_resolve_profile_attaches_a_new_user_id_to_the_anonymous_profile(db: None) -> None:
    anonymous = resolve_profile(anonymous_id="anon-1")

    identified = resolve_profile(anonymous_id="anon-1", user_id="user-1")

    assert identified.pk == anonymous.pk
    assert Profile.objects.count() == 1


def test_resolve_profile_without_ids_is_refused(db: None) -> None:
    with pytest.raises(ValueError, match="anonymous id or a user id"):
        resolve_profile()
    assert Profile.objects.count() == 0


def test_anonymous_visitor_identified_as_a_known_user_is_merged_into_the_user(db: None) -> None:
    user_profile = ProfileFactory.create(traits={"name": "Ann", "plan": "gold"})
    IdentityFactory.create(profile=user_profile, kind=Identity.Kind.USER_ID, value="user-1")
    anonymous_profile = ProfileFactory.create(traits={"name": "guest", "city": "Oslo"})
    IdentityFactory.create(
        profile=anonymous_profile, kind=Identity.Kind.ANONYMOUS_ID, value="anon-1"
    )
    EventFactory.create_batch(2, profile=anonymous_profile)
    EventFactory.create(profile=user_profile)

    resolved = resolve_profile(anonymous_id="anon-1", user_id="user-1")

    assert resolved.pk == user_profile.pk
    assert not Profile.objects.filter(pk=anonymous_profile.pk).exists()
    assert Event.objects.filter(profile=user_profile).count() == 3
    user_profile.refresh_from_db()
    # The known user's own traits win; what only the anonymous profile knew is kept.
    assert user_profile.traits == {"name": "Ann", "plan": "gold", "city": "Oslo"}
    assert sorted(user_profile.identities.values_list("kind", "value")) == [
        ("anonymous_id", "anon-1"),
        ("user_id", "user-1"),
    ]


def test_identify_call_merges_the_anonymous_history_into_the_known_user(
    client: Client, db: None
) -> None:
    source = SourceFactory.create(name="web")
    user_profile = ProfileFactory.create()
    IdentityFactory.create(profile=user_profile, kind=Identity.Kind.USER_ID, value="user-1")
    anonymous_profile = ProfileFactory.create()
    IdentityFactory.create(
        profile=anonymous_profile, kind=Identity.Kind.ANONYMOUS_ID, value="anon-1"
    )
    EventFactory.create(profile=anonymous_profile, name="product_viewed")

    response = client.post(
        "/v1/identify",
        data=json.dumps(
            {"writeKey": source.write_key, "anonymousId": "anon-1", "userId": "user-1"}
        ),
        content_type="application/json",
    )

    assert response.status_code == 200
    assert Profile.objects.get().pk == user_profile.pk
    assert sorted(Event.objects.filter(profile=user_profile).values_list("name", flat=True)) == [
        "identify",
        "product_viewed",
    ]


def test_merge_recomputes_the_surviving_profile_with_the_moved_events(
    db: None, django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks
) -> None:
    segment = SegmentFactory.create(
        slug="viewers",
        rule={
            "type": "aggregate",
            "fn": "count",
            "event": "product_viewed",
            "op": "gte",
            "value": 1,
        },
    )
    user_profile = ProfileFactory.create()
    IdentityFactory.create(profile=user_profile, kind=Identity.Kind.USER_ID, value="user-1")
    anonymous_profile = ProfileFactory.create()
    IdentityFactory.create(
        profile=anonymous_profile, kind=Identity.Kind.ANONYMOUS_ID, value="anon-1"
    )
    EventFactory.create(profile=anonymous_profile, name="product_viewed")

    with django_capture_on_commit_callbacks(execute=True):
        resolve_profile(anonymous_id="anon-1", user_id="user-1")

    assert list(Membership.objects.values_list("profile_id", "segment_id", "exited_at")) == [
        (user_profile.pk, segment.pk, None)
    ]
