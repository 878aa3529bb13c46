from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from segments.rules.evaluate import MAX_CHANGE_PROBES, EventRecord, ProfileSnapshot, evaluate
from segments.rules.tree import (
    ALL_TIME,
    Aggregate,
    And,
    EventMatcher,
    InSegment,
    Not,
    Operator,
    Or,
    Recency,
    Rule,
    Sequence,
    TraitCondition,
    Value,
    Window,
)

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
US = timedelta(microseconds=1)
H = timedelta(hours=1)
D = timedelta(days=1)


def event(name: str, at: datetime, **properties: Any) -> EventRecord:
    return EventRecord(name=name, timestamp=at, properties=properties)


def snapshot(*events: EventRecord, traits: Mapping[str, Any] | None = None) -> ProfileSnapshot:
    return ProfileSnapshot(
        traits=traits or {}, events=sorted(events, key=lambda item: item.timestamp)
    )


def count(name: str, op: Operator, value: Value, window: Window = ALL_TIME) -> Aggregate:
    return Aggregate(fn="count", matcher=EventMatcher(name), op=op, value=value, window=window)


def assert_flips_exactly_at(
    rule: Rule,
    profile: ProfileSnapshot,
    expected: datetime,
    *,
    now: datetime = NOW,
    segments: Mapping[str, Rule] | None = None,
) -> None:
    """next_change_at is ``expected``; the answer holds until 1 µs before and flips there."""
    current = evaluate(rule, profile, now, segments)

    assert current.next_change_at == expected
    assert evaluate(rule, profile, expected - US, segments).matched is current.matched
    assert evaluate(rule, profile, expected, segments).matched is not current.matched


VIEWS_48H = count("product_viewed", "gte", 3, Window(oldest_age=48 * H))


def test_three_views_in_48h_stop_matching_when_the_oldest_needed_view_ages_out() -> None:
    views = snapshot(*(event("product_viewed", NOW - ago) for ago in (40 * H, 20 * H, H)))

    assert evaluate(VIEWS_48H, views, NOW).matched is True
    assert_flips_exactly_at(VIEWS_48H, views, NOW - 40 * H + 48 * H)


def test_a_spare_view_ageing_out_is_not_a_change() -> None:
    views = snapshot(*(event("product_viewed", NOW - ago) for ago in (47 * H, 40 * H, 20 * H, H)))

    # The 47h-old view leaves at NOW + 1h but three remain; the 40h-old one is needed.
    assert_flips_exactly_at(VIEWS_48H, views, NOW + 8 * H)


def test_a_count_below_its_threshold_with_no_events_never_changes_on_its_own() -> None:
    result = evaluate(VIEWS_48H, snapshot(), NOW)

    assert (result.matched, result.next_change_at) == (False, None)


def test_a_count_below_its_threshold_waits_for_new_events_not_for_old_ones() -> None:
    views = snapshot(*(event("product_viewed", NOW - ago) for ago in (50 * H, 30 * H, H)))

    result = evaluate(VIEWS_48H, views, NOW)

    assert (result.matched, result.next_change_at) == (False, None)


def test_an_event_stamped_after_now_counts_from_its_own_time() -> None:
    views = snapshot(
        *(event("product_viewed", at) for at in (NOW - H, NOW - 2 * H, NOW + 5 * H + US))
    )

    assert_flips_exactly_at(VIEWS_48H, views, NOW + 5 * H + US)


def test_an_event_between_7_and_14_days_ago_enters_the_window_after_7_days() -> None:
    rule = count("order_completed", "gte", 1, Window(oldest_age=14 * D, newest_age=7 * D))
    order = snapshot(event("order_completed", NOW - 3 * D))

    assert evaluate(rule, order, NOW).matched is False
    assert_flips_exactly_at(rule, order, NOW + 4 * D)
    assert_flips_exactly_at(rule, order, NOW + 11 * D, now=NOW + 4 * D)


