"""The reference evaluator: a rule over one profile's snapshot at a given ``now``.

It is the meaning of a rule. The incremental path runs it per profile; the
batch SQL compiler must agree with it. It also answers *when* the answer can
next change with no new event (a window lapsing, an absence completing), which
the scheduler uses to flip memberships on time, and *why* it holds (explain).
"""

from __future__ import annotations

import bisect
import json
import math
from collections.abc import Iterable, Mapping
from collections.abc import Sequence as Seq
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from segments.rules.durations import format_duration
from segments.rules.text import rule_to_text
from segments.rules.tree import (
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
    ScoreDefinition,
    Sequence,
    SessionAggregate,
    SessionMeasure,
    TraitCondition,
    Trend,
    Value,
    Window,
)

EPSILON = timedelta(microseconds=1)
# How many future change points are tried before settling for "look again then".
MAX_CHANGE_PROBES = 64


@dataclass(frozen=True)
class EventRecord:
    name: str
    timestamp: datetime
    properties: Mapping[str, Any] = field(default_factory=dict)
    context: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SessionRecord:
    """A visit (``personalize.Session``): first and last event time, calls and pages in it."""

    started_at: datetime
    ended_at: datetime
    events: int = 0
    pages: int = 0

    @property
    def duration_micros(self) -> int:
        return (self.ended_at - self.started_at) // EPSILON


@dataclass(frozen=True)
class ProfileSnapshot:
    """What a rule may look at: traits, events sorted by timestamp (ties in storage
    order: the later one is the newer), and sessions."""

    traits: Mapping[str, Any]
    events: Seq[EventRecord]
    sessions: Seq[SessionRecord] = ()

    def by_name(self, name: str) -> list[EventRecord]:
        return [event for event in self.events if event.name == name]


@dataclass(frozen=True)
class ConditionOutcome:
    text: str
    held: bool


@dataclass(frozen=True)
class Evaluation:
    matched: bool
    # The earliest moment after ``now`` at which ``matched`` can flip with no new
    # event, or None when only new events (or trait changes) can flip it.
    next_change_at: datetime | None
    conditions: tuple[ConditionOutcome, ...]


class _Context:
    def __init__(
        self,
        snapshot: ProfileSnapshot,
        segments: Mapping[str, Rule],
        scores: Mapping[str, ScoreDefinition] | None = None,
    ) -> None:
        self.snapshot = snapshot
        self.segments = segments
        self.scores: Mapping[str, ScoreDefinition] = scores or {}
        # Keyed by identity, not equality: a matcher may hold a list (``in``, ``between``)
        # and so be unhashable, and equality would conflate ``eq true`` with ``eq 1``.
        # The matcher is kept in the value so its id stays unique while cached.
        self._matches: dict[int, tuple[EventMatcher, list[EventRecord]]] = {}

    def matching(self, matcher: EventMatcher) -> list[EventRecord]:
        """Events matching name and property filters, sorted by time (window not applied)."""
        cached = self._matches.get(id(matcher))
        if cached is not None:
            return cached[1]
        found = [
            event
            for event in self.snapshot.events
            if event.name == matcher.event and all(_filter_holds(f, event) for f in matcher.where)
        ]
        self._matches[id(matcher)] = (matcher, found)
        return found


# --- value access and comparison --------------------------------------------------


_MISSING = object()


def lookup(data: Mapping[str, Any], path: Iterable[str]) -> Any:
    """The value at a dotted path, or None when any step is missing."""
    current: Any = data
    for part in path:
        if not isinstance(current, Mapping) or part not in current:
            return None
        current = current[part]
    return current


def _event_value(event: EventRecord, path: tuple[str, ...]) -> Any:
    if path[0] == "context" and len(path) > 1:
        return lookup(event.context, path[1:])
    return lookup(event.properties, path)


def is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _same(left: Any, right: Any) -> bool:
    if isinstance(left, bool) or isinstance(right, bool):
        return isinstance(left, bool) and isinstance(right, bool) and left == right
    if is_number(left) and is_number(right):
        return bool(left == right)
    return type(left) is type(right) and bool(left == right)


