"""Rules as stored: a JSON tree, validated into ``tree`` nodes and back.

Every error names where it is (``rules[1].window.last``) and what is wrong, so
the admin form and the API can point editors at the exact field.

The JSON shapes::

    {"type": "and" | "or", "rules": [RULE, ...]}
    {"type": "not", "rule": RULE}
    {"type": "trait", "path": "address.city", "op": "eq", "value": "Paris"}
    {"type": "aggregate", "fn": "count" | "sum" | "avg" | "min" | "max" | "distinct",
     "event": "order_completed", "property": "revenue", "where": [FILTER, ...],
     "window": WINDOW, "op": "gte", "value": 2}
    {"type": "recency", "event": "product_viewed", "where": [...], "op": "gt", "age": "7d"}
    {"type": "sequence", "first": MATCHER, "then": MATCHER, "within": "30m",
     "followed": false, "window": WINDOW}
    {"type": "segment", "slug": "engaged-shoppers", "member": true}
    {"type": "sessions", "fn": "count" | "sum" | "avg" | "min" | "max",
     "metric": "duration" | "pages" | "events", "window": WINDOW, "op": "gte", "value": 3}
    {"type": "trend", "left": MEASURE, "op": "lt", "factor": 0.7, "right": MEASURE}
    {"type": "context", "field": "device" | "country" | "referrer" | "utm_source"
     | "utm_medium" | "utm_campaign", "op": "eq", "value": "mobile"}
    {"type": "score", "slug": "engagement", "op": "gte", "value": 50}

    FILTER  = {"property": "category", "op": "eq", "value": "outdoor"}
    MATCHER = {"event": "add_to_cart", "where": [FILTER, ...]}
    MEASURE = {"source": "events", "fn": ..., "event": ..., "property": ..., "where": [...],
               "window": WINDOW}
            | {"source": "sessions", "fn": ..., "metric": ..., "window": WINDOW}
    WINDOW  = {"last": "48h"} | {"from_ago": "14d", "to_ago": "7d"}
            | {"start": ISO-8601, "end": ISO-8601} | {"all": true}
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any, cast

from segments.rules.durations import DurationError, format_duration, parse_duration
from segments.rules.tree import (
    AGGREGATE_FNS,
    ALL_OPERATORS,
    ALL_TIME,
    CONTEXT_FIELDS,
    CONTEXT_OPERATORS,
    NUMERIC_OPERATORS,
    SESSION_FIELDS,
    SESSION_FNS,
    TREND_OPERATORS,
    UNARY_OPERATORS,
    Aggregate,
    AggregateFn,
    And,
    ContextCondition,
    ContextField,
    Criterion,
    EventMatcher,
    EventMeasure,
    InSegment,
    Measure,
    Not,
    Operator,
    Or,
    PropertyFilter,
    Recency,
    Rule,
    ScoreCondition,
    ScoreDefinition,
    Sequence,
    SessionAggregate,
    SessionField,
    SessionFn,
    SessionMeasure,
    TraitCondition,
    Trend,
    TrendOperator,
    Value,
    Window,
)

MAX_DEPTH = 12


class RuleError(ValueError):
    """An invalid rule: ``path`` says where, the message says why."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path or 'rule'}: {message}")
        self.path = path or "rule"
        self.reason = message


def _join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def _require(data: Mapping[str, Any], key: str, path: str) -> Any:
    if key not in data:
        raise RuleError(_join(path, key), "is required")
    return data[key]


def _check_keys(data: Mapping[str, Any], allowed: set[str], path: str) -> None:
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise RuleError(
            _join(path, unknown[0]), f"unknown field; expected one of {sorted(allowed)}"
        )


def _string(data: Mapping[str, Any], key: str, path: str) -> str:
    value = _require(data, key, path)
    if not isinstance(value, str) or not value.strip():
        raise RuleError(_join(path, key), "must be a non-empty string")
    return value.strip()