def test_an_absolute_window_changes_only_as_its_events_arrive() -> None:
    january = Window(
        start=datetime(2026, 1, 1, tzinfo=UTC),
        end=datetime(2026, 2, 1, tzinfo=UTC),
    )
    rule = count("order_completed", "gte", 1, january)
    order = snapshot(event("order_completed", datetime(2026, 1, 10, tzinfo=UTC)))

    assert_flips_exactly_at(
        rule,
        order,
        datetime(2026, 1, 10, tzinfo=UTC),
        now=datetime(2026, 1, 5, tzinfo=UTC),
    )
    result = evaluate(rule, order, NOW)
    assert (result.matched, result.next_change_at) == (True, None)


CART = NOW - 10 * timedelta(minutes=1)
ABANDONED = Sequence(
    first=EventMatcher("add_to_cart"),
    then=EventMatcher("order_completed"),
    within=timedelta(minutes=30),
    followed=False,
    window=Window(oldest_age=24 * H),
)


def test_cart_abandonment_flips_true_exactly_30_minutes_after_add_to_cart() -> None:
    cart = snapshot(event("add_to_cart", CART))

    assert evaluate(ABANDONED, cart, NOW).matched is False
    assert_flips_exactly_at(ABANDONED, cart, CART + timedelta(minutes=30))


def test_an_abandoned_cart_leaves_the_segment_when_it_leaves_the_window() -> None:
    cart = snapshot(event("add_to_cart", CART))

    assert_flips_exactly_at(ABANDONED, cart, CART + 24 * H, now=CART + H)


def test_a_completed_order_means_the_cart_is_never_abandoned() -> None:
    cart = snapshot(
        event("add_to_cart", CART), event("order_completed", CART + timedelta(minutes=5))
    )

    result = evaluate(ABANDONED, cart, NOW)

    assert (result.matched, result.next_change_at) == (False, None)


def test_an_order_stamped_after_now_but_within_time_cancels_the_abandonment() -> None:
    cart = snapshot(
        event("add_to_cart", CART), event("order_completed", CART + timedelta(minutes=20))
    )

    result = evaluate(ABANDONED, cart, NOW)

    assert (result.matched, result.next_change_at) == (False, None)


def test_a_followed_sequence_matches_when_then_arrives_and_ends_with_the_window() -> None:
    rule = Sequence(
        first=EventMatcher("product_viewed"),
        then=EventMatcher("add_to_cart"),
        within=H,
        window=Window(oldest_age=24 * H),
    )
    viewed_at = NOW - 2 * H
    profile = snapshot(
        event("product_viewed", viewed_at), event("add_to_cart", viewed_at + timedelta(minutes=15))
    )

    assert_flips_exactly_at(rule, profile, viewed_at + timedelta(minutes=15), now=viewed_at)
    assert_flips_exactly_at(rule, profile, viewed_at + 24 * H)


LAST_ORDER = NOW - 3 * D


@pytest.mark.parametrize(
    ("op", "flips_at"),
    [
        ("gt", LAST_ORDER + 7 * D + US),
        ("gte", LAST_ORDER + 7 * D),
        ("lt", LAST_ORDER + 7 * D),
        ("lte", LAST_ORDER + 7 * D + US),
    ],
)
def test_recency_flips_at_last_plus_age_or_one_microsecond_after(
    op: Any, flips_at: datetime
) -> None:
    rule = Recency(matcher=EventMatcher("order_completed"), op=op, age=7 * D)
    orders = snapshot(event("order_completed", NOW - 30 * D), event("order_completed", LAST_ORDER))

    assert_flips_exactly_at(rule, orders, flips_at)


def test_recency_never_seen_never_changes_on_its_own() -> None:
    rule = Recency(matcher=EventMatcher("order_completed"), op="gt", age=7 * D)

    result = evaluate(rule, snapshot(event("product_viewed", NOW - D)), NOW)

    assert (result.matched, result.next_change_at) == (False, None)


def test_recency_gt_is_reset_by_an_event_stamped_after_now() -> None:
    rule = Recency(matcher=EventMatcher("order_completed"), op="gt", age=7 * D)
    orders = snapshot(event("order_completed", NOW - 30 * D), event("order_completed", NOW + H))

    assert_flips_exactly_at(rule, orders, NOW + H)


