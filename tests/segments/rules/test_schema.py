from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from segments.rules.schema import MAX_DEPTH, RuleError, rule_from_json, rule_to_json
from segments.rules.tree import (
    ALL_TIME,
    Aggregate,
    And,
    EventMatcher,
    InSegment,
    Not,
    Or,
    PropertyFilter,
    Recency,
    Rule,
    Sequence,
    TraitCondition,
    Window,
)

VIEWS_48H: dict[str, Any] = {
    "type": "aggregate",
    "fn": "count",
    "event": "product_viewed",
    "window": {"last": "48h"},
    "op": "gte",
    "value": 3,
}

# Canonical JSON: what rule_to_json prints. Each must read back and print unchanged.
CANONICAL: dict[str, dict[str, Any]] = {
    "trait_eq": {"type": "trait", "path": "address.city", "op": "eq", "value": "Paris"},
    "trait_eq_null": {"type": "trait", "path": "nickname", "op": "eq", "value": None},
    "trait_in": {"type": "trait", "path": "plan", "op": "in", "value": ["pro", "team", 3, True]},
    "trait_between": {"type": "trait", "path": "age", "op": "between", "value": [18, 30.5]},
    "trait_exists": {"type": "trait", "path": "email", "op": "exists"},
    "trait_is_empty": {"type": "trait", "path": "tags", "op": "is_empty"},
    "trait_lt_string": {"type": "trait", "path": "name", "op": "lt", "value": "m"},
    "count_last": VIEWS_48H,
    "count_where": {
        "type": "aggregate",
        "fn": "count",
        "event": "product_viewed",
        "where": [
            {"property": "category", "op": "eq", "value": "camping"},
            {"property": "context.country", "op": "in", "value": ["FR", "DE"]},
            {"property": "discount", "op": "not_exists"},
        ],
        "window": {"last": "7d"},
        "op": "gte",
        "value": 2,
    },
    "sum_between_ago": {
        "type": "aggregate",
        "fn": "sum",
        "event": "order_completed",
        "property": "revenue",
        "window": {"from_ago": "14d", "to_ago": "7d"},
        "op": "gt",
        "value": 99.5,
    },
    "avg_all_time": {
        "type": "aggregate",
        "fn": "avg",
        "event": "order_completed",
        "property": "revenue",
        "op": "between",
        "value": [10, 20],
    },
    "min_absolute": {
        "type": "aggregate",
        "fn": "min",
        "event": "order_completed",
        "property": "items.count",
        "window": {"start": "2026-01-01T00:00:00+00:00", "end": "2026-02-01T00:00:00+01:00"},
        "op": "lte",
        "value": 1,
    },
    "max": {
        "type": "aggregate",
        "fn": "max",
        "event": "order_completed",
        "property": "revenue",
        "op": "ne",
        "value": 0,
    },
    "distinct": {
        "type": "aggregate",
        "fn": "distinct",
        "event": "product_viewed",
        "property": "category",
        "window": {"last": "30d"},
        "op": "eq",
        "value": 4,
    },
    "recency": {
        "type": "recency",
        "event": "order_completed",
        "where": [{"property": "revenue", "op": "gte", "value": 100}],
        "op": "gt",
        "age": "90d",
    },
    "sequence_followed": {
        "type": "sequence",
        "first": {"event": "product_viewed"},
        "then": {
            "event": "add_to_cart",
            "where": [{"property": "sku", "op": "starts_with", "value": "TENT-"}],
        },
        "within": "1h",
        "followed": True,
    },
    "sequence_abandoned": {
        "type": "sequence",
        "first": {"event": "add_to_cart"},
        "then": {"event": "order_completed"},
        "within": "30m",
        "followed": False,
        "window": {"last": "24h"},
    },
    "segment": {"type": "segment", "slug": "engaged-shoppers", "member": True},
    "not_segment": {"type": "segment", "slug": "cart-abandoners", "member": False},
    "nested": {
        "type": "or",
        "rules": [
            {"type": "and", "rules": [VIEWS_48H, {"type": "not", "rule": VIEWS_48H}]},
            {"type": "not", "rule": {"type": "segment", "slug": "vip", "member": True}},
        ],
    },
}


