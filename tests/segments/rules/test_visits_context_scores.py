"""Session metrics, trends, context shortcuts and weighted scores in the reference
evaluator (values, explanations, next_change_at) and in the text form."""

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from segments.rules.evaluate import (
    EventRecord,
    ProfileSnapshot,
    SessionRecord,
    context_value,
    evaluate,
    evaluate_score,
)
from segments.rules.schema import RuleError, rule_from_json, rule_to_json
from segments.rules.text import (
    RuleSyntaxError,
    criteria_from_text,
    criteria_to_text,
    parse_text,
    rule_to_text,
)
from segments.rules.tree import (
    ContextCondition,
    Criterion,
    EventMatcher,
    EventMeasure,
    ScoreCondition,
    ScoreDefinition,
    SessionAggregate,
    SessionMeasure,
    Trend,
    Window,
)

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
M = timedelta(minutes=1)
H = timedelta(hours=1)
D = timedelta(days=1)


def visit(start: datetime, span: timedelta, pages: int = 1) -> SessionRecord:
    return SessionRecord(started_at=start, ended_at=start + span, events=pages + 1, pages=pages)


def snapshot(
    sessions: list[SessionRecord] | None = None, events: list[EventRecord] | None = None
) -> ProfileSnapshot:
    return ProfileSnapshot(traits={}, events=events or [], sessions=sessions or [])


# --- session metrics -----------------------------------------------------------------------

VISITS = [
    visit(NOW - 40 * H, 90 * M, pages=6),
    visit(NOW - 10 * H, 30 * 1000 * timedelta(microseconds=1), pages=1),
    visit(NOW - 2 * H, 30 * M, pages=2),
]


@pytest.mark.parametrize(
    ("text", "matched", "explanation"),
    [
        ("sessions(last 48h) = 3", True, "sessions in the last 48h is 3; needs = 3"),
        ("sessions(last 24h) >= 3", False, "sessions in the last 24h is 2; needs ≥ 3"),
        (
            "sum(session.duration, last 48h) >= 2m",
            True,
            "sum of session duration in the last 48h is 7200.03s; needs ≥ 120",
        ),
        (
            "avg(session.pages, last 48h) = 3",
            True,
            "avg of session pages in the last 48h is 3; needs = 3",
        ),
        (
            "max(session.duration, last 24h) = 30m",
            True,
            "max of session duration in the last 24h is 1800s; needs = 1800",
        ),
        (
            "min(session.events, all time) = 2",
            True,
            "min of session events ever is 2; needs = 2",
        ),
        (
            "avg(session.duration, last 1h) > 0",
            False,
            "avg of session duration in the last 1h is no value; needs > 0",
        ),
    ],
)
def test_session_metrics_count_sessions_that_started_in_the_window(
    text: str, matched: bool, explanation: str
) -> None:
    result = evaluate(parse_text(text), snapshot(VISITS), NOW)

    assert result.matched is matched
    assert [c.text for c in result.conditions] == [explanation]


def test_a_session_leaves_the_window_when_its_start_is_older_than_it() -> None:
    rule = parse_text("sessions(last 48h) >= 3")

    result = evaluate(rule, snapshot(VISITS), NOW)

    # The oldest started 40h ago: it leaves "last 48h" 8 hours from now.
    assert result.next_change_at == NOW + 8 * H
    assert evaluate(rule, snapshot(VISITS), NOW + 8 * H).matched is False
    assert evaluate(rule, snapshot(VISITS), NOW + 8 * H - timedelta(microseconds=1)).matched


# --- trends ----------------------------------------------------------------------------

WEEKS = [visit(NOW - d * D, M) for d in (1, 2, 8, 9, 10, 11, 12)]


def test_a_trend_compares_this_week_with_a_multiple_of_the_week_before() -> None:
    rule = parse_text("sessions(last 7d) < 0.7 * sessions(between 14d and 7d ago)")

    result = evaluate(rule, snapshot(WEEKS), NOW)

    assert result.matched is True  # 2 < 0.7 × 5 = 3.5
    assert [c.text for c in result.conditions] == [
        "sessions in the last 7d is 2; needs < 0.70 × sessions between 7d and 14d ago "
        "(0.70 × 5 = 3.50)"
    ]


