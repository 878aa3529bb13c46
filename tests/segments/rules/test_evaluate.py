import math
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from segments.rules.evaluate import (
    ConditionOutcome,
    EventRecord,
    ProfileSnapshot,
    aggregate_value,
    compare,
    evaluate,
)
from segments.rules.schema import rule_from_json
from segments.rules.tree import (
    ALL_TIME,
    Aggregate,
    AggregateFn,
    And,
    EventMatcher,
    InSegment,
    Not,
    Operator,
    Or,
    PropertyFilter,
    Recency,
    Rule,
    Sequence,
    TraitCondition,
    Value,
    Window,
)

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
US = timedelta(microseconds=1)


def event(
    name: str, at: datetime, context: Mapping[str, Any] | None = None, /, **properties: Any
) -> EventRecord:
    return EventRecord(name=name, timestamp=at, properties=properties, context=context or {})


def snapshot(*events: EventRecord, traits: Mapping[str, Any] | None = None) -> ProfileSnapshot:
    return ProfileSnapshot(
        traits=traits or {}, events=sorted(events, key=lambda item: item.timestamp)
    )


def holds(
    rule: Rule,
    *events: EventRecord,
    traits: Mapping[str, Any] | None = None,
    now: datetime = NOW,
    segments: Mapping[str, Rule] | None = None,
) -> bool:
    return evaluate(rule, snapshot(*events, traits=traits), now, segments).matched


def count(
    name: str,
    op: Operator,
    value: Value,
    window: Window = ALL_TIME,
    where: tuple[PropertyFilter, ...] = (),
) -> Aggregate:
    return Aggregate(
        fn="count", matcher=EventMatcher(name, where), op=op, value=value, window=window
    )


# --- compare ---------------------------------------------------------------------------

COMPARE_CASES: list[tuple[Any, str, Value, bool]] = [
    # eq: same type, numbers across int/float, booleans only equal booleans
    ("Paris", "eq", "Paris", True),
    ("paris", "eq", "Paris", False),
    (3, "eq", 3.0, True),
    (3, "eq", 4, False),
    (True, "eq", True, True),
    (False, "eq", False, True),
    (True, "eq", 1, False),
    (1, "eq", True, False),
    (0, "eq", False, False),
    ("3", "eq", 3, False),
    (3, "eq", "3", False),
    (["a"], "eq", "a", False),
    (None, "eq", "Paris", False),
    (None, "eq", None, False),
    (math.nan, "eq", math.nan, False),
    # ne: true when missing or different
    ("a", "ne", "b", True),
    ("a", "ne", "a", False),
    (3, "ne", 3.0, False),
    (True, "ne", 1, True),
    ("3", "ne", 3, True),
    (None, "ne", "a", True),
    (None, "ne", None, True),
    # ordering: numbers with numbers, strings with strings, nothing else
    (2, "lt", 3, True),
    (3, "lt", 3, False),
    (3, "lte", 3, True),
    (3.5, "lte", 3, False),
    (3.5, "gt", 3, True),
    (3, "gt", 3, False),
    (3, "gte", 3.0, True),
    (2.99, "gte", 3, False),
    (-1, "lt", 0, True),
    ("apple", "lt", "banana", True),
    ("b", "gte", "b", True),
    ("B", "gt", "a", False),
    ("10", "gt", 9, False),
    (10, "gt", "9", False),
    (True, "gt", 0, False),
    (False, "lt", 1, False),
    (None, "lt", 1, False),
    (None, "gte", "", False),
    (math.nan, "lt", 1, False),
    (math.inf, "gt", 1, False),
    ([5], "gt", 1, False),
    # between: inclusive, numbers only
    (1, "between", [1, 5], True),
    (5, "between", [1, 5], True),
    (3.2, "between", [1, 5], True),
    (0.999, "between", [1, 5], False),
    (5.001, "between", [1, 5], False),
    ("3", "between", [1, 5], False),
    (True, "between", [0, 1], False),
    (None, "between", [0, 1], False),
    # in / not_in: membership with eq's meaning; not_in is true when missing
    ("b", "in", ["a", "b"], True),
    ("c", "in", ["a", "b"], False),
    (1, "in", [1.0, 2.0], True),
    (True, "in", [1, 2], False),
    (1, "in", [True], False),
    (None, "in", [None], False),
    ("a", "in", [], False),
    ("a", "not_in", ["a", "b"], False),
    ("c", "not_in", ["a", "b"], True),
    (True, "not_in", [1], True),
    (None, "not_in", ["a"], True),
    (None, "not_in", [None], True),
    # contains: substring, or list membership
    ("camping gear", "contains", "gear", True),
    ("camping gear", "contains", "Gear", False),
    (["a", "b"], "contains", "b", True),
    ([1, 2], "contains", 2.0, True),
    ([True], "contains", 1, False),
    ([], "contains", "a", False),
    (5, "contains", 5, False),
    ("5", "contains", 5, False),
    (None, "contains", "a", False),
    # starts_with / ends_with: strings only
    ("outdoor", "starts_with", "out", True),
    ("outdoor", "starts_with", "door", False),
    (123, "starts_with", "1", False),
    ("outdoor", "ends_with", "door", True),
    ("outdoor", "ends_with", "out", False),
    (None, "ends_with", "", False),
    # unary
    ("", "exists", None, True),
    (False, "exists", None, True),
    (0, "exists", None, True),
    (None, "exists", None, False),
    (None, "not_exists", None, True),
    ("", "not_exists", None, False),
    (None, "is_empty", None, True),
    ("", "is_empty", None, True),
    ([], "is_empty", None, True),
    ({}, "is_empty", None, True),
    (" ", "is_empty", None, False),
    (0, "is_empty", None, False),
    (False, "is_empty", None, False),
    (["a"], "is_empty", None, False),
]


