from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.utils import timezone

from segments import history, services
from segments.models import Membership, SegmentSizeSnapshot
from segments.overlap import overlap_matrix, segment_warnings
from segments.tasks import record_segment_sizes
from tests.factories import EventFactory, MembershipFactory, ProfileFactory, SegmentFactory

pytestmark = pytest.mark.django_db


def _members(segment: Any, profiles: list[Any]) -> None:
    for profile in profiles:
        MembershipFactory.create(profile=profile, segment=segment)


def test_overlap_matrix_counts_shared_members_and_flags_near_duplicates(settings: Any) -> None:
    settings.P13N_SEGMENT_MIN_SIZE = 5
    settings.P13N_SEGMENT_OVERLAP_THRESHOLD = 0.9
    profiles = [ProfileFactory.create() for _ in range(12)]
    big = SegmentFactory.create(slug="big", name="Big")
    near = SegmentFactory.create(slug="near", name="Near")
    small = SegmentFactory.create(slug="small", name="Small")
    SegmentFactory.create(slug="off", name="Off", is_active=False)
    _members(big, profiles[:10])
    _members(near, profiles[:9] + profiles[11:])
    _members(small, profiles[9:12])
    # A past stay is not a shared member.
    MembershipFactory.create(profile=profiles[11], segment=big, exited_at=timezone.now())

    matrix = overlap_matrix()

    assert [(s.slug, s.members) for s in matrix.segments] == [
        ("big", 10),
        ("near", 10),
        ("small", 3),
    ]
    big_near = matrix.pair(big.pk, near.pk)
    assert big_near is not None
    assert (big_near.both, round(big_near.jaccard, 4), big_near.containment) == (9, 0.8182, 0.9)
    big_small = matrix.pair(small.pk, big.pk)
    assert big_small is not None
    assert (big_small.both, big_small.containment) == (1, 1 / 3)
    near_small = matrix.pair(near.pk, small.pk)
    assert near_small is not None
    assert near_small.both == 1
    assert segment_warnings(matrix) == {
        big.pk: ["overlaps 90% (containment) with Near: 9 shared members"],
        near.pk: ["overlaps 90% (containment) with Big: 9 shared members"],
        small.pk: ["3 members is under the minimum of 5 worth acting on"],
    }
    settings.P13N_SEGMENT_OVERLAP_MEASURE = "jaccard"
    assert segment_warnings(matrix)[big.pk] == []


def test_sizes_are_snapshotted_by_the_task_and_after_each_batch_recompute() -> None:
    profile = ProfileFactory.create()
    for hours in (1, 2, 3):
        EventFactory.create(
            profile=profile,
            name="product_viewed",
            timestamp=timezone.now() - timedelta(hours=hours),
        )
    keen = SegmentFactory.create(slug="keen")
    SegmentFactory.create(slug="empty", rule={"type": "trait", "path": "plan", "op": "exists"})
    SegmentFactory.create(slug="off", is_active=False)

    services.recompute_segment(segment_id=keen.pk)
    written = record_segment_sizes.delay().get()

    assert written == 2
    assert list(
        SegmentSizeSnapshot.objects.order_by("pk").values_list("segment__slug", "members")
    ) == [("keen", 1), ("keen", 1), ("empty", 0)]


def test_flow_and_chart_cover_the_window() -> None:
    segment = SegmentFactory.create(slug="keen")
    now = datetime(2025, 3, 10, 12, tzinfo=UTC)
    for days, exited in (
        (1, None),
        (2, now - timedelta(hours=1)),
        (9, None),
        (10, now - timedelta(days=8)),
    ):
        Membership.objects.create(
            profile=ProfileFactory.create(),
            segment=segment,
            entered_at=now - timedelta(days=days),
            exited_at=exited,
        )
    for hours, members in ((48, 2), (24, 3), (0, 2)):
        SegmentSizeSnapshot.objects.create(
            segment=segment, at=now - timedelta(hours=hours), members=members
        )

    flow = history.membership_flow(segment_id=segment.pk, since=now - timedelta(days=7))
    series = history.size_series(segment_id=segment.pk, since=now - timedelta(hours=30))
    chart = history.size_chart_svg(series)

    assert (flow.entered, flow.exited) == (2, 1)
    assert series == [(now - timedelta(hours=24), 3), (now, 2)]
    assert chart.count("<circle") == 2
    assert 'points="48.0,20.0 628.0,66.7"' in chart
    assert "<script" not in chart
