"""Membership recompute: entering, exiting on time, history, signals and coalesced requests."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pytest_django import DjangoCaptureOnCommitCallbacks

from personalize.models import Profile
from segments.models import Membership, Segment
from segments.services import recompute_due_profiles, recompute_profile, request_recompute
from segments.signals import SegmentsChanged, memberships_changed
from tests.factories import EventFactory, ProfileFactory, SegmentFactory

T0 = datetime(2026, 1, 10, 12, 0, tzinfo=UTC)


@pytest.fixture
def signals_received() -> Iterator[list[dict[str, Any]]]:
    received: list[dict[str, Any]] = []

    def receiver(sender: object, **kwargs: Any) -> None:
        received.append(kwargs)

    memberships_changed.connect(receiver, dispatch_uid="test-recompute-receiver")
    try:
        yield received
    finally:
        memberships_changed.disconnect(dispatch_uid="test-recompute-receiver")


@pytest.fixture
def engaged(db: None) -> Segment:
    # 3+ product views in the last 48 hours (the factory's default rule).
    segment: Segment = SegmentFactory.create(slug="engaged", name="Engaged")
    return segment


def _viewed(profile: Profile, *hours_ago: int) -> None:
    for hours in hours_ago:
        EventFactory.create(
            profile=profile, name="product_viewed", timestamp=T0 - timedelta(hours=hours)
        )


def test_profile_enters_a_segment_with_a_history_row_and_its_reason(engaged: Segment) -> None:
    profile = ProfileFactory.create()
    _viewed(profile, 3, 2, 1)

    change = recompute_profile(profile_id=profile.pk, now=T0)

    assert (change.entered, change.exited, change.current) == (["engaged"], [], ["engaged"])
    membership = Membership.objects.get()
    assert (membership.profile_id, membership.segment_id) == (profile.pk, engaged.pk)
    assert (membership.entered_at, membership.exited_at) == (T0, None)
    assert membership.entry_reason == [
        {"text": "count of product_viewed in the last 48h is 3; needs ≥ 3", "held": True}
    ]


def test_profile_below_the_threshold_enters_nothing(engaged: Segment) -> None:
    profile = ProfileFactory.create()
    _viewed(profile, 3, 2)

    change = recompute_profile(profile_id=profile.pk, now=T0)

    assert (change.entered, change.current) == ([], [])
    assert Membership.objects.count() == 0


def test_next_evaluation_is_the_moment_the_oldest_counted_view_leaves_the_window(
    engaged: Segment,
) -> None:
    profile = ProfileFactory.create()
    _viewed(profile, 3, 2, 1)

    change = recompute_profile(profile_id=profile.pk, now=T0)

    profile.refresh_from_db()
    assert profile.next_evaluation_at == T0 + timedelta(hours=45)
    assert change.next_evaluation_at == T0 + timedelta(hours=45)


def test_recompute_again_with_nothing_new_changes_nothing(engaged: Segment) -> None:
    profile = ProfileFactory.create()
    _viewed(profile, 3, 2, 1)
    recompute_profile(profile_id=profile.pk, now=T0)

    change = recompute_profile(profile_id=profile.pk, now=T0 + timedelta(hours=1))

    assert (change.entered, change.exited, change.current) == ([], [], ["engaged"])
    assert Membership.objects.count() == 1


def test_due_sweep_flips_a_lapsed_membership_and_signals_once(
    engaged: Segment,
    signals_received: list[dict[str, Any]],
    django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks,
) -> None:
    profile = ProfileFactory.create()
    _viewed(profile, 3, 2, 1)
    with django_capture_on_commit_callbacks(execute=True):
        recompute_profile(profile_id=profile.pk, now=T0)
    assert signals_received == [
        {
            "signal": memberships_changed,
            "changes": [
                SegmentsChanged(
                    profile_id=profile.pk, entered=["engaged"], exited=[], segments=["engaged"]
                )
            ],
        }
    ]
    signals_received.clear()

    lapsed_at = T0 + timedelta(hours=45)
    with django_capture_on_commit_callbacks(execute=True):
        swept = recompute_due_profiles(now=lapsed_at)

    assert swept == 1
    assert signals_received == [
        {
            "signal": memberships_changed,
            "changes": [
                SegmentsChanged(profile_id=profile.pk, entered=[], exited=["engaged"], segments=[])
            ],
        }
    ]
    membership = Membership.objects.get()
    assert (membership.entered_at, membership.exited_at) == (T0, lapsed_at)
    assert membership.exit_reason == [
        {"text": "count of product_viewed in the last 48h is 2; needs ≥ 3", "held": False}
    ]
    profile.refresh_from_db()
    assert profile.next_evaluation_at is None


def test_due_sweep_before_the_window_lapses_touches_nothing(
    engaged: Segment,
    signals_received: list[dict[str, Any]],
    django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks,
) -> None:
    profile = ProfileFactory.create()
    _viewed(profile, 3, 2, 1)
    recompute_profile(profile_id=profile.pk, now=T0)

    with django_capture_on_commit_callbacks(execute=True):
        swept = recompute_due_profiles(now=T0 + timedelta(hours=45) - timedelta(microseconds=1))

    assert swept == 0
    assert signals_received == []
    assert Membership.objects.get().exited_at is None


def test_unchanged_recompute_sends_no_signal(
    engaged: Segment,
    signals_received: list[dict[str, Any]],
    django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks,
) -> None:
    profile = ProfileFactory.create()
    _viewed(profile, 1)

    with django_capture_on_commit_callbacks(execute=True):
        recompute_profile(profile_id=profile.pk, now=T0)

    assert signals_received == []


def test_reentry_after_an_exit_opens_a_second_history_row(engaged: Segment) -> None:
    profile = ProfileFactory.create()
    _viewed(profile, 3, 2, 1)
    recompute_profile(profile_id=profile.pk, now=T0)
    later = T0 + timedelta(hours=45)
    recompute_profile(profile_id=profile.pk, now=later)
    EventFactory.create(
        profile=profile, name="product_viewed", timestamp=later + timedelta(minutes=1)
    )

    recompute_profile(profile_id=profile.pk, now=later + timedelta(minutes=2))

    assert list(
        Membership.objects.order_by("entered_at").values_list("entered_at", "exited_at")
    ) == [(T0, later), (later + timedelta(minutes=2), None)]


def test_deactivated_segment_closes_open_memberships(engaged: Segment) -> None:
    profile = ProfileFactory.create()
    _viewed(profile, 3, 2, 1)
    recompute_profile(profile_id=profile.pk, now=T0)
    Segment.objects.filter(pk=engaged.pk).update(is_active=False)

    change = recompute_profile(profile_id=profile.pk, now=T0 + timedelta(minutes=1))

    assert (change.exited, change.current) == (["engaged"], [])
    membership = Membership.objects.get()
    assert (membership.exited_at, membership.exit_reason) == (T0 + timedelta(minutes=1), [])


def test_composed_segment_follows_the_segment_it_refers_to(engaged: Segment) -> None:
    SegmentFactory.create(
        slug="engaged-with-email",
        rule={
            "type": "and",
            "rules": [
                {"type": "segment", "slug": "engaged", "member": True},
                {"type": "trait", "path": "email", "op": "exists"},
            ],
        },
    )
    profile = ProfileFactory.create(traits={"email": "ann@example.com"})
    _viewed(profile, 3, 2, 1)

    change = recompute_profile(profile_id=profile.pk, now=T0)

    assert change.entered == ["engaged", "engaged-with-email"]


def test_recompute_of_a_deleted_profile_is_a_no_op(engaged: Segment) -> None:
    change = recompute_profile(profile_id=999_999, now=T0)

    assert (change.entered, change.exited, change.current) == ([], [], [])
    assert Membership.objects.count() == 0


def test_request_recompute_queues_a_pending_profile_only_once(
    db: None, django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks
) -> None:
    profile = ProfileFactory.create()

    with django_capture_on_commit_callbacks() as callbacks:
        request_recompute(profile_ids=[profile.pk])
        request_recompute(profile_ids=[profile.pk, profile.pk])

    assert len(callbacks) == 1
    profile.refresh_from_db()
    assert profile.recompute_requested_at is not None


def test_request_after_the_recompute_ran_queues_again(
    engaged: Segment, django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks
) -> None:
    profile = ProfileFactory.create()
    with django_capture_on_commit_callbacks(execute=True):
        request_recompute(profile_ids=[profile.pk])
    profile.refresh_from_db()
    assert profile.recompute_requested_at is None

    with django_capture_on_commit_callbacks() as callbacks:
        request_recompute(profile_ids=[profile.pk])

    assert len(callbacks) == 1


def test_stale_request_is_picked_up_by_the_sweep(engaged: Segment) -> None:
    profile = ProfileFactory.create(recompute_requested_at=T0 - timedelta(minutes=5))
    _viewed(profile, 3, 2, 1)

    swept = recompute_due_profiles(now=T0)

    assert swept == 1
    profile.refresh_from_db()
    assert profile.recompute_requested_at is None
    assert Membership.objects.filter(profile=profile, exited_at__isnull=True).count() == 1
