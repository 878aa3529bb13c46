"""The batch SQL compiler agrees with the reference evaluator, on SQLite and PostgreSQL.

Every test builds profiles and events with the factories (in the SQLite test
database), then asks two questions: which profile ids does the compiled SQL select,
and which profiles does ``evaluate(...).matched`` accept one by one. The answers
must be the same set. The ``postgresql`` variant copies the same rows into a
throwaway PostgreSQL database and runs the PostgreSQL dialect there.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg.types.json import Jsonb

from personalize.models import Event, Profile, Session
from personalize.sessions import rebuild_sessions
from segments.rules import evaluate
from segments.rules.sql import Vendor, compile_rule
from segments.rules.tree import (
    AGGREGATE_FNS,
    ALL_TIME,
    CONTEXT_FIELDS,
    CONTEXT_OPERATORS,
    SESSION_FIELDS,
    SESSION_FNS,
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
    SessionMeasure,
    TraitCondition,
    Trend,
    Value,
    Window,
)
from segments.selectors import profile_sessions, profile_snapshot, segment_member_ids
from tests.factories import EventFactory, ProfileFactory
from tests.postgresql_runs import POSTGRES_URL

T0 = datetime(2026, 1, 10, 12, 0, tzinfo=UTC)
H = timedelta(hours=1)
US = timedelta(microseconds=1)

MemberIds = Callable[..., set[int]]
Scores = Mapping[str, ScoreDefinition]

# --- running a rule both ways --------------------------------------------------------


def reference_ids(
    rule: Rule, segments: Mapping[str, Rule], now: datetime, scores: Scores | None = None
) -> set[int]:
    names = set(Event.objects.values_list("name", flat=True))
    return {
        profile.id
        for profile in Profile.objects.order_by("id")
        if evaluate(
            rule,
            profile_snapshot(
                profile=profile,
                event_names=names,
                since=None,
                sessions=profile_sessions(profile=profile, since=None),
            ),
            now,
            segments,
            scores=scores,
            explain=False,
        ).matched
    }


@pytest.fixture(scope="module")
def postgres() -> Iterator[psycopg.Connection[Any]]:
    """A throwaway PostgreSQL database with the two tables the compiler reads.

    Unreachable PostgreSQL is an error, not a skip: these tests always run in CI.
    """
    name = f"p13n_sql_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        url = POSTGRES_URL.rsplit("/", 1)[0] + "/" + name
        with psycopg.connect(url, autocommit=True) as conn:
            # A session zone other than UTC: the SQL must not depend on it.
            conn.execute("SET TIME ZONE 'America/New_York'")
            conn.execute(
                "CREATE TABLE personalize_profile (id bigint PRIMARY KEY, traits jsonb NOT NULL)"
            )
            conn.execute(
                "CREATE TABLE personalize_event ("
                " id bigint PRIMARY KEY,"
                " profile_id bigint NOT NULL REFERENCES personalize_profile (id),"
                " name varchar(255) NOT NULL,"
                " timestamp timestamptz NOT NULL,"
                " properties jsonb NOT NULL,"
                " context jsonb NOT NULL)"
            )
            conn.execute(
                "CREATE TABLE personalize_session ("
                " id bigint PRIMARY KEY,"
                " profile_id bigint NOT NULL REFERENCES personalize_profile (id),"
                " started_at timestamptz NOT NULL,"
                " ended_at timestamptz NOT NULL,"
                " events integer NOT NULL,"
                " pages integer NOT NULL)"
            )
            yield conn
    finally:
        with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def copy_rows_to(conn: psycopg.Connection[Any]) -> None:
    conn.execute("TRUNCATE personalize_session, personalize_event, personalize_profile")
    with conn.cursor() as cursor:
        cursor.executemany(
            "INSERT INTO personalize_profile (id, traits) VALUES (%s, %s)",
            [(pid, Jsonb(traits)) for pid, traits in Profile.objects.values_list("id", "traits")],
        )
        cursor.executemany(
            "INSERT INTO personalize_event"
            " (id, profile_id, name, timestamp, properties, context)"
            " VALUES (%s, %s, %s, %s, %s, %s)",
            [
                (eid, pid, name, ts, Jsonb(props), Jsonb(ctx))
                for eid, pid, name, ts, props, ctx in Event.objects.values_list(
                    "id", "profile_id", "name", "timestamp", "properties", "context"
                )
            ],
        )
        cursor.executemany(
            "INSERT INTO personalize_session"
            " (id, profile_id, started_at, ended_at, events, pages)"
            " VALUES (%s, %s, %s, %s, %s, %s)",
            list(
                Session.objects.values_list(
                    "id", "profile_id", "started_at", "ended_at", "events", "pages"
                )
            ),
        )


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.stack)])
def member_ids(request: pytest.FixtureRequest, db: None) -> MemberIds:
    if request.param == "sqlite":

        def on_sqlite(
            rule: Rule, segments: Mapping[str, Rule], now: datetime, scores: Scores | None = None
        ) -> set[int]:
            return segment_member_ids(rule=rule, segments=segments, now=now, scores=scores)

        return on_sqlite

    conn: psycopg.Connection[Any] = request.getfixturevalue("postgres")

    def on_postgresql(
        rule: Rule, segments: Mapping[str, Rule], now: datetime, scores: Scores | None = None
    ) -> set[int]:
        copy_rows_to(conn)
        query = compile_rule(rule, now=now, segments=segments, vendor="postgresql", scores=scores)
        return {row[0] for row in conn.execute(query.sql, query.params).fetchall()}

    return on_postgresql


# --- a small world with the awkward values -------------------------------------------

TRAITS: dict[str, dict[str, Any]] = {
    "true": {
        "flag": True,
        "n": 1,
        "s": "abc",
        "tags": ["a", 1, True, None],
        "addr": {"city": "Paris"},
    },
    "one": {
        "flag": 1,
        "n": 1.0,
        "s": "abd",
        "tags": ["b", 2.5],
        "addr": {"city": "paris"},
        "list": {"0": 5},
    },
    "missing": {},
    "null": {"flag": None, "n": None, "s": None, "tags": None, "addr": None},
    "empty": {"flag": False, "n": 0, "s": "", "tags": [], "addr": {}},
    "odd": {
        "n": "1",
        "s": "é",
        "tags": "a,b",
        "addr": ["Paris"],
        "list": [5],
        'we"ird key': {"k": 2},
        "é": {"ß": 1},
    },
}


def make_profile(traits: dict[str, Any]) -> Profile:
    return cast(Profile, ProfileFactory(traits=traits))


def build_world() -> dict[str, int]:
    profiles = {label: make_profile(traits) for label, traits in TRAITS.items()}
    # "true": purchases on the window edges and after now.
    for offset, amount in [
        (-48 * H, 100),  # exactly 48h ago: outside "last 48h"
        (-48 * H + US, 10),  # one microsecond later: inside
        (-H, 2.5),
        (timedelta(0), "7"),  # at now: inside; a string is not a number
        (H, 1000),  # after now: never counts
    ]:
        EventFactory(
            profile=profiles["true"],
            name="purchase",
            timestamp=T0 + offset,
            properties={"amount": amount, "sku": "A"},
            context={"page": {"path": "/checkout"}},
        )
    # "one": a bool amount, duplicates for distinct, a view followed by a purchase.
    for offset, props in [
        (-5 * H, {"amount": True, "sku": "A"}),
        (-4 * H, {"amount": 1, "sku": "a"}),
        (-3 * H, {"amount": 1.0, "sku": 1}),
        (-2 * H, {"amount": None, "sku": True}),
    ]:
        EventFactory(
            profile=profiles["one"], name="purchase", timestamp=T0 + offset, properties=props
        )
    EventFactory(
        profile=profiles["one"], name="view", timestamp=T0 - 10 * H, properties={"sku": "A"}
    )
    EventFactory(profile=profiles["one"], name="cart", timestamp=T0 - 10 * H, properties={})
    # "empty": a cart never followed by a purchase, and one followed exactly at the deadline.
    EventFactory(profile=profiles["empty"], name="cart", timestamp=T0 - 3 * H, properties={})
    EventFactory(profile=profiles["odd"], name="cart", timestamp=T0 - 3 * H, properties={})
    EventFactory(
        profile=profiles["odd"], name="purchase", timestamp=T0 - H, properties={"amount": []}
    )
    for value in (1, 1, 2):  # an average of 4/3, compared as Python floats
        EventFactory(
            profile=profiles["empty"], name="rate", timestamp=T0 - H, properties={"v": value}
        )
    # "null": a view exactly 2h ago (recency boundaries).
    EventFactory(
        profile=profiles["null"], name="view", timestamp=T0 - 2 * H, properties={"sku": "A"}
    )
    return {label: profile.id for label, profile in profiles.items()}


def trait(path: str, op: Operator, value: Value = None) -> TraitCondition:
    return TraitCondition(path=tuple(path.split(".")), op=op, value=value)


PURCHASE = EventMatcher("purchase")
LAST_48H = Window(oldest_age=48 * H)

CASES: list[tuple[str, Rule, set[str]]] = [
    # eq / ne: bool never equals a number; 1 equals 1.0; null is missing.
    ("eq true", trait("flag", "eq", True), {"true"}),
    ("eq 1", trait("flag", "eq", 1), {"one"}),
    ("eq false", trait("flag", "eq", False), {"empty"}),
    ("eq 1 numeric", trait("n", "eq", 1), {"true", "one"}),
    ("eq string 1", trait("n", "eq", "1"), {"odd"}),
    ("eq null never", trait("flag", "eq", None), set()),
    ("ne 1 includes missing", trait("n", "ne", 1), {"missing", "null", "empty", "odd"}),
    ("ne null always", trait("n", "ne", None), set(TRAITS)),
    ("not eq true", Not(trait("flag", "eq", True)), set(TRAITS) - {"true"}),
    ("in", trait("n", "in", [0, "1", True, None]), {"empty", "odd"}),
    ("not_in", trait("n", "not_in", [1]), {"missing", "null", "empty", "odd"}),
    ("in empty list", trait("n", "in", []), set()),
    # ordering: numbers numerically, strings by code point, never across types.
    ("lt number", trait("n", "lt", 1), {"empty"}),
    ("lte number", trait("n", "lte", 1), {"true", "one", "empty"}),
    ("gt number", trait("n", "gt", 0.5), {"true", "one"}),
    ("gte number", trait("n", "gte", 0), {"true", "one", "empty"}),
    ("gt string", trait("s", "gt", "abc"), {"one", "odd"}),
    ("lt string code point", trait("s", "lt", "z"), {"true", "one", "empty"}),
    ("gte string", trait("s", "gte", "abc"), {"true", "one", "odd"}),
    ("lte string Z", trait("s", "lte", "Z"), {"empty"}),
    ("not lt over missing", Not(trait("n", "lt", 1)), set(TRAITS) - {"empty"}),
    ("between", trait("n", "between", [0.5, 1]), {"true", "one"}),
    ("not between", Not(trait("n", "between", [0, 0])), set(TRAITS) - {"empty"}),
    # strings and arrays
    ("contains substring", trait("s", "contains", "b"), {"true", "one"}),
    ("contains empty string", trait("s", "contains", ""), {"true", "one", "empty", "odd"}),
    ("contains element", trait("tags", "contains", "a"), {"true", "odd"}),
    ("contains number element", trait("tags", "contains", 1), {"true"}),
    ("contains half", trait("tags", "contains", 2.5), {"one"}),
    ("not contains", Not(trait("tags", "contains", "a")), {"one", "missing", "null", "empty"}),
    ("starts_with", trait("s", "starts_with", "ab"), {"true", "one"}),
    ("starts_with empty", trait("s", "starts_with", ""), {"true", "one", "empty", "odd"}),
    ("ends_with", trait("s", "ends_with", "d"), {"one"}),
    ("ends_with longer", trait("s", "ends_with", "xabc"), set()),
    ("ends_with number", trait("n", "ends_with", 1), set()),
    ("exists", trait("tags", "exists"), {"true", "one", "empty", "odd"}),
    ("not_exists", trait("tags", "not_exists"), {"missing", "null"}),
    ("is_empty", trait("tags", "is_empty"), {"missing", "null", "empty"}),
    ("is_empty object", trait("addr", "is_empty"), {"missing", "null", "empty"}),
    ("is_empty zero is not", trait("n", "is_empty"), {"missing", "null"}),
    # paths: through objects only, never into arrays
    ("nested", trait("addr.city", "eq", "Paris"), {"true"}),
    ("nested exists", trait("addr.city", "exists"), {"true", "one"}),
    ("no array index", trait("list.0", "eq", 5), {"one"}),
    ("non-ASCII keys", trait("é.ß", "eq", 1), {"odd"}),
    ("quoted key", TraitCondition(path=('we"ird key', "k"), op="eq", value=2), {"odd"}),
    # aggregates and windows
    ("count ever, not after now", Aggregate("count", PURCHASE, "eq", 4), {"true", "one"}),
    ("count 48h edge", Aggregate("count", PURCHASE, "eq", 3, window=LAST_48H), {"true"}),
    ("count zero", Aggregate("count", PURCHASE, "eq", 0), {"missing", "null", "empty"}),
    ("count ne", Aggregate("count", PURCHASE, "ne", 4), set(TRAITS) - {"true", "one"}),
    ("sum numbers only", Aggregate("sum", PURCHASE, "eq", 12.5, ("amount",), LAST_48H), {"true"}),
    ("sum skips bools", Aggregate("sum", PURCHASE, "eq", 2, ("amount",)), {"one"}),
    (
        "sum zero",
        Aggregate("sum", PURCHASE, "eq", 0, ("amount",)),
        {"missing", "null", "empty", "odd"},
    ),
    ("avg", Aggregate("avg", PURCHASE, "eq", 6.25, ("amount",), LAST_48H), {"true"}),
    (
        "avg in floating point",
        Aggregate("avg", EventMatcher("rate"), "eq", 4 / 3, ("v",)),
        {"empty"},
    ),
    ("avg no value ne", Aggregate("avg", PURCHASE, "ne", 1, ("amount",)), {"true"}),
    ("min", Aggregate("min", PURCHASE, "eq", 2.5, ("amount",), LAST_48H), {"true"}),
    ("max", Aggregate("max", PURCHASE, "lt", 2, ("amount",)), {"one"}),
    (
        "max no value",
        Not(Aggregate("max", PURCHASE, "exists", None, ("amount",))),
        set(TRAITS) - {"true", "one"},
    ),
    ("distinct typed", Aggregate("distinct", PURCHASE, "eq", 4, ("sku",)), {"one"}),
    ("distinct numbers", Aggregate("distinct", PURCHASE, "eq", 2, ("amount",)), {"one"}),
    (
        "between ages",
        Aggregate("count", PURCHASE, "eq", 1, window=Window(oldest_age=2 * H, newest_age=H)),
        {"true", "odd"},
    ),
    (
        "calendar window",
        Aggregate("count", PURCHASE, "eq", 1, window=Window(start=T0 - H, end=T0)),
        {"true", "odd"},
    ),
    (
        "filter",
        Aggregate(
            "count", EventMatcher("purchase", (PropertyFilter(("sku",), "eq", "A"),)), "gte", 1
        ),
        {"true", "one"},
    ),
    (
        "context filter",
        Aggregate(
            "count",
            EventMatcher(
                "purchase", (PropertyFilter(("context", "page", "path"), "eq", "/checkout"),)
            ),
            "eq",
            4,
        ),
        {"true"},
    ),
    # recency: the last event at or before now
    ("recency lt", Recency(EventMatcher("view"), "lt", 2 * H), set()),
    ("recency lte", Recency(EventMatcher("view"), "lte", 2 * H), {"null"}),
    ("recency gt", Recency(EventMatcher("view"), "gt", 2 * H), {"one"}),
    ("recency gte", Recency(EventMatcher("view"), "gte", 2 * H), {"null", "one"}),
    ("recency at now", Recency(PURCHASE, "lte", timedelta(0)), {"true"}),
    (
        "never seen",
        Not(Recency(EventMatcher("view"), "gt", timedelta(0))),
        set(TRAITS) - {"one", "null"},
    ),
    # sequences
    ("followed", Sequence(EventMatcher("cart"), PURCHASE, within=2 * H), {"odd"}),
    ("followed too late", Sequence(EventMatcher("cart"), PURCHASE, within=H), set()),
    (
        "not followed",
        Sequence(EventMatcher("cart"), PURCHASE, within=2 * H, followed=False),
        {"one", "empty"},
    ),
    (
        "not followed, judged exactly at the deadline",
        Sequence(EventMatcher("cart"), PURCHASE, within=3 * H, followed=False),
        {"one", "empty"},
    ),
    (
        "not followed, not yet judged",
        Sequence(EventMatcher("cart"), PURCHASE, within=10 * H, followed=False),
        set(),
    ),
    ("same event is not its own follower", Sequence(PURCHASE, PURCHASE, within=H), {"true", "one"}),
    (
        "sequence window",
        Sequence(
            EventMatcher("cart"),
            PURCHASE,
            within=2 * H,
            followed=False,
            window=Window(oldest_age=5 * H),
        ),
        {"empty"},
    ),
    # composition
    ("and", And((trait("n", "eq", 1), trait("flag", "eq", 1))), {"one"}),
    ("or", Or((trait("n", "eq", 0), trait("flag", "eq", True))), {"true", "empty"}),
    ("in segment", InSegment("numbers"), {"true", "one", "empty"}),
    ("not in segment", InSegment("numbers", member=False), {"missing", "null", "odd"}),
    ("unknown segment", InSegment("nope"), set()),
    ("not in unknown segment", InSegment("nope", member=False), set(TRAITS)),
    ("cyclic segment", InSegment("loop"), set()),
]

SEGMENTS: dict[str, Rule] = {
    "numbers": trait("n", "gte", 0),
    "loop": And((InSegment("loop"), trait("n", "exists"))),
}


@pytest.mark.parametrize(
    ("rule", "expected"), [(r, e) for _, r, e in CASES], ids=[c[0] for c in CASES]
)
def test_sql_selects_what_the_reference_evaluator_matches(
    member_ids: MemberIds, rule: Rule, expected: set[str]
) -> None:
    ids = build_world()
    labels = {pid: label for label, pid in ids.items()}

    selected = member_ids(rule, SEGMENTS, T0)

    assert {labels[pid] for pid in reference_ids(rule, SEGMENTS, T0)} == expected
    assert {labels[pid] for pid in selected} == expected


@pytest.mark.parametrize(
    ("op", "expected"), [("gt", True), ("gte", True), ("lt", False), ("lte", False)]
)
def test_it_keeps_microseconds_at_the_end_of_a_second(
    member_ids: MemberIds, op: Any, expected: bool
) -> None:
    # SQLite's strftime rounds 12:59:59.999999 up to 13:00:00; the age here is 1h + 1µs.
    profile = make_profile({})
    EventFactory(profile=profile, name="buy", timestamp=T0 + H - US)
    rule = Recency(EventMatcher("buy"), op, H)
    now = T0 + 2 * H

    assert (profile.id in member_ids(rule, {}, now)) is expected
    assert (profile.id in reference_ids(rule, {}, now)) is expected


DRIVING_CASES: list[tuple[str, Rule, bool]] = [
    ("a count of at least one", Aggregate("count", PURCHASE, "gte", 1, window=LAST_48H), True),
    ("a count below one", Aggregate("count", PURCHASE, "lt", 1, window=LAST_48H), False),
    ("a maximum", Aggregate("max", PURCHASE, "lt", 5, ("amount",)), True),
    ("a count under not", Not(Aggregate("count", PURCHASE, "gte", 1)), False),
    ("one side of an or", Or((Aggregate("count", PURCHASE, "gte", 1), trait("n", "eq", 1))), False),
    (
        "one side of an and",
        And((Aggregate("count", PURCHASE, "gte", 1), trait("n", "eq", 1))),
        True,
    ),
    ("a recency", Recency(PURCHASE, "gt", H), True),
    ("a segment needing purchases", InSegment("buyers"), True),
    ("not in a segment needing purchases", InSegment("buyers", member=False), False),
]


@pytest.mark.parametrize(
    ("rule", "driven"), [(r, d) for _, r, d in DRIVING_CASES], ids=[c[0] for c in DRIVING_CASES]
)
def test_a_rule_that_cannot_hold_without_events_reads_only_the_profiles_that_have_them(
    member_ids: MemberIds, rule: Rule, driven: bool
) -> None:
    # The compiled SQL starts from the leaf's rows (as hand-written SQL would) instead
    # of joining every profile, and selects the same profiles either way.
    ids = build_world()
    labels = {pid: label for label, pid in ids.items()}
    segments = {**SEGMENTS, "buyers": Aggregate("count", PURCHASE, "gte", 1)}
    for vendor in ("sqlite", "postgresql"):
        query = compile_rule(rule, now=T0, segments=segments, vendor=vendor)
        assert query.sql.startswith("WITH leaf_0")
        assert ("SELECT leaf_0.pid FROM leaf_0" in query.sql) is driven

    selected = member_ids(rule, segments, T0)

    assert {labels[pid] for pid in selected} == {
        labels[pid] for pid in reference_ids(rule, segments, T0)
    }


def test_it_passes_values_as_parameters() -> None:
    rule = trait("s", "eq", "x'); DROP TABLE personalize_profile; --")
    vendors: list[Vendor] = ["sqlite", "postgresql"]
    for vendor in vendors:
        query = compile_rule(rule, now=T0, segments={}, vendor=vendor)
        assert "DROP" not in query.sql
        assert "x'); DROP TABLE personalize_profile; --" in query.params


# --- random rules over random histories ------------------------------------------------

NAMES = ["view", "buy"]
SCALARS: list[str | int | float | bool | None] = [
    0,
    1,
    2,
    2.5,
    -1,
    "x",
    "y",
    "",
    "xy",
    True,
    False,
    None,
]
ORDERED: list[Value] = [0, 1, 2, 2.5, "x", "xy", ""]
PROPERTY_VALUES = st.sampled_from([*SCALARS, ["x", 1], [], {}, [True], {"c": 1}])
PATHS = [("a",), ("b",), ("a", "c"), ("context", "c")]
HOURS = st.integers(min_value=0, max_value=4).map(lambda n: n * H)


@st.composite
def operator_and_value(draw: st.DrawFn) -> tuple[Operator, Value]:
    op: Operator = draw(st.sampled_from(sorted(Operator.__args__)))  # type: ignore[attr-defined]
    if op in {"exists", "not_exists", "is_empty"}:
        return op, None
    if op == "between":
        low, high = sorted(
            draw(st.lists(st.sampled_from([-1, 0, 1, 2, 2.5]), min_size=2, max_size=2))
        )
        return op, [low, high]
    if op in {"in", "not_in"}:
        return op, draw(st.lists(st.sampled_from(SCALARS), max_size=3))
    if op in {"lt", "lte", "gt", "gte", "contains"}:
        return op, draw(st.sampled_from(ORDERED))
    return op, draw(st.sampled_from(SCALARS))


@st.composite
def matchers(draw: st.DrawFn) -> EventMatcher:
    filters = []
    for _ in range(draw(st.integers(0, 1))):
        op, value = draw(operator_and_value())
        filters.append(PropertyFilter(draw(st.sampled_from(PATHS)), op, value))
    return EventMatcher(draw(st.sampled_from(NAMES)), tuple(filters))


@st.composite
def windows(draw: st.DrawFn) -> Window:
    kind = draw(st.sampled_from(["all", "last", "between", "calendar"]))
    if kind == "all":
        return ALL_TIME
    if kind == "last":
        return Window(oldest_age=draw(HOURS) + H)
    if kind == "between":
        newest = draw(HOURS)
        return Window(oldest_age=newest + draw(HOURS) + H, newest_age=newest)
    start = T0 + draw(st.integers(-5, 1)) * H
    return Window(start=start, end=start + draw(HOURS) + H)


CONTEXT_TEXTS = ["mobile", "desktop", "tablet", "FR", "newsletter", "google", "https://", ""]
AMOUNTS = [0, 1, 2, 0.5, 1.5, 1800, 3600, 5400.5]


@st.composite
def event_measures(draw: st.DrawFn) -> EventMeasure:
    fn: AggregateFn = draw(st.sampled_from(sorted(AGGREGATE_FNS)))
    prop = None if fn == "count" else draw(st.sampled_from(PATHS))
    return EventMeasure(fn, draw(matchers()), prop, draw(windows()))


@st.composite
def session_measures(draw: st.DrawFn) -> SessionMeasure:
    fn = draw(st.sampled_from(sorted(SESSION_FNS)))
    metric = None if fn == "count" else draw(st.sampled_from(sorted(SESSION_FIELDS)))
    return SessionMeasure(fn, metric, draw(windows()))  # type: ignore[arg-type]


def measures_() -> st.SearchStrategy[Measure]:
    return st.one_of(event_measures(), session_measures())


@st.composite
def number_comparisons(draw: st.DrawFn) -> tuple[Operator, Value]:
    op: Operator = draw(st.sampled_from(["eq", "ne", "lt", "lte", "gt", "gte", "between"]))
    if op == "between":
        low, high = sorted(draw(st.lists(st.sampled_from(AMOUNTS), min_size=2, max_size=2)))
        return op, [low, high]
    return op, draw(st.sampled_from(AMOUNTS))


@st.composite
def context_conditions(draw: st.DrawFn) -> ContextCondition:
    name: ContextField = draw(st.sampled_from(sorted(CONTEXT_FIELDS)))
    op: Operator = draw(st.sampled_from(sorted(CONTEXT_OPERATORS)))
    value: Value = None
    if op in {"in", "not_in"}:
        texts: list[str | int | float | bool | None] = draw(
            st.lists(st.sampled_from(CONTEXT_TEXTS), max_size=3)
        )
        value = texts
    elif op not in {"exists", "not_exists"}:
        value = draw(st.sampled_from(CONTEXT_TEXTS))
    return ContextCondition(name, op, value)


@st.composite
def leaves(draw: st.DrawFn, *, with_scores: bool = True) -> Rule:
    kinds = ["trait", "aggregate", "recency", "sequence", "segment", "sessions", "trend", "context"]
    kind = draw(st.sampled_from(kinds + (["score"] if with_scores else [])))
    if kind == "trait":
        op, value = draw(operator_and_value())
        return TraitCondition(draw(st.sampled_from([("a",), ("b",), ("a", "c")])), op, value)
    if kind == "aggregate":
        fn: AggregateFn = draw(st.sampled_from(sorted(AGGREGATE_FNS)))
        op, value = draw(operator_and_value())
        prop = None if fn == "count" else draw(st.sampled_from(PATHS))
        return Aggregate(fn, draw(matchers()), op, value, prop, draw(windows()))
    if kind == "recency":
        return Recency(
            draw(matchers()), draw(st.sampled_from(["gt", "gte", "lt", "lte"])), draw(HOURS)
        )
    if kind == "sequence":
        return Sequence(
            draw(matchers()), draw(matchers()), draw(HOURS), draw(st.booleans()), draw(windows())
        )
    if kind == "sessions":
        op, value = draw(number_comparisons())
        return SessionAggregate(draw(session_measures()), op, value)
    if kind == "trend":
        return Trend(
            draw(measures_()),
            draw(st.sampled_from(["eq", "ne", "lt", "lte", "gt", "gte"])),
            draw(st.sampled_from([1, 0.5, 0.7, 2])),
            draw(measures_()),
        )
    if kind == "context":
        return draw(context_conditions())
    if kind == "score":
        op, value = draw(number_comparisons())
        return ScoreCondition(draw(st.sampled_from(["sc", "unknown"])), op, value)
    return InSegment(draw(st.sampled_from(["s1", "s2", "unknown"])), draw(st.booleans()))


score_definitions = st.builds(
    lambda rules, points: ScoreDefinition(
        tuple(Criterion(rule, p) for rule, p in zip(rules, points, strict=False))
    ),
    st.lists(leaves(with_scores=False), min_size=1, max_size=3),
    st.lists(st.sampled_from([1, 2, 0.5, -1, 1800]), min_size=3, max_size=3),
)


def trees(leaf: st.SearchStrategy[Rule]) -> st.SearchStrategy[Rule]:
    return st.recursive(
        leaf,
        lambda children: st.one_of(
            st.lists(children, min_size=1, max_size=3).map(lambda rs: And(tuple(rs))),
            st.lists(children, min_size=1, max_size=3).map(lambda rs: Or(tuple(rs))),
            children.map(Not),
        ),
        max_leaves=5,
    )


TIMES = st.builds(
    lambda hours, jitter: T0 + hours * H + jitter,
    st.integers(-6, 2),
    st.sampled_from([timedelta(0), US, -US, timedelta(minutes=30)]),
)
CONTEXTS: list[dict[str, Any]] = [
    {},
    {},
    {"device": {"type": "mobile"}},
    {"userAgent": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0) Mobile/15E148"},
    {"userAgent": "Mozilla/5.0 (Linux; Android 10; SM-T510)"},
    {"userAgent": "Mozilla/5.0 (Windows NT 10.0; Win64; x64)"},
    {"userAgent": ""},
    {"device": {"type": ""}, "userAgent": "Mozilla/5.0 (iPad; CPU OS 17_0)"},
    {"device": {"type": 1}, "userAgent": "Mozilla/5.0 (Linux; Android 10) Mobile"},
    {"location": {"country": "FR"}},
    {"location": {"country": 1}},
    {"campaign": {"source": "newsletter", "medium": "email", "name": "spring"}},
    {"page": {"referrer": "https://google.com/x"}},
    {"referrer": {"url": "https://bing.com"}},
    {"page": {"referrer": ""}, "referrer": {"url": "https://google.com"}},
]
EVENTS = st.lists(
    st.tuples(
        st.sampled_from(NAMES),
        TIMES,
        st.dictionaries(st.sampled_from(["a", "b"]), PROPERTY_VALUES, max_size=2),
        st.builds(
            lambda c, extra: {**c, **extra},
            st.dictionaries(st.just("c"), PROPERTY_VALUES, max_size=1),
            st.sampled_from(CONTEXTS),
        ),
    ),
    max_size=5,
)
TRAIT_DOCS = st.dictionaries(
    st.sampled_from(["a", "b"]),
    st.one_of(PROPERTY_VALUES, st.dictionaries(st.just("c"), PROPERTY_VALUES, max_size=1)),
    max_size=2,
)


@settings(
    max_examples=int(os.environ.get("SQL_COMPILER_EXAMPLES", "200")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    rule=trees(leaves()),
    s1=trees(leaves()),
    s2=trees(leaves()),
    score=score_definitions,
    histories=st.lists(st.tuples(TRAIT_DOCS, EVENTS), min_size=1, max_size=3),
    now=TIMES,
)
def test_sql_agrees_with_reference_on_random_rules(
    member_ids: MemberIds,
    rule: Rule,
    s1: Rule,
    s2: Rule,
    score: ScoreDefinition,
    histories: list[
        tuple[dict[str, Any], list[tuple[str, datetime, dict[str, Any], dict[str, Any]]]]
    ],
    now: datetime,
) -> None:
    Session.objects.all().delete()
    Event.objects.all().delete()
    Profile.objects.all().delete()
    for traits, events in histories:
        profile = make_profile(traits)
        for name, ts, props, ctx in events:
            EventFactory(
                profile=profile,
                name=name,
                # Views are page calls, so sessions count pages.
                type=Event.Type.PAGE if name == "view" else Event.Type.TRACK,
                timestamp=ts,
                properties=props,
                context=ctx,
            )
        if events:
            rebuild_sessions(profile_id=profile.id, since=min(ts for _, ts, _, _ in events))
    segments = {"s1": s1, "s2": s2}
    scores = {"sc": score}

    assert member_ids(rule, segments, now, scores) == reference_ids(rule, segments, now, scores)


# --- sessions, trends, context shortcuts and scores --------------------------------------

M = timedelta(minutes=1)
D = timedelta(days=1)


def build_visits() -> dict[str, int]:
    """ "loyal": three sessions this week (2m, 10m and 0s) and six the week before;
    "new": one long session yesterday from a phone in France via the newsletter;
    "quiet": nothing at all."""
    profiles = {label: make_profile({}) for label in ("loyal", "new", "quiet")}

    def visit(label: str, start: datetime, span: timedelta, pages: int, **context: Any) -> None:
        for index in range(pages):
            at = start + (span * index / (pages - 1) if pages > 1 else timedelta(0))
            EventFactory(
                profile=profiles[label], name="page", type=Event.Type.PAGE, timestamp=at,
                context=context,
            )  # fmt: skip

    desktop = {"userAgent": "Mozilla/5.0 (Windows NT 10.0; Win64; x64)"}
    visit("loyal", T0 - 1 * D, 2 * M, 3, **desktop)
    visit("loyal", T0 - 2 * D, 10 * M, 5, **desktop)
    visit("loyal", T0 - 3 * D, timedelta(0), 1, campaign={"source": "ads"})
    for day in range(8, 14):
        visit("loyal", T0 - day * D, M, 2)
    visit(
        "new",
        T0 - 1 * D,
        20 * M,
        2,
        userAgent="Mozilla/5.0 (iPhone; CPU iPhone OS 17_0) Mobile/15E148",
        location={"country": "FR"},
        campaign={"source": "newsletter"},
        page={"referrer": "https://www.google.com/search"},
    )
    for label, profile in profiles.items():
        if label != "quiet":
            rebuild_sessions(profile_id=profile.id, since=T0 - 30 * D)
    return {label: profile.id for label, profile in profiles.items()}


LAST_7D = Window(oldest_age=7 * D)
WEEK_BEFORE = Window(oldest_age=14 * D, newest_age=7 * D)
SESSIONS_7D = SessionMeasure("count", window=LAST_7D)
ENGAGEMENT = ScoreDefinition(
    (
        Criterion(SessionAggregate(SessionMeasure("count", window=LAST_7D), "gte", 2), 30),
        Criterion(ContextCondition("utm_source", "eq", "newsletter"), 25),
        Criterion(Aggregate("count", EventMatcher("page"), "gte", 10), 20.5),
    )
)
VISIT_CASES: list[tuple[str, Rule, set[str]]] = [
    ("sessions this week", SessionAggregate(SESSIONS_7D, "gte", 3), {"loyal"}),
    ("no sessions", SessionAggregate(SessionMeasure("count"), "eq", 0), {"quiet"}),
    (
        "time on site in 48h",
        SessionAggregate(SessionMeasure("sum", "duration", Window(oldest_age=48 * H)), "gte", 120),
        {"loyal", "new"},
    ),
    (
        "average duration this week",
        SessionAggregate(SessionMeasure("avg", "duration", LAST_7D), "eq", 240),
        {"loyal"},
    ),
    (
        "pages per session",
        SessionAggregate(SessionMeasure("max", "pages", LAST_7D), "between", [2, 3]),
        {"new"},
    ),
    (
        "fewer sessions than 0.7 of the week before",
        Trend(SESSIONS_7D, "lt", 0.7, SessionMeasure("count", window=WEEK_BEFORE)),
        {"loyal"},
    ),
    (
        "trend over events",
        Trend(
            EventMeasure("count", EventMatcher("page"), window=LAST_7D),
            "gt",
            1,
            EventMeasure("count", EventMatcher("page"), window=WEEK_BEFORE),
        ),
        {"new"},
    ),
    ("device from the user agent", ContextCondition("device", "eq", "mobile"), {"new"}),
    ("desktop", ContextCondition("device", "eq", "desktop"), {"loyal"}),
    ("country", ContextCondition("country", "in", ["FR", "DE"]), {"new"}),
    ("latest carrier wins", ContextCondition("utm_source", "eq", "ads"), {"loyal"}),
    ("referrer", ContextCondition("referrer", "contains", "google"), {"new"}),
    ("never carried", ContextCondition("country", "not_exists"), {"loyal", "quiet"}),
    (
        "context filter on events",
        Aggregate(
            "count",
            EventMatcher("page", (PropertyFilter(("context", "campaign", "source"), "eq", "ads"),)),
            "eq",
            1,
        ),
        {"loyal"},
    ),
    # loyal: 30 (3 sessions) + 20.5 (21 pages); new: 25 (the newsletter).
    ("score threshold", ScoreCondition("engagement", "gte", 50), {"loyal"}),
    ("score with fractions", ScoreCondition("engagement", "eq", 50.5), {"loyal"}),
    ("score exact", ScoreCondition("engagement", "eq", 25), {"new"}),
    ("score of nobody", ScoreCondition("engagement", "eq", 0), {"quiet"}),
    ("unknown score", ScoreCondition("nope", "gte", 0), set()),
]


@pytest.mark.parametrize(
    ("rule", "expected"), [(r, e) for _, r, e in VISIT_CASES], ids=[c[0] for c in VISIT_CASES]
)
def test_sql_selects_what_the_evaluator_matches_for_visits_context_and_scores(
    member_ids: MemberIds, rule: Rule, expected: set[str]
) -> None:
    ids = build_visits()
    labels = {pid: label for label, pid in ids.items()}
    scores = {"engagement": ENGAGEMENT}

    selected = member_ids(rule, {}, T0, scores)

    assert {labels[pid] for pid in reference_ids(rule, {}, T0, scores)} == expected
    assert {labels[pid] for pid in selected} == expected
