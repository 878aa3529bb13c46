"""Properties of ``next_change_at`` over random rules, histories and instants.

Times sit on a 30-minute grid (nudged by a microsecond or ten minutes now and then)
and durations are multiples of it, so event ages land exactly on window bounds,
recency ages and sequence deadlines far more often than chance would allow.

Each case is checked at up to three drawn instants and then at each flip those lead
to. Between a checkpoint and its ``next_change_at`` (and, when that is None, forever
after) the answer is compared at sampled instants and at every "suspect" instant,
where time alone could flip a rule built from this vocabulary (``Case.suspects``).

Rules have at most three leaves (a segment condition counts as its segment's one
leaf) and histories at most five events: each leaf yields at most four change points
per event, so the 60 candidates stay within the evaluator's MAX_CHANGE_PROBES and
``next_change_at`` is always the flip itself, never a re-check time.
"""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import event, given, settings
from hypothesis import strategies as st

from segments.rules.evaluate import (
    Evaluation,
    EventRecord,
    ProfileSnapshot,
    SessionRecord,
    evaluate,
)
from segments.rules.schema import rule_from_json, rule_to_json
from segments.rules.tree import (
    ALL_TIME,
    Aggregate,
    AggregateFn,
    And,
    ContextCondition,
    Criterion,
    EventMatcher,
    EventMeasure,
    InSegment,
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
    Window,
    walk,
)

BASE = datetime(2026, 1, 1, tzinfo=UTC)
STEP = timedelta(minutes=30)
US = timedelta(microseconds=1)
H = timedelta(hours=1)
D = timedelta(days=1)
DURATIONS = (STEP, H, 2 * H, 6 * H, D, 2 * D)
NAMES = ("view", "cart")
SLUGS = ("s1", "s2", "missing")
MAX_LEAVES = 3
MAX_EVENTS = 5

nudges = st.sampled_from((timedelta(0), timedelta(0), US, -US, timedelta(minutes=10)))
# Events and window bounds over one day; "now" from 8 hours in to 4 hours past its end,
# so windows, ages and deadlines (30m to 2d) are in play and some events lie ahead.
instants = st.builds(lambda steps, nudge: BASE + steps * STEP + nudge, st.integers(0, 48), nudges)
nows = st.builds(lambda steps, nudge: BASE + steps * STEP + nudge, st.integers(16, 56), nudges)
durations = st.sampled_from(DURATIONS)


@st.composite
def windows(draw: st.DrawFn) -> Window:
    kind = draw(st.sampled_from(("all", "last", "last", "ago", "absolute")))
    if kind == "all":
        return ALL_TIME
    if kind == "last":
        return Window(oldest_age=draw(durations))
    if kind == "ago":
        newest, oldest = sorted(draw(st.lists(durations, min_size=2, max_size=2, unique=True)))
        return Window(oldest_age=oldest, newest_age=newest)
    start, end = sorted(draw(st.lists(instants, min_size=2, max_size=2, unique=True)))
    return Window(start=start, end=end)


filters = st.sampled_from(
    (
        PropertyFilter(("category",), "eq", "tent"),
        PropertyFilter(("category",), "in", ["tent", "mat"]),
        PropertyFilter(("price",), "gte", 10),
        PropertyFilter(("price",), "between", [1, 10]),
        PropertyFilter(("price",), "not_exists"),
        PropertyFilter(("context", "country"), "eq", "FR"),
        PropertyFilter(("context", "country"), "ne", "FR"),
    )
)
matchers = st.builds(
    EventMatcher,
    event=st.sampled_from(NAMES),
    where=st.one_of(st.just(()), st.just(()), filters.map(lambda f: (f,))),
)


@st.composite
def aggregates(draw: st.DrawFn) -> Aggregate:
    fn: AggregateFn = draw(st.sampled_from(("count", "sum", "avg", "min", "max", "distinct")))
    prop = None if fn == "count" else ("category",) if fn == "distinct" else ("price",)
    op: Operator = draw(st.sampled_from(("eq", "ne", "lt", "lte", "gt", "gte", "between")))
    # Thresholds within reach of up to five events (prices are 2.5, 5 and 20).
    reachable = (0, 1, 2, 3) if fn in {"count", "distinct"} else (0, 2.5, 5, 10, 12.5, 25)
    if op == "between":
        value: Any = sorted(draw(st.lists(st.sampled_from(reachable), min_size=2, max_size=2)))
    else:
        value = draw(st.sampled_from(reachable))
    return Aggregate(
        fn=fn, matcher=draw(matchers), op=op, value=value, property=prop, window=draw(windows())
    )


