"""Which block a slot shows: priority, any-of targeting, untargeted blocks, the default, drafts."""

from __future__ import annotations

import pytest
from django.db import IntegrityError

from content.models import Block
from content.selection import Candidate, choose
from content.selectors import blocks_for_segments
from tests.factories import BlockFactory, SegmentFactory


def _candidate(
    key: str,
    *,
    priority: int = 0,
    segments: frozenset[int] = frozenset(),
    is_default: bool = False,
) -> Candidate:
    return Candidate(
        id=hash(key) % 1000,
        slot="hero",
        key=key,
        priority=priority,
        is_default=is_default,
        segment_ids=segments,
        segment_names=tuple(f"S{s}" for s in sorted(segments)),
    )


def test_highest_priority_matching_targeted_block_wins() -> None:
    low = _candidate("low", priority=10, segments=frozenset({1}))
    high = _candidate("high", priority=20, segments=frozenset({2}))

    [choice] = choose([low, high], segment_ids=frozenset({1, 2}))

    assert (choice.candidate.key, choice.reason) == ("high", "visitor is in S2")


def test_targeted_block_matches_when_the_visitor_is_in_any_of_its_segments() -> None:
    block = _candidate("either", segments=frozenset({1, 2, 3}))

    [choice] = choose([block], segment_ids=frozenset({3, 9}))

    assert choice.candidate.key == "either"


def test_targeted_block_is_skipped_for_visitors_outside_its_segments() -> None:
    targeted = _candidate("targeted", priority=50, segments=frozenset({1}))
    default = _candidate("default", is_default=True)

    [choice] = choose([targeted, default], segment_ids=frozenset({2}))

    assert (choice.candidate.key, choice.reason) == (
        "default",
        "default for the slot: no targeted block matched",
    )


def test_untargeted_block_is_shown_to_everyone_before_the_default() -> None:
    default = _candidate("default", priority=100, is_default=True)
    everyone = _candidate("everyone")

    [choice] = choose([default, everyone], segment_ids=frozenset())

    assert (choice.candidate.key, choice.reason) == ("everyone", "shown to everyone")


def test_equal_priority_ties_go_to_the_key() -> None:
    [choice] = choose(
        [_candidate("b", segments=frozenset({1})), _candidate("a", segments=frozenset({1}))],
        segment_ids=frozenset({1}),
    )

    assert choice.candidate.key == "a"


def test_slot_without_candidates_has_no_choice() -> None:
    assert choose([], segment_ids=frozenset({1})) == []


def test_slot_with_only_unmatched_targeted_blocks_shows_nothing(db: None) -> None:
    segment = SegmentFactory.create()
    BlockFactory.create(slot="hero", segments=[segment])

    assert blocks_for_segments(slots=["hero"], segment_ids=frozenset()) == {"hero": []}


def test_draft_blocks_are_never_shown_even_to_their_segment(db: None) -> None:
    segment = SegmentFactory.create()
    BlockFactory.create(
        slot="hero",
        key="draft-targeted",
        segments=[segment],
        priority=99,
        status=Block.Status.DRAFT,
    )
    BlockFactory.create(
        slot="hero", key="draft-default", is_default=True, status=Block.Status.DRAFT
    )
    BlockFactory.create(slot="hero", key="published", segments=[segment])

    chosen = blocks_for_segments(slots=["hero"], segment_ids=frozenset({segment.pk}))
    assert [b.key for b in chosen["hero"]] == ["published"]

    nothing = blocks_for_segments(slots=["hero"], segment_ids=frozenset())
    assert nothing == {"hero": []}


def test_selection_reads_blocks_from_the_database_per_slot(db: None) -> None:
    vip = SegmentFactory.create(slug="vip", name="VIP")
    BlockFactory.create(slot="hero", key="hero-default", is_default=True)
    BlockFactory.create(
        slot="hero", key="hero-vip", segments=[vip], priority=10, data={"coupon": "VIP"}
    )
    BlockFactory.create(slot="promo", key="promo-default", is_default=True)

    chosen = blocks_for_segments(slots=["hero", "promo", "recs"], segment_ids=frozenset({vip.pk}))

    assert {slot: [b.key for b in blocks] for slot, blocks in chosen.items()} == {
        "hero": ["hero-vip"],
        "promo": ["promo-default"],
        "recs": [],
    }
    assert chosen["hero"][0].reason == "visitor is in VIP"
    assert chosen["hero"][0].data == {"coupon": "VIP"}


def test_a_slot_has_at_most_one_default_block(db: None) -> None:
    BlockFactory.create(slot="hero", is_default=True)
    BlockFactory.create(slot="promo", is_default=True)

    with pytest.raises(IntegrityError):
        BlockFactory.create(slot="hero", is_default=True)


# --- all-of targeting, exclusions and schedules (pure selection) -----------------------------

from datetime import UTC, datetime, timedelta  # noqa: E402

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def _scheduled(key: str, **fields: object) -> Candidate:
    values: dict[str, object] = {
        "id": hash(key) % 10_000,
        "slot": "hero",
        "key": key,
        "priority": 0,
        "is_default": False,
        "segment_ids": frozenset(),
    }
    values.update(fields)
    return Candidate(**values)  # type: ignore[arg-type]  # keyword values of mixed types


def test_an_all_of_block_needs_every_segment() -> None:
    both = _scheduled("both", priority=5, segment_ids=frozenset({1, 2}), match_all=True)
    default = _scheduled("default", is_default=True)
    assert [c.candidate.key for c in choose([both, default], frozenset({1}), NOW)] == ["default"]
    chosen = choose([both, default], frozenset({1, 2, 3}), NOW)
    assert [c.candidate.key for c in chosen] == ["both"]


def test_an_excluded_segment_hides_a_block_even_from_matching_visitors() -> None:
    promo = _scheduled("promo", priority=5, segment_ids=frozenset({1}), excluded_ids=frozenset({9}))
    general = _scheduled("general")
    chosen = choose([promo, general], frozenset({1, 9}), NOW)
    assert [c.candidate.key for c in chosen] == ["general"]


def test_a_block_is_shown_only_within_its_schedule() -> None:
    sale = _scheduled("sale", priority=5, starts_at=NOW - timedelta(hours=1), ends_at=NOW)
    general = _scheduled("general")
    before_end = choose([sale, general], frozenset(), NOW - timedelta(seconds=1))
    at_end = choose([sale, general], frozenset(), NOW)
    assert [c.candidate.key for c in before_end] == ["sale"]
    assert [c.candidate.key for c in at_end] == ["general"]
