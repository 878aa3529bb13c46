from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.core.management import call_command
from django.utils import timezone

from segments import selectors
from segments.models import Membership, Segment
from segments.services import recompute_segment, segment_save
from segments.signals import SegmentsChanged, memberships_changed
from tests.factories import EventFactory, ProfileFactory

VIEWED_TWICE = {
    "type": "aggregate",
    "fn": "count",
    "event": "product_viewed",
    "window": {"last": "48h"},
    "op": "gte",
    "value": 2,
}


@pytest.mark.django_db(transaction=True)
def test_saving_a_new_segment_enters_existing_profiles_with_matching_history() -> None:
    now = timezone.now()
    fan, browser, stranger = (
        ProfileFactory.create(),
        ProfileFactory.create(),
        ProfileFactory.create(),
    )
    for _ in range(2):
        EventFactory.create(profile=fan, name="product_viewed", timestamp=now - timedelta(hours=1))
    EventFactory.create(profile=browser, name="product_viewed", timestamp=now - timedelta(hours=1))
    announced: list[tuple[int, list[str]]] = []

    def record(sender: Any, *, changes: list[SegmentsChanged], **_: Any) -> None:
        announced.extend((change.profile_id, change.entered) for change in changes)

    memberships_changed.connect(record)
    try:
        segment = segment_save(slug="fans", name="Fans", rule=VIEWED_TWICE)
    finally:
        memberships_changed.disconnect(record)

    members = set(
        Membership.objects.filter(segment=segment, exited_at__isnull=True).values_list(
            "profile_id", flat=True
        )
    )
    assert members == {fan.pk}
    assert announced == [(fan.pk, ["fans"])]
    # Both profiles with product views are due for the per-profile path (their windows lapse later).
    fan.refresh_from_db()
    browser.refresh_from_db()
    stranger.refresh_from_db()
    assert fan.next_evaluation_at is not None
    assert browser.next_evaluation_at is not None
    assert stranger.next_evaluation_at is None


@pytest.mark.django_db(transaction=True)
def test_tightening_a_rule_exits_the_members_who_no_longer_match() -> None:
    now = timezone.now()
    fan = ProfileFactory.create()
    for _ in range(2):
        EventFactory.create(profile=fan, name="product_viewed", timestamp=now - timedelta(hours=1))
    segment = segment_save(slug="fans", name="Fans", rule=VIEWED_TWICE)

    segment_save(slug="fans", name="Fans", rule={**VIEWED_TWICE, "value": 3})

    history = list(Membership.objects.filter(segment=segment).values_list("exited_at", flat=True))
    assert len(history) == 1
    assert history[0] is not None


@pytest.mark.django_db
def test_the_recompute_command_reports_each_segment(capsys: pytest.CaptureFixture[str]) -> None:
    segment_save(slug="fans", name="Fans", rule=VIEWED_TWICE)
    call_command("recompute_segments")
    assert "1/1 fans: 0 members (+0 -0)" in capsys.readouterr().out
    assert (
        recompute_segment(
            segment_id=segment_save(slug="fans", name="Fans", rule=VIEWED_TWICE).pk
        ).members
        == 0
    )


@pytest.mark.django_db
def test_whole_segment_recompute_writes_in_chunks_and_reports_progress() -> None:
    now = timezone.now()
    fans = [ProfileFactory.create() for _ in range(5)]
    bystander = ProfileFactory.create()
    for fan in fans:
        for _ in range(2):
            EventFactory.create(
                profile=fan, name="product_viewed", timestamp=now - timedelta(hours=1)
            )
    segment = Segment.objects.create(name="Fans", slug="fans", rule=VIEWED_TWICE)
    progress: list[tuple[int, int]] = []

    result = recompute_segment(
        segment_id=segment.pk, now=now, chunk_size=2, progress=lambda d, t: progress.append((d, t))
    )

    assert progress == [(2, 5), (4, 5), (5, 5)]
    assert (result.members, result.entered, result.exited) == (5, 5, 0)
    members = set(
        Membership.objects.filter(segment=segment, exited_at__isnull=True).values_list(
            "profile_id", flat=True
        )
    )
    assert members == {fan.pk for fan in fans}
    assert bystander.pk not in members


@pytest.mark.django_db
def test_whole_segment_recompute_keeps_a_membership_a_worker_opened_meanwhile(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    now = timezone.now()
    fan = ProfileFactory.create()
    for _ in range(2):
        EventFactory.create(profile=fan, name="product_viewed", timestamp=now - timedelta(hours=1))
    segment = Segment.objects.create(name="Fans", slug="fans", rule=VIEWED_TWICE)
    query = selectors.segment_member_ids

    def query_then_worker_writes(**kwargs: Any) -> set[int]:
        found = query(**kwargs)
        # The per-profile path gets there between the batch query and its write.
        Membership.objects.create(profile=fan, segment=segment, entered_at=now)
        return found

    monkeypatch.setattr(selectors, "segment_member_ids", query_then_worker_writes)

    result = recompute_segment(segment_id=segment.pk, now=now)

    assert result.members == 1
    assert Membership.objects.filter(segment=segment, profile=fan).count() == 1
