from __future__ import annotations

from datetime import UTC, datetime

from segments.rules import EventRecord, ProfileSnapshot, evaluate, rule_from_json

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def _distinct_count_is(values: list[object], expected: int) -> bool:
    rule = rule_from_json(
        {
            "type": "aggregate",
            "fn": "distinct",
            "event": "e",
            "property": "p",
            "op": "eq",
            "value": expected,
        }
    )
    events = [EventRecord(name="e", timestamp=NOW, properties={"p": value}) for value in values]
    return evaluate(rule, ProfileSnapshot(traits={}, events=events), NOW).matched


def test_distinct_treats_objects_with_keys_in_another_order_as_one_value() -> None:
    assert _distinct_count_is([{"a": 1, "b": 2}, {"b": 2, "a": 1}], 1)


def test_distinct_compares_numbers_inside_lists_by_value_but_keeps_bools_apart() -> None:
    assert _distinct_count_is([[1], [1.0]], 1)
    assert _distinct_count_is([[1], [True]], 2)
