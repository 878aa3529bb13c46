"""A block's reach: how many profiles its targeting matches now, in one query."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone
from pytest_django import DjangoAssertNumQueries

from content.reach import Reach, block_reach, targeting_reach
from personalize.models import Profile
from segments.models import Membership, Segment
from tests.factories import BlockFactory, EditorFactory, ProfileFactory, SegmentFactory


@pytest.fixture
def audience(db: None) -> dict[str, object]:
    """Six profiles: two in A only, one in B only, one in A and B, one in A and C, one in none;
    plus a former member of B whose membership has ended."""
    a, b, c = (SegmentFactory.create(slug=slug, name=slug.upper()) for slug in ("a", "b", "c"))
    now = timezone.now()
    profiles: list[Profile] = ProfileFactory.create_batch(7)
    memberships = {0: [a], 1: [a], 2: [b], 3: [a, b], 4: [a, c], 5: []}
    for index, segments in memberships.items():
        for segment in segments:
            Membership.objects.create(profile=profiles[index], segment=segment, entered_at=now)
    Membership.objects.create(
        profile=profiles[6], segment=b, entered_at=now - timedelta(days=2), exited_at=now
    )
    return {"a": a, "b": b, "c": c}


def _ids(*segments: object) -> list[int]:
    return [s.pk for s in segments]  # type: ignore[attr-defined]


def test_reach_of_an_untargeted_block_is_every_profile(audience: dict[str, Segment]) -> None:
    assert targeting_reach(segment_ids=[], match_all=False, excluded_ids=[]) == Reach(7, 7)


def test_reach_of_any_of_counts_each_profile_once(audience: dict[str, Segment]) -> None:
    reach = targeting_reach(
        segment_ids=_ids(audience["a"], audience["b"]), match_all=False, excluded_ids=[]
    )
    assert reach == Reach(profiles=5, total=7)


def test_reach_of_all_of_needs_every_segment(audience: dict[str, Segment]) -> None:
    reach = targeting_reach(
        segment_ids=_ids(audience["a"], audience["b"]), match_all=True, excluded_ids=[]
    )
    assert reach == Reach(profiles=1, total=7)


def test_excluded_segments_are_subtracted_and_ended_memberships_do_not_count(
    audience: dict[str, Segment],
) -> None:
    targeted = targeting_reach(
        segment_ids=_ids(audience["a"]), match_all=False, excluded_ids=_ids(audience["c"])
    )
    everyone_but_b = targeting_reach(
        segment_ids=[], match_all=False, excluded_ids=_ids(audience["b"])
    )
    assert targeted == Reach(profiles=3, total=7)
    assert everyone_but_b == Reach(profiles=5, total=7)


def test_block_reach_is_one_aggregate_query(
    audience: dict[str, Segment], django_assert_num_queries: DjangoAssertNumQueries
) -> None:
    block = BlockFactory.create(segments=[audience["a"], audience["b"]])
    block.excluded_segments.set([audience["c"]])
    block = type(block).objects.prefetch_related("segments", "excluded_segments").get(pk=block.pk)

    with django_assert_num_queries(1):
        reach = block_reach(block=block)

    assert reach == Reach(profiles=4, total=7)
    assert str(reach) == "4 of 7 profiles (57.1%)"


def test_the_block_page_and_the_reach_action_show_it(audience: dict[str, Segment]) -> None:
    block = BlockFactory.create(key="for-b", segments=[audience["b"]])
    client = Client()
    client.force_login(EditorFactory.create())

    page = client.get(f"/admin/content/block/{block.pk}/change/").content.decode()
    action = client.post(
        "/admin/content/block/",
        {"action": "show_reach", "_selected_action": [str(block.pk)]},
        follow=True,
    )

    assert "2 of 7 profiles (28.6%)" in page
    assert [str(m) for m in action.context["messages"]] == ["for-b: 2 of 7 profiles (28.6%)"]