traits = st.sampled_from(
    (
        TraitCondition(("plan",), "eq", "pro"),
        TraitCondition(("plan",), "ne", "pro"),
        TraitCondition(("plan",), "exists"),
    )
)
recencies = st.builds(
    Recency,
    matcher=matchers,
    op=st.sampled_from(("gt", "gte", "lt", "lte")),
    age=durations,
)
sequences = st.builds(
    Sequence,
    first=matchers,
    then=matchers,
    within=durations,
    followed=st.booleans(),
    window=windows(),
)
session_measures = st.builds(
    SessionMeasure,
    fn=st.sampled_from(("count", "sum", "avg", "max")),
    metric=st.sampled_from(("duration", "pages")),
    window=windows(),
).map(lambda m: SessionMeasure("count", None, m.window) if m.fn == "count" else m)
event_measures = st.builds(
    lambda agg: EventMeasure(agg.fn, agg.matcher, agg.property, agg.window), aggregates()
)
session_aggregates = st.builds(
    SessionAggregate,
    measure=session_measures,
    op=st.sampled_from(("eq", "lt", "gte", "between")),
    value=st.sampled_from((0, 1, 2, 1800, 3600)),
).map(lambda r: SessionAggregate(r.measure, r.op, [1, 2]) if r.op == "between" else r)
trends = st.builds(
    Trend,
    left=st.one_of(session_measures, event_measures),
    op=st.sampled_from(("eq", "ne", "lt", "lte", "gt", "gte")),
    factor=st.sampled_from((1, 0.5, 2)),
    right=st.one_of(session_measures, event_measures),
)
contexts = st.builds(
    ContextCondition,
    field=st.sampled_from(("country", "device")),
    op=st.sampled_from(("eq", "ne", "exists")),
    value=st.sampled_from(("FR", "mobile")),
).map(lambda c: ContextCondition(c.field, "exists") if c.op == "exists" else c)
scores_used = st.builds(
    ScoreCondition,
    slug=st.sampled_from(("sc", "sc", "missing")),
    op=st.sampled_from(("gte", "eq", "lt")),
    value=st.sampled_from((0, 5, 10, 15)),
)
segment_conditions = st.builds(InSegment, slug=st.sampled_from(SLUGS), member=st.booleans())
# Leaves that time can flip are drawn more often than those it cannot (traits, segments).
leaves_without_segments = st.one_of(
    traits, aggregates(), aggregates(), recencies, sequences, sequences, session_aggregates,
    trends, contexts,
)  # fmt: skip
leaves = st.one_of(
    traits,
    segment_conditions,
    aggregates(),
    aggregates(),
    recencies,
    sequences,
    sequences,
    sequences,
    session_aggregates,
    trends,
    trends,
    contexts,
    scores_used,
)
# A score of a trait (no change points) and one leaf time can flip, so the score's
# change points stay within one leaf's budget.
score_definitions = st.builds(
    lambda trait, leaf: ScoreDefinition((Criterion(trait, 5), Criterion(leaf, 10))),
    traits,
    leaves_without_segments.filter(lambda leaf: not isinstance(leaf, TraitCondition)),
)
rules = st.recursive(
    leaves,
    lambda children: st.one_of(
        st.lists(children, min_size=1, max_size=3).map(lambda rs: And(tuple(rs))),
        st.lists(children, min_size=1, max_size=3).map(lambda rs: Or(tuple(rs))),
        children.map(Not),
    ),
    max_leaves=MAX_LEAVES,
)


@st.composite
def event_records(draw: st.DrawFn) -> EventRecord:
    properties: dict[str, Any] = {}
    category = draw(st.sampled_from((None, "tent", "mat", "stove")))
    if category is not None:
        properties["category"] = category
    price = draw(st.sampled_from((None, 5, 20, 2.5, "9", True)))
    if price is not None:
        properties["price"] = price
    country = draw(st.sampled_from((None, "FR", "DE")))
    context: dict[str, Any] = {} if country is None else {"country": country}
    # The country shortcut reads location.country; "context.country" filters read the other.
    if draw(st.booleans()):
        context["location"] = {"country": draw(st.sampled_from(("FR", "DE")))}
    agent = draw(st.sampled_from((None, "Mozilla (iPhone) Mobile", "Mozilla (Windows)")))
    if agent is not None:
        context["userAgent"] = agent
    return EventRecord(
        name=draw(st.sampled_from(NAMES)),
        timestamp=draw(instants),
        properties=properties,
        context=context,
    )


MAX_SESSIONS = 2
session_records = st.builds(
    lambda start, span, pages: SessionRecord(start, start + span, pages + 1, pages),
    instants,
    st.sampled_from((timedelta(0), STEP, H)),
    st.integers(0, 3),
)


MAX_FLIPS = 6