RECENT_VIEWER = count("product_viewed", "gte", 1, Window(oldest_age=H))
SEGMENTS: dict[str, Rule] = {"recent-viewers": RECENT_VIEWER}
VIEW = snapshot(event("product_viewed", NOW - timedelta(minutes=30)))


@pytest.mark.parametrize("member", [True, False])
def test_a_segment_condition_carries_the_referenced_segments_change_time(member: bool) -> None:
    rule = InSegment("recent-viewers", member=member)

    assert evaluate(rule, VIEW, NOW, SEGMENTS).matched is member
    assert_flips_exactly_at(rule, VIEW, NOW + timedelta(minutes=30), segments=SEGMENTS)


def test_a_change_through_two_levels_of_segments_is_carried_up() -> None:
    segments: dict[str, Rule] = {
        **SEGMENTS,
        "recent-pros": And((InSegment("recent-viewers"), TraitCondition(("plan",), "eq", "pro"))),
    }
    profile = snapshot(event("product_viewed", NOW - timedelta(minutes=30)), traits={"plan": "pro"})

    assert_flips_exactly_at(
        InSegment("recent-pros"), profile, NOW + timedelta(minutes=30), segments=segments
    )


def test_an_unknown_segment_never_changes() -> None:
    result = evaluate(InSegment("gone"), VIEW, NOW, SEGMENTS)

    assert (result.matched, result.next_change_at) == (False, None)


def test_a_window_change_hidden_by_a_false_and_sibling_is_not_a_change() -> None:
    rule = And((RECENT_VIEWER, TraitCondition(("plan",), "eq", "pro")))

    result = evaluate(rule, VIEW, NOW)

    assert (result.matched, result.next_change_at) == (False, None)


def test_or_changes_only_when_no_other_child_still_holds() -> None:
    later = count("product_viewed", "gte", 1, Window(oldest_age=2 * H))

    assert_flips_exactly_at(Or((RECENT_VIEWER, later)), VIEW, NOW + 90 * timedelta(minutes=1))


def test_not_changes_when_its_child_does() -> None:
    assert_flips_exactly_at(Not(RECENT_VIEWER), VIEW, NOW + timedelta(minutes=30))


def test_traits_alone_never_change_on_their_own() -> None:
    rule = TraitCondition(("plan",), "eq", "pro")

    result = evaluate(rule, snapshot(traits={"plan": "pro"}), NOW)

    assert (result.matched, result.next_change_at) == (True, None)


def test_a_change_beyond_the_probe_budget_asks_to_be_looked_at_again() -> None:
    # 100 views a minute apart, all still inside a 2h window: the rule holds until the
    # newest leaves, 100 exits later. After MAX_CHANGE_PROBES exits that change nothing,
    # the evaluator settles for a re-check time instead of the flip.
    rule = count("product_viewed", "gte", 1, Window(oldest_age=2 * H))
    minute = timedelta(minutes=1)
    views = snapshot(*(event("product_viewed", NOW - i * minute) for i in range(100)))
    first_exit = NOW + 21 * minute

    first = evaluate(rule, views, NOW)
    recheck = first_exit + (MAX_CHANGE_PROBES - 1) * minute

    assert (first.matched, first.next_change_at) == (True, recheck)
    assert evaluate(rule, views, recheck).matched is True
    assert_flips_exactly_at(rule, views, NOW + 2 * H, now=recheck)


def test_the_longest_allowed_durations_evaluate_without_leaving_the_calendar() -> None:
    century = 36500 * D
    rule = Or(
        (
            count("order_completed", "gte", 2, Window(oldest_age=century)),
            Recency(matcher=EventMatcher("order_completed"), op="lte", age=century),
        )
    )
    orders = snapshot(event("order_completed", datetime(1950, 1, 1, tzinfo=UTC)))

    result = evaluate(rule, orders, NOW)

    assert (result.matched, result.next_change_at) == (
        True,
        datetime(1950, 1, 1, tzinfo=UTC) + century + US,
    )
