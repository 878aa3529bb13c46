"""Merging profiles: history moves with the person, merges are recorded, the policy refuses some."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.test import Client
from pytest_django import DjangoCaptureOnCommitCallbacks
from pytest_django.fixtures import Settings

from personalize.models import Event, Identity, Profile, ProfileMerge, Session, Source
from segments.models import Membership, Segment
from tests.factories import MembershipFactory, SegmentFactory, SourceFactory

T0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


@pytest.fixture
def source(db: None) -> Source:
    source: Source = SourceFactory.create(name="web")
    return source


def _send(source: Source, *messages: dict[str, Any]) -> None:
    response = Client().post(
        "/v1/batch",
        data={"writeKey": source.write_key, "batch": list(messages)},
        content_type="application/json",
    )
    assert response.status_code == 200, response.content


def _at(delta: timedelta) -> str:
    return (T0 + delta).isoformat()


def _profile_of(kind: str, value: str) -> Profile:
    return Profile.objects.get(identities__kind=kind, identities__value=value)


def _viewers() -> Segment:
    segment: Segment = SegmentFactory.create(
        slug="viewers",
        rule={
            "type": "aggregate",
            "fn": "count",
            "event": "product_viewed",
            "op": "gte",
            "value": 1,
        },
    )
    return segment


def _never() -> Segment:
    segment: Segment = SegmentFactory.create(
        slug="never",
        rule={"type": "aggregate", "fn": "count", "event": "never_sent", "op": "gte", "value": 1},
    )
    return segment


def test_identify_merges_two_profiles_with_history_and_keeps_all_of_it(
    source: Source, django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks
) -> None:
    viewers, never = _viewers(), _never()
    old = SegmentFactory.create(slug="old", is_active=False)
    with django_capture_on_commit_callbacks(execute=False):
        _send(
            source,
            {
                "type": "page",
                "userId": "user-1",
                "messageId": "u1",
                "timestamp": _at(-timedelta(days=2)),
            },
            {
                "type": "identify",
                "userId": "user-1",
                "messageId": "u2",
                "traits": {"name": "Ann", "plan": "gold"},
                "timestamp": _at(-timedelta(days=2)),
            },
        )
        _send(
            source,
            {
                "type": "identify",
                "anonymousId": "anon-1",
                "messageId": "a1",
                "traits": {"name": "Ann B.", "city": "Oslo"},
                "timestamp": _at(-timedelta(days=1)),
            },
            {
                "type": "track",
                "event": "product_viewed",
                "anonymousId": "anon-1",
                "messageId": "a2",
                "timestamp": _at(-timedelta(days=1, minutes=-10)),
            },
            {
                "type": "page",
                "anonymousId": "anon-1",
                "messageId": "a3",
                "timestamp": _at(-timedelta(days=1, minutes=-20)),
            },
        )
    user, anonymous = _profile_of("user_id", "user-1"), _profile_of("anonymous_id", "anon-1")
    assert user.pk != anonymous.pk
    # Segment history on both sides: a past stay, a stay in the same segment on
    # both (the anonymous one began first), and one only the anonymous side had.
    MembershipFactory.create(
        profile=user,
        segment=old,
        entered_at=T0 - timedelta(days=9),
        exited_at=T0 - timedelta(days=8),
    )
    MembershipFactory.create(profile=user, segment=viewers, entered_at=T0 - timedelta(days=2))
    MembershipFactory.create(profile=anonymous, segment=viewers, entered_at=T0 - timedelta(days=3))
    MembershipFactory.create(profile=anonymous, segment=never, entered_at=T0 - timedelta(days=1))
    Profile.objects.update(recompute_requested_at=None)

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        _send(
            source,
            {
                "type": "identify",
                "anonymousId": "anon-1",
                "userId": "user-1",
                "messageId": "m",
                "timestamp": _at(timedelta(0)),
            },
        )

    assert list(Profile.objects.values_list("pk", flat=True)) == [user.pk]
    assert Event.objects.filter(profile=user).count() == 6
    user.refresh_from_db()
    # Key by key, the newer statement wins: the anonymous side named her later.
    assert user.traits == {"name": "Ann B.", "plan": "gold", "city": "Oslo"}
    assert user.trait_times == {
        "name": _at(-timedelta(days=1)),
        "plan": _at(-timedelta(days=2)),
        "city": _at(-timedelta(days=1)),
    }
    assert sorted(user.identities.values_list("kind", "value")) == [
        ("anonymous_id", "anon-1"),
        ("user_id", "user-1"),
    ]
    merge = ProfileMerge.objects.get()
    assert (merge.profile_id, merge.merged_profile_id, merge.status, merge.trigger) == (
        user.pk,
        anonymous.pk,
        "merged",
        "identify",
    )
    assert merge.identities == [{"kind": "anonymous_id", "value": "anon-1"}]
    assert merge.events_moved == 3
    # Sessions rebuilt over both histories: day -2, day -1 (20 minutes), today.
    assert list(
        Session.objects.order_by("started_at").values_list("profile_id", "events", "pages")
    ) == [
        (user.pk, 2, 1),
        (user.pk, 3, 1),
        (user.pk, 1, 0),
    ]
    assert (user.session_count, user.time_on_site_seconds, user.page_count) == (3, 20 * 60, 2)
    assert user.last_seen_at == T0
    # Segment history moved; one open stay per segment, the one that began first.
    assert sorted(
        Membership.objects.values_list("profile_id", "segment__slug", "entered_at", "exited_at")
    ) == [
        (user.pk, "never", T0 - timedelta(days=1), None),
        (user.pk, "old", T0 - timedelta(days=9), T0 - timedelta(days=8)),
        (user.pk, "viewers", T0 - timedelta(days=3), None),
    ]
    assert user.recompute_requested_at is not None

    for callback in callbacks:
        callback()

    # The recompute then closed what the merged history no longer supports.
    open_stays = Membership.objects.filter(exited_at=None).values_list("segment__slug", flat=True)
    assert list(open_stays) == ["viewers"]
    assert Membership.objects.get(segment=never).exited_at is not None


def test_alias_merges_the_previous_id_s_profile_and_records_the_alias(
    source: Source, django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks
) -> None:
    _send(
        source,
        {"type": "track", "event": "product_viewed", "userId": "old-login", "messageId": "o"},
    )
    _send(source, {"type": "track", "event": "clicked", "userId": "new-login", "messageId": "n"})
    old, new = _profile_of("user_id", "old-login"), _profile_of("user_id", "new-login")

    with django_capture_on_commit_callbacks(execute=True):
        _send(
            source,
            {"type": "alias", "userId": "new-login", "previousId": "old-login", "messageId": "a"},
        )

    assert list(Profile.objects.values_list("pk", flat=True)) == [new.pk]
    assert sorted(Event.objects.values_list("message_id", "profile_id")) == [
        ("a", new.pk),
        ("n", new.pk),
        ("o", new.pk),
    ]
    merge = ProfileMerge.objects.get()
    assert (merge.profile_id, merge.merged_profile_id, merge.trigger, merge.events_moved) == (
        new.pk,
        old.pk,
        "alias",
        1,
    )
    assert merge.identities == [{"kind": "user_id", "value": "old-login"}]


def test_a_merge_keeps_the_latest_consent_statement_whichever_profile_made_it(
    source: Source,
) -> None:
    _send(
        source,
        {
            "type": "track",
            "event": "consent_changed",
            "userId": "u",
            "messageId": "1",
            "properties": {"granted": True},
            "timestamp": _at(-timedelta(hours=2)),
        },
        {
            "type": "track",
            "event": "consent_changed",
            "anonymousId": "a",
            "messageId": "2",
            "properties": {"granted": False},
            "timestamp": _at(-timedelta(hours=1)),
        },
    )

    _send(source, {"type": "identify", "userId": "u", "anonymousId": "a", "messageId": "3"})

    profile = Profile.objects.get()
    assert (profile.consent, profile.consent_updated_at) == ("denied", T0 - timedelta(hours=1))


def test_a_merge_record_follows_its_profile_into_a_later_merge(source: Source) -> None:
    _send(source, {"type": "track", "event": "x", "anonymousId": "a-1", "messageId": "1"})
    _send(source, {"type": "track", "event": "x", "userId": "u-1", "messageId": "2"})
    _send(source, {"type": "identify", "anonymousId": "a-1", "userId": "u-1", "messageId": "3"})
    _send(source, {"type": "track", "event": "x", "userId": "u-2", "messageId": "4"})

    _send(source, {"type": "alias", "userId": "u-2", "previousId": "u-1", "messageId": "5"})

    survivor = Profile.objects.get()
    assert list(survivor.merges.order_by("id").values_list("trigger", flat=True)) == [
        "identify",
        "alias",
    ]


# --- policy -----------------------------------------------------------------------------


def test_never_merged_anonymous_id_is_not_attached_and_the_refusal_is_recorded(
    source: Source,
) -> None:
    _send(source, {"type": "track", "event": "x", "userId": "u-1", "messageId": "1"})
    _send(source, {"type": "track", "event": "x", "userId": "u-2", "messageId": "2"})
    user = _profile_of("user_id", "u-1")

    # A broken client sends "undefined" for every visitor.
    _send(
        source,
        {
            "type": "track",
            "event": "y",
            "userId": "u-1",
            "anonymousId": "undefined",
            "messageId": "3",
        },
    )
    _send(
        source,
        {
            "type": "track",
            "event": "y",
            "userId": "u-2",
            "anonymousId": "undefined",
            "messageId": "4",
        },
    )

    assert Profile.objects.count() == 2
    assert not Identity.objects.filter(value="undefined").exists()
    assert Event.objects.get(message_id="3").profile_id == user.pk
    refusals = ProfileMerge.objects.filter(status="refused").order_by("id")
    assert [(r.identities, r.merged_profile_id) for r in refusals] == [
        ([{"kind": "anonymous_id", "value": "undefined"}], None),
        ([{"kind": "anonymous_id", "value": "undefined"}], None),
    ]
    assert "P13N_NEVER_MERGE_IDS" in refusals[0].reason
    assert not ProfileMerge.objects.filter(status="merged").exists()


def test_a_message_with_only_never_merged_ids_is_stored_on_a_profile_of_its_own(
    source: Source, settings: Settings
) -> None:
    settings.P13N_NEVER_MERGE_IDS = ["kiosk-7"]

    _send(
        source,
        {"type": "page", "anonymousId": "KIOSK-7", "messageId": "1"},
        {"type": "page", "anonymousId": "kiosk-7 ", "messageId": "2"},
    )

    assert Event.objects.count() == 2
    assert len(set(Event.objects.values_list("profile_id", flat=True))) == 2
    assert Identity.objects.count() == 0
    assert ProfileMerge.objects.filter(status="refused").count() == 2


def test_the_id_cap_refuses_a_merge_and_the_event_stays_on_the_user_s_profile(
    source: Source, settings: Settings
) -> None:
    settings.P13N_MAX_IDENTITIES_PER_PROFILE = 3
    # A shared tablet: three people identified on it already.
    _send(
        source,
        {"type": "identify", "anonymousId": "tablet", "userId": "a", "messageId": "1"},
        {"type": "identify", "anonymousId": "tablet", "userId": "b", "messageId": "2"},
    )
    tablet = _profile_of("anonymous_id", "tablet")
    assert tablet.identities.count() == 3
    _send(source, {"type": "page", "userId": "c", "messageId": "3"})
    user_c = _profile_of("user_id", "c")

    _send(source, {"type": "identify", "anonymousId": "tablet", "userId": "c", "messageId": "4"})

    assert Profile.objects.filter(pk__in=[tablet.pk, user_c.pk]).count() == 2
    assert Event.objects.get(message_id="4").profile_id == user_c.pk
    assert tablet.identities.count() == 3
    refusal = ProfileMerge.objects.get(status="refused")
    assert (refusal.profile_id, refusal.merged_profile_id, refusal.trigger) == (
        user_c.pk,
        tablet.pk,
        "identify",
    )
    assert refusal.identities == [{"kind": "anonymous_id", "value": "tablet"}]
    assert "limit is P13N_MAX_IDENTITIES_PER_PROFILE=3" in refusal.reason
    assert not ProfileMerge.objects.filter(status="merged").exists()


def test_a_new_user_id_on_a_full_profile_gets_a_profile_of_its_own(
    source: Source, settings: Settings
) -> None:
    settings.P13N_MAX_IDENTITIES_PER_PROFILE = 2
    _send(source, {"type": "identify", "anonymousId": "tablet", "userId": "a", "messageId": "1"})
    tablet = _profile_of("anonymous_id", "tablet")

    _send(source, {"type": "identify", "anonymousId": "tablet", "userId": "d", "messageId": "2"})

    user_d = _profile_of("user_id", "d")
    assert user_d.pk != tablet.pk
    assert Event.objects.get(message_id="2").profile_id == user_d.pk
    assert sorted(tablet.identities.values_list("value", flat=True)) == ["a", "tablet"]
    assert list(user_d.identities.values_list("value", flat=True)) == ["d"]
    assert ProfileMerge.objects.get().status == "refused"


# --- trait stitching ----------------------------------------------------------------------


def test_a_hashed_email_stitches_two_devices_into_one_profile(
    source: Source, settings: Settings
) -> None:
    settings.P13N_STITCH_TRAITS = ["email_sha256"]
    settings.P13N_HASH_EMAIL_TRAIT = True
    digest = hashlib.sha256(b"ada@example.com").hexdigest()
    _send(
        source,
        {
            "type": "identify",
            "anonymousId": "laptop",
            "messageId": "1",
            "traits": {"email": " Ada@Example.com"},
        },
    )
    _send(source, {"type": "page", "anonymousId": "phone", "messageId": "2"})
    laptop, phone = _profile_of("anonymous_id", "laptop"), _profile_of("anonymous_id", "phone")

    _send(
        source,
        {
            "type": "identify",
            "anonymousId": "phone",
            "messageId": "3",
            "context": {"traits": {"email": "ada@example.com"}},
        },
    )

    assert list(Profile.objects.values_list("pk", flat=True)) == [laptop.pk]
    assert sorted(laptop.identities.values_list("kind", "value")) == [
        ("anonymous_id", "laptop"),
        ("anonymous_id", "phone"),
        ("trait", f"email_sha256:{digest}"),
    ]
    merge = ProfileMerge.objects.get()
    assert (merge.merged_profile_id, merge.trigger, merge.events_moved) == (phone.pk, "trait", 1)
    laptop.refresh_from_db()
    assert laptop.traits == {"email": "ada@example.com", "email_sha256": digest}


def test_without_stitch_traits_a_shared_email_merges_nothing(
    source: Source, settings: Settings
) -> None:
    settings.P13N_STITCH_TRAITS = []
    settings.P13N_HASH_EMAIL_TRAIT = True
    _send(
        source,
        {
            "type": "identify",
            "anonymousId": "laptop",
            "messageId": "1",
            "traits": {"email": "ada@example.com"},
        },
    )

    _send(
        source,
        {
            "type": "identify",
            "anonymousId": "phone",
            "messageId": "2",
            "traits": {"email": "ada@example.com"},
        },
    )

    assert Profile.objects.count() == 2
    assert not Identity.objects.filter(kind="trait").exists()
    assert ProfileMerge.objects.count() == 0


def test_a_never_merged_stitch_value_stitches_nothing(source: Source, settings: Settings) -> None:
    settings.P13N_STITCH_TRAITS = ["email_sha256"]
    empty = hashlib.sha256(b"").hexdigest()  # a client hashing a missing email
    _send(
        source,
        {
            "type": "identify",
            "anonymousId": "a",
            "messageId": "1",
            "traits": {"email_sha256": empty},
        },
    )

    _send(
        source,
        {
            "type": "identify",
            "anonymousId": "b",
            "messageId": "2",
            "traits": {"email_sha256": empty},
        },
    )

    assert Profile.objects.count() == 2
    assert not Identity.objects.filter(kind="trait").exists()
    assert ProfileMerge.objects.filter(status="merged").count() == 0
