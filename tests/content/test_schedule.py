"""Scheduled publishing: a block's state in admin, and selection following the schedule."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.test import Client

from content.models import Block
from content.schedule import BlockState, block_state, in_state
from content.selectors import blocks_for_segments
from tests.factories import BlockFactory, EditorFactory

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)


@pytest.mark.parametrize(
    ("status", "starts_at", "ends_at", "expected"),
    [
        (Block.Status.DRAFT, None, None, BlockState.DRAFT),
        (Block.Status.DRAFT, NOW + HOUR, None, BlockState.DRAFT),
        (Block.Status.PUBLISHED, None, None, BlockState.LIVE),
        (Block.Status.PUBLISHED, NOW, None, BlockState.LIVE),
        (Block.Status.PUBLISHED, NOW + HOUR, None, BlockState.SCHEDULED),
        (Block.Status.PUBLISHED, NOW - HOUR, NOW + HOUR, BlockState.LIVE),
        (Block.Status.PUBLISHED, None, NOW, BlockState.ENDED),
        (Block.Status.PUBLISHED, NOW - 2 * HOUR, NOW - HOUR, BlockState.ENDED),
    ],
)
def test_a_blocks_state_follows_status_and_schedule(
    status: str, starts_at: datetime | None, ends_at: datetime | None, expected: BlockState
) -> None:
    assert block_state(status=status, starts_at=starts_at, ends_at=ends_at, now=NOW) == expected


@pytest.fixture
def blocks(db: None) -> None:
    BlockFactory.create(key="draft", status=Block.Status.DRAFT)
    BlockFactory.create(key="scheduled", starts_at=NOW + HOUR)
    BlockFactory.create(key="live", starts_at=NOW - HOUR, ends_at=NOW + HOUR)
    BlockFactory.create(key="ended", ends_at=NOW - HOUR)


def test_the_state_filter_agrees_with_the_state(blocks: None) -> None:
    by_filter = {
        state: list(Block.objects.filter(in_state(state, now=NOW)).values_list("key", flat=True))
        for state in BlockState
    }
    assert by_filter == {
        BlockState.DRAFT: ["draft"],
        BlockState.SCHEDULED: ["scheduled"],
        BlockState.LIVE: ["live"],
        BlockState.ENDED: ["ended"],
    }


def test_a_block_scheduled_later_is_not_shown_now_and_is_when_its_time_comes(db: None) -> None:
    BlockFactory.create(slot="hero", key="always", is_default=True)
    BlockFactory.create(slot="hero", key="sale", starts_at=NOW + HOUR, ends_at=NOW + 3 * HOUR)

    def shown(at: datetime) -> list[str]:
        chosen = blocks_for_segments(slots=["hero"], segment_ids=frozenset(), now=at)
        return [b.key for b in chosen["hero"]]

    assert shown(NOW) == ["always"]
    assert shown(NOW + HOUR) == ["sale"]
    assert shown(NOW + 3 * HOUR) == ["always"]


def test_the_block_list_shows_and_filters_by_state(db: None) -> None:
    BlockFactory.create(key="soon", title="Soon", starts_at=datetime.now(UTC) + HOUR)
    BlockFactory.create(key="now", title="Now")
    client = Client()
    client.force_login(EditorFactory.create())

    listing = client.get("/admin/content/block/", {"state": "scheduled"})

    assert [b.key for b in listing.context["cl"].result_list] == ["soon"]
    assert '<td class="field-state">Scheduled</td>' in listing.content.decode()
