"""Block results from a small hand-made history: exact figures, window edges, segments."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from content.measurement import MeasurementConfig
from content.measurement_selectors import block_results
from content.models import Block
from personalize.models import Profile
from segments.models import Segment
from tests.factories import (
    BlockClickFactory,
    BlockFactory,
    BlockImpressionFactory,
    ConversionFactory,
    EventFactory,
    MembershipFactory,
    ProfileFactory,
    SegmentFactory,
)

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
SINCE = NOW - timedelta(days=30)
WEEK = MeasurementConfig(
    conversion_events=("order_completed",),
    revenue_property="revenue",
    window=timedelta(days=7),
    min_visitors=100,
)


def _ago(days: float = 0, hours: float = 0) -> datetime:
    return NOW - timedelta(days=days, hours=hours)


@pytest.fixture
def hero(db: None) -> Block:
    block: Block = BlockFactory.create(key="hero-sale", slot="hero")
    return block


def _history(hero: Block) -> dict[str, Profile]:
    """A saw it 3 times, clicked once, bought twice within the week (100 + 20);
    B saw it once and bought 8 days later (outside the window);
    C saw it twice and never bought; D never saw it and bought."""
    a, b, c, d = (ProfileFactory.create() for _ in range(4))
    for hours in (100, 99, 98):
        BlockImpressionFactory.create(block=hero, profile=a, timestamp=_ago(hours=hours))
    BlockClickFactory.create(block=hero, profile=a, timestamp=_ago(hours=98))
    ConversionFactory.create(profile=a, revenue=100.0, timestamp=_ago(hours=75))
    ConversionFactory.create(profile=a, revenue=20.0, timestamp=_ago(hours=50))
    BlockImpressionFactory.create(block=hero, profile=b, timestamp=_ago(days=20))
    ConversionFactory.create(profile=b, revenue=50.0, timestamp=_ago(days=12))
    BlockImpressionFactory.create(block=hero, profile=c, timestamp=_ago(days=3))
    BlockImpressionFactory.create(block=hero, profile=c, timestamp=_ago(days=2), via="api")
    ConversionFactory.create(profile=d, revenue=999.0, timestamp=_ago(days=1))
    return {"a": a, "b": b, "c": c, "d": d}


def test_block_results_give_exact_ctr_conversion_rate_and_revenue_per_visitor(hero: Block) -> None:
    _history(hero)
    other = BlockFactory.create(key="promo-x", slot="promo")
    BlockImpressionFactory.create(block=other, timestamp=_ago(days=1))
    EventFactory.create(name="product_viewed", timestamp=_ago(days=1))

    results = block_results(block=hero, since=SINCE, until=NOW, config=WEEK)

    total = results.total
    assert (total.visitors, total.impressions, total.clicks, total.clickers) == (3, 6, 1, 1)
    assert (total.converters, total.conversions, total.revenue) == (1, 2, 120.0)
    assert total.ctr == pytest.approx(1 / 6)
    assert total.conversion_rate == pytest.approx(1 / 3)
    assert total.revenue_per_visitor == pytest.approx(40.0)
    assert [(arm.arm, arm.metrics) for arm in results.arms] == [("", total)]
    assert results.control is None
    assert results.lifts == []
    assert results.impressions_by_via == {"ssr": 5, "api": 1}


def test_conversion_exactly_at_the_window_end_counts_and_one_second_later_does_not(
    hero: Block,
) -> None:
    inside, outside, before = (ProfileFactory.create() for _ in range(3))
    for profile in (inside, outside, before):
        BlockImpressionFactory.create(block=hero, profile=profile, timestamp=_ago(days=10))
    ConversionFactory.create(profile=inside, revenue=10.0, timestamp=_ago(days=3))
    ConversionFactory.create(
        profile=outside, revenue=20.0, timestamp=_ago(days=3) + timedelta(seconds=1)
    )
    # Bought before ever seeing the block: not the block's doing.
    ConversionFactory.create(profile=before, revenue=40.0, timestamp=_ago(days=11))

    results = block_results(block=hero, since=SINCE, until=NOW, config=WEEK)

    assert (results.total.visitors, results.total.converters) == (3, 1)
    assert results.total.revenue == 10.0


def test_window_is_configurable(hero: Block) -> None:
    profile = ProfileFactory.create()
    BlockImpressionFactory.create(block=hero, profile=profile, timestamp=_ago(days=5))
    ConversionFactory.create(profile=profile, revenue=10.0, timestamp=_ago(days=2))
    one_day = MeasurementConfig(("order_completed",), "revenue", timedelta(days=1), 100)

    assert block_results(block=hero, since=SINCE, until=NOW, config=WEEK).total.converters == 1
    assert block_results(block=hero, since=SINCE, until=NOW, config=one_day).total.converters == 0


def test_conversion_event_names_and_revenue_property_are_configurable(hero: Block) -> None:
    profile = ProfileFactory.create()
    BlockImpressionFactory.create(block=hero, profile=profile, timestamp=_ago(days=2))
    EventFactory.create(
        profile=profile, name="signed_up", properties={"value": 7.5}, timestamp=_ago(days=1)
    )
    ConversionFactory.create(profile=profile, revenue=100.0, timestamp=_ago(days=1))
    signups = MeasurementConfig(("signed_up",), "value", timedelta(days=7), 100)

    results = block_results(block=hero, since=SINCE, until=NOW, config=signups)

    assert (results.total.conversions, results.total.revenue) == (1, 7.5)


def test_revenue_that_is_not_a_number_is_left_out_not_an_error(hero: Block) -> None:
    profile = ProfileFactory.create()
    BlockImpressionFactory.create(block=hero, profile=profile, timestamp=_ago(days=2))
    ConversionFactory.create(profile=profile, revenue=30.0, timestamp=_ago(days=1))
    EventFactory.create(
        profile=profile,
        name="order_completed",
        properties={"revenue": "lots"},
        timestamp=_ago(days=1),
    )

    results = block_results(block=hero, since=SINCE, until=NOW, config=WEEK)

    assert (results.total.conversions, results.total.revenue) == (2, 30.0)


def test_events_from_the_component_without_block_id_are_matched_by_key(hero: Block) -> None:
    EventFactory.create(
        name="block_impression",
        properties={"block_key": "hero-sale", "slot": "hero", "variant": None},
        timestamp=_ago(days=1),
    )

    results = block_results(block=hero, since=SINCE, until=NOW, config=WEEK)

    assert [(arm.arm, arm.metrics.impressions) for arm in results.arms] == [("", 1)]
    assert results.impressions_by_via == {"unspecified": 1}


def test_segment_rows_use_the_memberships_at_exposure_time(hero: Block) -> None:
    people = _history(hero)
    campers: Segment = SegmentFactory.create(slug="campers", name="Campers")
    vips: Segment = SegmentFactory.create(slug="vips", name="VIPs")
    # A was a camper throughout; C became one only after both impressions;
    # B had left the campers before their impression; A and C are VIPs the whole time.
    MembershipFactory.create(profile=people["a"], segment=campers, entered_at=_ago(days=25))
    MembershipFactory.create(profile=people["c"], segment=campers, entered_at=_ago(days=1))
    MembershipFactory.create(
        profile=people["b"], segment=campers, entered_at=_ago(days=29), exited_at=_ago(days=21)
    )
    for who in ("a", "c"):
        MembershipFactory.create(profile=people[who], segment=vips, entered_at=_ago(days=28))

    results = block_results(block=hero, since=SINCE, until=NOW, config=WEEK)

    rows = {row.segment_name: row.metrics for row in results.segments}
    assert set(rows) == {"Campers", "VIPs"}
    campers_row, vips_row = rows["Campers"], rows["VIPs"]
    assert (campers_row.visitors, campers_row.impressions, campers_row.clicks) == (1, 3, 1)
    assert (campers_row.converters, campers_row.conversions, campers_row.revenue) == (1, 2, 120.0)
    assert (vips_row.visitors, vips_row.impressions, vips_row.clicks) == (2, 5, 1)
    assert (vips_row.converters, vips_row.revenue) == (1, 120.0)
    assert vips_row.conversion_rate == pytest.approx(0.5)
    # Segment rows never change the block's totals.
    assert (results.total.visitors, results.total.impressions) == (3, 6)


def test_variants_and_holdout_get_their_own_rows_and_the_holdout_is_the_control(
    hero: Block,
) -> None:
    for arm, holdout, visitors, buyers in (
        ("a", False, 4, 1),
        ("b", False, 5, 3),
        ("", True, 2, 0),
    ):
        for index in range(visitors):
            profile = ProfileFactory.create()
            BlockImpressionFactory.create(
                block=hero, profile=profile, variant=arm, holdout=holdout, timestamp=_ago(days=3)
            )
            if index < buyers:
                ConversionFactory.create(profile=profile, revenue=10.0, timestamp=_ago(days=2))

    results = block_results(block=hero, since=SINCE, until=NOW, config=WEEK)

    assert [(r.arm, r.metrics.visitors, r.metrics.converters) for r in results.arms] == [
        ("a", 4, 1),
        ("b", 5, 3),
        ("holdout", 2, 0),
    ]
    assert results.control == "holdout"
    assert [(lift.metric, lift.arm, lift.control) for lift in results.lifts] == [
        ("conversion", "a", "holdout"),
        ("click", "a", "holdout"),
        ("conversion", "b", "holdout"),
        ("click", "b", "holdout"),
    ]
    assert results.lifts[0].verdict == (
        "not enough data yet: the holdout has 2 visitors, 100 are needed"
    )


def test_daily_series_covers_every_day_of_the_period(hero: Block) -> None:
    _history(hero)

    results = block_results(block=hero, since=_ago(days=5), until=NOW, config=WEEK)

    assert len(results.daily) == 6
    assert [
        (p.day.isoformat(), p.impressions, p.conversions)
        for p in results.daily
        if p.impressions or p.conversions
    ] == [
        ("2026-03-06", 3, 0),
        ("2026-03-07", 1, 1),
        ("2026-03-08", 1, 1),
    ]


def test_results_take_a_bounded_number_of_queries(
    hero: Block, django_assert_max_num_queries: object
) -> None:
    _history(hero)
    campers = SegmentFactory.create(slug="campers")
    for profile in Profile.objects.all():
        MembershipFactory.create(profile=profile, segment=campers, entered_at=_ago(days=29))

    # Exposure per arm, per segment and in total; conversions in total, per arm and per segment;
    # segment names; impressions per channel; impressions and conversions per day.
    with django_assert_max_num_queries(10):  # type: ignore[operator]
        block_results(block=hero, since=SINCE, until=NOW, config=WEEK)