def test_a_trend_changes_when_either_window_moves() -> None:
    rule = parse_text("sessions(last 7d) < 0.7 * sessions(between 14d and 7d ago)")

    result = evaluate(rule, snapshot(WEEKS), NOW)

    # Sessions age out of the week before one a day (2 < 0.7 × 4, 2 < 0.7 × 3) until,
    # four days on, 2 < 0.7 × 2 no longer holds.
    flip = result.next_change_at
    assert flip is not None
    assert evaluate(rule, snapshot(WEEKS), flip).matched is False
    assert evaluate(rule, snapshot(WEEKS), flip - timedelta(microseconds=1)).matched is True
    assert flip == NOW + 4 * D


def test_a_trend_over_an_average_with_no_value_is_false() -> None:
    rule = Trend(
        left=SessionMeasure("avg", "pages", Window(oldest_age=H)),
        op="lt",
        factor=2,
        right=SessionMeasure("avg", "pages"),
    )

    assert evaluate(rule, snapshot(VISITS), NOW).matched is False
    assert evaluate(rule, snapshot(VISITS), NOW - 90 * M + H).matched is False


def test_a_trend_over_events_uses_the_event_aggregate() -> None:
    events = [EventRecord("order", NOW - d * D, {"total": 10 * d}) for d in (1, 8, 9)]
    rule = parse_text("sum(order.total, last 7d) > 0.5 * sum(order.total, between 14d and 7d ago)")

    assert evaluate(rule, snapshot(events=events), NOW).matched is False  # 10 > 85 no
    assert rule == Trend(
        left=EventMeasure("sum", EventMatcher("order"), ("total",), Window(oldest_age=7 * D)),
        op="gt",
        factor=0.5,
        right=EventMeasure(
            "sum", EventMatcher("order"), ("total",), Window(oldest_age=14 * D, newest_age=7 * D)
        ),
    )


# --- context shortcuts -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "context", "expected"),
    [
        ("device", {"device": {"type": "tv"}, "userAgent": "iPhone"}, "tv"),
        ("device", {"userAgent": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0) Mobile"}, "mobile"),
        ("device", {"userAgent": "Mozilla/5.0 (Linux; Android 14; Pixel 8) Mobile"}, "mobile"),
        ("device", {"userAgent": "Mozilla/5.0 (Linux; Android 13; SM-X710)"}, "tablet"),
        ("device", {"userAgent": "Mozilla/5.0 (iPad; CPU OS 17_0)"}, "tablet"),
        ("device", {"userAgent": "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_0)"}, "desktop"),
        ("device", {"device": {"type": ""}}, None),
        ("device", {}, None),
        ("country", {"location": {"country": "FR"}}, "FR"),
        ("country", {"location": {"country": 33}}, None),
        ("referrer", {"page": {"referrer": "https://a.example"}}, "https://a.example"),
        ("referrer", {"referrer": {"url": "https://b.example"}}, "https://b.example"),
        ("utm_source", {"campaign": {"source": "newsletter"}}, "newsletter"),
        ("utm_medium", {"campaign": {"medium": "email"}}, "email"),
        ("utm_campaign", {"campaign": {"name": "spring"}}, "spring"),
    ],
)
def test_each_context_shortcut_reads_its_documented_path(
    name: str, context: dict[str, Any], expected: str | None
) -> None:
    assert context_value(name, context) == expected


def test_a_context_shortcut_reads_the_latest_event_that_carries_it() -> None:
    events = [
        EventRecord("page", NOW - 3 * H, context={"location": {"country": "FR"}}),
        EventRecord("page", NOW - 1 * H, context={}),  # carries no country
        EventRecord("page", NOW + 1 * H, context={"location": {"country": "DE"}}),  # ahead
    ]
    rule = parse_text('country in ("FR", "DE") and country != "DE"')

    result = evaluate(rule, snapshot(events=events), NOW)

    assert result.matched is True
    assert result.next_change_at == NOW + H
    assert [c.text for c in result.conditions] == [
        "country is 'FR' on the latest event carrying it; needs in ['FR', 'DE']",
        "country is 'FR' on the latest event carrying it; needs ≠ 'DE'",
    ]


def test_an_absent_context_value_is_never_seen() -> None:
    result = evaluate(parse_text('device = "mobile"'), snapshot(), NOW)

    assert result.matched is False
    assert result.next_change_at is None
    assert [c.text for c in result.conditions] == ["device is never seen; needs = 'mobile'"]