def _dotted_path(data: Mapping[str, Any], key: str, path: str) -> tuple[str, ...]:
    text = _string(data, key, path)
    parts = tuple(text.split("."))
    if any(not part for part in parts):
        raise RuleError(_join(path, key), f"{text!r} is not a dotted path like 'address.city'")
    return parts


def _duration(data: Mapping[str, Any], key: str, path: str) -> timedelta:
    value = _require(data, key, path)
    if not isinstance(value, str):
        raise RuleError(_join(path, key), "must be a duration string such as '48h'")
    try:
        return parse_duration(value)
    except DurationError as exc:
        raise RuleError(_join(path, key), str(exc)) from None


def _datetime(data: Mapping[str, Any], key: str, path: str) -> datetime:
    value = _require(data, key, path)
    if not isinstance(value, str):
        raise RuleError(_join(path, key), "must be an ISO-8601 date-time string")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise RuleError(_join(path, key), f"{value!r} is not an ISO-8601 date-time") from None
    if parsed.tzinfo is None:
        raise RuleError(
            _join(path, key), "must carry a time zone offset, e.g. 2026-01-01T00:00:00Z"
        )
    return parsed


def _is_scalar(value: object) -> bool:
    return value is None or isinstance(value, str | int | float | bool)


def _operator_and_value(
    data: Mapping[str, Any], path: str, *, value_key: str = "value"
) -> tuple[Operator, Value]:
    op = _require(data, "op", path)
    if not isinstance(op, str) or op not in ALL_OPERATORS:
        raise RuleError(
            _join(path, "op"), f"{op!r} is not an operator; use one of {sorted(ALL_OPERATORS)}"
        )
    if op in UNARY_OPERATORS:
        if data.get(value_key) is not None:
            raise RuleError(_join(path, value_key), f"operator {op!r} takes no value")
        return cast(Operator, op), None
    value = _require(data, value_key, path)
    vpath = _join(path, value_key)
    if op == "between":
        if (
            not isinstance(value, list)
            or len(value) != 2
            or not all(_is_number(item) for item in value)
        ):
            raise RuleError(vpath, "'between' takes a list of two numbers [low, high]")
        if value[0] > value[1]:
            raise RuleError(vpath, "'between' needs low <= high")
    elif op in {"in", "not_in"}:
        if not isinstance(value, list) or not all(_is_scalar(item) for item in value):
            raise RuleError(vpath, f"{op!r} takes a list of plain values")
    elif op in {"lt", "lte", "gt", "gte"}:
        if not (_is_number(value) or isinstance(value, str)):
            raise RuleError(vpath, f"{op!r} compares with a number or a string")
    elif not _is_scalar(value):
        raise RuleError(vpath, "must be a plain value (string, number, boolean or null)")
    return cast(Operator, op), cast(Value, value)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _filters(data: Mapping[str, Any], path: str) -> tuple[PropertyFilter, ...]:
    raw = data.get("where", [])
    wpath = _join(path, "where")
    if not isinstance(raw, list):
        raise RuleError(wpath, "must be a list of property conditions")
    filters = []
    for index, item in enumerate(raw):
        ipath = _join(wpath, index)
        if not isinstance(item, dict):
            raise RuleError(ipath, "must be an object with property, op and value")
        _check_keys(item, {"property", "op", "value"}, ipath)
        prop = _dotted_path(item, "property", ipath)
        op, value = _operator_and_value(item, ipath)
        filters.append(PropertyFilter(path=prop, op=op, value=value))
    return tuple(filters)


def _matcher(data: Any, path: str) -> EventMatcher:
    if not isinstance(data, dict):
        raise RuleError(path, "must be an object with an event name")
    _check_keys(data, {"event", "where"}, path)
    return EventMatcher(event=_string(data, "event", path), where=_filters(data, path))