@pytest.mark.parametrize("data", CANONICAL.values(), ids=CANONICAL.keys())
def test_canonical_json_reads_back_and_prints_unchanged(data: dict[str, Any]) -> None:
    assert rule_to_json(rule_from_json(data)) == data


@pytest.mark.parametrize("data", CANONICAL.values(), ids=CANONICAL.keys())
def test_a_tree_printed_to_json_reads_back_equal(data: dict[str, Any]) -> None:
    rule = rule_from_json(data)

    assert rule_from_json(rule_to_json(rule)) == rule


def test_an_aggregate_reads_into_the_exact_tree() -> None:
    rule = rule_from_json(CANONICAL["count_where"])

    assert rule == Aggregate(
        fn="count",
        matcher=EventMatcher(
            event="product_viewed",
            where=(
                PropertyFilter(path=("category",), op="eq", value="camping"),
                PropertyFilter(path=("context", "country"), op="in", value=["FR", "DE"]),
                PropertyFilter(path=("discount",), op="not_exists"),
            ),
        ),
        op="gte",
        value=2,
        property=None,
        window=Window(oldest_age=timedelta(days=7)),
    )


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        (
            "trait_eq",
            TraitCondition(path=("address", "city"), op="eq", value="Paris"),
        ),
        ("trait_exists", TraitCondition(path=("email",), op="exists", value=None)),
        (
            "sum_between_ago",
            Aggregate(
                fn="sum",
                matcher=EventMatcher(event="order_completed"),
                op="gt",
                value=99.5,
                property=("revenue",),
                window=Window(oldest_age=timedelta(days=14), newest_age=timedelta(days=7)),
            ),
        ),
        (
            "min_absolute",
            Aggregate(
                fn="min",
                matcher=EventMatcher(event="order_completed"),
                op="lte",
                value=1,
                property=("items", "count"),
                window=Window(
                    start=datetime(2026, 1, 1, tzinfo=UTC),
                    end=datetime(2026, 1, 31, 23, tzinfo=UTC),
                ),
            ),
        ),
        (
            "avg_all_time",
            Aggregate(
                fn="avg",
                matcher=EventMatcher(event="order_completed"),
                op="between",
                value=[10, 20],
                property=("revenue",),
                window=ALL_TIME,
            ),
        ),
        (
            "recency",
            Recency(
                matcher=EventMatcher(
                    event="order_completed",
                    where=(PropertyFilter(path=("revenue",), op="gte", value=100),),
                ),
                op="gt",
                age=timedelta(days=90),
            ),
        ),
        (
            "sequence_abandoned",
            Sequence(
                first=EventMatcher(event="add_to_cart"),
                then=EventMatcher(event="order_completed"),
                within=timedelta(minutes=30),
                followed=False,
                window=Window(oldest_age=timedelta(hours=24)),
            ),
        ),
        ("not_segment", InSegment(slug="cart-abandoners", member=False)),
        (
            "nested",
            Or(
                (
                    And((rule_from_json(VIEWS_48H), Not(rule_from_json(VIEWS_48H)))),
                    Not(InSegment(slug="vip")),
                )
            ),
        ),
    ],
)
def test_each_rule_type_reads_into_its_node(name: str, expected: Rule) -> None:
    assert rule_from_json(CANONICAL[name]) == expected