def compare(actual: Any, op: str, expected: Value) -> bool:
    """``actual op expected`` with the rule language's meaning (see the README)."""
    if op == "exists":
        return actual is not None
    if op == "not_exists":
        return actual is None
    if op == "is_empty":
        return actual is None or actual == "" or actual == [] or actual == {}
    if op == "eq":
        return actual is not None and _same(actual, expected)
    if op == "ne":
        return actual is None or not _same(actual, expected)
    if op in {"in", "not_in"}:
        assert isinstance(expected, list)
        found = actual is not None and any(_same(actual, item) for item in expected)
        return found if op == "in" else not found
    if op == "between":
        assert isinstance(expected, list)
        low, high = expected
        return is_number(actual) and low <= actual <= high
    if op in {"lt", "lte", "gt", "gte"}:
        if is_number(actual) and is_number(expected):
            pass
        elif not (isinstance(actual, str) and isinstance(expected, str)):
            return False
        if op == "lt":
            return bool(actual < expected)
        if op == "lte":
            return bool(actual <= expected)
        if op == "gt":
            return bool(actual > expected)
        return bool(actual >= expected)
    if op == "contains":
        if isinstance(actual, str) and isinstance(expected, str):
            return expected in actual
        if isinstance(actual, list):
            return any(_same(item, expected) for item in actual)
        return False
    if op == "starts_with":
        return isinstance(actual, str) and isinstance(expected, str) and actual.startswith(expected)
    if op == "ends_with":
        return isinstance(actual, str) and isinstance(expected, str) and actual.endswith(expected)
    raise ValueError(f"unknown operator {op!r}")


def _filter_holds(item: PropertyFilter, event: EventRecord) -> bool:
    return compare(_event_value(event, item.path), item.op, item.value)


# --- truth of each node at one instant ---------------------------------------------


def aggregate_value(
    rule: Aggregate | EventMeasure, events: Seq[EventRecord], now: datetime
) -> float | None:
    """The aggregate over ``events`` (already matched) inside the window at ``now``."""
    inside = [event for event in events if rule.window.contains(event.timestamp, now)]
    if rule.fn == "count":
        return float(len(inside))
    assert rule.property is not None
    values = [_event_value(event, rule.property) for event in inside]
    if rule.fn == "distinct":
        return float(len({_distinct_key(value) for value in values if value is not None}))
    numbers = [float(value) for value in values if is_number(value)]
    if rule.fn == "sum":
        return math.fsum(numbers)
    if not numbers:
        return None
    if rule.fn == "avg":
        return math.fsum(numbers) / len(numbers)
    if rule.fn == "min":
        return min(numbers)
    return max(numbers)


MICROS_PER_SECOND = 1_000_000


def session_value(
    measure: SessionMeasure, sessions: Seq[SessionRecord], now: datetime
) -> float | None:
    """The session metric over sessions that started inside the window at ``now``.

    Durations are summed in whole microseconds and divided once, exactly as the
    SQL does, so both paths round alike.
    """
    inside = [s for s in sessions if measure.window.contains(s.started_at, now)]
    if measure.fn == "count":
        return float(len(inside))
    if measure.metric == "duration":
        amounts = [s.duration_micros for s in inside]
        scale = MICROS_PER_SECOND
    else:
        amounts = [s.pages if measure.metric == "pages" else s.events for s in inside]
        scale = 1
    if measure.fn == "sum":
        return sum(amounts) / scale
    if not amounts:
        return None
    if measure.fn == "avg":
        return sum(amounts) / len(amounts) / scale
    return (min(amounts) if measure.fn == "min" else max(amounts)) / scale


# Where each context shortcut reads its value, first path that carries one wins.
CONTEXT_PATHS: dict[str, tuple[tuple[str, ...], ...]] = {
    "device": (("device", "type"),),
    "country": (("location", "country"),),
    "referrer": (("page", "referrer"), ("referrer", "url")),
    "utm_source": (("campaign", "source"),),
    "utm_medium": (("campaign", "medium"),),
    "utm_campaign": (("campaign", "name"),),
}


def device_from_user_agent(user_agent: str) -> str:
    """The well-known rule (MDN's advice): "Mobi" marks phones; iPads, "Tablet" and
    Android without "Mobi" are tablets; anything else is a desktop. Case-sensitive."""
    if "iPad" in user_agent or "Tablet" in user_agent:
        return "tablet"
    if "Android" in user_agent and "Mobi" not in user_agent:
        return "tablet"
    if "Mobi" in user_agent or "iPhone" in user_agent:
        return "mobile"
    return "desktop"


def _text_at(context: Mapping[str, Any], path: tuple[str, ...]) -> str | None:
    value = lookup(context, path)
    return value if isinstance(value, str) and value != "" else None


