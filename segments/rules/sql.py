"""The batch compiler: one rule becomes one set-based SQL query over all profiles.

``compile_rule`` returns SQL text and parameters selecting the ids of every profile
that matches the rule at ``now``; it agrees with the reference evaluator
(``evaluate.py``) row for row. Each Aggregate, Recency and Sequence leaf becomes a CTE
grouped by profile and LEFT JOINed to the profiles, so the database does the work in
a few scans instead of a loop over profiles. When the rule cannot hold for a profile
without a row in some leaf (``count(...) >= 1``, a sequence that must have
happened), the query starts from that leaf instead, as hand-written SQL would, and
reads the profiles table only if the rule looks at traits.

Rules the SQL follows so it means what ``compare()`` means:

- every leaf predicate is wrapped in ``COALESCE(..., FALSE)``: SQL's unknown never
  reaches ``NOT``, which therefore behaves like Python's ``not``;
- JSON values are typed before they are compared (``json_type`` on SQLite,
  ``jsonb_typeof`` on PostgreSQL), so a boolean never equals a number, numbers compare
  numerically, strings by code point (``COLLATE "C"`` on PostgreSQL), JSON null is
  missing; casts sit inside ``CASE`` so PostgreSQL never casts a non-number;
- object keys are followed only through objects, never into arrays (the evaluator's
  ``lookup`` only walks mappings);
- SQLite stores timestamps as UTC text ``YYYY-MM-DD HH:MM:SS[.ffffff]``; they are
  turned into integer microseconds since the epoch, never floating julian days.

Placeholders are DB-API ``format`` style (``%s``; a literal percent sign is written
``%%``), which both Django's cursors and psycopg accept. No ORM here: the edge that
runs the query is ``segments.selectors.segment_member_ids``.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal, TypeGuard

from segments.rules.evaluate import CONTEXT_PATHS, MICROS_PER_SECOND, compare
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

Vendor = Literal["postgresql", "sqlite"]
SqlParam = str | int | float | bool | datetime | None

PROFILE_TABLE = "personalize_profile"
EVENT_TABLE = "personalize_event"
SESSION_TABLE = "personalize_session"
MEMBERSHIP_TABLE = "segments_membership"

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_TOKEN = re.compile("\x00(\\d+)\x00")
# Keys json.dumps writes verbatim and an SQLite JSON path can quote.
_PLAIN_KEY = re.compile(r"[\x20\x21\x23-\x5b\x5d-\x7e]+")


@dataclass(frozen=True)
class CompiledQuery:
    sql: str
    params: list[SqlParam]


def compile_rule(
    rule: Rule,
    *,
    now: datetime,
    segments: Mapping[str, Rule],
    vendor: Vendor,
    scores: Mapping[str, ScoreDefinition] | None = None,
    static_segments: Mapping[str, int] | None = None,
) -> CompiledQuery:
    """SQL selecting the ids of all profiles for which ``rule`` holds at ``now``.

    ``static_segments`` maps the slugs of static segments (fixed member lists, no
    rule) to their ids: ``segment`` conditions on them read their open memberships.
    """
    if vendor not in ("postgresql", "sqlite"):
        raise ValueError(f"no SQL compiler for database vendor {vendor!r}")
    compiler = _Compiler(now=now, segments=segments, vendor=vendor, scores=scores or {})
    compiler.static_segments = static_segments or {}
    where = compiler.node(rule, ())
    # A leaf the rule cannot hold without (a count it needs >= 1 of, a sequence that
    # must have happened) drives the query: only its profiles are read, as a
    # hand-written query would, instead of every profile joined to every leaf. Each
    # of its ids is a profile's (the events' foreign key), and one row per profile.
    anchor = next((name for name in compiler.cte_names if name in where.needs), None)
    parts: list[str] = []
    if compiler.ctes:
        parts.append("WITH " + ",\n".join(compiler.ctes))
    if anchor is None:
        parts.append(f"SELECT p.id FROM {PROFILE_TABLE} p")
        profile_id = "p.id"
    else:
        parts.append(f"SELECT {anchor}.pid FROM {anchor}")
        profile_id = f"{anchor}.pid"
        if compiler.reads_profile:
            parts.append(f"JOIN {PROFILE_TABLE} p ON p.id = {profile_id}")
    for name in compiler.cte_names:
        if name != anchor:
            join = "JOIN" if name in where.needs else "LEFT JOIN"
            parts.append(f"{join} {name} ON {name}.pid = {profile_id}")
    parts.append(f"WHERE {where.sql}")
    return compiler.finish("\n".join(parts))


@dataclass(frozen=True)
class _Predicate:
    """A boolean SQL expression, and the leaves (CTE names) without a row in which
    it cannot be TRUE."""

    sql: str
    needs: frozenset[str] = frozenset()


def _micros(moment: datetime) -> int:
    return (moment - _EPOCH) // _MICROSECOND


def _is_number(value: object) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


class _Compiler:
    def __init__(
        self,
        *,
        now: datetime,
        segments: Mapping[str, Rule],
        vendor: Vendor,
        scores: Mapping[str, ScoreDefinition],
    ) -> None:
        self.now = now
        self.segments = segments
        self.scores = scores
        self.static_segments: Mapping[str, int] = {}
        self.pg = vendor == "postgresql"
        self.float_type = "double precision" if self.pg else "REAL"
        self.ctes: list[str] = []
        self.cte_names: list[str] = []
        # Whether the query reads the profile row itself (traits, static lists).
        self.reads_profile = False
        self._params: list[SqlParam] = []

    # --- parameters -------------------------------------------------------------

    def param(self, value: SqlParam) -> str:
        """A parameter marker for ``value``; ``finish`` numbers them in text order."""
        self._params.append(value)
        return f"\x00{len(self._params) - 1}\x00"

    def finish(self, text: str) -> CompiledQuery:
        params: list[SqlParam] = []

        def replace(match: re.Match[str]) -> str:
            params.append(self._params[int(match.group(1))])
            return "%s"

        return CompiledQuery(sql=_TOKEN.sub(replace, text), params=params)

    def moment(self, value: datetime) -> str:
        """A point in time in the form ``ts()`` produces."""
        if self.pg:
            return f"CAST({self.param(value)} AS timestamptz)"
        return self.param(_micros(value))

    def ts(self, alias: str, field: str = "timestamp") -> str:
        """The event's time; on SQLite integer microseconds since the epoch.

        The fraction is cut off before ``strftime``, which would round it to the
        millisecond (and so ``…:59.999999`` up to the next second).
        """
        if self.pg:
            return f"{alias}.{field}"
        column = f"{alias}.{field}"
        return (
            f"(CAST(strftime('%%s', substr({column}, 1, 19)) AS INTEGER) * 1000000"
            f" + CAST(substr({column} || '.000000', 21, 6) AS INTEGER))"
        )

    def plus(self, ts: str, span: timedelta) -> str:
        micros = span // _MICROSECOND
        if self.pg:
            return f"({ts} + CAST({self.param(micros)} AS double precision) * INTERVAL '1 microsecond')"
        return f"({ts} + {self.param(micros)})"

    # --- the tree ------------------------------------------------------------------

    def predicate(self, rule: Rule, stack: tuple[str, ...]) -> str:
        """A boolean expression over ``p`` that is TRUE or FALSE, never NULL."""
        return self.node(rule, stack).sql

    def node(self, rule: Rule, stack: tuple[str, ...]) -> _Predicate:
        """``predicate`` with the leaves it needs a row of."""
        if isinstance(rule, And):
            if not rule.rules:
                return _Predicate("(1 = 1)")
            parts = [self.node(r, stack) for r in rule.rules]
            return _Predicate(
                "(" + " AND ".join(part.sql for part in parts) + ")",
                frozenset().union(*(part.needs for part in parts)),
            )
        if isinstance(rule, Or):
            if not rule.rules:
                return _Predicate("(1 = 0)")
            parts = [self.node(r, stack) for r in rule.rules]
            return _Predicate(
                "(" + " OR ".join(part.sql for part in parts) + ")",
                frozenset.intersection(*(part.needs for part in parts)),
            )
        if isinstance(rule, Not):
            return _Predicate(f"(NOT {self.predicate(rule.rule, stack)})")
        if isinstance(rule, TraitCondition):
            self.reads_profile = True
            return _Predicate(
                _never_null(self.compare(_Slot(self, "p.traits", rule.path), rule.op, rule.value))
            )
        if isinstance(rule, Aggregate):
            return self.aggregate(rule)
        if isinstance(rule, Recency):
            return self.recency(rule)
        if isinstance(rule, Sequence):
            return self.sequence(rule)
        if isinstance(rule, InSegment):
            return self.in_segment(rule, stack)
        if isinstance(rule, SessionAggregate):
            actual = self.measure(rule.measure)
            return _Predicate(
                _never_null(
                    f"{actual} IS NOT NULL AND "
                    + self.compare_number(actual, rule.op, rule.value, floating=True)
                )
            )
        if isinstance(rule, Trend):
            return _Predicate(self.trend(rule))
        if isinstance(rule, ContextCondition):
            return _Predicate(self.context(rule))
        return _Predicate(self.score(rule, stack))

    # --- sessions, trends, context and scores --------------------------------------------

    def double(self, expr: str) -> str:
        return f"CAST({expr} AS {self.float_type})"

    def measure(self, measure: Measure) -> str:
        """A CTE for ``measure``; returns its value as a double (NULL: no value)."""
        if isinstance(measure, EventMeasure):
            name = self.join_cte(
                self.event_aggregate_body(
                    measure.fn, measure.matcher, measure.property, measure.window
                )
            )
            value = f"{name}.value"
            if measure.fn in {"count", "sum", "distinct"}:
                value = f"COALESCE({value}, 0)"
            return self.double(value)
        return self.session_measure(measure)

    def session_measure(self, measure: SessionMeasure) -> str:
        where = self.inside("s", measure.window, field="started_at")
        if measure.metric == "duration":
            if self.pg:
                amount = "CAST(EXTRACT(EPOCH FROM (s.ended_at - s.started_at)) * 1000000 AS bigint)"
            else:
                amount = f"({self.ts('s', 'ended_at')} - {self.ts('s', 'started_at')})"
            scale = MICROS_PER_SECOND
        else:
            amount = f"s.{measure.metric}"
            scale = 1
        # The evaluator's arithmetic, step for step: an exact integer sum, then divisions.
        if measure.fn == "count":
            value = "COUNT(*)"
        elif measure.fn == "avg":
            value = f"{self.double(f'SUM({amount})')} / COUNT(*)"
        else:
            value = self.double(f"{measure.fn.upper()}({amount})")
        if scale != 1 and measure.fn != "count":
            value = f"{value} / {self.double(str(scale))}"
        name = self.join_cte(
            f"SELECT s.profile_id AS pid, {value} AS value FROM {SESSION_TABLE} s\n"
            f"WHERE {' AND '.join(where)}\nGROUP BY s.profile_id"
        )
        actual = f"{name}.value"
        if measure.fn in {"count", "sum"}:
            actual = f"COALESCE({actual}, 0)"
        return self.double(actual)

    def trend(self, rule: Trend) -> str:
        left, right = self.measure(rule.left), self.measure(rule.right)
        factor = self.param(rule.factor)
        scaled = f"{self.double(factor)} * {right}"
        return _never_null(
            f"{left} IS NOT NULL AND {right} IS NOT NULL AND {left} {_COMPARE[rule.op]} {scaled}"
        )

    def context_text(self, name: str) -> str:
        """The shortcut's value on event ``e`` (``evaluate.context_value``), or NULL."""
        choices = [
            f"NULLIF({_Slot(self, 'e.context', path).string()}, '')" for path in CONTEXT_PATHS[name]
        ]
        if name == "device":
            agent = f"NULLIF({_Slot(self, 'e.context', ('userAgent',)).string()}, '')"

            def has(word: str) -> str:
                return self.text_contains(agent, word)

            choices.append(
                f"(CASE WHEN {agent} IS NULL THEN NULL"
                f" WHEN {has('iPad')} OR {has('Tablet')} THEN {self.text('tablet')}"
                f" WHEN {has('Android')} AND NOT {has('Mobi')} THEN {self.text('tablet')}"
                f" WHEN {has('Mobi')} OR {has('iPhone')} THEN {self.text('mobile')}"
                f" ELSE {self.text('desktop')} END)"
            )
        return choices[0] if len(choices) == 1 else f"COALESCE({', '.join(choices)})"

    def text_contains(self, haystack: str, needle: str) -> str:
        if self.pg:
            return f"(strpos({haystack}, {self.text(needle)}) > 0)"
        return f"(instr({haystack}, {self.text(needle)}) > 0)"

    def context(self, rule: ContextCondition) -> str:
        ts = self.ts("e")
        value = self.context_text(rule.field)
        name = self.join_cte(
            "SELECT latest.pid, latest.value FROM (\n"
            f"SELECT e.profile_id AS pid, {value} AS value, ROW_NUMBER() OVER"
            f" (PARTITION BY e.profile_id ORDER BY {ts} DESC, e.id DESC) AS position"
            f" FROM {EVENT_TABLE} e\nWHERE {ts} <= {self.moment(self.now)} AND {value} IS NOT NULL\n"
            ") latest WHERE latest.position = 1"
        )
        return _never_null(self.compare_text(f"{name}.value", rule.op, rule.value))

    def compare_text(self, actual: str, op: str, expected: Value) -> str:
        """``compare(actual, op, expected)`` for a text-or-NULL value and string operands."""
        if op == "exists":
            return f"{actual} IS NOT NULL"
        if op == "not_exists":
            return f"{actual} IS NULL"
        if op in {"eq", "ne"}:
            assert isinstance(expected, str)
            same = _never_null(f"{actual} = {self.text(expected)}")
            return same if op == "eq" else f"NOT {same}"
        if op in {"in", "not_in"}:
            assert isinstance(expected, list)
            found = [f"{actual} = {self.text(item)}" for item in expected if isinstance(item, str)]
            any_found = _never_null(" OR ".join(found)) if found else "(1 = 0)"
            return any_found if op == "in" else f"NOT {any_found}"
        assert isinstance(expected, str)
        if op == "contains":
            return self.text_contains(actual, expected)
        if op == "starts_with":
            return f"(substr({actual}, 1, length({self.text(expected)})) = {self.text(expected)})"
        if op == "ends_with":
            return (
                f"(length({actual}) >= length({self.text(expected)}) AND substr({actual},"
                f" length({actual}) - length({self.text(expected)}) + 1) = {self.text(expected)})"
            )
        raise ValueError(f"operator {op!r} does not apply to context values")

    def score(self, rule: ScoreCondition, stack: tuple[str, ...]) -> str:
        definition = self.scores.get(rule.slug)
        key = f"score:{rule.slug}"
        if definition is None or key in stack:
            return "(1 = 0)"  # no value: every comparison is false
        # Added left to right in floating point, like the evaluator.
        total = self.double("0")
        for criterion in definition.criteria:
            holds = self.predicate(criterion.rule, (*stack, key))
            points = self.double(self.param(criterion.points))
            total = f"({total} + CASE WHEN {holds} THEN {points} ELSE {self.double('0')} END)"
        return _never_null(self.compare_number(total, rule.op, rule.value, floating=True))

    def in_segment(self, rule: InSegment, stack: tuple[str, ...]) -> _Predicate:
        static_id = self.static_segments.get(rule.slug)
        if static_id is not None:
            self.reads_profile = True
            listed = (
                f"(p.id IN (SELECT sm.profile_id FROM {MEMBERSHIP_TABLE} sm"
                f" WHERE sm.segment_id = {self.param(static_id)} AND sm.exited_at IS NULL))"
            )
            return _Predicate(listed if rule.member else f"(NOT {listed})")
        target = self.segments.get(rule.slug)
        if target is None or rule.slug in stack:
            # An unknown (or, defensively, cyclic) segment has no members.
            return _Predicate("(1 = 0)" if rule.member else "(1 = 1)")
        inside = self.node(target, (*stack, rule.slug))
        return inside if rule.member else _Predicate(f"(NOT {inside.sql})")

    def join_cte(self, body: str) -> str:
        """A leaf's CTE (one row per profile, ``pid``), joined to the profile by
        ``compile_rule``; returns its name."""
        name = f"leaf_{len(self.ctes)}"
        self.ctes.append(f"{name} AS (\n{body}\n)")
        self.cte_names.append(name)
        return name

    # --- events ----------------------------------------------------------------------

    def event_slot(self, alias: str, path: tuple[str, ...]) -> _Slot:
        if path[0] == "context" and len(path) > 1:
            return _Slot(self, f"{alias}.context", path[1:])
        return _Slot(self, f"{alias}.properties", path)

    def matches(self, alias: str, matcher: EventMatcher) -> list[str]:
        conditions = [f"{alias}.name = {self.param(matcher.event)}"]
        conditions.extend(self.filter_holds(alias, item) for item in matcher.where)
        return conditions

    def filter_holds(self, alias: str, item: PropertyFilter) -> str:
        return _never_null(self.compare(self.event_slot(alias, item.path), item.op, item.value))

    def inside(self, alias: str, window: Window, *, field: str = "timestamp") -> list[str]:
        ts = self.ts(alias, field)
        conditions = [f"{ts} <= {self.moment(self.now - window.newest_age)}"]
        if window.oldest_age is not None:
            conditions.append(f"{ts} > {self.moment(self.now - window.oldest_age)}")
        if window.start is not None:
            conditions.append(f"{ts} >= {self.moment(window.start)}")
        if window.end is not None:
            conditions.append(f"{ts} < {self.moment(window.end)}")
        return conditions

    def event_aggregate_body(
        self,
        fn: str,
        matcher: EventMatcher,
        prop: tuple[str, ...] | None,
        window: Window,
    ) -> str:
        where = self.matches("e", matcher) + self.inside("e", window)
        if fn == "count":
            value = "COUNT(*)"
        else:
            assert prop is not None
            slot = self.event_slot("e", prop)
            if fn == "distinct" and self.pg:
                value = f"COUNT(DISTINCT {slot.distinct_key()})"
            elif fn == "distinct":
                value = (
                    f"COUNT(DISTINCT {slot.sqlite_float_value()})"
                    f" + COUNT(DISTINCT {slot.sqlite_other_key()})"
                )
            elif fn == "avg":
                # In floating point like the evaluator (fsum / len), not exact numeric.
                number = slot.number()
                value = f"CAST(SUM({number}) AS {self.float_type}) / NULLIF(COUNT({number}), 0)"
            else:
                value = f"{fn.upper()}({slot.number()})"
        return (
            f"SELECT e.profile_id AS pid, {value} AS value FROM {EVENT_TABLE} e\n"
            f"WHERE {' AND '.join(where)}\nGROUP BY e.profile_id"
        )

    def aggregate(self, rule: Aggregate) -> _Predicate:
        name = self.join_cte(
            self.event_aggregate_body(rule.fn, rule.matcher, rule.property, rule.window)
        )
        actual = f"{name}.value"
        if rule.fn in {"count", "sum", "distinct"}:
            # Over no events (no row, or no numbers for sum) these are 0.
            actual = f"COALESCE({actual}, 0)"
            holds_without_events = compare(0.0, rule.op, rule.value)
        else:
            holds_without_events = False  # no value: every comparison is false
        return _Predicate(
            _never_null(
                f"{actual} IS NOT NULL AND {self.compare_number(actual, rule.op, rule.value, floating=rule.fn == 'avg')}"
            ),
            frozenset() if holds_without_events else frozenset({name}),
        )

    def recency(self, rule: Recency) -> _Predicate:
        ts = self.ts("e")
        where = [*self.matches("e", rule.matcher), f"{ts} <= {self.moment(self.now)}"]
        name = self.join_cte(
            f"SELECT e.profile_id AS pid, MAX({ts}) AS last FROM {EVENT_TABLE} e\n"
            f"WHERE {' AND '.join(where)}\nGROUP BY e.profile_id"
        )
        # now - last <op> age  <=>  last <mirrored op> now - age
        mirrored = {"gt": "<", "gte": "<=", "lt": ">", "lte": ">="}[rule.op]
        bound = self.moment(self.now - rule.age)
        return _Predicate(
            _never_null(f"{name}.last IS NOT NULL AND {name}.last {mirrored} {bound}"),
            frozenset({name}),
        )

    def sequence(self, rule: Sequence) -> _Predicate:
        first_ts, then_ts = self.ts("f"), self.ts("t")
        deadline = self.plus(first_ts, rule.within)
        then_where = [
            "t.profile_id = f.profile_id",
            *self.matches("t", rule.then),
            "t.id <> f.id",
            f"{then_ts} >= {first_ts}",
            f"{then_ts} <= {deadline}",
            f"{then_ts} <= {self.moment(self.now)}",
        ]
        followed = f"EXISTS (SELECT 1 FROM {EVENT_TABLE} t WHERE {' AND '.join(then_where)})"
        where = self.matches("f", rule.first) + self.inside("f", rule.window)
        if rule.followed:
            where.append(followed)
        else:
            where.append(f"{self.plus(first_ts, rule.within)} <= {self.moment(self.now)}")
            where.append(f"NOT {followed}")
        name = self.join_cte(
            f"SELECT DISTINCT f.profile_id AS pid FROM {EVENT_TABLE} f\nWHERE {' AND '.join(where)}"
        )
        return _Predicate(f"({name}.pid IS NOT NULL)", frozenset({name}))

    # --- comparisons -------------------------------------------------------------------

    def compare_number(
        self, actual: str, op: str, expected: Value, *, floating: bool = False
    ) -> str:
        """``compare(actual, op, expected)`` where ``actual`` is a non-null SQL number.

        ``floating``: ``actual`` is a double, compared with doubles as Python does.
        """
        number = functools.partial(self.number, floating=floating)
        if op == "exists":
            return "1 = 1"
        if op in {"not_exists", "is_empty", "contains", "starts_with", "ends_with"}:
            return "1 = 0"
        if op in {"eq", "ne"}:
            same = f"{actual} = {number(expected)}" if _is_number(expected) else "1 = 0"
            return same if op == "eq" else f"NOT ({same})"
        if op in {"in", "not_in"}:
            assert isinstance(expected, list)
            found = [f"{actual} = {number(item)}" for item in expected if _is_number(item)]
            any_found = "(" + " OR ".join(found) + ")" if found else "1 = 0"
            return any_found if op == "in" else f"NOT {any_found}"
        if op == "between":
            assert isinstance(expected, list)
            low, high = expected
            assert _is_number(low)
            assert _is_number(high)
            return f"{actual} BETWEEN {number(low)} AND {number(high)}"
        if op in _ORDER:
            if not _is_number(expected):
                return "1 = 0"
            return f"{actual} {_ORDER[op]} {number(expected)}"
        raise ValueError(f"unknown operator {op!r}")

    def number(self, value: SqlParam, *, floating: bool = False) -> str:
        if self.pg:
            return f"CAST({self.param(value)} AS {'double precision' if floating else 'numeric'})"
        return self.param(value)

    def text(self, value: str) -> str:
        if self.pg:
            return f'CAST({self.param(value)} AS text) COLLATE "C"'
        return self.param(value)

    def compare(self, slot: _Slot, op: str, expected: Value) -> str:
        """``compare(lookup(slot), op, expected)`` as SQL (may be NULL: wrap it)."""
        if op == "exists":
            return f"NOT {slot.missing()}"
        if op == "not_exists":
            return slot.missing()
        if op == "is_empty":
            return f"({slot.missing()} OR {slot.empty()})"
        if op in {"eq", "ne"}:
            same = _never_null(self.same(slot, expected))
            return same if op == "eq" else f"NOT {same}"
        if op in {"in", "not_in"}:
            assert isinstance(expected, list)
            found = [self.same(slot, item) for item in expected]
            any_found = _never_null(" OR ".join(found)) if found else "(1 = 0)"
            return any_found if op == "in" else f"NOT {any_found}"
        if op == "between":
            assert isinstance(expected, list)
            low, high = expected
            assert _is_number(low)
            assert _is_number(high)
            return f"{slot.number()} BETWEEN {self.number(low)} AND {self.number(high)}"
        if op in _ORDER:
            if _is_number(expected):
                return f"{slot.number()} {_ORDER[op]} {self.number(expected)}"
            if isinstance(expected, str):
                return f"{slot.string()} {_ORDER[op]} {self.text(expected)}"
            return "1 = 0"
        if op == "contains":
            element = slot.has_element(expected)
            if isinstance(expected, str):
                return f"({slot.string_contains(expected)} OR {element})"
            return element
        if op in {"starts_with", "ends_with"}:
            if not isinstance(expected, str):
                return "1 = 0"
            return slot.starts_with(expected) if op == "starts_with" else slot.ends_with(expected)
        raise ValueError(f"unknown operator {op!r}")

    def same(self, slot: _Slot, expected: Value) -> str:
        """``lookup(slot) is not None and _same(actual, expected)`` for a scalar."""
        if isinstance(expected, bool):
            return slot.is_bool(expected)
        if _is_number(expected):
            return f"{slot.number()} = {self.number(expected)}"
        if isinstance(expected, str):
            if self.pg:
                return slot.is_string(expected)
            return f"{slot.string()} = {self.text(expected)}"
        # None matches nothing present; a list never equals a scalar rule value.
        return "1 = 0"


