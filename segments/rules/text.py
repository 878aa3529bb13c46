"""The readable text form of rules, with a real grammar (Lark, LALR) and a printer.

Editors write, for example::

    count(product_viewed, last 48h) >= 3 and sum(order_completed.revenue, last 30d) > 500
    count(product_viewed where category = "camping", last 7d) >= 2
    sequence(add_to_cart then no order_completed within 30m, last 24h)
    last(order_completed) > 90d ago and trait.plan in ["pro", "team"]
    in_segment(engaged-shoppers) and not not_in_segment(cart-abandoners)
    sessions(last 7d) >= 3 and sum(session.duration, last 48h) >= 2m
    sessions(last 7d) < 0.7 * sessions(between 14d and 7d ago)
    device = "mobile" and country in ("FR", "DE") and score(engagement) >= 50

The name ``session`` (unquoted) in an aggregate means the profile's sessions
(``avg(session.pages, last 30d)``); an event called "session" is written quoted.

``parse_text`` gives the same tree as the JSON form and ``rule_to_text`` prints
it back; an invalid text raises :class:`RuleSyntaxError` with the line, column
and reason.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from lark import Lark, Token, Transformer, v_args
from lark.exceptions import (
    UnexpectedCharacters,
    UnexpectedEOF,
    UnexpectedInput,
    UnexpectedToken,
    VisitError,
)

from segments.rules.durations import (
    MAX_DURATION,
    DurationError,
    format_duration,
    parse_duration,
)
from segments.rules.schema import RuleError, criteria_from_json, rule_from_json, rule_to_json
from segments.rules.tree import (
    SESSION_FIELDS,
    UNARY_OPERATORS,
    Aggregate,
    And,
    ContextCondition,
    EventMatcher,
    EventMeasure,
    InSegment,
    Measure,
    Not,
    Or,
    PropertyFilter,
    Recency,
    Rule,
    ScoreCondition,
    Sequence,
    SessionAggregate,
    SessionMeasure,
    TraitCondition,
    Trend,
    Value,
    Window,
)

GRAMMAR = r"""
start: expr

?expr: or_expr
?or_expr: and_expr (_OR and_expr)*
?and_expr: not_expr (_AND not_expr)*
?not_expr: _NOT not_expr -> negation
         | atom
?atom: "(" expr ")"
     | aggregate
     | trend
     | trait
     | recency
     | sequence
     | segment
     | context
     | score

aggregate: measure number_comparison
trend: measure CMP factor? measure
factor: NUMBER "*"
measure: AGG_FN "(" event_ref property? where? window_part? ")"  -> event_measure
       | _SESSIONS "(" window? ")"                               -> sessions_measure
context: CONTEXT_FIELD comparison
score: _SCORE "(" SLUG ")" number_comparison
property: "." path
where: _WHERE filter (_AND filter)*
window_part: "," window
filter: path comparison

trait: _TRAIT "." path comparison
recency: _LAST "(" event_ref where? ")" RECENCY_OP DURATION _AGO
sequence: _SEQUENCE "(" matcher _THEN NO? matcher _WITHIN DURATION window_part? ")"
matcher: event_ref where?
segment: IN_SEGMENT "(" SLUG ")"

window: _LAST DURATION                            -> window_last
      | _BETWEEN DURATION _AND DURATION _AGO      -> window_ago
      | _FROM STRING _TO STRING                   -> window_dates
      | _ALL _TIME                                -> window_all

number_comparison: CMP amount                     -> cmp_amount
                 | _BETWEEN amount _AND amount    -> cmp_amount_between
?amount: NUMBER | DURATION

comparison: CMP value                             -> cmp_value
          | _BETWEEN NUMBER _AND NUMBER           -> cmp_between
          | _IN value_list                              -> cmp_in
          | _NOT _IN value_list                         -> cmp_not_in
          | CONTAINS value                        -> cmp_word
          | STARTS_WITH value                     -> cmp_word
          | ENDS_WITH value                       -> cmp_word
          | _EXISTS                               -> cmp_exists
          | _NOT _EXISTS                          -> cmp_not_exists
          | _IS _EMPTY                            -> cmp_is_empty

path: name ("." name)*
?name: NAME -> name_plain
     | STRING -> name_quoted
event_ref: NAME -> name_plain
         | STRING -> name_quoted

