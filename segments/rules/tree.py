"""The rule tree: typed, immutable nodes that every evaluation path shares.

A rule is stored as JSON (see ``schema.py``) and turned into these nodes once;
the reference evaluator and the compilers walk them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal, TypeAlias

# Comparison operators shared by traits, property filters and aggregates.
Operator = Literal[
    "eq",
    "ne",
    "lt",
    "lte",
    "gt",
    "gte",
    "between",
    "in",
    "not_in",
    "contains",
    "starts_with",
    "ends_with",
    "exists",
    "not_exists",
    "is_empty",
]
NUMERIC_OPERATORS: frozenset[str] = frozenset({"eq", "ne", "lt", "lte", "gt", "gte", "between"})
UNARY_OPERATORS: frozenset[str] = frozenset({"exists", "not_exists", "is_empty"})
ALL_OPERATORS: frozenset[str] = frozenset(Operator.__args__)  # type: ignore[attr-defined]

AggregateFn = Literal["count", "sum", "avg", "min", "max", "distinct"]
AGGREGATE_FNS: frozenset[str] = frozenset(AggregateFn.__args__)  # type: ignore[attr-defined]

Value: TypeAlias = "str | int | float | bool | None | list[str | int | float | bool | None]"


@dataclass(frozen=True)
class Window:
    """Which events count, relative to the evaluation time ``now``.

    An event at ``ts`` is inside when ``now - oldest_age < ts <= now - newest_age``
    (each bound only if set) and ``start <= ts < end`` (each only if set).
    ``last 48h`` is ``oldest_age=48h``; ``between 7 and 14 days ago`` is
    ``newest_age=7d, oldest_age=14d``; all time sets nothing.
    """

    oldest_age: timedelta | None = None
    newest_age: timedelta = timedelta(0)
    start: datetime | None = None
    end: datetime | None = None

    def contains(self, ts: datetime, now: datetime) -> bool:
        if ts > now - self.newest_age:
            return False
        if self.oldest_age is not None and ts <= now - self.oldest_age:
            return False
        if self.start is not None and ts < self.start:
            return False
        return not (self.end is not None and ts >= self.end)

    def change_times(self, ts: datetime) -> tuple[datetime, ...]:
        """The moments (as ``now``) at which an event at ``ts`` enters or leaves."""
        times = [ts + self.newest_age]
        if self.oldest_age is not None:
            times.append(ts + self.oldest_age)
        return tuple(times)

    @property
    def lookback(self) -> timedelta | None:
        """How far back events must be loaded to evaluate this window (None: all)."""
        return self.oldest_age


ALL_TIME = Window()


@dataclass(frozen=True)
class PropertyFilter:
    """A condition on an event's properties (or ``context.…`` for its context)."""

    path: tuple[str, ...]
    op: Operator
    value: Value = None


@dataclass(frozen=True)
class EventMatcher:
    event: str
    where: tuple[PropertyFilter, ...] = ()


@dataclass(frozen=True)
class And:
    rules: tuple[Rule, ...]


@dataclass(frozen=True)
class Or:
    rules: tuple[Rule, ...]


@dataclass(frozen=True)
class Not:
    rule: Rule


@dataclass(frozen=True)
class TraitCondition:
    path: tuple[str, ...]
    op: Operator
    value: Value = None


@dataclass(frozen=True)
class Aggregate:
    """``fn`` over matching events in ``window``, compared with ``value``.

    ``count`` needs no property; the others aggregate ``property`` (numbers for
    sum/avg/min/max, anything hashable for distinct). Over no events, count,
    sum and distinct are 0; avg, min and max have no value and compare false.
    """

    fn: AggregateFn
    matcher: EventMatcher
    op: Operator
    value: Value
    property: tuple[str, ...] | None = None
    window: Window = field(default=ALL_TIME)


@dataclass(frozen=True)
class Recency:
    """Time since the last matching event, compared with ``age`` (never seen: false)."""

    matcher: EventMatcher
    op: Literal["gt", "gte", "lt", "lte"]
    age: timedelta


@dataclass(frozen=True)
class Sequence:
    """``first`` then ``then`` within ``within``; or, with ``followed=False``,
    ``first`` *not* followed by ``then`` within ``within`` (judged once ``within``
    has passed: cart abandonment). Only ``first`` events inside ``window`` count.
    """

    first: EventMatcher
    then: EventMatcher
    within: timedelta
    followed: bool = True
    window: Window = field(default=ALL_TIME)


@dataclass(frozen=True)
class InSegment:
    slug: str
    member: bool = True


# --- sessions, trends, context and scores ------------------------------------------

SessionFn = Literal["count", "sum", "avg", "min", "max"]
SESSION_FNS: frozenset[str] = frozenset(SessionFn.__args__)  # type: ignore[attr-defined]
# duration: seconds from the session's first to its last event; pages: page and
# screen calls in it; events: every call in it.
SessionField = Literal["duration", "pages", "events"]
SESSION_FIELDS: frozenset[str] = frozenset(SessionField.__args__)  # type: ignore[attr-defined]


