"""The batch path costs a fixed number of queries, whatever the number of visitors."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from personalize.models import Event, Identity, Profile, Session, Source
from personalize.services import ingest_messages
from personalize.tracking import TrackedMessage, parse_message
from segments.definitions import current_definitions
from tests.factories import SegmentFactory, SourceFactory

# SQLite takes at most 999 parameters a statement, so Django splits the bulk
# inserts and updates of a 500-visitor batch into a few statements more; on
# PostgreSQL the counts for 1 and 500 visitors are equal. The data-quality
# counters (personalize.quality) add a fixed few per batch, and so do the
# recompute reasons (segments.ProfileEvaluation: which profiles were never
# evaluated, and the upsert of why each one needs a recompute).
MAX_QUERIES = 55


def _batch(visitors: int, *, prefix: str = "v") -> list[TrackedMessage]:
    now = timezone.now()
    messages = []
    for n in range(visitors):
        raw: dict[str, Any] = {
            "type": "identify",
            "anonymousId": f"{prefix}-anon-{n}",
            "userId": f"{prefix}-user-{n}",
            "traits": {"plan": "gold", "n": n},
            "timestamp": (now - timedelta(seconds=n)).isoformat(),
        }
        if n % 2 == 0:
            raw = {
                "type": "track",
                "event": "product_viewed",
                "anonymousId": f"{prefix}-anon-{n}",
                "userId": f"{prefix}-user-{n}",
                "timestamp": (now - timedelta(seconds=n)).isoformat(),
            }
        messages.append(parse_message(raw, message_type=None, received_at=now))
    return messages


@pytest.fixture
def source(db: None) -> Source:
    SegmentFactory.create(slug="viewers")  # a segment reads product_viewed: recomputes are queued
    source: Source = SourceFactory.create(name="web")
    return source


def _statements(source: Source, messages: list[TrackedMessage]) -> list[str]:
    """The statements one ingest runs, with savepoint names and bulk chunks left out."""
    with CaptureQueriesContext(connection) as queries:
        ingest_messages(source=source, messages=messages, received_at=timezone.now())
    shapes: list[str] = []
    for query in queries.captured_queries:
        # Row-wise bulk updates run as one executemany on SQLite ("500 times: UPDATE …").
        sql = re.sub(r"^\d+ times: ", "", query["sql"])
        if sql.startswith("INSERT") or (sql.startswith("UPDATE") and sql != query["sql"]):
            shape = f"bulk {sql.split('(')[0].split(' SET ')[0]}"
            if shapes and shapes[-1] == shape:
                continue  # the same bulk statement split at SQLite's parameter limit
        else:
            shape = sql.split('"s')[0] if "SAVEPOINT" in sql else sql[:50]
        shapes.append(shape)
    return shapes


def test_new_visitors_cost_the_same_bounded_queries_for_1_and_500(
    source: Source, django_assert_max_num_queries: Any
) -> None:
    with django_assert_max_num_queries(MAX_QUERIES):
        ingest_messages(source=source, messages=_batch(1, prefix="one"), received_at=timezone.now())
    with django_assert_max_num_queries(MAX_QUERIES):
        ingest_messages(source=source, messages=_batch(500), received_at=timezone.now())

    assert Profile.objects.count() == 501
    assert Identity.objects.count() == 1002
    assert Event.objects.count() == 501
    assert Session.objects.count() == 501
    assert Profile.objects.filter(session_count=1, last_seen_at__isnull=False).count() == 501
    assert Profile.objects.filter(traits__plan="gold").count() == 250
    # New profiles are all evaluated once, whatever their events ("never bought" holds).
    assert Profile.objects.filter(recompute_requested_at__isnull=False).count() == 501


def test_returning_visitors_cost_the_same_bounded_queries_for_1_and_500(
    source: Source, django_assert_max_num_queries: Any
) -> None:
    ingest_messages(source=source, messages=_batch(500), received_at=timezone.now())

    with django_assert_max_num_queries(MAX_QUERIES):
        ingest_messages(source=source, messages=_batch(1), received_at=timezone.now())
    with django_assert_max_num_queries(MAX_QUERIES):
        ingest_messages(source=source, messages=_batch(500), received_at=timezone.now())

    assert Profile.objects.count() == 500
    assert Event.objects.count() == 1001


def test_a_500_visitor_batch_runs_the_same_statements_as_a_1_visitor_batch(source: Source) -> None:
    # A running process has parsed the definitions already (once per version).
    current_definitions()
    one = _statements(source, _batch(1, prefix="one"))
    many = _statements(source, _batch(500, prefix="many"))

    assert [s.split(" WHERE ")[0] for s in many] == [s.split(" WHERE ")[0] for s in one]
    # Data-quality counters, the recompute reasons; de-duplication is one INSERT into
    # the message-id table, with no SELECT of the events before or after.
    assert len(one) == 24