@pytest.mark.parametrize(
    ("actual", "op", "expected", "result"),
    COMPARE_CASES,
    ids=[f"{a!r}-{op}-{e!r}" for a, op, e, _ in COMPARE_CASES],
)
def test_compare_gives_each_operator_its_meaning(
    actual: Any, op: str, expected: Value, result: bool
) -> None:
    assert compare(actual, op, expected) is result


def test_compare_refuses_an_unknown_operator() -> None:
    with pytest.raises(ValueError, match="^unknown operator 'like'$"):
        compare("a", "like", "a")


# --- traits ------------------------------------------------------------------------------

TRAITS = {"plan": "pro", "address": {"city": "Paris", "zip": None}, "orders": 4, "vip": False}


@pytest.mark.parametrize(
    ("path", "op", "value", "result"),
    [
        (("plan",), "eq", "pro", True),
        (("address", "city"), "eq", "Paris", True),
        (("address", "city"), "in", ["Lyon", "Paris"], True),
        (("address", "country"), "eq", "FR", False),
        (("address", "country"), "ne", "FR", True),
        (("address", "country"), "not_in", ["FR"], True),
        (("address", "zip"), "exists", None, False),
        (("address", "zip"), "is_empty", None, True),
        (("plan", "tier"), "not_exists", None, True),
        (("orders",), "gte", 4, True),
        (("orders",), "between", [5, 9], False),
        (("vip",), "eq", False, True),
        (("vip",), "eq", 0, False),
        (("vip",), "exists", None, True),
        (("missing",), "lt", 10, False),
    ],
)
def test_trait_conditions_look_up_dotted_paths(
    path: tuple[str, ...], op: Operator, value: Value, result: bool
) -> None:
    assert holds(TraitCondition(path=path, op=op, value=value), traits=TRAITS) is result


# --- aggregates --------------------------------------------------------------------------


def _values_as_events(values: list[Any]) -> list[EventRecord]:
    return [
        event("order_completed", NOW - timedelta(hours=index + 1), value=value)
        for index, value in enumerate(values)
    ]