def context_value(name: str, context: Mapping[str, Any]) -> str | None:
    """The value of a context shortcut on one event, or None when it does not carry it.

    Only non-empty strings count; ``device`` falls back to ``context.userAgent``.
    """
    for path in CONTEXT_PATHS[name]:
        found = _text_at(context, path)
        if found is not None:
            return found
    if name == "device":
        agent = _text_at(context, ("userAgent",))
        if agent is not None:
            return device_from_user_agent(agent)
    return None


def latest_context_value(name: str, events: Seq[EventRecord], now: datetime) -> str | None:
    """The value on the latest event at or before ``now`` that carries ``name``."""
    for event in reversed(events):
        if event.timestamp <= now:
            found = context_value(name, event.context)
            if found is not None:
                return found
    return None


def _distinct_key(value: Any) -> tuple[str, Any]:
    if isinstance(value, bool):
        return ("bool", value)
    if is_number(value):
        return ("number", float(value))
    if isinstance(value, str):
        return ("string", value)
    # Lists and objects compare as JSON does in PostgreSQL's jsonb: object keys in
    # any order, numbers by value (so the batch SQL counts them the same way).
    return ("json", json.dumps(_canonical_json(value), sort_keys=True))


def _canonical_json(value: Any) -> Any:
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if is_number(value):
        return float(value)
    if isinstance(value, list):
        return [_canonical_json(item) for item in value]
    if isinstance(value, dict):
        return {str(key): _canonical_json(item) for key, item in value.items()}
    return repr(value)


def _last_at_or_before(events: Seq[EventRecord], now: datetime) -> EventRecord | None:
    times = [event.timestamp for event in events]
    index = bisect.bisect_right(times, now)
    return events[index - 1] if index else None


def recency_holds(rule: Recency, events: Seq[EventRecord], now: datetime) -> bool:
    last = _last_at_or_before(events, now)
    if last is None:
        return False
    age = now - last.timestamp
    if rule.op == "gt":
        return age > rule.age
    if rule.op == "gte":
        return age >= rule.age
    if rule.op == "lt":
        return age < rule.age
    return age <= rule.age


def _followed(
    first: EventRecord, thens: Seq[EventRecord], within: timedelta, now: datetime
) -> bool:
    deadline = min(first.timestamp + within, now)
    return any(
        then is not first and first.timestamp <= then.timestamp <= deadline for then in thens
    )


def sequence_holds(
    rule: Sequence, firsts: Seq[EventRecord], thens: Seq[EventRecord], now: datetime
) -> bool:
    for first in firsts:
        if not rule.window.contains(first.timestamp, now):
            continue
        if rule.followed:
            if _followed(first, thens, rule.within, now):
                return True
        elif now >= first.timestamp + rule.within and not _followed(first, thens, rule.within, now):
            return True
    return False


def _holds(rule: Rule, ctx: _Context, now: datetime, stack: tuple[str, ...] = ()) -> bool:
    if isinstance(rule, And):
        return all(_holds(child, ctx, now, stack) for child in rule.rules)
    if isinstance(rule, Or):
        return any(_holds(child, ctx, now, stack) for child in rule.rules)
    if isinstance(rule, Not):
        return not _holds(rule.rule, ctx, now, stack)
    if isinstance(rule, TraitCondition):
        return compare(lookup(ctx.snapshot.traits, rule.path), rule.op, rule.value)
    if isinstance(rule, Aggregate):
        value = aggregate_value(rule, ctx.matching(rule.matcher), now)
        return value is not None and compare(value, rule.op, rule.value)
    if isinstance(rule, Recency):
        return recency_holds(rule, ctx.matching(rule.matcher), now)
    if isinstance(rule, Sequence):
        return sequence_holds(rule, ctx.matching(rule.first), ctx.matching(rule.then), now)
    if isinstance(rule, SessionAggregate):
        value = _measure_value(rule.measure, ctx, now)
        return value is not None and compare(value, rule.op, rule.value)
    if isinstance(rule, Trend):
        left, right = _trend_values(rule, ctx, now)
        return (
            left is not None
            and right is not None
            and compare(left, rule.op, float(rule.factor) * right)
        )
    if isinstance(rule, ContextCondition):
        actual = latest_context_value(rule.field, ctx.snapshot.events, now)
        return compare(actual, rule.op, rule.value)
    if isinstance(rule, ScoreCondition):
        score = _score_value(rule.slug, ctx, now, stack)
        return score is not None and compare(score, rule.op, rule.value)
    return _in_segment(rule, ctx, now, stack)