def _window(data: Mapping[str, Any], path: str) -> Window:
    if "window" not in data:
        return ALL_TIME
    raw = data["window"]
    wpath = _join(path, "window")
    if not isinstance(raw, dict):
        raise RuleError(wpath, 'must be an object such as {"last": "48h"}')
    if raw.get("all") is True and len(raw) == 1:
        return ALL_TIME
    if set(raw) == {"last"}:
        return Window(oldest_age=_duration(raw, "last", wpath))
    if set(raw) == {"from_ago", "to_ago"}:
        oldest = _duration(raw, "from_ago", wpath)
        newest = _duration(raw, "to_ago", wpath)
        if newest >= oldest:
            raise RuleError(_join(wpath, "to_ago"), "must be more recent (smaller) than from_ago")
        return Window(oldest_age=oldest, newest_age=newest)
    if set(raw) == {"start", "end"}:
        start = _datetime(raw, "start", wpath)
        end = _datetime(raw, "end", wpath)
        if end <= start:
            raise RuleError(_join(wpath, "end"), "must be after start")
        return Window(start=start, end=end)
    raise RuleError(
        wpath,
        'use {"last": D}, {"from_ago": D, "to_ago": D}, {"start": T, "end": T} or {"all": true}',
    )


def rule_from_json(data: Any, path: str = "", depth: int = 0) -> Rule:
    """Validate ``data`` and build the rule tree; raises :class:`RuleError`."""
    if depth > MAX_DEPTH:
        raise RuleError(path, f"nested deeper than {MAX_DEPTH} levels")
    if not isinstance(data, dict):
        raise RuleError(path, "must be an object with a 'type'")
    kind = _require(data, "type", path)
    if not isinstance(kind, str):
        raise RuleError(
            _join(path, "type"),
            f"must be a string: {_TYPES_TEXT}",
        )
    if kind in {"and", "or"}:
        _check_keys(data, {"type", "rules"}, path)
        children = _require(data, "rules", path)
        if not isinstance(children, list) or not children:
            raise RuleError(_join(path, "rules"), "must be a non-empty list of rules")
        built = tuple(
            rule_from_json(child, _join(_join(path, "rules"), i), depth + 1)
            for i, child in enumerate(children)
        )
        return And(built) if kind == "and" else Or(built)
    if kind == "not":
        _check_keys(data, {"type", "rule"}, path)
        return Not(rule_from_json(_require(data, "rule", path), _join(path, "rule"), depth + 1))
    if kind == "trait":
        _check_keys(data, {"type", "path", "op", "value"}, path)
        op, value = _operator_and_value(data, path)
        return TraitCondition(path=_dotted_path(data, "path", path), op=op, value=value)
    if kind == "aggregate":
        return _aggregate(data, path)
    if kind == "recency":
        _check_keys(data, {"type", "event", "where", "op", "age"}, path)
        op = _require(data, "op", path)
        if not isinstance(op, str) or op not in {"gt", "gte", "lt", "lte"}:
            raise RuleError(_join(path, "op"), "recency compares with gt, gte, lt or lte")
        return Recency(
            matcher=EventMatcher(event=_string(data, "event", path), where=_filters(data, path)),
            op=op,
            age=_duration(data, "age", path),
        )
    if kind == "sequence":
        _check_keys(data, {"type", "first", "then", "within", "followed", "window"}, path)
        followed = data.get("followed", True)
        if not isinstance(followed, bool):
            raise RuleError(_join(path, "followed"), "must be true or false")
        return Sequence(
            first=_matcher(_require(data, "first", path), _join(path, "first")),
            then=_matcher(_require(data, "then", path), _join(path, "then")),
            within=_duration(data, "within", path),
            followed=followed,
            window=_window(data, path),
        )
    if kind == "segment":
        _check_keys(data, {"type", "slug", "member"}, path)
        member = data.get("member", True)
        if not isinstance(member, bool):
            raise RuleError(_join(path, "member"), "must be true or false")
        return InSegment(slug=_string(data, "slug", path), member=member)
    if kind == "sessions":
        _check_keys(data, {"type", "fn", "metric", "window", "op", "value"}, path)
        measure = _session_measure(data, path)
        op, value = _number_comparison(data, path)
        return SessionAggregate(measure=measure, op=op, value=value)
    if kind == "trend":
        return _trend(data, path)
    if kind == "context":
        return _context(data, path)
    if kind == "score":
        _check_keys(data, {"type", "slug", "op", "value"}, path)
        slug = _string(data, "slug", path)
        op, value = _number_comparison(data, path, what="a score")
        return ScoreCondition(slug=slug, op=op, value=value)
    raise RuleError(
        _join(path, "type"),
        f"{kind!r} is not a rule type; use {_TYPES_TEXT}",
    )