@pytest.mark.parametrize(
    ("fn", "values", "expected"),
    [
        ("count", [10, "x", None, True], 4.0),
        ("sum", [10, 2.5, 7], 19.5),
        ("sum", [10, "12", True, None, math.nan, [1]], 10.0),
        ("sum", [0.1] * 10, 1.0),
        ("avg", [10, 20, 60], 30.0),
        ("avg", [10, "20", None, False], 10.0),
        ("min", [7, -2.5, 3], -2.5),
        ("max", [7, -2.5, 3], 7.0),
        ("max", ["99", 3], 3.0),
        ("distinct", ["a", "b", "a"], 2.0),
        ("distinct", [1, 1.0, "1", True, None], 3.0),
        ("distinct", [True, False, True, 0], 3.0),
        ("distinct", [["a"], ["a"], ["b"]], 2.0),
        ("distinct", [None, None], 0.0),
        # over no events: count, sum and distinct are 0; the others have no value
        ("count", [], 0.0),
        ("sum", [], 0.0),
        ("distinct", [], 0.0),
        ("avg", [], None),
        ("min", [], None),
        ("max", [], None),
        # over events with no numbers, likewise
        ("sum", ["a", None], 0.0),
        ("avg", ["a", None], None),
        ("min", [True], None),
        ("max", [None], None),
    ],
)
def test_aggregate_value_of_each_function(
    fn: AggregateFn, values: list[Any], expected: float | None
) -> None:
    rule = Aggregate(
        fn=fn,
        matcher=EventMatcher("order_completed"),
        op="gte",
        value=0,
        property=None if fn == "count" else ("value",),
    )

    assert aggregate_value(rule, _values_as_events(values), NOW) == expected


@pytest.mark.parametrize(
    ("fn", "op", "value", "result"),
    [
        ("count", "eq", 0, True),
        ("sum", "eq", 0, True),
        ("distinct", "lt", 1, True),
        ("avg", "eq", 0, False),
        ("avg", "ne", 0, False),
        ("min", "lt", 1, False),
        ("max", "gte", 0, False),
        ("max", "between", [-1, 1], False),
    ],
)
def test_aggregates_over_no_events_compare_as_documented(
    fn: AggregateFn, op: Operator, value: Value, result: bool
) -> None:
    rule = Aggregate(
        fn=fn,
        matcher=EventMatcher("order_completed"),
        op=op,
        value=value,
        property=None if fn == "count" else ("revenue",),
    )

    assert holds(rule, event("product_viewed", NOW - timedelta(hours=1), revenue=5)) is result


def test_aggregate_reads_a_context_property() -> None:
    rule = Aggregate(
        fn="distinct",
        matcher=EventMatcher("page_viewed"),
        op="eq",
        value=2,
        property=("context", "device", "type"),
    )
    events = [
        event("page_viewed", NOW - timedelta(hours=3), {"device": {"type": "mobile"}}),
        event("page_viewed", NOW - timedelta(hours=2), {"device": {"type": "desktop"}}),
        event("page_viewed", NOW - timedelta(hours=1), {"device": {"type": "mobile"}}),
        event("page_viewed", NOW - timedelta(hours=1), device={"type": "tablet"}),
    ]

    assert holds(rule, *events) is True


# --- property filters ----------------------------------------------------------------


def _where(*filters: PropertyFilter) -> Aggregate:
    return count("product_viewed", "gte", 1, where=filters)