def _measure_value(measure: Measure, ctx: _Context, now: datetime) -> float | None:
    if isinstance(measure, SessionMeasure):
        return session_value(measure, ctx.snapshot.sessions, now)
    return aggregate_value(measure, ctx.matching(measure.matcher), now)


def _trend_values(rule: Trend, ctx: _Context, now: datetime) -> tuple[float | None, float | None]:
    return _measure_value(rule.left, ctx, now), _measure_value(rule.right, ctx, now)


def _score_key(slug: str) -> str:
    # Segment slugs never hold a colon, so score entries on the stack cannot clash.
    return f"score:{slug}"


def _score_value(slug: str, ctx: _Context, now: datetime, stack: tuple[str, ...]) -> float | None:
    """The sum of the points of the score's criteria that hold, added in order."""
    definition = ctx.scores.get(slug)
    key = _score_key(slug)
    if definition is None or key in stack:
        return None
    total = 0.0
    for criterion in definition.criteria:
        if _holds(criterion.rule, ctx, now, (*stack, key)):
            total += float(criterion.points)
    return total


def _in_segment(rule: InSegment, ctx: _Context, now: datetime, stack: tuple[str, ...]) -> bool:
    target = ctx.segments.get(rule.slug)
    if target is None or rule.slug in stack:
        # An unknown (or, defensively, cyclic) segment has no members.
        return not rule.member
    inside = _holds(target, ctx, now, (*stack, rule.slug))
    return inside if rule.member else not inside


# --- when can the truth change with no new event? ------------------------------------


def _window_points(window: Window, events: Iterable[EventRecord]) -> set[datetime]:
    points: set[datetime] = set()
    for event in events:
        points.update(window.change_times(event.timestamp))
    return points


def _change_points(rule: Rule, ctx: _Context, stack: tuple[str, ...] = ()) -> set[datetime]:
    """Instants at which a leaf's value may change by the passing of time alone."""
    if isinstance(rule, And | Or):
        points: set[datetime] = set()
        for child in rule.rules:
            points |= _change_points(child, ctx, stack)
        return points
    if isinstance(rule, Not):
        return _change_points(rule.rule, ctx, stack)
    if isinstance(rule, TraitCondition):
        return set()
    if isinstance(rule, Aggregate):
        return _window_points(rule.window, ctx.matching(rule.matcher))
    if isinstance(rule, Recency):
        # gt/lte flip just after last + age; gte/lt flip at it.
        shift = EPSILON if rule.op in {"gt", "lte"} else timedelta(0)
        events = ctx.matching(rule.matcher)
        return {event.timestamp + rule.age + shift for event in events} | {
            event.timestamp for event in events
        }
    if isinstance(rule, Sequence):
        firsts = ctx.matching(rule.first)
        points = _window_points(rule.window, firsts)
        points |= {first.timestamp + rule.within for first in firsts}
        points |= {then.timestamp for then in ctx.matching(rule.then)}
        points |= {first.timestamp for first in firsts}
        return points
    if isinstance(rule, SessionAggregate):
        return _measure_points(rule.measure, ctx)
    if isinstance(rule, Trend):
        return _measure_points(rule.left, ctx) | _measure_points(rule.right, ctx)
    if isinstance(rule, ContextCondition):
        # A carrier with a later time takes over when its time comes.
        return {
            event.timestamp
            for event in ctx.snapshot.events
            if context_value(rule.field, event.context) is not None
        }
    if isinstance(rule, ScoreCondition):
        return _score_points(rule.slug, ctx, stack)
    target = ctx.segments.get(rule.slug)
    if target is None or rule.slug in stack:
        return set()
    return _change_points(target, ctx, (*stack, rule.slug))


def _measure_points(measure: Measure, ctx: _Context) -> set[datetime]:
    if isinstance(measure, SessionMeasure):
        points: set[datetime] = set()
        for session in ctx.snapshot.sessions:
            points.update(measure.window.change_times(session.started_at))
        return points
    return _window_points(measure.window, ctx.matching(measure.matcher))


def _score_points(slug: str, ctx: _Context, stack: tuple[str, ...]) -> set[datetime]:
    definition = ctx.scores.get(slug)
    key = _score_key(slug)
    if definition is None or key in stack:
        return set()
    points: set[datetime] = set()
    for criterion in definition.criteria:
        points |= _change_points(criterion.rule, ctx, (*stack, key))
    return points


