"""Variants, holdouts and capacity in the pure ``choose()``: sticky, proportional, explained."""

from __future__ import annotations

import hashlib
import math
from collections import Counter

from content.selection import (
    Candidate,
    VariantOption,
    assign_variant,
    choose,
    holdout_bucket,
    variant_bucket,
)

UNITS = [f"unit-{i}" for i in range(10_000)]


def _block(
    key: str,
    *,
    priority: int = 0,
    segments: frozenset[int] = frozenset(),
    is_default: bool = False,
    variants: dict[str, int] | None = None,
    holdout_percent: int = 0,
) -> Candidate:
    return Candidate(
        id=sum(key.encode()),
        slot="hero",
        key=key,
        priority=priority,
        is_default=is_default,
        segment_ids=segments,
        segment_names=tuple(f"S{s}" for s in sorted(segments)),
        variants=tuple(VariantOption(k, w) for k, w in (variants or {}).items()),
        holdout_percent=holdout_percent,
    )


SALE = _block(
    "hero-sale",
    priority=10,
    segments=frozenset({1}),
    variants={"a": 50, "b": 50},
    holdout_percent=10,
)
DEFAULT = _block("hero-default", is_default=True)


def _within(observed: int, expected_share: float, n: int = len(UNITS)) -> bool:
    """Within 4 standard deviations of a binomial count: a wrong split fails, chance
    alone fails about once in 16,000 runs (and the units are fixed, so never flakes)."""
    sigma = math.sqrt(n * expected_share * (1 - expected_share))
    return abs(observed - n * expected_share) <= 4 * sigma


def test_the_variant_bucket_is_the_documented_sha256_of_block_key_and_unit() -> None:
    digest = hashlib.sha256(b"hero-sale:visitor-3").digest()

    assert variant_bucket("hero-sale", "visitor-3", 100) == int.from_bytes(digest[:8]) % 100
    assert variant_bucket("hero-sale", "visitor-3", 100) == 78


def test_the_same_visitor_gets_the_same_variant_on_every_call() -> None:
    first = [choose([SALE, DEFAULT], frozenset({1}), unit=u)[0].variant for u in UNITS[:200]]
    again = [choose([DEFAULT, SALE], frozenset({1}), unit=u)[0].variant for u in UNITS[:200]]

    assert first == again
    assert set(first) == {"", "a", "b"}  # "" for the held-out visitors


def test_ten_thousand_visitors_split_in_proportion_to_the_weights() -> None:
    block = _block("promo", variants={"a": 50, "b": 30, "c": 20, "off": 0})

    counts = Counter(assign_variant(block, unit)[0] for unit in UNITS)

    assert set(counts) == {"a", "b", "c"}
    assert _within(counts["a"], 0.5)
    assert _within(counts["b"], 0.3)
    assert _within(counts["c"], 0.2)
    # A split ignoring the weights would be far outside the tolerance.
    assert not _within(counts["c"], 1 / 3)


def test_a_variant_of_weight_zero_is_never_shown() -> None:
    block = _block("promo", variants={"off": 0, "on": 1})

    assert {assign_variant(block, unit)[0] for unit in UNITS[:1000]} == {"on"}


def test_a_block_without_variants_shows_itself_with_no_variant_and_no_extra_reason() -> None:
    [choice] = choose([_block("plain")], frozenset(), unit="visitor-3")

    assert (choice.variant, choice.holdout, choice.reasons) == ("", False, ("shown to everyone",))
    assert choice.content == choice.candidate


def test_variants_that_all_weigh_zero_show_the_blocks_own_content() -> None:
    [choice] = choose([_block("promo", variants={"a": 0})], frozenset(), unit="visitor-3")

    assert choice.variant == ""
    assert choice.reasons == (
        "shown to everyone",
        "no variant has a weight above 0: the block's own content",
    )