@pytest.mark.parametrize(
    ("filters", "result"),
    [
        ((PropertyFilter(("category",), "eq", "camping"),), True),
        ((PropertyFilter(("category",), "eq", "Camping"),), False),
        ((PropertyFilter(("category",), "in", ["camping", "fishing"]),), True),
        ((PropertyFilter(("category",), "not_in", ["camping"]),), False),
        ((PropertyFilter(("price",), "between", [10, 20]),), True),
        ((PropertyFilter(("price",), "gt", 20),), False),
        ((PropertyFilter(("brand",), "ne", "acme"),), True),
        ((PropertyFilter(("brand",), "not_exists"),), True),
        ((PropertyFilter(("product", "sku"), "starts_with", "TENT-"),), True),
        ((PropertyFilter(("context", "country"), "eq", "FR"),), True),
        ((PropertyFilter(("context", "country"), "eq", "DE"),), False),
        ((PropertyFilter(("context", "campaign", "id"), "eq", 7),), True),
        ((PropertyFilter(("context", "referrer"), "not_exists"),), True),
        # a property literally called "context" is an event property
        ((PropertyFilter(("context",), "eq", "checkout"),), True),
        (
            (
                PropertyFilter(("category",), "eq", "camping"),
                PropertyFilter(("context", "country"), "eq", "FR"),
            ),
            True,
        ),
        (
            (
                PropertyFilter(("category",), "eq", "camping"),
                PropertyFilter(("context", "country"), "eq", "DE"),
            ),
            False,
        ),
    ],
)
def test_property_filters_must_all_hold_for_an_event_to_count(
    filters: tuple[PropertyFilter, ...], result: bool
) -> None:
    viewed = event(
        "product_viewed",
        NOW - timedelta(hours=1),
        {"country": "FR", "campaign": {"id": 7}},
        category="camping",
        price=15,
        product={"sku": "TENT-2P"},
        context="checkout",
    )

    assert holds(_where(*filters), viewed) is result


def test_filters_on_true_and_on_one_select_different_events_in_one_rule() -> None:
    flagged = event("product_viewed", NOW - timedelta(hours=1), featured=True)
    by_true = _where(PropertyFilter(("featured",), "eq", True))
    by_one = _where(PropertyFilter(("featured",), "eq", 1))

    assert holds(And((by_true, by_one)), flagged) is False
    assert holds(Or((by_one, by_true)), flagged) is True


def test_an_event_of_another_name_never_counts() -> None:
    rule = count("product_viewed", "gte", 1)

    assert holds(rule, event("product_viewed_v2", NOW - timedelta(hours=1))) is False


# --- windows -------------------------------------------------------------------------

LAST_48H = Window(oldest_age=timedelta(hours=48))
DAYS_7_TO_14_AGO = Window(oldest_age=timedelta(days=14), newest_age=timedelta(days=7))
JANUARY = Window(
    start=datetime(2026, 1, 1, tzinfo=UTC),
    end=datetime(2026, 2, 1, tzinfo=UTC),
)
JAN_NOW = datetime(2026, 1, 20, tzinfo=UTC)


@pytest.mark.parametrize(
    ("window", "at", "now", "inside"),
    [
        (LAST_48H, NOW, NOW, True),
        (LAST_48H, NOW + US, NOW, False),
        (LAST_48H, NOW - timedelta(hours=48) + US, NOW, True),
        (LAST_48H, NOW - timedelta(hours=48), NOW, False),
        (DAYS_7_TO_14_AGO, NOW - timedelta(days=7), NOW, True),
        (DAYS_7_TO_14_AGO, NOW - timedelta(days=7) + US, NOW, False),
        (DAYS_7_TO_14_AGO, NOW - timedelta(days=14) + US, NOW, True),
        (DAYS_7_TO_14_AGO, NOW - timedelta(days=14), NOW, False),
        (DAYS_7_TO_14_AGO, NOW - timedelta(days=1), NOW, False),
        (JANUARY, datetime(2026, 1, 1, tzinfo=UTC), JAN_NOW, True),
        (JANUARY, datetime(2026, 1, 1, tzinfo=UTC) - US, JAN_NOW, False),
        (JANUARY, JAN_NOW, JAN_NOW, True),
        (JANUARY, JAN_NOW + US, JAN_NOW, False),
        (JANUARY, datetime(2026, 2, 1, tzinfo=UTC) - US, NOW, True),
        (JANUARY, datetime(2026, 2, 1, tzinfo=UTC), NOW, False),
        (ALL_TIME, NOW - timedelta(days=3650), NOW, True),
        (ALL_TIME, NOW, NOW, True),
        (ALL_TIME, NOW + US, NOW, False),
    ],
)
def test_window_contains_events_between_its_exact_bounds(
    window: Window, at: datetime, now: datetime, inside: bool
) -> None:
    assert window.contains(at, now) is inside