_TYPES_TEXT = (
    "and, or, not, trait, aggregate, recency, sequence, segment, sessions, trend, context or score"
)


def _number_comparison(
    data: Mapping[str, Any], path: str, *, what: str = "an aggregate"
) -> tuple[Operator, Value]:
    op, value = _operator_and_value(data, path)
    if op not in NUMERIC_OPERATORS:
        raise RuleError(
            _join(path, "op"), f"{what} compares with eq, ne, lt, lte, gt, gte or between"
        )
    if op != "between" and not _is_number(value):
        raise RuleError(_join(path, "value"), f"{what} compares with a number")
    return op, value


def _session_measure(data: Mapping[str, Any], path: str) -> SessionMeasure:
    fn = _require(data, "fn", path)
    if not isinstance(fn, str) or fn not in SESSION_FNS:
        raise RuleError(
            _join(path, "fn"),
            f"{fn!r} is not a session aggregate; use one of {sorted(SESSION_FNS)}",
        )
    metric: str | None = None
    if fn == "count":
        if data.get("metric") is not None:
            raise RuleError(_join(path, "metric"), "count takes no metric")
    else:
        metric = _require(data, "metric", path)
        if not isinstance(metric, str) or metric not in SESSION_FIELDS:
            raise RuleError(
                _join(path, "metric"),
                f"{metric!r} is not a session metric; use one of {sorted(SESSION_FIELDS)}",
            )
    return SessionMeasure(
        fn=cast(SessionFn, fn),
        metric=cast(SessionField | None, metric),
        window=_window(data, path),
    )


def _measure(data: Any, path: str) -> Measure:
    if not isinstance(data, dict):
        raise RuleError(path, 'must be an object such as {"source": "events", "fn": "count", ...}')
    source = _require(data, "source", path)
    if source == "sessions":
        _check_keys(data, {"source", "fn", "metric", "window"}, path)
        return _session_measure(data, path)
    if source != "events":
        raise RuleError(_join(path, "source"), "must be 'events' or 'sessions'")
    _check_keys(data, {"source", "fn", "event", "property", "where", "window"}, path)
    fn, prop = _aggregate_fn_and_property(data, path)
    return EventMeasure(
        fn=fn,
        matcher=EventMatcher(event=_string(data, "event", path), where=_filters(data, path)),
        property=prop,
        window=_window(data, path),
    )


def _trend(data: Mapping[str, Any], path: str) -> Trend:
    _check_keys(data, {"type", "left", "op", "factor", "right"}, path)
    left = _measure(_require(data, "left", path), _join(path, "left"))
    op = _require(data, "op", path)
    if not isinstance(op, str) or op not in TREND_OPERATORS:
        raise RuleError(_join(path, "op"), "a trend compares with eq, ne, lt, lte, gt or gte")
    factor = data.get("factor", 1)
    if not _is_number(factor) or not math.isfinite(factor) or factor <= 0:
        raise RuleError(_join(path, "factor"), "must be a number greater than zero")
    right = _measure(_require(data, "right", path), _join(path, "right"))
    return Trend(left=left, op=cast(TrendOperator, op), factor=factor, right=right)