_ORDER = {"lt": "<", "lte": "<=", "gt": ">", "gte": ">="}
_COMPARE = {"eq": "=", "ne": "<>", **_ORDER}


def _never_null(expr: str) -> str:
    return f"COALESCE(({expr}), 1 = 0)"


class _Slot:
    """The JSON value at ``path`` inside the JSON column ``doc`` (None when absent)."""

    def __init__(
        self, compiler: _Compiler, doc: str, path: tuple[str, ...], *, element: bool = False
    ) -> None:
        self.c = compiler
        self.doc = doc
        self.path = path
        # SQLite: a row of json_each (``doc`` is its alias), whose columns are typed already.
        self.element = element

    # --- raw access per vendor ---------------------------------------------------------

    def _pg_value(self) -> str:
        # ``-> text`` reads object members only (never array positions), like lookup().
        expr = self.doc
        for key in self.path:
            expr = f"({expr} -> CAST({self.c.param(key)} AS text))"
        return expr

    def _sqlite_chain(self) -> tuple[str, str] | None:
        """For keys a JSON path cannot name: (container JSON, key) via json_each.

        A path label is matched against the key as written in the stored text, and
        ``json.dumps`` escapes quotes, backslashes, control and non-ASCII characters;
        ``json_each`` decodes keys, so such keys are looked up through it instead.
        """
        if all(_PLAIN_KEY.fullmatch(key) for key in self.path):
            return None
        container = self.doc
        for key in self.path[:-1]:
            container = (
                f"(SELECT j.value FROM json_each({container}) j"
                f" WHERE j.key = {self.c.param(key)} AND j.type = 'object')"
            )
        return container, self.path[-1]

    def _sqlite_path(self) -> str:
        return self.c.param("$" + "".join(f'."{key}"' for key in self.path))

    def type(self) -> str:
        """SQLite: json_type names; PostgreSQL: jsonb_typeof names; NULL when absent."""
        if self.c.pg:
            return f"jsonb_typeof({self._pg_value()})"
        return self._sqlite_field("type", "json_type")

    def raw(self) -> str:
        """SQLite: the SQL value (JSON text for arrays/objects); PostgreSQL: jsonb."""
        if self.c.pg:
            return self._pg_value()
        return self._sqlite_field("value", "json_extract")

    def _sqlite_field(self, each_column: str, json_function: str) -> str:
        """A json_each column of the value (``type`` or ``value``), or the json_* function."""
        if self.element:
            return f"{self.doc}.{each_column}"
        chain = self._sqlite_chain()
        if chain is not None:
            container, key = chain
            return (
                f"(SELECT j.{each_column} FROM json_each({container}) j "
                f"WHERE j.key = {self.c.param(key)})"
            )
        return f"{json_function}({self.doc}, {self._sqlite_path()})"

    def _pg_text(self) -> str:
        """The value as text (a string unquoted), NULL when absent or JSON null."""
        if not self.path:
            return f"({self.doc} #>> '{{}}')"
        # ``->>`` on the parent reads the member as text in one step (no jsonb first).
        parent = _Slot(self.c, self.doc, self.path[:-1])._pg_value()
        return f"({parent} ->> CAST({self.c.param(self.path[-1])} AS text))"

    # --- typed views --------------------------------------------------------------------

    def missing(self) -> str:
        return f"(COALESCE({self.type()}, 'null') = 'null')"

    def number(self) -> str:
        """The value when it is a JSON number, else NULL."""
        if self.c.pg:
            # jsonb casts a number straight to numeric (the same value as its text).
            return (
                f"(CASE WHEN {self.type()} = 'number' THEN CAST({self._pg_value()} AS numeric) END)"
            )
        return f"(CASE WHEN {self.type()} IN ('integer', 'real') THEN {self.raw()} END)"

    def distinct_key(self) -> str:
        """PostgreSQL: one text key per distinct value, for a single ``COUNT(DISTINCT)``.

        A number by the bytes of its double (equal doubles, equal keys; jsonb holds no
        -0 or NaN), any other present value by its type and text; NULL when absent:
        the evaluator's ``_distinct_key``. One distinct count sorts each group once,
        and the simple ``CASE`` reads the type once.
        """
        text = self._pg_text()
        number = f"encode(float8send(CAST({self._pg_value()} AS double precision)), 'hex')"
        branches = [f"WHEN 'number' THEN 'number:' || {number}"] + [
            f"WHEN '{kind}' THEN '{kind}:' || {text}"
            for kind in ("string", "boolean", "array", "object")
        ]
        return f"(CASE {self.type()} {' '.join(branches)} END)"

    def sqlite_float_value(self) -> str:
        """SQLite: the value as a float when a number (distinct counts numbers numerically)."""
        return (
            f"(CASE WHEN {self.type()} IN ('integer', 'real') THEN CAST({self.raw()} AS REAL) END)"
        )

    def sqlite_other_key(self) -> str:
        """SQLite: a typed text key for values that are present and not numbers, else NULL."""
        kind = self.type()
        return (
            f"(CASE WHEN {kind} IN ('text', 'true', 'false', 'array', 'object')"
            f" THEN {kind} || ':' || {self.raw()} END)"
        )

    def string(self) -> str:
        """The value when it is a JSON string, else NULL."""
        if self.c.pg:
            return f"(CASE WHEN {self.type()} = 'string' THEN {self._pg_text()} END) COLLATE \"C\""
        return f"(CASE WHEN {self.type()} = 'text' THEN {self.raw()} END)"

    def is_bool(self, value: bool) -> str:
        literal = "'true'" if value else "'false'"
        if self.c.pg:
            return f"({self._pg_value()} = CAST({literal} AS jsonb))"
        return f"({self.type()} = {literal})"

    def is_string(self, value: str) -> str:
        """PostgreSQL: the value is the JSON string ``value``: its text is ``value`` (read
        with ``->>``, cheaper than comparing jsonb) and it is a string (checked only
        for the rows whose text matched)."""
        return f"({self._pg_text()} = {self.c.text(value)} AND {self.type()} = 'string')"

    def empty(self) -> str:
        if self.c.pg:
            value = self._pg_value()
            return (
                f"({value} = CAST('\"\"' AS jsonb) OR {value} = CAST('[]' AS jsonb)"
                f" OR {value} = CAST('{{}}' AS jsonb))"
            )
        kind = self.type()
        return (
            f"(({kind} = 'text' AND {self.raw()} = '')"
            f" OR ({kind} IN ('array', 'object') AND {self.raw()} IN ('[]', '{{}}')))"
        )

    def string_contains(self, needle: str) -> str:
        if self.c.pg:
            return f"(strpos({self.string()}, {self.c.text(needle)}) > 0)"
        return f"(instr({self.string()}, {self.c.text(needle)}) > 0)"

    def starts_with(self, prefix: str) -> str:
        value = self.string()
        if self.c.pg:
            return f"(left({value}, length({self.c.text(prefix)})) = {self.c.text(prefix)})"
        return f"(substr({value}, 1, length({self.c.param(prefix)})) = {self.c.param(prefix)})"

    def ends_with(self, suffix: str) -> str:
        value = self.string()
        if self.c.pg:
            return f"(right({value}, length({self.c.text(suffix)})) = {self.c.text(suffix)})"
        return (
            f"(length({value}) >= length({self.c.param(suffix)})"
            f" AND substr({value}, length({value}) - length({self.c.param(suffix)}) + 1)"
            f" = {self.c.param(suffix)})"
        )

    def has_element(self, expected: Value) -> str:
        """The value is an array with an element ``_same`` as ``expected``."""
        if self.c.pg:
            element = _Slot(self.c, "el.value", ())
            source = f"jsonb_array_elements(CASE WHEN {self.type()} = 'array' THEN {self._pg_value()} END)"
        else:
            element = _Slot(self.c, "el", (), element=True)
            source = f"json_each(CASE WHEN {self.type()} = 'array' THEN {self.raw()} END)"
        if expected is None:
            # _same(None, None) holds: an array containing null contains null.
            condition = f"{element.type()} = 'null'"
        else:
            condition = self.c.same(element, expected)
        return f"EXISTS (SELECT 1 FROM {source} el WHERE {condition})"