# Accepted but not canonical: (input, what rule_to_json prints for it).
NORMALISED: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "weeks_print_as_days": (
        {**VIEWS_48H, "window": {"last": "2w"}},
        {**VIEWS_48H, "window": {"last": "14d"}},
    ),
    "sixty_minutes_print_as_an_hour": (
        {**VIEWS_48H, "window": {"last": "60m"}},
        {**VIEWS_48H, "window": {"last": "1h"}},
    ),
    "all_time_window_is_omitted": (
        {**VIEWS_48H, "window": {"all": True}},
        {k: v for k, v in VIEWS_48H.items() if k != "window"},
    ),
    "z_suffix_prints_as_offset": (
        {**VIEWS_48H, "window": {"start": "2026-01-01T00:00:00Z", "end": "2026-01-02T00:00Z"}},
        {
            **VIEWS_48H,
            "window": {"start": "2026-01-01T00:00:00+00:00", "end": "2026-01-02T00:00:00+00:00"},
        },
    ),
    "names_are_stripped": (
        {**VIEWS_48H, "event": "  product_viewed "},
        VIEWS_48H,
    ),
    "empty_where_is_omitted": ({**VIEWS_48H, "where": []}, VIEWS_48H),
    "count_with_null_property": ({**VIEWS_48H, "property": None}, VIEWS_48H),
    "unary_operator_with_null_value": (
        {"type": "trait", "path": "email", "op": "exists", "value": None},
        {"type": "trait", "path": "email", "op": "exists"},
    ),
    "sequence_followed_defaults_to_true": (
        {"type": "sequence", "first": {"event": "a"}, "then": {"event": "b"}, "within": "5m"},
        {
            "type": "sequence",
            "first": {"event": "a"},
            "then": {"event": "b"},
            "within": "5m",
            "followed": True,
        },
    ),
    "segment_member_defaults_to_true": (
        {"type": "segment", "slug": "vip"},
        {"type": "segment", "slug": "vip", "member": True},
    ),
}


@pytest.mark.parametrize(("data", "canonical"), NORMALISED.values(), ids=NORMALISED.keys())
def test_accepted_variants_print_as_canonical_json(
    data: dict[str, Any], canonical: dict[str, Any]
) -> None:
    printed = rule_to_json(rule_from_json(data))

    assert printed == canonical
    assert rule_to_json(rule_from_json(printed)) == canonical


def test_a_window_in_another_time_zone_keeps_its_offset_and_its_instant() -> None:
    rule = rule_from_json(
        {**VIEWS_48H, "window": {"start": "2026-01-01T09:00:00+09:00", "end": "2026-01-02T00:00Z"}}
    )

    assert isinstance(rule, Aggregate)
    assert rule.window.start == datetime(2026, 1, 1, tzinfo=UTC)
    assert rule_to_json(rule)["window"]["start"] == "2026-01-01T09:00:00+09:00"


def _nested_nots(levels: int) -> dict[str, Any]:
    data: dict[str, Any] = {"type": "segment", "slug": "vip", "member": True}
    for _ in range(levels):
        data = {"type": "not", "rule": data}
    return data


def test_rules_nested_up_to_the_depth_limit_are_accepted() -> None:
    data = _nested_nots(MAX_DEPTH)

    assert rule_to_json(rule_from_json(data)) == data


OPERATORS = (
    "['between', 'contains', 'ends_with', 'eq', 'exists', 'gt', 'gte', 'in', 'is_empty', "
    "'lt', 'lte', 'ne', 'not_exists', 'not_in', 'starts_with']"
)
RULE_TYPES = "use and, or, not, trait, aggregate, recency, sequence, segment, sessions, trend, context or score"
NOT_A_DURATION = "is not a duration; write a whole number and a unit: s, m, h, d or w (e.g. 48h)"
WINDOW_SHAPES = (
    'use {"last": D}, {"from_ago": D, "to_ago": D}, {"start": T, "end": T} or {"all": true}'
)
AGGREGATE_OPS = "an aggregate compares with eq, ne, lt, lte, gt, gte or between"
BETWEEN = "'between' takes a list of two numbers [low, high]"
SEQ: dict[str, Any] = {
    "type": "sequence",
    "first": {"event": "add_to_cart"},
    "then": {"event": "order_completed"},
    "within": "30m",
}
TRAIT: dict[str, Any] = {"type": "trait", "path": "plan", "op": "eq", "value": "pro"}
SUM: dict[str, Any] = {
    "type": "aggregate",
    "fn": "sum",
    "event": "order_completed",
    "property": "revenue",
    "op": "gt",
    "value": 100,
}

