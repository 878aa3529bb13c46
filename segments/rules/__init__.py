"""The segment rule engine: pure Python, no ORM (see tree, schema, evaluate)."""

from segments.rules.evaluate import (
    ConditionOutcome,
    Evaluation,
    EventRecord,
    ProfileSnapshot,
    evaluate,
)
from segments.rules.schema import RuleError, rule_from_json, rule_to_json
from segments.rules.tree import Rule, referenced_events, referenced_segments, uses_traits

__all__ = [
    "ConditionOutcome",
    "Evaluation",
    "EventRecord",
    "ProfileSnapshot",
    "Rule",
    "RuleError",
    "evaluate",
    "referenced_events",
    "referenced_segments",
    "rule_from_json",
    "rule_to_json",
    "uses_traits",
]