def test_count_in_the_last_48h_excludes_the_event_exactly_48h_old() -> None:
    rule = count("product_viewed", "gte", 3, LAST_48H)
    recent = [event("product_viewed", NOW - timedelta(hours=h)) for h in (1, 20)]

    assert holds(rule, *recent, event("product_viewed", NOW - timedelta(hours=48))) is False
    assert holds(rule, *recent, event("product_viewed", NOW - timedelta(hours=48) + US)) is True


def test_count_between_7_and_14_days_ago_ignores_newer_and_older_events() -> None:
    rule = count("order_completed", "eq", 2, DAYS_7_TO_14_AGO)
    events = [
        event("order_completed", NOW - timedelta(days=15)),
        event("order_completed", NOW - timedelta(days=14)),
        event("order_completed", NOW - timedelta(days=10)),
        event("order_completed", NOW - timedelta(days=7)),
        event("order_completed", NOW - timedelta(days=6)),
        event("order_completed", NOW),
    ]

    assert holds(rule, *events) is True


def test_an_absolute_window_counts_nothing_from_after_now() -> None:
    rule = Aggregate(
        fn="sum",
        matcher=EventMatcher("order_completed"),
        op="eq",
        value=30,
        property=("revenue",),
        window=JANUARY,
    )
    events = [
        event("order_completed", datetime(2025, 12, 31, 23, 59, tzinfo=UTC), revenue=1),
        event("order_completed", datetime(2026, 1, 5, tzinfo=UTC), revenue=10),
        event("order_completed", datetime(2026, 1, 19, tzinfo=UTC), revenue=20),
        event("order_completed", datetime(2026, 1, 25, tzinfo=UTC), revenue=100),
    ]

    assert holds(rule, *events, now=JAN_NOW) is True
    assert holds(rule, *events, now=NOW) is False


def test_all_time_counts_old_events_but_not_future_ones() -> None:
    rule = count("order_completed", "eq", 1)

    assert holds(rule, event("order_completed", NOW - timedelta(days=3000))) is True
    assert holds(rule, event("order_completed", NOW + timedelta(seconds=1))) is False


# --- recency -------------------------------------------------------------------------


def _recency(op: Any, age: timedelta = timedelta(days=7)) -> Recency:
    return Recency(matcher=EventMatcher("order_completed"), op=op, age=age)


@pytest.mark.parametrize(
    ("op", "last_seen_ago", "result"),
    [
        ("gt", timedelta(days=7), False),
        ("gt", timedelta(days=7) + US, True),
        ("gte", timedelta(days=7) - US, False),
        ("gte", timedelta(days=7), True),
        ("lt", timedelta(days=7) - US, True),
        ("lt", timedelta(days=7), False),
        ("lte", timedelta(days=7), True),
        ("lte", timedelta(days=7) + US, False),
        ("lt", timedelta(0), True),
    ],
)
def test_recency_compares_the_age_of_the_last_event_at_the_boundary(
    op: str, last_seen_ago: timedelta, result: bool
) -> None:
    assert holds(_recency(op), event("order_completed", NOW - last_seen_ago)) is result


@pytest.mark.parametrize("op", ["gt", "gte", "lt", "lte"])
def test_recency_is_false_when_never_seen(op: str) -> None:
    assert holds(_recency(op), event("product_viewed", NOW - timedelta(days=30))) is False


@pytest.mark.parametrize("op", ["gt", "gte", "lt", "lte"])
def test_recency_ignores_events_after_now(op: str) -> None:
    assert holds(_recency(op), event("order_completed", NOW + timedelta(days=1))) is False


def test_recency_looks_only_at_the_most_recent_matching_event() -> None:
    events = [
        event("order_completed", NOW - timedelta(days=30)),
        event("order_completed", NOW - timedelta(days=2)),
    ]

    assert holds(_recency("gt"), *events) is False
    assert holds(_recency("lt"), *events) is True


