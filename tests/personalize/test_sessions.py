from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.test import Client
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from personalize.models import Profile, Session, Source
from personalize.sessions import fold_into_sessions
from tests.factories import ProfileFactory

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def _send(source: Source, *offsets_and_types: tuple[int, str]) -> None:
    batch = [
        {
            "type": kind,
            **({"event": "clicked"} if kind == "track" else {}),
            "anonymousId": "a-1",
            "messageId": f"m-{minutes}-{kind}",
            "timestamp": (T0 + timedelta(minutes=minutes)).isoformat(),
        }
        for minutes, kind in offsets_and_types
    ]
    response = Client().post(
        "/v1/batch",
        data={"writeKey": source.write_key, "batch": batch},
        content_type="application/json",
    )
    assert response.status_code == 200


def _sessions() -> list[tuple[int, int, int, int]]:
    """(start minute, end minute, events, pages) per session, oldest first."""
    return [
        (
            int((s.started_at - T0).total_seconds() // 60),
            int((s.ended_at - T0).total_seconds() // 60),
            s.events,
            s.pages,
        )
        for s in Session.objects.order_by("started_at")
    ]


@pytest.mark.django_db
def test_thirty_minutes_of_inactivity_starts_a_new_session_with_its_own_counts() -> None:
    source = Source.objects.create(name="site")
    _send(source, (0, "page"), (10, "page"), (20, "track"), (51, "page"), (55, "page"))

    assert _sessions() == [(0, 20, 3, 2), (51, 55, 2, 2)]
    profile = Profile.objects.get()
    assert (profile.session_count, profile.time_on_site_seconds) == (2, 24 * 60)


@pytest.mark.django_db
def test_a_late_event_that_bridges_two_sessions_joins_them() -> None:
    source = Source.objects.create(name="site")
    _send(source, (0, "page"), (45, "page"))
    assert _sessions() == [(0, 0, 1, 1), (45, 45, 1, 1)]

    _send(source, (25, "track"))  # arrives last, happened in between

    assert _sessions() == [(0, 45, 3, 2)]
    assert Profile.objects.get().time_on_site_seconds == 45 * 60


@pytest.mark.django_db
def test_the_session_timeout_setting_decides_where_a_session_ends(settings: Any) -> None:
    settings.SESSION_TIMEOUT_MINUTES = 10
    source = Source.objects.create(name="site")

    _send(source, (0, "page"), (9, "page"), (20, "page"))

    assert _sessions() == [(0, 9, 2, 2), (20, 20, 1, 1)]


@pytest.mark.django_db
def test_the_profile_keeps_its_page_count_and_pages_per_session() -> None:
    source = Source.objects.create(name="site")
    _send(source, (0, "page"), (10, "page"), (20, "track"), (51, "page"))
    _send(source, (100, "page"))

    profile = Profile.objects.get()
    assert (profile.session_count, profile.page_count, profile.pages_per_session) == (3, 4, 4 / 3)
    assert profile.time_on_site_seconds == 20 * 60


@pytest.mark.django_db
def test_a_late_event_that_splits_nothing_keeps_totals_exact_across_batches() -> None:
    source = Source.objects.create(name="site")
    _send(source, (0, "page"), (45, "page"))
    _send(source, (25, "track"))
    _send(source, (100, "page"), (5, "page"))

    assert _sessions() == [(0, 45, 4, 3), (100, 100, 1, 1)]
    profile = Profile.objects.get()
    assert (profile.session_count, profile.page_count, profile.time_on_site_seconds) == (
        2,
        4,
        45 * 60,
    )


def _derived(events: list[tuple[int, bool]], timeout: int) -> list[tuple[int, int, int, int]]:
    """Sessions straight from the definition: sort, cut where a gap exceeds the timeout."""
    sessions: list[list[int]] = []
    for minute, is_page in sorted(events):
        if not sessions or minute - sessions[-1][1] > timeout:
            sessions.append([minute, minute, 0, 0])
        sessions[-1][1] = minute
        sessions[-1][2] += 1
        sessions[-1][3] += int(is_page)
    return [(start, end, count, pages) for start, end, count, pages in sessions]


@pytest.mark.django_db
@hypothesis_settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    batches=st.lists(
        # Five-minute steps: gaps of exactly one timeout (30 minutes) come up often.
        st.lists(
            st.tuples(st.integers(0, 60).map(lambda n: n * 5), st.booleans()),
            min_size=1,
            max_size=6,
        ),
        min_size=1,
        max_size=5,
    )
)
def test_folding_batches_in_any_order_gives_the_sessions_of_all_events_at_once(
    batches: list[list[tuple[int, bool]]],
) -> None:
    Session.objects.all().delete()  # examples share the test's transaction
    profile = ProfileFactory.create()
    for batch in batches:  # each batch arrives late or early, in any order
        fold_into_sessions(
            events_by_profile={
                profile.pk: [(T0 + timedelta(minutes=m), is_page) for m, is_page in batch]
            }
        )

    expected = _derived([event for batch in batches for event in batch], timeout=30)
    assert _sessions() == expected
