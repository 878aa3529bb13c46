"""The incremental path: a recompute after new events re-evaluates only the segments
and scores those events can affect, and the result still equals a full evaluation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from pytest_django import DjangoCaptureOnCommitCallbacks

from personalize.models import Profile
from segments.definitions import ChangedInputs
from segments.models import Membership, ProfileEvaluation, Segment
from segments.rules.text import criteria_from_text, text_to_json
from segments.services import (
    recompute_due_profiles,
    recompute_profile,
    request_recompute,
    score_save,
)
from tests.factories import EventFactory, ProfileFactory, SegmentFactory

T0 = datetime(2026, 1, 10, 12, 0, tzinfo=UTC)
H = timedelta(hours=1)

pytestmark = pytest.mark.django_db


def segment(slug: str, text: str) -> Segment:
    created: Segment = SegmentFactory.create(slug=slug, name=slug, rule=text_to_json(text))
    return created


def event(profile: Profile, name: str, at: datetime) -> None:
    EventFactory.create(profile=profile, name=name, timestamp=at)


def members(profile: Profile) -> list[str]:
    return sorted(
        Membership.objects.filter(profile=profile, exited_at__isnull=True).values_list(
            "segment__slug", flat=True
        )
    )


def pending(profile: Profile, inputs: ChangedInputs | None) -> None:
    with transaction.atomic():
        request_recompute(
            profile_ids=[profile.pk], inputs=None if inputs is None else {profile.pk: inputs}
        )


VIEWED = ChangedInputs(event_names=frozenset({"product_viewed"}))


@pytest.fixture
def two_segments() -> tuple[Segment, Segment]:
    return (
        segment("viewers", "count(product_viewed, last 48h) >= 1"),
        segment("buyers", "count(order_completed, last 48h) >= 1"),
    )


def test_an_event_re_evaluates_only_the_segments_that_read_it(
    two_segments: tuple[Segment, Segment],
) -> None:
    profile = ProfileFactory.create()
    recompute_profile(profile_id=profile.pk, now=T0)
    # An order the request does not report (nothing would, in practice): the
    # recompute for a view must leave "buyers" alone, which shows it was skipped.
    event(profile, "order_completed", T0)
    event(profile, "product_viewed", T0)
    pending(profile, VIEWED)

    change = recompute_profile(profile_id=profile.pk, now=T0 + H)

    assert (change.entered, change.current) == (["viewers"], ["viewers"])
    assert members(profile) == ["viewers"]
    # Once the order is reported too, a full answer again.
    pending(profile, ChangedInputs(event_names=frozenset({"order_completed"})))
    assert recompute_profile(profile_id=profile.pk, now=T0 + H).entered == ["buyers"]


def test_reasons_of_requests_waiting_together_are_merged(
    two_segments: tuple[Segment, Segment],
    django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks,
) -> None:
    profile = ProfileFactory.create()
    recompute_profile(profile_id=profile.pk, now=T0)
    event(profile, "product_viewed", T0)
    event(profile, "order_completed", T0)

    with django_capture_on_commit_callbacks() as callbacks:
        pending(profile, VIEWED)
        pending(profile, ChangedInputs(event_names=frozenset({"order_completed"}), traits=True))

    assert len(callbacks) == 1
    state = ProfileEvaluation.objects.get(profile=profile)
    assert (state.pending_events, state.pending_traits, state.pending_all) == (
        ["order_completed", "product_viewed"],
        True,
        False,
    )
    assert recompute_profile(profile_id=profile.pk, now=T0 + H).entered == ["buyers", "viewers"]
    state.refresh_from_db()
    assert (state.pending_events, state.pending_traits, state.pending_all) == ([], False, False)


def test_a_request_without_a_reason_re_evaluates_everything(
    two_segments: tuple[Segment, Segment],
) -> None:
    profile = ProfileFactory.create()
    recompute_profile(profile_id=profile.pk, now=T0)
    event(profile, "order_completed", T0)
    pending(profile, VIEWED)
    pending(profile, None)  # a merge, a purge: what changed is unknown

    assert recompute_profile(profile_id=profile.pk, now=T0 + H).entered == ["buyers"]


def test_a_segment_composed_of_an_affected_segment_is_re_evaluated(
    two_segments: tuple[Segment, Segment],
) -> None:
    segment("viewers-on-pro", 'in_segment(viewers) and trait.plan = "pro"')
    profile = ProfileFactory.create(traits={"plan": "pro"})
    recompute_profile(profile_id=profile.pk, now=T0)
    event(profile, "product_viewed", T0)
    pending(profile, VIEWED)

    change = recompute_profile(profile_id=profile.pk, now=T0 + H)

    assert change.entered == ["viewers", "viewers-on-pro"]


def test_a_score_and_the_segments_comparing_it_follow_its_events(db: None) -> None:
    score_save(
        slug="intent", name="Intent", criteria=criteria_from_text("10: count(add_to_cart) >= 1")
    )
    segment("high-intent", "score(intent) >= 10")
    segment("buyers", "count(order_completed) >= 1")
    profile = ProfileFactory.create()
    recompute_profile(profile_id=profile.pk, now=T0)
    event(profile, "add_to_cart", T0)
    pending(profile, ChangedInputs(event_names=frozenset({"add_to_cart"})))

    change = recompute_profile(profile_id=profile.pk, now=T0 + H)

    assert change.entered == ["high-intent"]
    assert list(profile.scores.values_list("score__slug", "value")) == [("intent", 10.0)]


def test_a_skipped_segment_keeps_its_next_change_time(
    two_segments: tuple[Segment, Segment],
) -> None:
    profile = ProfileFactory.create()
    event(profile, "product_viewed", T0 - H)
    recompute_profile(profile_id=profile.pk, now=T0)
    viewers_lapse = T0 + 47 * H
    event(profile, "order_completed", T0)
    pending(profile, ChangedInputs(event_names=frozenset({"order_completed"})))

    change = recompute_profile(profile_id=profile.pk, now=T0 + H)

    assert change.current == ["buyers", "viewers"]
    # "viewers" was not evaluated, yet its lapse is still the first one due.
    assert change.next_evaluation_at == viewers_lapse
    assert recompute_due_profiles(now=viewers_lapse) == 1
    assert members(profile) == ["buyers"]


def test_a_due_profile_is_evaluated_in_full_even_with_a_known_reason(
    two_segments: tuple[Segment, Segment],
) -> None:
    profile = ProfileFactory.create()
    recompute_profile(profile_id=profile.pk, now=T0)
    event(profile, "order_completed", T0)
    Profile.objects.filter(pk=profile.pk).update(next_evaluation_at=T0)  # a batch marked it
    pending(profile, VIEWED)

    assert recompute_profile(profile_id=profile.pk, now=T0 + H).entered == ["buyers"]


def test_changed_definitions_mean_a_full_evaluation(
    two_segments: tuple[Segment, Segment],
) -> None:
    profile = ProfileFactory.create()
    recompute_profile(profile_id=profile.pk, now=T0)
    event(profile, "order_completed", T0)
    segment("searchers", "count(search) >= 1")
    pending(profile, VIEWED)

    assert recompute_profile(profile_id=profile.pk, now=T0 + H).entered == ["buyers"]


def test_an_event_no_segment_reads_costs_no_evaluation_queries(
    two_segments: tuple[Segment, Segment],
) -> None:
    profile = ProfileFactory.create()
    recompute_profile(profile_id=profile.pk, now=T0)
    pending(profile, ChangedInputs(event_names=frozenset({"search"})))

    with CaptureQueriesContext(connection) as queries:
        change = recompute_profile(profile_id=profile.pk, now=T0 + H)

    assert change.current == []
    assert not any("personalize_event" in q["sql"] for q in queries.captured_queries)


def test_the_stale_request_sweep_uses_the_recorded_reason(
    two_segments: tuple[Segment, Segment],
) -> None:
    profile = ProfileFactory.create()
    recompute_profile(profile_id=profile.pk, now=T0)
    event(profile, "product_viewed", T0)
    # The broker was down: the request stays recorded, with its reason.
    Profile.objects.filter(pk=profile.pk).update(recompute_requested_at=T0)
    ProfileEvaluation.objects.filter(profile=profile).update(pending_events=["product_viewed"])

    assert recompute_due_profiles(now=T0 + H) == 1

    assert members(profile) == ["viewers"]
    profile.refresh_from_db()
    assert profile.recompute_requested_at is None