def test_recency_with_a_filter_skips_events_that_do_not_match() -> None:
    rule = Recency(
        matcher=EventMatcher("order_completed", (PropertyFilter(("revenue",), "gte", 100),)),
        op="gt",
        age=timedelta(days=7),
    )
    events = [
        event("order_completed", NOW - timedelta(days=30), revenue=250),
        event("order_completed", NOW - timedelta(days=1), revenue=20),
    ]

    assert holds(rule, *events) is True


# --- sequences -------------------------------------------------------------------------

CART = NOW - timedelta(hours=2)
THIRTY_MIN = timedelta(minutes=30)


def _sequence(followed: bool, window: Window = ALL_TIME) -> Sequence:
    return Sequence(
        first=EventMatcher("add_to_cart"),
        then=EventMatcher("order_completed"),
        within=THIRTY_MIN,
        followed=followed,
        window=window,
    )


@pytest.mark.parametrize(
    ("order_at", "followed"),
    [
        (CART, True),
        (CART + timedelta(minutes=10), True),
        (CART + THIRTY_MIN, True),
        (CART + THIRTY_MIN + US, False),
        (CART - US, False),
        (None, False),
    ],
)
def test_sequence_is_followed_when_then_happens_within_the_time_after_first(
    order_at: datetime | None, followed: bool
) -> None:
    events = [event("add_to_cart", CART)]
    if order_at is not None:
        events.append(event("order_completed", order_at))

    assert holds(_sequence(followed=True), *events) is followed
    assert holds(_sequence(followed=False), *events) is not followed


def test_cart_abandonment_is_false_until_within_has_passed() -> None:
    cart = event("add_to_cart", CART)
    rule = _sequence(followed=False)

    assert holds(rule, cart, now=CART) is False
    assert holds(rule, cart, now=CART + THIRTY_MIN - US) is False
    assert holds(rule, cart, now=CART + THIRTY_MIN) is True


def test_an_order_placed_later_than_now_does_not_follow_yet() -> None:
    events = [event("add_to_cart", CART), event("order_completed", CART + timedelta(minutes=20))]

    assert holds(_sequence(followed=True), *events, now=CART + timedelta(minutes=10)) is False
    assert holds(_sequence(followed=True), *events, now=CART + timedelta(minutes=20)) is True


def test_one_abandoned_cart_among_completed_ones_is_enough() -> None:
    events = [
        event("add_to_cart", NOW - timedelta(hours=5)),
        event("order_completed", NOW - timedelta(hours=5) + timedelta(minutes=5)),
        event("add_to_cart", NOW - timedelta(hours=3)),
        event("add_to_cart", NOW - timedelta(hours=1)),
        event("order_completed", NOW - timedelta(hours=1) + timedelta(minutes=29)),
    ]

    assert holds(_sequence(followed=False), *events) is True
    assert holds(_sequence(followed=True), *events) is True


def test_only_first_events_inside_the_window_count() -> None:
    events = [event("add_to_cart", NOW - timedelta(hours=30))]
    last_day = Window(oldest_age=timedelta(hours=24))

    assert holds(_sequence(followed=False), *events) is True
    assert holds(_sequence(followed=False, window=last_day), *events) is False


def test_an_event_does_not_follow_itself() -> None:
    rule = Sequence(
        first=EventMatcher("product_viewed"),
        then=EventMatcher("product_viewed"),
        within=timedelta(hours=1),
    )
    first = event("product_viewed", NOW - timedelta(hours=3))

    assert holds(rule, first) is False
    assert holds(rule, first, event("product_viewed", NOW - timedelta(hours=2))) is True


def test_then_filters_decide_which_events_follow() -> None:
    rule = Sequence(
        first=EventMatcher("product_viewed", (PropertyFilter(("sku",), "eq", "TENT"),)),
        then=EventMatcher("add_to_cart", (PropertyFilter(("sku",), "eq", "TENT"),)),
        within=timedelta(hours=1),
    )
    viewed = event("product_viewed", NOW - timedelta(hours=3), sku="TENT")

    assert holds(rule, viewed, event("add_to_cart", NOW - timedelta(hours=2), sku="MAT")) is False
    assert holds(rule, viewed, event("add_to_cart", NOW - timedelta(hours=2), sku="TENT")) is True