@dataclass(frozen=True)
class Case:
    rule: Rule
    segments: dict[str, Rule]
    profile: ProfileSnapshot
    nows: tuple[datetime, ...]
    scores: dict[str, ScoreDefinition]

    def at(self, when: datetime, *, explain: bool = False) -> Evaluation:
        return evaluate(
            self.rule, self.profile, when, self.segments, scores=self.scores, explain=explain
        )

    def checkpoints(self) -> list[tuple[datetime, Evaluation]]:
        """Each drawn ``now``, then each flip it leads to in turn, with the answer there."""
        seen: list[tuple[datetime, Evaluation]] = []
        for now in self.nows:
            when: datetime | None = now
            for _ in range(MAX_FLIPS):
                if when is None:
                    break
                result = self.at(when, explain=True)
                seen.append((when, result))
                when = result.next_change_at
        return seen

    def suspects(self) -> list[datetime]:
        """Every instant at which time alone could flip a rule from this vocabulary.

        Windows open and close, ages pass and deadlines expire at an event's time plus
        nothing or one of DURATIONS, or (``gt`` and ``lte`` ages) a microsecond later;
        absolute windows only open as their events arrive. The answer is constant
        between these instants, so checking them all checks every instant.
        """
        starts = [record.timestamp for record in self.profile.events]
        starts += [session.started_at for session in self.profile.sessions]
        return sorted(
            {
                start + duration + nudge
                for start in starts
                for duration in (timedelta(0), *DURATIONS)
                for nudge in (timedelta(0), US)
            }
        )


@st.composite
def cases(draw: st.DrawFn) -> Case:
    rule = draw(rules)
    assert _leaf_count(rule) <= MAX_LEAVES
    history = draw(st.lists(event_records(), min_size=2, max_size=MAX_EVENTS))
    sessions = draw(st.lists(session_records, max_size=MAX_SESSIONS))
    return Case(
        rule=rule,
        segments={"s1": draw(leaves_without_segments), "s2": draw(leaves_without_segments)},
        profile=ProfileSnapshot(
            traits=draw(st.sampled_from(({}, {"plan": "pro"}, {"plan": "free"}))),
            events=sorted(history, key=lambda item: item.timestamp),
            sessions=sorted(sessions, key=lambda item: item.started_at),
        ),
        nows=tuple(draw(st.lists(nows | _near_an_event(history), min_size=1, max_size=3))),
        scores={"sc": draw(score_definitions)},
    )


def _near_an_event(history: list[EventRecord]) -> st.SearchStrategy[datetime]:
    """Instants just before, at or just after an event's time plus a duration: where
    windows close, ages pass and deadlines expire, so flips are near."""
    return st.builds(
        lambda record, duration, offset: record.timestamp + duration + offset,
        st.sampled_from(history),
        st.sampled_from((timedelta(0), *DURATIONS)),
        st.sampled_from((-STEP, -US, timedelta(0), US)),
    )


def _leaf_count(rule: Rule) -> int:
    return sum(1 for node in walk(rule) if not isinstance(node, And | Or | Not))


def _checkpoints(case: Case) -> list[tuple[datetime, Evaluation]]:
    """The case's checkpoints, counted in the statistics by how many of them flip."""
    seen = case.checkpoints()
    flips = sum(1 for _, result in seen if result.next_change_at is not None)
    event(f"checkpoints that flip: {min(flips, 3)}{'+' if flips >= 3 else ''}")
    return seen


fractions = st.lists(
    st.floats(min_value=0, max_value=1, exclude_min=True, exclude_max=True), max_size=3
)


@settings(max_examples=200, deadline=None)
@given(case=cases(), fractions=fractions)
def test_the_answer_holds_at_every_instant_before_next_change_at(
    case: Case, fractions: list[float]
) -> None:
    suspects = case.suspects()
    for now, current in _checkpoints(case):
        flip = current.next_change_at
        if flip is None:
            continue
        assert flip > now

        span = flip - now
        between = {now + US, now + span / 2, flip - US, *suspects}
        between |= {now + span * fraction for fraction in fractions}
        for instant in sorted(t for t in between if now < t < flip):
            later = case.at(instant)
            assert (instant, later.matched) == (instant, current.matched)
            # Nothing has changed yet, so the predicted flip is still the same one.
            assert (instant, later.next_change_at) == (instant, flip)


@settings(max_examples=200, deadline=None)
@given(case=cases())
def test_the_answer_flips_at_next_change_at(case: Case) -> None:
    for now, current in _checkpoints(case):
        if current.next_change_at is not None:
            flipped = case.at(current.next_change_at).matched
            assert (now, flipped) == (now, not current.matched)


@settings(max_examples=200, deadline=None)
@given(case=cases())
def test_with_no_next_change_the_answer_stays_for_good(case: Case) -> None:
    suspects = case.suspects()
    for now, current in _checkpoints(case):
        if current.next_change_at is None:
            later_instants = {*suspects, *(now + offset for offset in (US, H, 10 * D, 400 * D))}
            for instant in sorted(t for t in later_instants if t > now):
                later = case.at(instant).matched
                assert (instant, later) == (instant, current.matched)


@settings(max_examples=200, deadline=None)
@given(rule=rules)
def test_every_generated_rule_survives_json_and_back(rule: Rule) -> None:
    data = rule_to_json(rule)

    assert rule_from_json(data) == rule
    assert rule_to_json(rule_from_json(data)) == data