def _context(data: Mapping[str, Any], path: str) -> ContextCondition:
    _check_keys(data, {"type", "field", "op", "value"}, path)
    name = _require(data, "field", path)
    if not isinstance(name, str) or name not in CONTEXT_FIELDS:
        raise RuleError(
            _join(path, "field"),
            f"{name!r} is not a context field; use one of {sorted(CONTEXT_FIELDS)}",
        )
    op, value = _operator_and_value(data, path)
    if op not in CONTEXT_OPERATORS:
        raise RuleError(
            _join(path, "op"),
            f"{name} is text: compare it with one of {sorted(CONTEXT_OPERATORS)}",
        )
    values = value if isinstance(value, list) else [] if value is None else [value]
    if op not in UNARY_OPERATORS and not all(isinstance(item, str) for item in values):
        raise RuleError(_join(path, "value"), f"{name} compares with strings")
    return ContextCondition(field=cast(ContextField, name), op=op, value=value)


def _aggregate_fn_and_property(
    data: Mapping[str, Any], path: str
) -> tuple[AggregateFn, tuple[str, ...] | None]:
    fn = _require(data, "fn", path)
    if not isinstance(fn, str) or fn not in AGGREGATE_FNS:
        raise RuleError(
            _join(path, "fn"), f"{fn!r} is not an aggregate; use one of {sorted(AGGREGATE_FNS)}"
        )
    prop: tuple[str, ...] | None = None
    if fn == "count":
        if data.get("property") is not None:
            raise RuleError(_join(path, "property"), "count takes no property")
    else:
        prop = _dotted_path(data, "property", path)
    return cast(AggregateFn, fn), prop


def _aggregate(data: Mapping[str, Any], path: str) -> Aggregate:
    _check_keys(data, {"type", "fn", "event", "property", "where", "window", "op", "value"}, path)
    fn, prop = _aggregate_fn_and_property(data, path)
    op, value = _number_comparison(data, path)
    return Aggregate(
        fn=fn,
        matcher=EventMatcher(event=_string(data, "event", path), where=_filters(data, path)),
        property=prop,
        window=_window(data, path),
        op=op,
        value=value,
    )


# --- back to JSON ---------------------------------------------------------------


def _window_json(window: Window) -> dict[str, Any] | None:
    if window == ALL_TIME:
        return None
    if window.start is not None and window.end is not None:
        return {"start": window.start.isoformat(), "end": window.end.isoformat()}
    assert window.oldest_age is not None
    if window.newest_age:
        return {
            "from_ago": format_duration(window.oldest_age),
            "to_ago": format_duration(window.newest_age),
        }
    return {"last": format_duration(window.oldest_age)}


def _filters_json(filters: tuple[PropertyFilter, ...]) -> list[dict[str, Any]]:
    out = []
    for item in filters:
        entry: dict[str, Any] = {"property": ".".join(item.path), "op": item.op}
        if item.op not in UNARY_OPERATORS:
            entry["value"] = item.value
        out.append(entry)
    return out


def _matcher_json(matcher: EventMatcher) -> dict[str, Any]:
    data: dict[str, Any] = {"event": matcher.event}
    if matcher.where:
        data["where"] = _filters_json(matcher.where)
    return data