# --- composition -----------------------------------------------------------------------

BIG_SPENDER = Aggregate(
    fn="sum",
    matcher=EventMatcher("order_completed"),
    op="gte",
    value=100,
    property=("revenue",),
)
ORDER_150 = event("order_completed", NOW - timedelta(days=1), revenue=150)
ORDER_50 = event("order_completed", NOW - timedelta(days=1), revenue=50)


@pytest.mark.parametrize(
    ("rule", "order", "result"),
    [
        (InSegment("big-spenders"), ORDER_150, True),
        (InSegment("big-spenders"), ORDER_50, False),
        (InSegment("big-spenders", member=False), ORDER_150, False),
        (InSegment("big-spenders", member=False), ORDER_50, True),
        (InSegment("no-such-segment"), ORDER_150, False),
        (InSegment("no-such-segment", member=False), ORDER_150, True),
        (InSegment("loyal-big-spenders"), ORDER_150, True),
        (InSegment("loyal-big-spenders"), ORDER_50, False),
    ],
)
def test_segment_conditions_evaluate_the_referenced_rule(
    rule: InSegment, order: EventRecord, result: bool
) -> None:
    segments: dict[str, Rule] = {
        "big-spenders": BIG_SPENDER,
        "loyal-big-spenders": And((InSegment("big-spenders"), count("order_completed", "gte", 1))),
    }

    assert holds(rule, order, segments=segments) is result


def test_a_segment_that_refers_to_itself_has_no_members_through_the_cycle() -> None:
    segments: dict[str, Rule] = {
        "a": Or((InSegment("b"), count("order_completed", "gte", 5))),
        "b": InSegment("a"),
    }

    assert holds(InSegment("a"), ORDER_150, segments=segments) is False
    assert holds(InSegment("a", member=False), ORDER_150, segments=segments) is True


TRUE = TraitCondition(("plan",), "eq", "pro")
FALSE = TraitCondition(("plan",), "eq", "free")


@pytest.mark.parametrize(
    ("rule", "result"),
    [
        (And((TRUE,)), True),
        (And((TRUE, TRUE)), True),
        (And((TRUE, FALSE)), False),
        (Or((FALSE,)), False),
        (Or((FALSE, TRUE)), True),
        (Or((FALSE, FALSE)), False),
        (Not(TRUE), False),
        (Not(FALSE), True),
        (Not(Not(TRUE)), True),
        (Or((And((TRUE, FALSE)), Not(FALSE))), True),
        (And((Or((FALSE, TRUE)), Not(TRUE))), False),
    ],
)
def test_and_or_not_combine_their_children(rule: Rule, result: bool) -> None:
    assert holds(rule, traits={"plan": "pro"}) is result


# --- explanations --------------------------------------------------------------------


def _explain(
    rule: Rule, *events: EventRecord, traits: Mapping[str, Any] | None = None
) -> tuple[ConditionOutcome, ...]:
    segments: dict[str, Rule] = {"vip": TRUE}
    return evaluate(rule, snapshot(*events, traits=traits), NOW, segments).conditions


VIEWS = [
    event("product_viewed", NOW - timedelta(hours=h), category="camping") for h in (1, 2, 3, 47)
]