def next_change(rule: Rule, ctx: _Context, now: datetime, current: bool) -> datetime | None:
    candidates = sorted(point for point in _change_points(rule, ctx) if point > now)
    for point in candidates[:MAX_CHANGE_PROBES]:
        if _holds(rule, ctx, point) != current:
            return point
    if len(candidates) > MAX_CHANGE_PROBES:
        # Not settled within the probes: ask to be looked at again from there.
        return candidates[MAX_CHANGE_PROBES - 1]
    return None


# --- explanations ---------------------------------------------------------------------

_OP_TEXT = {
    "eq": "=",
    "ne": "≠",
    "lt": "<",
    "lte": "≤",
    "gt": ">",
    "gte": "≥",
    "between": "between",
    "in": "in",
    "not_in": "not in",
    "contains": "contains",
    "starts_with": "starts with",
    "ends_with": "ends with",
    "exists": "exists",
    "not_exists": "does not exist",
    "is_empty": "is empty",
}


def window_text(window: Window) -> str:
    if window.start is not None and window.end is not None:
        return f"between {window.start:%Y-%m-%d %H:%M} and {window.end:%Y-%m-%d %H:%M}"
    if window.oldest_age is None:
        return "ever"
    if window.newest_age:
        return (
            f"between {format_duration(window.newest_age)} and "
            f"{format_duration(window.oldest_age)} ago"
        )
    return f"in the last {format_duration(window.oldest_age)}"


def _matcher_text(matcher: EventMatcher) -> str:
    if not matcher.where:
        return matcher.event
    filters = " and ".join(
        f"{'.'.join(f.path)} {_OP_TEXT[f.op]}" + ("" if f.value is None else f" {f.value!r}")
        for f in matcher.where
    )
    return f"{matcher.event} where {filters}"


def _number_text(value: float | int | None) -> str:
    if value is None:
        return "no value"
    return str(int(value)) if float(value).is_integer() else f"{value:.2f}"


def _explain(
    rule: Rule, ctx: _Context, now: datetime, out: list[ConditionOutcome], stack: tuple[str, ...]
) -> None:
    if isinstance(rule, And | Or):
        for child in rule.rules:
            _explain(child, ctx, now, out, stack)
        return
    if isinstance(rule, Not):
        inner: list[ConditionOutcome] = []
        _explain(rule.rule, ctx, now, inner, stack)
        out.extend(ConditionOutcome(f"not ({c.text})", not c.held) for c in inner)
        return
    held = _holds(rule, ctx, now, stack)
    if isinstance(rule, TraitCondition):
        actual = lookup(ctx.snapshot.traits, rule.path)
        expected = "" if rule.value is None else f" {rule.value!r}"
        text = f"trait {'.'.join(rule.path)} is {actual!r}; needs {_OP_TEXT[rule.op]}{expected}"
    elif isinstance(rule, Aggregate):
        value = aggregate_value(rule, ctx.matching(rule.matcher), now)
        what = rule.fn if rule.property is None else f"{rule.fn} of {'.'.join(rule.property)}"
        text = (
            f"{what} of {_matcher_text(rule.matcher)} {window_text(rule.window)} is "
            f"{_number_text(value)}; needs {_OP_TEXT[rule.op]} {rule.value}"
        )
    elif isinstance(rule, Recency):
        last = _last_at_or_before(ctx.matching(rule.matcher), now)
        seen = (
            "never seen"
            if last is None
            else f"last seen {format_duration(max(now - last.timestamp, timedelta(seconds=1)))} ago"
        )
        text = f"{_matcher_text(rule.matcher)} {seen}; needs {_OP_TEXT[rule.op]} {format_duration(rule.age)} ago"
    elif isinstance(rule, Sequence):
        link = "followed by" if rule.followed else "not followed by"
        text = (
            f"{_matcher_text(rule.first)} {window_text(rule.window)} {link} "
            f"{_matcher_text(rule.then)} within {format_duration(rule.within)}"
        )
    elif isinstance(rule, SessionAggregate):
        value = _measure_value(rule.measure, ctx, now)
        text = (
            f"{measure_text(rule.measure)} is {_measure_number_text(rule.measure, value)}; "
            f"needs {_OP_TEXT[rule.op]} {rule.value}"
        )
    elif isinstance(rule, Trend):
        left, right = _trend_values(rule, ctx, now)
        target = None if right is None else float(rule.factor) * right
        text = (
            f"{measure_text(rule.left)} is {_measure_number_text(rule.left, left)}; needs "
            f"{_OP_TEXT[rule.op]} {_number_text(rule.factor)} × {measure_text(rule.right)} "
            f"({_number_text(rule.factor)} × {_measure_number_text(rule.right, right)}"
            f" = {_measure_number_text(rule.right, target)})"
        )
    elif isinstance(rule, ContextCondition):
        actual = latest_context_value(rule.field, ctx.snapshot.events, now)
        expected = "" if rule.value is None else f" {rule.value!r}"
        seen = "never seen" if actual is None else f"{actual!r} on the latest event carrying it"
        text = f"{rule.field} is {seen}; needs {_OP_TEXT[rule.op]}{expected}"
    elif isinstance(rule, ScoreCondition):
        score = _score_value(rule.slug, ctx, now, stack)
        text = f"score {rule.slug} is {_number_text(score)}; needs {_OP_TEXT[rule.op]} {rule.value}"
    else:
        text = f"{'in' if rule.member else 'not in'} segment {rule.slug}"
    out.append(ConditionOutcome(text=text, held=held))