@dataclass(frozen=True)
class EventMeasure:
    """An aggregate over matching events in a window, without a comparison."""

    fn: AggregateFn
    matcher: EventMatcher
    property: tuple[str, ...] | None = None
    window: Window = field(default=ALL_TIME)


@dataclass(frozen=True)
class SessionMeasure:
    """An aggregate over the profile's sessions that *started* inside ``window``.

    ``count`` takes no metric; the others aggregate ``metric``. Over no sessions
    count and sum are 0; avg, min and max have no value and compare false.
    """

    fn: SessionFn
    metric: SessionField | None = None
    window: Window = field(default=ALL_TIME)


Measure: TypeAlias = EventMeasure | SessionMeasure


@dataclass(frozen=True)
class SessionAggregate:
    """A session metric compared with a number (durations in seconds)."""

    measure: SessionMeasure
    op: Operator
    value: Value


TrendOperator = Literal["eq", "ne", "lt", "lte", "gt", "gte"]
TREND_OPERATORS: frozenset[str] = frozenset(TrendOperator.__args__)  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Trend:
    """``left op factor × right``: one measure compared with a multiple of another
    (usually the same aggregate over an earlier window). False when either side has
    no value (an average over nothing)."""

    left: Measure
    op: TrendOperator
    factor: float | int
    right: Measure


# Readable shortcuts for the value on the profile's latest event that carries it.
ContextField = Literal["device", "country", "referrer", "utm_source", "utm_medium", "utm_campaign"]
CONTEXT_FIELDS: frozenset[str] = frozenset(ContextField.__args__)  # type: ignore[attr-defined]
# Context values are strings: these are the operators that mean something on them.
CONTEXT_OPERATORS: frozenset[str] = frozenset(
    {"eq", "ne", "in", "not_in", "contains", "starts_with", "ends_with", "exists", "not_exists"}
)


@dataclass(frozen=True)
class ContextCondition:
    """``field op value`` on the latest event (at or before now) that carries ``field``
    (see ``evaluate.context_value`` for where each field is read from)."""

    field: ContextField
    op: Operator
    value: Value = None


@dataclass(frozen=True)
class ScoreCondition:
    """A named weighted score (the sum of its criteria's points) compared with a number.

    An unknown (or, defensively, cyclic) score has no value and compares false.
    """

    slug: str
    op: Operator
    value: Value


@dataclass(frozen=True)
class Criterion:
    rule: Rule
    points: float | int


@dataclass(frozen=True)
class ScoreDefinition:
    criteria: tuple[Criterion, ...]


Rule: TypeAlias = (
    And
    | Or
    | Not
    | TraitCondition
    | Aggregate
    | Recency
    | Sequence
    | InSegment
    | SessionAggregate
    | Trend
    | ContextCondition
    | ScoreCondition
)


def walk(rule: Rule) -> list[Rule]:
    """Every node of ``rule``, depth first."""
    nodes: list[Rule] = [rule]
    if isinstance(rule, And | Or):
        for child in rule.rules:
            nodes.extend(walk(child))
    elif isinstance(rule, Not):
        nodes.extend(walk(rule.rule))
    return nodes


def referenced_segments(rule: Rule) -> set[str]:
    return {node.slug for node in walk(rule) if isinstance(node, InSegment)}


def referenced_scores(rule: Rule) -> set[str]:
    return {node.slug for node in walk(rule) if isinstance(node, ScoreCondition)}


def measures(rule: Rule) -> list[Measure]:
    """Every measure a rule reads (session aggregates and both sides of trends)."""
    found: list[Measure] = []
    for node in walk(rule):
        if isinstance(node, SessionAggregate):
            found.append(node.measure)
        elif isinstance(node, Trend):
            found.extend((node.left, node.right))
    return found


def referenced_events(rule: Rule) -> set[str]:
    """Event names whose arrival can change this rule's truth (see also
    ``reads_every_event``: sessions and context read events of any name)."""
    names: set[str] = set()
    for node in walk(rule):
        if isinstance(node, Aggregate | Recency):
            names.add(node.matcher.event)
        elif isinstance(node, Sequence):
            names.update({node.first.event, node.then.event})
    names.update(m.matcher.event for m in measures(rule) if isinstance(m, EventMeasure))
    return names


def reads_sessions(rule: Rule) -> bool:
    return any(isinstance(m, SessionMeasure) for m in measures(rule))


def context_fields(rule: Rule) -> set[str]:
    return {node.field for node in walk(rule) if isinstance(node, ContextCondition)}


def reads_every_event(rule: Rule) -> bool:
    """Sessions and context shortcuts change with events of any name."""
    return reads_sessions(rule) or bool(context_fields(rule))


def uses_traits(rule: Rule) -> bool:
    return any(isinstance(node, TraitCondition) for node in walk(rule))