@pytest.mark.parametrize(
    ("data", "text", "held"),
    [
        (
            {
                "type": "aggregate",
                "fn": "count",
                "event": "product_viewed",
                "window": {"last": "48h"},
                "op": "gte",
                "value": 3,
            },
            "count of product_viewed in the last 48h is 4; needs ≥ 3",
            True,
        ),
        (
            {
                "type": "aggregate",
                "fn": "count",
                "event": "product_viewed",
                "where": [{"property": "category", "op": "eq", "value": "camping"}],
                "window": {"last": "2h"},
                "op": "gt",
                "value": 2,
            },
            "count of product_viewed where category = 'camping' in the last 2h is 1; needs > 2",
            False,
        ),
        (
            {
                "type": "aggregate",
                "fn": "sum",
                "event": "order_completed",
                "property": "revenue",
                "window": {"from_ago": "14d", "to_ago": "7d"},
                "op": "gte",
                "value": 100,
            },
            "sum of revenue of order_completed between 7d and 14d ago is 120.50; needs ≥ 100",
            True,
        ),
        (
            {
                "type": "aggregate",
                "fn": "avg",
                "event": "refund",
                "property": "amount",
                "op": "lt",
                "value": 10,
            },
            "avg of amount of refund ever is no value; needs < 10",
            False,
        ),
        (
            {
                "type": "aggregate",
                "fn": "distinct",
                "event": "product_viewed",
                "property": "category",
                "window": {"start": "2026-02-01T00:00:00Z", "end": "2026-03-01T00:00:00Z"},
                "op": "between",
                "value": [1, 3],
            },
            "distinct of category of product_viewed between 2026-02-01 00:00 and 2026-03-01 00:00 is 1; needs between [1, 3]",
            True,
        ),
        (
            {"type": "trait", "path": "address.city", "op": "eq", "value": "Paris"},
            "trait address.city is 'Lyon'; needs = 'Paris'",
            False,
        ),
        (
            {"type": "trait", "path": "email", "op": "not_exists"},
            "trait email is None; needs does not exist",
            True,
        ),
        (
            {"type": "recency", "event": "order_completed", "op": "gt", "age": "7d"},
            "order_completed last seen 10d ago; needs > 7d ago",
            True,
        ),
        (
            {"type": "recency", "event": "product_viewed", "op": "lte", "age": "30m"},
            "product_viewed last seen 1h ago; needs ≤ 30m ago",
            False,
        ),
        (
            {"type": "recency", "event": "newsletter_opened", "op": "lt", "age": "30d"},
            "newsletter_opened never seen; needs < 30d ago",
            False,
        ),
        (
            {
                "type": "sequence",
                "first": {"event": "add_to_cart"},
                "then": {"event": "order_completed"},
                "within": "30m",
                "followed": False,
                "window": {"last": "24h"},
            },
            "add_to_cart in the last 24h not followed by order_completed within 30m",
            True,
        ),
        (
            {
                "type": "sequence",
                "first": {"event": "product_viewed"},
                "then": {"event": "add_to_cart", "where": [{"property": "sku", "op": "exists"}]},
                "within": "1h",
            },
            "product_viewed ever followed by add_to_cart where sku exists within 1h",
            False,
        ),
        ({"type": "segment", "slug": "vip"}, "in segment vip", True),
        ({"type": "segment", "slug": "vip", "member": False}, "not in segment vip", False),
    ],
)
def test_each_condition_explains_what_it_saw_and_what_it_needs(
    data: dict[str, Any], text: str, held: bool
) -> None:
    events = [
        *VIEWS,
        event("order_completed", NOW - timedelta(days=10), revenue=120.5),
        event("add_to_cart", NOW - timedelta(hours=5)),
    ]

    conditions = _explain(
        rule_from_json(data), *events, traits={"address": {"city": "Lyon"}, "plan": "pro"}
    )

    assert conditions == (ConditionOutcome(text=text, held=held),)


def test_explanations_list_every_leaf_and_negate_under_not() -> None:
    rule = Or((TRUE, Not(And((FALSE, InSegment("vip"))))))

    conditions = _explain(rule, traits={"plan": "pro"})

    assert conditions == (
        ConditionOutcome("trait plan is 'pro'; needs = 'pro'", True),
        ConditionOutcome("not (trait plan is 'pro'; needs = 'free')", True),
        ConditionOutcome("not (in segment vip)", False),
    )


def test_explain_false_skips_the_explanation_but_not_the_answer() -> None:
    result = evaluate(TRUE, snapshot(traits={"plan": "pro"}), NOW, explain=False)

    assert (result.matched, result.next_change_at, result.conditions) == (True, None, ())