def measure_text(measure: Measure) -> str:
    if isinstance(measure, SessionMeasure):
        what = "sessions" if measure.fn == "count" else f"{measure.fn} of session {measure.metric}"
        return f"{what} {window_text(measure.window)}"
    what = (
        measure.fn if measure.property is None else f"{measure.fn} of {'.'.join(measure.property)}"
    )
    return f"{what} of {_matcher_text(measure.matcher)} {window_text(measure.window)}"


def _measure_number_text(measure: Measure, value: float | None) -> str:
    text = _number_text(value)
    if isinstance(measure, SessionMeasure) and measure.metric == "duration" and value is not None:
        return f"{text}s"
    return text


def evaluate(
    rule: Rule,
    snapshot: ProfileSnapshot,
    now: datetime,
    segments: Mapping[str, Rule] | None = None,
    *,
    scores: Mapping[str, ScoreDefinition] | None = None,
    explain: bool = True,
) -> Evaluation:
    """Evaluate ``rule`` for one profile at ``now``.

    ``segments`` maps slugs to rules for ``segment`` conditions (composition) and
    ``scores`` slugs to weighted scores for ``score`` conditions.
    Events after ``now`` are ignored until their time comes.
    """
    ctx = _Context(snapshot, segments or {}, scores)
    matched = _holds(rule, ctx, now)
    conditions: list[ConditionOutcome] = []
    if explain:
        _explain(rule, ctx, now, conditions, ())
    return Evaluation(
        matched=matched,
        next_change_at=next_change(rule, ctx, now, matched),
        conditions=tuple(conditions),
    )


@dataclass(frozen=True)
class ScoreEvaluation:
    # None when the score is unknown (or, defensively, refers to itself).
    value: float | None
    # The earliest moment after ``now`` at which the value can change with no new event.
    next_change_at: datetime | None
    criteria: tuple[ConditionOutcome, ...]


def evaluate_score(
    slug: str,
    snapshot: ProfileSnapshot,
    now: datetime,
    segments: Mapping[str, Rule] | None = None,
    *,
    scores: Mapping[str, ScoreDefinition],
) -> ScoreEvaluation:
    """A weighted score's value for one profile at ``now``, which criteria hold, and
    when the value can next change by time alone."""
    ctx = _Context(snapshot, segments or {}, scores)
    value = _score_value(slug, ctx, now, ())
    definition = scores.get(slug)
    outcomes: list[ConditionOutcome] = []
    if definition is not None:
        for criterion in definition.criteria:
            held = _holds(criterion.rule, ctx, now, (_score_key(slug),))
            text = f"{_number_text(criterion.points)} points: {rule_to_text(criterion.rule)}"
            outcomes.append(ConditionOutcome(text, held))
    candidates = sorted(point for point in _score_points(slug, ctx, ()) if point > now)
    next_change_at: datetime | None = None
    for point in candidates[:MAX_CHANGE_PROBES]:
        if _score_value(slug, ctx, point, ()) != value:
            next_change_at = point
            break
    else:
        if len(candidates) > MAX_CHANGE_PROBES:
            # Not settled within the probes: look again from there.
            next_change_at = candidates[MAX_CHANGE_PROBES - 1]
    return ScoreEvaluation(value=value, next_change_at=next_change_at, criteria=tuple(outcomes))