# --- scores ---------------------------------------------------------------------------------

ENGAGEMENT = ScoreDefinition(
    (
        Criterion(parse_text("count(email_opened, last 30d) >= 1"), 10),
        Criterion(parse_text("sessions(last 7d) >= 2"), 15),
        Criterion(parse_text("count(order_completed) >= 1"), 40),
        Criterion(parse_text('device = "mobile"'), -5),
    )
)
HISTORY = snapshot(
    sessions=[visit(NOW - D, M), visit(NOW - 6 * D, M)],
    events=[
        EventRecord("email_opened", NOW - 29 * D),
        EventRecord("order_completed", NOW - 100 * D),
    ],
)


def test_a_score_is_the_sum_of_the_points_of_the_criteria_that_hold() -> None:
    result = evaluate_score("engagement", HISTORY, NOW, scores={"engagement": ENGAGEMENT})

    assert result.value == 65
    assert [(c.text, c.held) for c in result.criteria] == [
        ("10 points: count(email_opened, last 30d) >= 1", True),
        ("15 points: sessions(last 7d) >= 2", True),
        ("40 points: count(order_completed) >= 1", True),
        ('-5 points: device = "mobile"', False),
    ]
    # The email open leaves its 30 days first (in 1 day), before the session of 6 days ago.
    assert result.next_change_at == NOW + D


def test_a_segment_compares_a_score_with_a_threshold() -> None:
    rule = parse_text("score(engagement) >= 60")
    scores = {"engagement": ENGAGEMENT}

    now_result = evaluate(rule, HISTORY, NOW, scores=scores)

    assert now_result.matched is True
    assert [c.text for c in now_result.conditions] == ["score engagement is 65; needs ≥ 60"]
    assert now_result.next_change_at == NOW + D  # 55 once the email open lapses
    assert evaluate(rule, HISTORY, NOW + D, scores=scores).matched is False


def test_an_unknown_or_self_referring_score_has_no_value() -> None:
    looping = ScoreDefinition((Criterion(parse_text("score(loop) >= 0"), 1),))

    assert evaluate(parse_text("score(nope) >= 0"), HISTORY, NOW).matched is False
    assert evaluate(parse_text("score(loop) = 0"), HISTORY, NOW, scores={"loop": looping}).matched
    assert evaluate_score("nope", HISTORY, NOW, scores={}).value is None


# --- text and JSON ---------------------------------------------------------------------------

ROUND_TRIPS = [
    "sessions(last 7d) >= 3",
    "sessions(all time) = 0",
    "avg(session.duration, last 30d) >= 2m",
    "avg(session.pages, last 30d) >= 4",
    "sum(session.duration, last 48h) >= 2m",
    "sum(session.duration, last 48h) between 90s and 1h",
    "max(session.events, between 14d and 7d ago) > 2.5",
    "sessions(last 7d) < 0.7 * sessions(between 14d and 7d ago)",
    "count(page, last 7d) >= sessions(last 7d)",
    "avg(session.duration, last 7d) > 1.5 * avg(session.duration, between 14d and 7d ago)",
    'count(page where context.campaign.source = "newsletter", last 30d) >= 1',
    'device = "mobile"',
    'utm_source = "newsletter" and utm_medium != "cpc" and utm_campaign starts_with "spring"',
    'country in ["FR", "DE"]',
    'referrer contains "google"',
    "not country exists",
    "score(engagement) >= 50",
    'count("session", last 7d) > 1',
    'count(page where "country" = "FR") > 1',
]


@pytest.mark.parametrize("text", ROUND_TRIPS)
def test_the_new_text_forms_round_trip_through_json(text: str) -> None:
    rule = parse_text(text)

    assert rule_to_text(rule) == text
    assert rule_from_json(rule_to_json(rule)) == rule
    assert parse_text(rule_to_text(rule_from_json(rule_to_json(rule)))) == rule


def test_context_lists_may_use_parentheses_and_print_with_brackets() -> None:
    assert rule_to_text(parse_text('country in ("FR","DE")')) == 'country in ["FR", "DE"]'