# (invalid JSON, the path the error names, the reason)
INVALID: dict[str, tuple[Any, str, str]] = {
    # the node itself
    "not_an_object": (["type", "and"], "rule", "must be an object with a 'type'"),
    "missing_type": ({"rules": []}, "type", "is required"),
    "unknown_type": ({"type": "nand"}, "type", f"'nand' is not a rule type; {RULE_TYPES}"),
    "type_not_a_string": (
        {"type": ["and"]},
        "type",
        "must be a string: and, or, not, trait, aggregate, recency, sequence, segment, sessions,"
        " trend, context or score",
    ),
    "unknown_field": (
        {**TRAIT, "colour": "red", "weight": 1},
        "colour",
        "unknown field; expected one of ['op', 'path', 'type', 'value']",
    ),
    "nested_missing_type": (
        {"type": "or", "rules": [TRAIT, {"type": "not", "rule": {"path": "plan"}}]},
        "rules[1].rule.type",
        "is required",
    ),
    "nested_unknown_field": (
        {"type": "and", "rules": [TRAIT, TRAIT, {**SEQ, "window_": {"last": "1h"}}]},
        "rules[2].window_",
        "unknown field; expected one of ['first', 'followed', 'then', 'type', 'window', 'within']",
    ),
    # and / or / not
    "empty_and": ({"type": "and", "rules": []}, "rules", "must be a non-empty list of rules"),
    "empty_or": ({"type": "or", "rules": []}, "rules", "must be a non-empty list of rules"),
    "or_rules_not_a_list": (
        {"type": "or", "rules": TRAIT},
        "rules",
        "must be a non-empty list of rules",
    ),
    "and_without_rules": ({"type": "and"}, "rules", "is required"),
    "not_without_rule": ({"type": "not"}, "rule", "is required"),
    "child_not_an_object": (
        {"type": "and", "rules": [TRAIT, "plan = pro"]},
        "rules[1]",
        "must be an object with a 'type'",
    ),
    "nested_too_deep": (
        _nested_nots(MAX_DEPTH + 1),
        ".".join(["rule"] * (MAX_DEPTH + 1)),
        f"nested deeper than {MAX_DEPTH} levels",
    ),
    # operators and values
    "bad_operator": (
        {**TRAIT, "op": "equals"},
        "op",
        f"'equals' is not an operator; use one of {OPERATORS}",
    ),
    "operator_not_a_string": (
        {**TRAIT, "op": ["eq"]},
        "op",
        f"['eq'] is not an operator; use one of {OPERATORS}",
    ),
    "missing_operator": ({"type": "trait", "path": "plan", "value": 1}, "op", "is required"),
    "missing_value": ({"type": "trait", "path": "plan", "op": "eq"}, "value", "is required"),
    "unary_with_value": (
        {"type": "trait", "path": "email", "op": "exists", "value": True},
        "value",
        "operator 'exists' takes no value",
    ),
    "between_one_number": ({**TRAIT, "op": "between", "value": [1]}, "value", BETWEEN),
    "between_three_numbers": ({**TRAIT, "op": "between", "value": [1, 2, 3]}, "value", BETWEEN),
    "between_a_string": ({**TRAIT, "op": "between", "value": "1-5"}, "value", BETWEEN),
    "between_string_bound": ({**TRAIT, "op": "between", "value": [1, "5"]}, "value", BETWEEN),
    "between_boolean_bound": ({**TRAIT, "op": "between", "value": [False, 1]}, "value", BETWEEN),
    "between_reversed": (
        {**TRAIT, "op": "between", "value": [5, 1]},
        "value",
        "'between' needs low <= high",
    ),
    "in_not_a_list": (
        {**TRAIT, "op": "in", "value": "pro"},
        "value",
        "'in' takes a list of plain values",
    ),
    "not_in_nested_list": (
        {**TRAIT, "op": "not_in", "value": [["pro"]]},
        "value",
        "'not_in' takes a list of plain values",
    ),
    "lt_boolean": (
        {**TRAIT, "op": "lt", "value": True},
        "value",
        "'lt' compares with a number or a string",
    ),
    "gte_null": (
        {**TRAIT, "op": "gte", "value": None},
        "value",
        "'gte' compares with a number or a string",
    ),
    "eq_list": (
        {**TRAIT, "value": ["pro"]},
        "value",
        "must be a plain value (string, number, boolean or null)",
    ),
    "contains_object": (
        {**TRAIT, "op": "contains", "value": {"a": 1}},
        "value",
        "must be a plain value (string, number, boolean or null)",
    ),
    # paths
    "trait_path_missing": ({"type": "trait", "op": "exists"}, "path", "is required"),
    "trait_path_empty": ({**TRAIT, "path": "  "}, "path", "must be a non-empty string"),
    "trait_path_double_dot": (
        {**TRAIT, "path": "address..city"},
        "path",
        "'address..city' is not a dotted path like 'address.city'",
    ),
    "trait_path_trailing_dot": (
        {**TRAIT, "path": "address."},
        "path",
        "'address.' is not a dotted path like 'address.city'",
    ),
    # aggregates
    "unknown_aggregate": (
        {**VIEWS_48H, "fn": "median"},
        "fn",
        "'median' is not an aggregate; use one of ['avg', 'count', 'distinct', 'max', 'min', 'sum']",
    ),
    "aggregate_fn_not_a_string": (
        {**VIEWS_48H, "fn": {"name": "count"}},
        "fn",
        "{'name': 'count'} is not an aggregate; use one of ['avg', 'count', 'distinct', 'max', 'min', 'sum']",
    ),
    "aggregate_compares_with_a_string": (
        {**VIEWS_48H, "value": "3"},
        "value",
        "an aggregate compares with a number",
    ),
    "aggregate_compares_with_a_boolean": (
        {**VIEWS_48H, "op": "eq", "value": True},
        "value",
        "an aggregate compares with a number",
    ),
    "aggregate_with_string_operator": (
        {**VIEWS_48H, "op": "contains", "value": "3"},
        "op",
        AGGREGATE_OPS,
    ),
    "aggregate_with_in": ({**VIEWS_48H, "op": "in", "value": [1, 2]}, "op", AGGREGATE_OPS),
    "aggregate_with_unary": (
        {k: v for k, v in VIEWS_48H.items() if k != "value"} | {"op": "exists"},
        "op",
        AGGREGATE_OPS,
    ),
    "count_with_property": (
        {**VIEWS_48H, "property": "sku"},
        "property",
        "count takes no property",
    ),
    "sum_without_property": (
        {k: v for k, v in SUM.items() if k != "property"},
        "property",
        "is required",
    ),
    "distinct_with_empty_property": (
        {**SUM, "fn": "distinct", "property": ""},
        "property",
        "must be a non-empty string",
    ),
    "aggregate_without_event": (
        {k: v for k, v in VIEWS_48H.items() if k != "event"},
        "event",
        "is required",
    ),
    "aggregate_event_not_a_string": (
        {**VIEWS_48H, "event": 7},
        "event",
        "must be a non-empty string",
    ),
    # property filters
    "where_not_a_list": (
        {**VIEWS_48H, "where": {"property": "a", "op": "exists"}},
        "where",
        "must be a list of property conditions",
    ),
    "where_item_not_an_object": (
        {**VIEWS_48H, "where": ["category = camping"]},
        "where[0]",
        "must be an object with property, op and value",
    ),
    "where_unknown_field": (
        {**VIEWS_48H, "where": [{"property": "a", "op": "exists"}, {"path": "b", "op": "exists"}]},
        "where[1].path",
        "unknown field; expected one of ['op', 'property', 'value']",
    ),
    "where_bad_operator": (
        {**VIEWS_48H, "where": [{"property": "a", "op": "like", "value": "x%"}]},
        "where[0].op",
        f"'like' is not an operator; use one of {OPERATORS}",
    ),
    "where_between_wrong_shape": (
        {**VIEWS_48H, "where": [{"property": "price", "op": "between", "value": [1]}]},
        "where[0].value",
        BETWEEN,
    ),
    # durations and windows
    "bad_duration": (
        {**VIEWS_48H, "window": {"last": "48 hours"}},
        "window.last",
        f"'48 hours' {NOT_A_DURATION}",
    ),
    "zero_duration": (
        {**VIEWS_48H, "window": {"last": "0h"}},
        "window.last",
        "a duration must be longer than zero",
    ),
    "duration_too_long": (
        {**VIEWS_48H, "window": {"last": "1000000d"}},
        "window.last",
        "a duration must be at most 36500d (100 years)",
    ),
    "duration_a_number": (
        {**VIEWS_48H, "window": {"last": 48}},
        "window.last",
        "must be a duration string such as '48h'",
    ),
    "window_not_an_object": (
        {**VIEWS_48H, "window": "48h"},
        "window",
        'must be an object such as {"last": "48h"}',
    ),
    "window_empty": ({**VIEWS_48H, "window": {}}, "window", WINDOW_SHAPES),
    "window_all_false": ({**VIEWS_48H, "window": {"all": False}}, "window", WINDOW_SHAPES),
    "window_two_shapes": (
        {**VIEWS_48H, "window": {"last": "48h", "all": True}},
        "window",
        WINDOW_SHAPES,
    ),
    "window_from_ago_alone": (
        {**VIEWS_48H, "window": {"from_ago": "14d"}},
        "window",
        WINDOW_SHAPES,
    ),
    "window_start_alone": (
        {**VIEWS_48H, "window": {"start": "2026-01-01T00:00:00Z"}},
        "window",
        WINDOW_SHAPES,
    ),
    "window_to_ago_older_than_from_ago": (
        {**VIEWS_48H, "window": {"from_ago": "7d", "to_ago": "14d"}},
        "window.to_ago",
        "must be more recent (smaller) than from_ago",
    ),
    "window_to_ago_equal_to_from_ago": (
        {**VIEWS_48H, "window": {"from_ago": "7d", "to_ago": "168h"}},
        "window.to_ago",
        "must be more recent (smaller) than from_ago",
    ),
    "window_bad_from_ago": (
        {**VIEWS_48H, "window": {"from_ago": "a week", "to_ago": "1d"}},
        "window.from_ago",
        f"'a week' {NOT_A_DURATION}",
    ),
    "window_start_without_time_zone": (
        {**VIEWS_48H, "window": {"start": "2026-01-01T00:00:00", "end": "2026-02-01T00:00:00Z"}},
        "window.start",
        "must carry a time zone offset, e.g. 2026-01-01T00:00:00Z",
    ),
    "window_end_without_time_zone": (
        {**VIEWS_48H, "window": {"start": "2026-01-01T00:00:00Z", "end": "2026-02-01"}},
        "window.end",
        "must carry a time zone offset, e.g. 2026-01-01T00:00:00Z",
    ),
    "window_start_not_a_date": (
        {**VIEWS_48H, "window": {"start": "yesterday", "end": "2026-02-01T00:00:00Z"}},
        "window.start",
        "'yesterday' is not an ISO-8601 date-time",
    ),
    "window_start_a_number": (
        {**VIEWS_48H, "window": {"start": 1767225600, "end": "2026-02-01T00:00:00Z"}},
        "window.start",
        "must be an ISO-8601 date-time string",
    ),
    "window_end_before_start": (
        {**VIEWS_48H, "window": {"start": "2026-02-01T00:00:00Z", "end": "2026-01-01T00:00:00Z"}},
        "window.end",
        "must be after start",
    ),
    "window_end_equal_to_start_in_another_zone": (
        {
            **VIEWS_48H,
            "window": {"start": "2026-01-01T01:00:00+01:00", "end": "2026-01-01T00:00:00Z"},
        },
        "window.end",
        "must be after start",
    ),
    # recency
    "recency_with_eq": (
        {"type": "recency", "event": "order_completed", "op": "eq", "age": "7d"},
        "op",
        "recency compares with gt, gte, lt or lte",
    ),
    "recency_operator_not_a_string": (
        {"type": "recency", "event": "order_completed", "op": ["gt"], "age": "7d"},
        "op",
        "recency compares with gt, gte, lt or lte",
    ),
    "recency_without_age": (
        {"type": "recency", "event": "order_completed", "op": "gt"},
        "age",
        "is required",
    ),
    "recency_with_window": (
        {"type": "recency", "event": "x", "op": "gt", "age": "7d", "window": {"last": "1d"}},
        "window",
        "unknown field; expected one of ['age', 'event', 'op', 'type', 'where']",
    ),
    # sequences
    "sequence_without_within": (
        {k: v for k, v in SEQ.items() if k != "within"},
        "within",
        "is required",
    ),
    "sequence_bad_within": (
        {**SEQ, "within": "half an hour"},
        "within",
        f"'half an hour' {NOT_A_DURATION}",
    ),
    "sequence_followed_not_a_boolean": (
        {**SEQ, "followed": "no"},
        "followed",
        "must be true or false",
    ),
    "sequence_first_not_an_object": (
        {**SEQ, "first": "add_to_cart"},
        "first",
        "must be an object with an event name",
    ),
    "sequence_first_without_event": ({**SEQ, "first": {"where": []}}, "first.event", "is required"),
    "sequence_then_unknown_field": (
        {**SEQ, "then": {"event": "order_completed", "within": "1h"}},
        "then.within",
        "unknown field; expected one of ['event', 'where']",
    ),
    "sequence_then_filter": (
        {**SEQ, "then": {"event": "x", "where": [{"property": "a..b", "op": "exists"}]}},
        "then.where[0].property",
        "'a..b' is not a dotted path like 'address.city'",
    ),
    "sequence_window": (
        {**SEQ, "window": {"from_ago": "1d", "to_ago": "2d"}},
        "window.to_ago",
        "must be more recent (smaller) than from_ago",
    ),
    # segments
    "segment_without_slug": ({"type": "segment"}, "slug", "is required"),
    "segment_empty_slug": ({"type": "segment", "slug": ""}, "slug", "must be a non-empty string"),
    "segment_member_not_a_boolean": (
        {"type": "segment", "slug": "vip", "member": "yes"},
        "member",
        "must be true or false",
    ),
    # the path through the tree
    "deep_path": (
        {
            "type": "or",
            "rules": [
                TRAIT,
                {
                    "type": "not",
                    "rule": {
                        "type": "and",
                        "rules": [TRAIT, {**SEQ, "window": {"last": "forever"}}],
                    },
                },
            ],
        },
        "rules[1].rule.rules[1].window.last",
        f"'forever' {NOT_A_DURATION}",
    ),
}


@pytest.mark.parametrize(("data", "path", "reason"), INVALID.values(), ids=INVALID.keys())
def test_invalid_rules_are_rejected_with_the_field_and_the_reason(
    data: Any, path: str, reason: str
) -> None:
    with pytest.raises(RuleError) as excinfo:
        rule_from_json(data)

    assert (excinfo.value.path, excinfo.value.reason) == (path, reason)


def test_the_error_message_starts_with_the_path() -> None:
    data = {"type": "and", "rules": [TRAIT, {**VIEWS_48H, "window": {"last": "2 days"}}]}

    with pytest.raises(RuleError) as excinfo:
        rule_from_json(data)

    assert str(excinfo.value) == f"rules[1].window.last: '2 days' {NOT_A_DURATION}"
    assert isinstance(excinfo.value, ValueError)