def test_the_explanation_names_targeting_holdout_and_variant_with_their_buckets() -> None:
    [shown] = choose([SALE, DEFAULT], frozenset({1}), unit="visitor-3")
    [held] = choose([SALE, DEFAULT], frozenset({1}), unit="visitor-5")

    assert (shown.candidate.key, shown.variant, shown.holdout) == ("hero-sale", "b", False)
    assert shown.reasons == (
        "visitor is in S1",
        "outside the 10% holdout: bucket 59 of 100",
        "variant b: weight 50 of 100, bucket 78",
    )
    assert shown.reason == (
        "visitor is in S1; outside the 10% holdout: bucket 59 of 100; "
        "variant b: weight 50 of 100, bucket 78"
    )
    assert (held.candidate.key, held.variant, held.holdout) == ("hero-sale", "", True)
    assert held.content == DEFAULT
    assert held.reasons == (
        "visitor is in S1",
        "holdout: bucket 9 of 100 is under 10%, sees the default hero-default instead",
    )


def test_the_holdout_share_sees_the_default_and_is_independent_of_the_variant() -> None:
    choices = [choose([SALE, DEFAULT], frozenset({1}), unit=u)[0] for u in UNITS]
    held = [c for c, u in zip(choices, UNITS, strict=True) if c.holdout]
    held_units = [u for c, u in zip(choices, UNITS, strict=True) if c.holdout]
    would_be = Counter(assign_variant(SALE, u)[0] for u in held_units)

    assert _within(len(held), 0.10)
    assert {(c.candidate.key, c.content, c.variant) for c in held} == {("hero-sale", DEFAULT, "")}
    # Had the holdout reused the variant bucket, the held-out would all be "a".
    assert _within(would_be["a"], 0.5, n=len(held_units))
    assert all(c.content == SALE for c in choices if not c.holdout)


def test_a_holdout_without_a_default_shows_nothing_but_is_still_recorded() -> None:
    [held] = choose([SALE], frozenset({1}), unit="visitor-5")

    assert (held.candidate.key, held.content, held.holdout) == ("hero-sale", None, True)
    assert held.reasons[-1] == "holdout: bucket 9 of 100 is under 10%, sees nothing instead"


def test_holdout_of_zero_holds_no_one_and_of_a_hundred_holds_everyone() -> None:
    none = _block("none", holdout_percent=0)
    all_ = _block("all", holdout_percent=100)

    assert not any(choose([none], frozenset(), unit=u)[0].holdout for u in UNITS[:500])
    assert all(choose([all_], frozenset(), unit=u)[0].holdout for u in UNITS[:500])
    assert holdout_bucket("all", "unit-1") < 100


def test_capacity_three_returns_the_three_best_matching_blocks_in_priority_order() -> None:
    blocks = [
        _block("low", priority=1),
        _block("top", priority=30, segments=frozenset({1})),
        _block("other-segment", priority=99, segments=frozenset({2})),
        _block("mid", priority=20),
        _block("lowest", priority=0),
        DEFAULT,
    ]

    chosen = choose(blocks, frozenset({1}), capacity=3)

    assert [c.candidate.key for c in chosen] == ["top", "mid", "low"]
    assert [c.reasons for c in chosen] == [
        ("visitor is in S1",),
        ("shown to everyone",),
        ("shown to everyone",),
    ]


def test_capacity_larger_than_the_matches_returns_only_the_matches_and_no_default() -> None:
    chosen = choose([_block("only", segments=frozenset({1})), DEFAULT], frozenset({1}), capacity=3)

    assert [c.candidate.key for c in chosen] == ["only"]


def test_the_default_is_shown_alone_only_when_nothing_matched() -> None:
    targeted = _block("targeted", segments=frozenset({1}))

    chosen = choose([targeted, DEFAULT], frozenset({2}), capacity=3)

    assert [(c.candidate.key, c.reasons) for c in chosen] == [
        ("hero-default", ("default for the slot: no targeted block matched",))
    ]


def test_the_default_stands_in_once_when_two_blocks_of_a_slot_hold_the_visitor_out() -> None:
    first = _block("first", priority=2, holdout_percent=100)
    second = _block("second", priority=1, holdout_percent=100)

    chosen = choose([first, second, DEFAULT], frozenset(), unit="visitor-1", capacity=2)

    assert [(c.candidate.key, c.content, c.holdout) for c in chosen] == [
        ("first", DEFAULT, True),
        ("second", None, True),
    ]