def test_durations_read_as_seconds_in_json() -> None:
    rule = parse_text("sum(session.duration, last 48h) >= 2m")

    assert rule == SessionAggregate(
        SessionMeasure("sum", "duration", Window(oldest_age=48 * H)), "gte", 120
    )
    assert rule_to_json(rule) == {
        "type": "sessions",
        "fn": "sum",
        "metric": "duration",
        "window": {"last": "48h"},
        "op": "gte",
        "value": 120,
    }


@pytest.mark.parametrize(
    ("text", "line", "column", "reason"),
    [
        (
            "count(page, last 7d) > 2m",
            1,
            24,
            "only session.duration compares with a duration such as 2m",
        ),
        ("score(engagement) >= 1h", 1, 22, "a score compares with a number, not a duration"),
        (
            "sum(session.seconds) > 1",
            1,
            1,
            "session.seconds: a session has duration, events, pages; "
            'write "session" in quotes for an event of that name',
        ),
        (
            'device > "mobile"',
            1,
            1,
            "op: device is text: compare it with one of "
            "['contains', 'ends_with', 'eq', 'exists', 'in', 'ne', 'not_exists', 'not_in', "
            "'starts_with']",
        ),
        ("country = 33", 1, 1, "value: country compares with strings"),
        (
            "sessions(last 7d) < 0 * sessions(all time)",
            1,
            1,
            "factor: must be a number greater than zero",
        ),
    ],
)
def test_invalid_new_forms_are_rejected_with_the_position_and_the_reason(
    text: str, line: int, column: int, reason: str
) -> None:
    with pytest.raises(RuleSyntaxError) as caught:
        parse_text(text)

    assert (caught.value.line, caught.value.column, caught.value.reason) == (line, column, reason)


@pytest.mark.parametrize(
    ("data", "path", "reason"),
    [
        (
            {"type": "sessions", "fn": "count", "metric": "pages", "op": "gt", "value": 1},
            "metric",
            "count takes no metric",
        ),
        (
            {"type": "sessions", "fn": "avg", "metric": "clicks", "op": "gt", "value": 1},
            "metric",
            "'clicks' is not a session metric; use one of ['duration', 'events', 'pages']",
        ),
        (
            {
                "type": "trend",
                "left": {"source": "sessions", "fn": "count"},
                "op": "between",
                "right": {"source": "sessions", "fn": "count"},
            },
            "op",
            "a trend compares with eq, ne, lt, lte, gt or gte",
        ),
        (
            {
                "type": "trend",
                "left": {"source": "events", "fn": "count"},
                "op": "lt",
                "right": {"source": "sessions", "fn": "count"},
            },
            "left.event",
            "is required",
        ),
        (
            {"type": "context", "field": "browser", "op": "eq", "value": "x"},
            "field",
            "'browser' is not a context field; use one of ['country', 'device', 'referrer', "
            "'utm_campaign', 'utm_medium', 'utm_source']",
        ),
        ({"type": "score", "slug": "x", "op": "eq", "value": "high"}, "value",
         "a score compares with a number"),
    ],
)  # fmt: skip
def test_invalid_new_json_is_rejected_with_the_field(
    data: dict[str, Any], path: str, reason: str
) -> None:
    with pytest.raises(RuleError) as caught:
        rule_from_json(data)

    assert (caught.value.path, caught.value.reason) == (path, reason)


def test_score_criteria_text_round_trips_and_points_at_the_bad_line() -> None:
    text = "10: count(email_opened, last 30d) >= 1\n# purchases weigh most\n40.5: sessions(last 7d) >= 2"

    criteria = criteria_from_text(text)

    assert criteria == [
        {"rule": rule_to_json(parse_text("count(email_opened, last 30d) >= 1")), "points": 10},
        {"rule": rule_to_json(parse_text("sessions(last 7d) >= 2")), "points": 40.5},
    ]
    assert criteria_to_text(criteria) == (
        "10: count(email_opened, last 30d) >= 1\n40.5: sessions(last 7d) >= 2"
    )
    with pytest.raises(RuleSyntaxError) as caught:
        criteria_from_text("10: sessions(last 7d) >= 2\n5: count(page, last 7d) >=")
    assert (caught.value.line, caught.value.column) == (2, 25)  # at the dangling ">="


def test_context_conditions_are_not_event_names() -> None:
    assert parse_text('device = "mobile"') == ContextCondition("device", "eq", "mobile")
    assert parse_text("score(a-b) > 1") == ScoreCondition("a-b", "gt", 1)