?value: STRING -> string
      | NUMBER -> number
      | _TRUE -> true
      | _FALSE -> false
      | _NULL -> null
value_list: "[" "]"                              -> empty_list
          | "[" value ("," value)* "]"
          | "(" value ("," value)* ")"

AGG_FN.2: "count" | "sum" | "avg" | "min" | "max" | "distinct"
CONTEXT_FIELD.2: "device" | "country" | "referrer" | "utm_source" | "utm_medium" | "utm_campaign"
_SESSIONS.2: "sessions"
_SCORE.2: "score"
IN_SEGMENT.2: "in_segment" | "not_in_segment"
CMP: ">=" | "<=" | "!=" | "≠" | "≤" | "≥" | "=" | "<" | ">"
RECENCY_OP: ">=" | "<=" | "≤" | "≥" | "<" | ">"
CONTAINS.2: "contains"
STARTS_WITH.2: "starts_with"
ENDS_WITH.2: "ends_with"
NO.2: "no"
_OR.2: "or"
_AND.2: "and"
_NOT.2: "not"
_WHERE.2: "where"
_TRAIT.2: "trait"
_LAST.2: "last"
_AGO.2: "ago"
_SEQUENCE.2: "sequence"
_THEN.2: "then"
_WITHIN.2: "within"
_BETWEEN.2: "between"
_FROM.2: "from"
_TO.2: "to"
_ALL.2: "all"
_TIME.2: "time"
_IN.2: "in"
_EXISTS.2: "exists"
_IS.2: "is"
_EMPTY.2: "empty"
_TRUE.2: "true"
_FALSE.2: "false"
_NULL.2: "null"
DURATION.3: /[0-9]+[smhdw](?![A-Za-z0-9_])/
NUMBER: /-?[0-9]+(\.[0-9]+)?([eE][+-]?[0-9]+)?/
SLUG: /[a-z0-9][a-z0-9_-]*/
NAME: /[A-Za-z_][A-Za-z0-9_$-]*/
STRING: /"([^"\\]|\\.)*"/

%import common.WS
%ignore WS
"""

_OPERATORS = {
    "=": "eq",
    "!=": "ne",
    "≠": "ne",
    "<": "lt",
    "<=": "lte",
    "≤": "lte",
    ">": "gt",
    ">=": "gte",
    "≥": "gte",
}
_SYMBOLS = {"eq": "=", "ne": "!=", "lt": "<", "lte": "<=", "gt": ">", "gte": ">="}
_WORDS = {"contains": "contains", "starts_with": "starts_with", "ends_with": "ends_with"}

_PARSER = Lark(GRAMMAR, parser="lalr", lexer="contextual", propagate_positions=True)


class RuleSyntaxError(RuleError):
    """The text could not be read: ``line``/``column`` (1-based) say where."""

    def __init__(self, line: int, column: int, message: str) -> None:
        super().__init__(f"line {line}, column {column}", message)
        self.line = line
        self.column = column


Comparison = tuple[str, Value]


class _PlainName(str):
    """An unquoted event name: ``session`` unquoted means the profile's sessions."""


@dataclass(frozen=True)
class _NumberComparison:
    op: str
    value: Value
    # Written as a duration (2m): only session durations compare with those.
    duration: bool
    line: int
    column: int


def _duration(token: Token) -> Any:
    try:
        return parse_duration(str(token))
    except DurationError as exc:
        raise RuleSyntaxError(token.line or 1, token.column or 1, str(exc)) from None


def _number(token: Token) -> int | float:
    """A NUMBER, or a DURATION in seconds."""
    if token.type == "DURATION":
        return int(_duration(token).total_seconds())
    text = str(token)
    return int(text) if text.lstrip("-").isdigit() else float(text)


def _string(token: Token) -> str:
    value: str = json.loads(str(token))
    return value