def rule_to_json(rule: Rule) -> dict[str, Any]:
    """The canonical JSON of ``rule``; ``rule_from_json`` reads it back equal."""
    if isinstance(rule, And | Or):
        return {
            "type": "and" if isinstance(rule, And) else "or",
            "rules": [rule_to_json(r) for r in rule.rules],
        }
    if isinstance(rule, Not):
        return {"type": "not", "rule": rule_to_json(rule.rule)}
    if isinstance(rule, TraitCondition):
        data: dict[str, Any] = {"type": "trait", "path": ".".join(rule.path), "op": rule.op}
        if rule.op not in UNARY_OPERATORS:
            data["value"] = rule.value
        return data
    if isinstance(rule, Aggregate):
        data = {"type": "aggregate", "fn": rule.fn, **_matcher_json(rule.matcher)}
        if rule.property is not None:
            data["property"] = ".".join(rule.property)
        window = _window_json(rule.window)
        if window is not None:
            data["window"] = window
        data.update({"op": rule.op, "value": rule.value})
        return data
    if isinstance(rule, Recency):
        return {
            "type": "recency",
            **_matcher_json(rule.matcher),
            "op": rule.op,
            "age": format_duration(rule.age),
        }
    if isinstance(rule, Sequence):
        data = {
            "type": "sequence",
            "first": _matcher_json(rule.first),
            "then": _matcher_json(rule.then),
            "within": format_duration(rule.within),
            "followed": rule.followed,
        }
        window = _window_json(rule.window)
        if window is not None:
            data["window"] = window
        return data
    if isinstance(rule, SessionAggregate):
        return {
            "type": "sessions",
            **_session_measure_json(rule.measure),
            "op": rule.op,
            "value": rule.value,
        }
    if isinstance(rule, Trend):
        return {
            "type": "trend",
            "left": measure_to_json(rule.left),
            "op": rule.op,
            "factor": rule.factor,
            "right": measure_to_json(rule.right),
        }
    if isinstance(rule, ContextCondition):
        data = {"type": "context", "field": rule.field, "op": rule.op}
        if rule.op not in UNARY_OPERATORS:
            data["value"] = rule.value
        return data
    if isinstance(rule, ScoreCondition):
        return {"type": "score", "slug": rule.slug, "op": rule.op, "value": rule.value}
    return {"type": "segment", "slug": rule.slug, "member": rule.member}


def _session_measure_json(measure: SessionMeasure) -> dict[str, Any]:
    data: dict[str, Any] = {"fn": measure.fn}
    if measure.metric is not None:
        data["metric"] = measure.metric
    window = _window_json(measure.window)
    if window is not None:
        data["window"] = window
    return data


def measure_to_json(measure: Measure) -> dict[str, Any]:
    if isinstance(measure, SessionMeasure):
        return {"source": "sessions", **_session_measure_json(measure)}
    data: dict[str, Any] = {"source": "events", "fn": measure.fn, **_matcher_json(measure.matcher)}
    if measure.property is not None:
        data["property"] = ".".join(measure.property)
    window = _window_json(measure.window)
    if window is not None:
        data["window"] = window
    return data


# --- weighted scores ------------------------------------------------------------------

MAX_CRITERIA = 50


def criteria_from_json(data: Any, path: str = "criteria") -> ScoreDefinition:
    """Validate a score's criteria, ``[{"rule": RULE, "points": 10}, ...]``."""
    if not isinstance(data, list) or not data:
        raise RuleError(path, "must be a non-empty list of {rule, points}")
    if len(data) > MAX_CRITERIA:
        raise RuleError(path, f"a score has at most {MAX_CRITERIA} criteria")
    criteria = []
    for index, item in enumerate(data):
        ipath = _join(path, index)
        if not isinstance(item, dict):
            raise RuleError(ipath, "must be an object with rule and points")
        _check_keys(item, {"rule", "points"}, ipath)
        points = _require(item, "points", ipath)
        if not _is_number(points) or not math.isfinite(points):
            raise RuleError(_join(ipath, "points"), "must be a number (negative to subtract)")
        rule = rule_from_json(_require(item, "rule", ipath), _join(ipath, "rule"))
        criteria.append(Criterion(rule=rule, points=points))
    return ScoreDefinition(criteria=tuple(criteria))


def criteria_to_json(definition: ScoreDefinition) -> list[dict[str, Any]]:
    return [{"rule": rule_to_json(c.rule), "points": c.points} for c in definition.criteria]