@v_args(inline=True)
class _ToTree(Transformer[Token, Rule]):
    def start(self, rule: Rule) -> Rule:
        return rule

    def or_expr(self, *rules: Rule) -> Rule:
        return Or(tuple(rules))

    def and_expr(self, *rules: Rule) -> Rule:
        return And(tuple(rules))

    def negation(self, rule: Rule) -> Rule:
        return Not(rule)

    # names and values
    def name_plain(self, token: Token) -> str:
        return _PlainName(token)

    def name_quoted(self, token: Token) -> str:
        return _string(token)

    def path(self, *names: str) -> tuple[str, ...]:
        return tuple(names)

    def property(self, path: tuple[str, ...]) -> tuple[str, ...]:
        return path

    def string(self, token: Token) -> str:
        return _string(token)

    def number(self, token: Token) -> int | float:
        return _number(token)

    def true(self) -> bool:
        return True

    def false(self) -> bool:
        return False

    def null(self) -> None:
        return None

    def value_list(self, *values: Any) -> Value:
        items: list[str | int | float | bool | None] = list(values)
        return items

    def empty_list(self) -> Value:
        return []

    # comparisons: (op, value)
    def cmp_value(self, op: Token, value: Value) -> Comparison:
        return (_OPERATORS[str(op)], value)

    def cmp_amount(self, op: Token, value: Token) -> _NumberComparison:
        return _NumberComparison(
            _OPERATORS[str(op)],
            _number(value),
            value.type == "DURATION",
            value.line or 1,
            value.column or 1,
        )

    def cmp_amount_between(self, low: Token, high: Token) -> _NumberComparison:
        duration = high if high.type == "DURATION" else low
        return _NumberComparison(
            "between",
            [_number(low), _number(high)],
            "DURATION" in {low.type, high.type},
            duration.line or 1,
            duration.column or 1,
        )

    def cmp_between(self, low: Token, high: Token) -> Comparison:
        return ("between", [_number(low), _number(high)])

    def cmp_in(self, values: Value) -> Comparison:
        return ("in", values)

    def cmp_not_in(self, values: Value) -> Comparison:
        return ("not_in", values)

    def cmp_word(self, word: Token, value: Value) -> Comparison:
        return (_WORDS[str(word)], value)

    def cmp_exists(self) -> Comparison:
        return ("exists", None)

    def cmp_not_exists(self) -> Comparison:
        return ("not_exists", None)

    def cmp_is_empty(self) -> Comparison:
        return ("is_empty", None)

    # pieces
    def filter(self, path: tuple[str, ...], comparison: Comparison) -> dict[str, Any]:
        return _filter_json(path, comparison)

    def where(self, *filters: dict[str, Any]) -> list[dict[str, Any]]:
        return list(filters)

    def matcher(self, event: str, where: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        data: dict[str, Any] = {"event": event}
        if where:
            data["where"] = where
        return data

    def window_last(self, duration: Token) -> dict[str, Any]:
        return {"last": format_duration(_duration(duration))}

    def window_ago(self, oldest: Token, newest: Token) -> dict[str, Any]:
        return {
            "from_ago": format_duration(_duration(oldest)),
            "to_ago": format_duration(_duration(newest)),
        }

    def window_dates(self, start: Token, end: Token) -> dict[str, Any]:
        return {"start": _string(start), "end": _string(end)}

    def window_all(self) -> dict[str, Any]:
        return {"all": True}

    def window_part(self, window: dict[str, Any]) -> dict[str, Any]:
        return window

    # rules: built through the JSON schema so both forms share one validation
    def event_measure(self, fn: Token, event: str, *rest: Any) -> dict[str, Any]:
        prop: tuple[str, ...] | None = None
        where: list[dict[str, Any]] = []
        window: dict[str, Any] | None = None
        for part in rest:
            if isinstance(part, tuple):
                prop = part
            elif isinstance(part, list):
                where = part
            elif isinstance(part, dict):
                window = part
        data: dict[str, Any]
        if isinstance(event, _PlainName) and event == "session":
            if where:
                raise RuleError("where", "sessions take no where; filter events instead")
            data = {"source": "sessions", "fn": str(fn)}
            if prop is not None:
                if len(prop) != 1 or prop[0] not in SESSION_FIELDS:
                    raise RuleError(
                        "session." + ".".join(prop),
                        f"a session has {', '.join(sorted(SESSION_FIELDS))}; "
                        'write "session" in quotes for an event of that name',
                    )
                data["metric"] = prop[0]
        else:
            data = {"source": "events", "fn": str(fn), "event": str(event)}
            if prop is not None:
                data["property"] = ".".join(prop)
            if where:
                data["where"] = where
        if window is not None:
            data["window"] = window
        return data

    def sessions_measure(self, window: dict[str, Any] | None = None) -> dict[str, Any]:
        data: dict[str, Any] = {"source": "sessions", "fn": "count"}
        if window is not None:
            data["window"] = window
        return data

    def aggregate(self, measure: dict[str, Any], comparison: _NumberComparison) -> Rule:
        source = measure.pop("source")
        if comparison.duration and not (
            source == "sessions" and measure.get("metric") == "duration"
        ):
            raise RuleSyntaxError(
                comparison.line,
                comparison.column,
                "only session.duration compares with a duration such as 2m",
            )
        kind = "sessions" if source == "sessions" else "aggregate"
        return rule_from_json(
            {"type": kind, **measure, "op": comparison.op, "value": comparison.value}
        )

    def factor(self, number: Token) -> int | float:
        return _number(number)

    def trend(self, left: dict[str, Any], op: Token, *rest: Any) -> Rule:
        factor = rest[0] if len(rest) == 2 else 1
        right = rest[-1]
        return rule_from_json(
            {
                "type": "trend",
                "left": left,
                "op": _OPERATORS[str(op)],
                "factor": factor,
                "right": right,
            }
        )

    def context(self, name: Token, comparison: Comparison) -> Rule:
        data: dict[str, Any] = {"type": "context", "field": str(name), "op": comparison[0]}
        if comparison[0] not in UNARY_OPERATORS:
            data["value"] = comparison[1]
        return rule_from_json(data)

    def score(self, slug: Token, comparison: _NumberComparison) -> Rule:
        if comparison.duration:
            raise RuleSyntaxError(
                comparison.line, comparison.column, "a score compares with a number, not a duration"
            )
        return rule_from_json(
            {"type": "score", "slug": str(slug), "op": comparison.op, "value": comparison.value}
        )

    def trait(self, path: tuple[str, ...], comparison: Comparison) -> Rule:
        data: dict[str, Any] = {"type": "trait", "path": ".".join(path), "op": comparison[0]}
        if comparison[0] not in UNARY_OPERATORS:
            data["value"] = comparison[1]
        return rule_from_json(data)

    def recency(self, event: str, *rest: Any) -> Rule:
        where: list[dict[str, Any]] = rest[0] if isinstance(rest[0], list) else []
        op, duration = rest[-2], rest[-1]
        data: dict[str, Any] = {"type": "recency", "event": event, "op": _OPERATORS[str(op)]}
        if where:
            data["where"] = where
        data["age"] = format_duration(_duration(duration))
        return rule_from_json(data)

    def sequence(self, first: dict[str, Any], *rest: Any) -> Rule:
        negated = isinstance(rest[0], Token) and rest[0].type == "NO"
        parts = rest[1:] if negated else rest
        then, within = parts[0], parts[1]
        data: dict[str, Any] = {
            "type": "sequence",
            "first": first,
            "then": then,
            "within": format_duration(_duration(within)),
            "followed": not negated,
        }
        if len(parts) > 2:
            data["window"] = parts[2]
        return rule_from_json(data)

    def segment(self, kind: Token, slug: Token) -> Rule:
        return InSegment(slug=str(slug), member=str(kind) == "in_segment")


def _filter_json(path: tuple[str, ...], comparison: Comparison) -> dict[str, Any]:
    data: dict[str, Any] = {"property": ".".join(path), "op": comparison[0]}
    if comparison[0] not in UNARY_OPERATORS:
        data["value"] = comparison[1]
    return data


def _describe_expected(expected: set[str]) -> str:
    names = sorted(name.lstrip("_").lower() for name in expected if not name.startswith("__"))
    return ", ".join(names[:8]) + (" ..." if len(names) > 8 else "")


def parse_text(text: str) -> Rule:
    """Parse the readable form; raises RuleSyntaxError (or RuleError) with the reason."""
    if not text.strip():
        raise RuleSyntaxError(1, 1, "the rule is empty")
    try:
        tree = _PARSER.parse(text)
        return _ToTree().transform(tree)
    except UnexpectedEOF as exc:
        lines = text.splitlines() or [""]
        raise RuleSyntaxError(
            len(lines),
            len(lines[-1]) + 1,
            f"the rule ends too early; expected {_describe_expected(set(exc.expected))}",
        ) from None
    except UnexpectedCharacters as exc:
        raise RuleSyntaxError(
            exc.line, exc.column, f"unexpected character {text[exc.pos_in_stream or 0]!r}"
        ) from None
    except UnexpectedToken as exc:
        found = "the end of the rule" if exc.token.type == "$END" else repr(str(exc.token))
        raise RuleSyntaxError(
            exc.line, exc.column, f"unexpected {found}; expected {_describe_expected(exc.expected)}"
        ) from None
    except UnexpectedInput as exc:  # any other parse error still has a position
        raise RuleSyntaxError(exc.line, exc.column, "cannot read the rule here") from None
    except VisitError as exc:
        original = exc.orig_exc
        if isinstance(original, RuleSyntaxError):
            raise original from None
        if isinstance(original, RuleError):
            meta = getattr(exc.obj, "meta", None)
            line = getattr(meta, "line", 1) if meta is not None and not meta.empty else 1
            column = getattr(meta, "column", 1) if meta is not None and not meta.empty else 1
            raise RuleSyntaxError(line, column, f"{original.path}: {original.reason}") from None
        raise


# --- printing -------------------------------------------------------------------------------


def _quote_name(name: str) -> str:
    if (
        name
        and (name[0].isalpha() or name[0] == "_")
        and all(c.isalnum() or c in "_$-" for c in name)
    ):
        if name not in _RESERVED:
            return name
    return json.dumps(name)


_RESERVED = {
    "count", "sum", "avg", "min", "max", "distinct", "in_segment", "not_in_segment", "contains",
    "starts_with", "ends_with", "no", "or", "and", "not", "where", "trait", "last", "ago",
    "sequence", "then", "within", "between", "from", "to", "all", "time", "in", "exists", "is",
    "empty", "true", "false", "null", "session", "sessions", "score", "device", "country",
    "referrer", "utm_source", "utm_medium", "utm_campaign",
}  # fmt: skip


def _path_text(path: tuple[str, ...]) -> str:
    return ".".join(_quote_name(part) for part in path)


def _value_text(value: Any) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(_value_text(v) for v in value) + "]"
    return json.dumps(value, ensure_ascii=False)


def _comparison_text(op: str, value: Any) -> str:
    if op in _SYMBOLS:
        return f"{_SYMBOLS[op]} {_value_text(value)}"
    if op == "between":
        return f"between {_value_text(value[0])} and {_value_text(value[1])}"
    if op == "in":
        return f"in {_value_text(value)}"
    if op == "not_in":
        return f"not in {_value_text(value)}"
    if op in _WORDS:
        return f"{op} {_value_text(value)}"
    return {"exists": "exists", "not_exists": "not exists", "is_empty": "is empty"}[op]


def _matcher_text(matcher: EventMatcher) -> str:
    text = _quote_name(matcher.event)
    if matcher.where:
        text += " where " + " and ".join(_filter_text(f) for f in matcher.where)
    return text


def _filter_text(item: PropertyFilter) -> str:
    return f"{_path_text(item.path)} {_comparison_text(item.op, item.value)}"


def _window_text(window: Window) -> str | None:
    if window.start is not None and window.end is not None:
        return (
            f"from {json.dumps(window.start.isoformat())} to {json.dumps(window.end.isoformat())}"
        )
    if window.oldest_age is None:
        return None
    if window.newest_age:
        return f"between {format_duration(window.oldest_age)} and {format_duration(window.newest_age)} ago"
    return f"last {format_duration(window.oldest_age)}"


def _measure_text(measure: Measure) -> str:
    window = _window_text(measure.window)
    if isinstance(measure, SessionMeasure):
        if measure.fn == "count":
            return f"sessions({window or 'all time'})"
        inside = f"session.{measure.metric}"
    else:
        inside = _quote_name(measure.matcher.event)
        if measure.property is not None:
            inside += "." + _path_text(measure.property)
        if measure.matcher.where:
            inside += " where " + " and ".join(_filter_text(f) for f in measure.matcher.where)
    if window is not None:
        inside += ", " + window
    return f"{measure.fn}({inside})"


def _seconds_text(value: Any) -> str:
    """Whole seconds as a duration editors read (120 → 2m), anything else as a number."""
    if (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and float(value).is_integer()
        and 0 < value <= MAX_DURATION.total_seconds()
    ):
        return format_duration(timedelta(seconds=int(value)))
    return _value_text(value)


def _duration_comparison_text(op: str, value: Any) -> str:
    if op == "between":
        return f"between {_seconds_text(value[0])} and {_seconds_text(value[1])}"
    return f"{_SYMBOLS[op]} {_seconds_text(value)}"


def rule_to_text(rule: Rule) -> str:
    """The canonical readable form; ``parse_text`` reads it back to an equal tree."""
    return _text(rule)


def _group(rule: Rule, parent: type) -> str:
    text = _text(rule)
    if isinstance(rule, And | Or) and (parent is Not or isinstance(rule, parent) or parent is And):
        return f"({text})"
    return text


def _text(rule: Rule) -> str:
    if isinstance(rule, Or):
        return " or ".join(_group(child, Or) for child in rule.rules)
    if isinstance(rule, And):
        return " and ".join(_group(child, And) for child in rule.rules)
    if isinstance(rule, Not):
        return f"not {_group(rule.rule, Not)}"
    if isinstance(rule, TraitCondition):
        return f"trait.{_path_text(rule.path)} {_comparison_text(rule.op, rule.value)}"
    if isinstance(rule, Aggregate):
        measure = EventMeasure(rule.fn, rule.matcher, rule.property, rule.window)
        return f"{_measure_text(measure)} {_comparison_text(rule.op, rule.value)}"
    if isinstance(rule, SessionAggregate):
        if rule.measure.metric == "duration":
            comparison = _duration_comparison_text(rule.op, rule.value)
        else:
            comparison = _comparison_text(rule.op, rule.value)
        return f"{_measure_text(rule.measure)} {comparison}"
    if isinstance(rule, Trend):
        factor = "" if rule.factor == 1 else f"{_value_text(rule.factor)} * "
        return f"{_measure_text(rule.left)} {_SYMBOLS[rule.op]} {factor}{_measure_text(rule.right)}"
    if isinstance(rule, ContextCondition):
        return f"{rule.field} {_comparison_text(rule.op, rule.value)}"
    if isinstance(rule, ScoreCondition):
        return f"score({rule.slug}) {_comparison_text(rule.op, rule.value)}"
    if isinstance(rule, Recency):
        return f"last({_matcher_text(rule.matcher)}) {_SYMBOLS[rule.op]} {format_duration(rule.age)} ago"
    if isinstance(rule, Sequence):
        link = "then" if rule.followed else "then no"
        inside = f"{_matcher_text(rule.first)} {link} {_matcher_text(rule.then)} within {format_duration(rule.within)}"
        window = _window_text(rule.window)
        if window is not None:
            inside += ", " + window
        return f"sequence({inside})"
    return f"{'in_segment' if rule.member else 'not_in_segment'}({rule.slug})"


def text_to_json(text: str) -> dict[str, Any]:
    return rule_to_json(parse_text(text))


def json_to_text(data: Any) -> str:
    return rule_to_text(rule_from_json(data))


__all__ = [
    "RuleSyntaxError",
    "criteria_from_text",
    "criteria_to_text",
    "json_to_text",
    "parse_text",
    "rule_to_text",
    "text_to_json",
]


# --- score criteria: one "points: rule" per line ------------------------------------------

_CRITERION_LINE = re.compile(r"^\s*(?P<points>[-+]?[0-9]+(?:\.[0-9]+)?)\s*:\s*(?P<rule>.*\S)\s*$")


def criteria_from_text(text: str) -> list[dict[str, Any]]:
    """``10: count(email_opened, last 30d) >= 1`` per line (blank lines and ``#``
    comments skipped) to the criteria JSON; errors name the line and column."""
    criteria: list[dict[str, Any]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        match = _CRITERION_LINE.match(line)
        if match is None:
            raise RuleSyntaxError(
                number, 1, "write points, a colon, then the rule: 10: count(page, last 7d) >= 3"
            )
        try:
            rule = parse_text(match.group("rule"))
        except RuleSyntaxError as exc:
            column = match.start("rule") + exc.column
            raise RuleSyntaxError(number, column, exc.reason) from None
        points_text = match.group("points")
        points = float(points_text) if "." in points_text else int(points_text)
        criteria.append({"rule": rule_to_json(rule), "points": points})
    if not criteria:
        raise RuleSyntaxError(1, 1, "a score needs at least one line: points: rule")
    return criteria


def criteria_to_text(criteria: Any) -> str:
    definition = criteria_from_json(criteria)
    return "\n".join(
        f"{_value_text(c.points)}: {rule_to_text(c.rule)}" for c in definition.criteria
    )
