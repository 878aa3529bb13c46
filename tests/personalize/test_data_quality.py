from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from io import StringIO
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from personalize import quality
from personalize.models import MissingFieldCount, QualityCount, RejectedEvent, Source
from personalize.services import ingest_messages
from personalize.tracking import parse_message
from tests.factories import QualityCountFactory


def _batch(source: Source, *items: dict[str, Any]) -> dict[str, Any]:
    response = Client().post(
        "/v1/batch",
        data={"writeKey": source.write_key, "batch": list(items)},
        content_type="application/json",
    )
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


def _track(event: str, message_id: str, **extra: Any) -> dict[str, Any]:
    return {
        "type": "track",
        "event": event,
        "anonymousId": extra.pop("anonymousId", "a1"),
        "messageId": message_id,
        "timestamp": extra.pop("timestamp", timezone.now().isoformat()),
        "context": {"library": {"name": "analytics.js"}},
        **extra,
    }


def _counts(source: Source) -> dict[str, dict[str, int]]:
    totals: dict[str, dict[str, int]] = {}
    for row in QualityCount.objects.filter(source=source):
        mine = totals.setdefault(row.event_name, dict.fromkeys(quality.COUNTERS, 0))
        for counter in quality.COUNTERS:
            mine[counter] += getattr(row, counter)
    return totals


@pytest.mark.django_db
def test_counters_keep_received_stored_duplicates_and_rejected_per_event_name() -> None:
    source = Source.objects.create(name="site")
    _batch(source, _track("Viewed", "v1"), _track("Bought", "b1"))

    _batch(
        source,
        _track("Viewed", "v1"),  # a client retry
        _track("Viewed", "v2"),
        _track("Viewed", "v2"),  # twice in the same batch
        _track("Bought", "b2", properties={"revenue": -1}),
    )

    assert _counts(source) == {
        "Viewed": {
            "received": 4,
            "stored": 2,
            "duplicates": 2,
            "rejected": 0,
            "flagged": 0,
            "late": 0,
        },
        "Bought": {
            "received": 2,
            "stored": 1,
            "duplicates": 0,
            "rejected": 1,
            "flagged": 0,
            "late": 0,
        },
    }


@pytest.mark.django_db
def test_flagged_events_are_counted_and_plan_required_fields_count_as_missing() -> None:
    source = Source.objects.create(
        name="site",
        tracking_plan={"track": {"Bought": {"required": ["sku"]}}},
        plan_mode="flag",
    )

    _batch(source, _track("Bought", "b1"), _track("Bought", "b2", properties={"sku": "S"}))

    assert _counts(source)["Bought"]["flagged"] == 1
    assert list(MissingFieldCount.objects.values_list("event_name", "field", "count")) == [
        ("Bought", "properties.sku", 1)
    ]


@pytest.mark.django_db
def test_messages_without_messageid_timestamp_or_context_count_as_missing_those_fields() -> None:
    source = Source.objects.create(name="site")

    _batch(
        source,
        {"type": "track", "event": "Viewed", "anonymousId": "a"},
        {"type": "track", "event": "Viewed", "anonymousId": "a", "messageId": "m1"},
        {"type": "track", "anonymousId": "a", "messageId": "m2"},  # rejected: no event name
    )

    missing = {
        (name, f): n
        for name, f, n in MissingFieldCount.objects.values_list("event_name", "field", "count")
    }
    assert missing == {
        ("Viewed", "messageId"): 1,
        ("Viewed", "timestamp"): 2,
        ("Viewed", "context"): 2,
        ("", "timestamp"): 1,
        ("", "context"): 1,
    }


@pytest.mark.django_db
def test_an_event_older_than_one_already_stored_for_the_profile_counts_as_late() -> None:
    source = Source.objects.create(name="site")
    now = timezone.now()
    _batch(source, _track("Viewed", "v1", timestamp=now.isoformat()))

    _batch(
        source,
        _track("Viewed", "v0", timestamp=(now - timedelta(minutes=5)).isoformat()),
        _track("Viewed", "v2", timestamp=(now + timedelta(seconds=1)).isoformat()),
        # Same moment, another profile: nothing of theirs was stored before.
        _track(
            "Viewed", "x0", anonymousId="a2", timestamp=(now - timedelta(minutes=5)).isoformat()
        ),
    )

    assert _counts(source)["Viewed"]["late"] == 1


@pytest.mark.django_db
def test_batches_overlapping_by_their_clock_corrections_are_not_late() -> None:
    source = Source.objects.create(name="site")
    now = timezone.now()
    _batch(source, _track("Viewed", "v1", timestamp=now.isoformat()))

    # The next batch's correction put it 30 ms before the last one: not late.
    _batch(source, _track("Viewed", "v2", timestamp=(now - timedelta(milliseconds=30)).isoformat()))

    assert _counts(source)["Viewed"]["late"] == 0


@pytest.mark.django_db
def test_an_event_received_long_after_its_timestamp_counts_as_late(settings: Any) -> None:
    settings.P13N_LATE_EVENT_SECONDS = 600
    source = Source.objects.create(name="site")
    now = timezone.now()

    _batch(
        source,
        _track("Viewed", "old", timestamp=(now - timedelta(minutes=11)).isoformat()),
        _track("Viewed", "recent", timestamp=(now - timedelta(minutes=9)).isoformat()),
    )

    assert _counts(source)["Viewed"]["late"] == 1


@pytest.mark.django_db
def test_a_batch_updates_each_counter_table_with_one_upsert_not_one_query_per_event() -> None:
    source = Source.objects.create(name="site")
    received_at = timezone.now()
    messages = [
        parse_message(
            {
                "type": "track",
                "event": f"E{i % 3}",
                "anonymousId": f"a{i % 5}",
                "messageId": f"m{i}",
            },
            message_type=None,
            received_at=received_at,
        )
        for i in range(90)
    ]

    with CaptureQueriesContext(connection) as queries:
        ingest_messages(source=source, messages=messages, received_at=received_at)

    upserts = [q["sql"] for q in queries.captured_queries if "DO UPDATE" in q["sql"]]
    assert len(upserts) == 2
    assert "personalize_qualitycount" in upserts[0]
    assert "personalize_missingfieldcount" in upserts[1]
    assert {r.event_name: r.received for r in QualityCount.objects.all()} == {
        "E0": 30,
        "E1": 30,
        "E2": 30,
    }


@pytest.mark.django_db
def test_counts_of_the_same_hour_add_up_across_batches() -> None:
    source = Source.objects.create(name="site")
    at = datetime(2025, 3, 1, 10, 15, tzinfo=UTC)
    for batch in range(3):
        messages = [
            parse_message(
                {"type": "page", "anonymousId": "a", "messageId": f"p{batch}-{i}"},
                message_type=None,
                received_at=at,
            )
            for i in range(4)
        ]
        ingest_messages(source=source, messages=messages, received_at=at + timedelta(minutes=batch))

    row = QualityCount.objects.get()
    assert (row.hour, row.event_name, row.received, row.stored) == (
        datetime(2025, 3, 1, 10, tzinfo=UTC),
        "page",
        12,
        12,
    )


@pytest.mark.django_db
def test_report_groups_rejects_by_reason_and_command_prints_json() -> None:
    site = Source.objects.create(name="site")
    Source.objects.create(name="other")
    _batch(
        site,
        _track("Bought", "b1", properties={"revenue": -1}),
        _track("Bought", "b2", properties={"revenue": -2}),
        _track("Bought", "b3", properties={"revenue": "x"}),
        _track("Bought", "b4"),
    )

    out = StringIO()
    call_command(
        "data_quality", "--source", "site", "--since", "24h", "--format", "json", stdout=out
    )
    report = json.loads(out.getvalue())

    (row,) = report["rows"]
    assert (row["source"], row["event_name"], row["received"], row["stored"], row["rejected"]) == (
        "site",
        "Bought",
        4,
        1,
        3,
    )
    assert row["rejects_by_reason"] == [
        {"field": "properties.revenue", "reason": "must not be negative", "count": 2},
        {"field": "properties.revenue", "reason": "must be a number", "count": 1},
    ]
    assert row["reject_rate"] == 0.75


@pytest.mark.django_db
def test_command_prints_a_table_and_refuses_bad_arguments() -> None:
    source = Source.objects.create(name="site")
    _batch(source, _track("Viewed", "v1"))

    out = StringIO()
    call_command("data_quality", stdout=out)
    lines = out.getvalue().splitlines()
    assert lines[1].split()[:8] == [
        "source",
        "event",
        "received",
        "stored",
        "dup",
        "rejected",
        "flagged",
        "late",
    ]
    assert lines[2].split() == ["site", "Viewed", "1", "1", "0", "0", "0", "0"]

    with pytest.raises(CommandError, match="--since: 'yesterday' is not a period"):
        call_command("data_quality", "--since", "yesterday")
    with pytest.raises(CommandError, match="--source: no source named 'nope'"):
        call_command("data_quality", "--source", "nope")


@pytest.mark.django_db
def test_report_covers_only_the_requested_period() -> None:
    source = Source.objects.create(name="site")
    now = timezone.now()
    QualityCountFactory(source=source, hour=quality.hour_of(now), received=5)
    QualityCountFactory(source=source, hour=quality.hour_of(now) - timedelta(days=3), received=7)

    day = quality.quality_report(since=now - timedelta(hours=24))
    week = quality.quality_report(since=now - timedelta(days=7))

    assert [r.received for r in day.rows] == [5]
    assert [r.received for r in week.rows] == [12]


@pytest.mark.django_db
def test_admin_data_quality_page_shows_counts_rejects_and_is_linked_from_sources(
    admin_client: Client,
) -> None:
    source = Source.objects.create(name="site")
    _batch(source, _track("Bought", "b1"), _track("Bought", "b2", properties={"revenue": -1}))

    page = admin_client.get("/admin/personalize/source/data-quality/?since=7d&source=site")
    sources = admin_client.get("/admin/personalize/source/")

    html = page.content.decode()
    assert page.status_code == 200
    assert "<td>site</td><td>Bought</td>" in html
    assert "<td>2</td><td>1</td><td>0</td>" in html  # received, stored, duplicates
    assert "must not be negative" in html
    assert 'href="/admin/personalize/source/data-quality/"' in sources.content.decode()
    assert RejectedEvent.objects.count() == 1


def test_period_parsing() -> None:
    assert quality.parse_period("24h") == timedelta(hours=24)
    assert quality.parse_period("7d") == timedelta(days=7)
    assert quality.parse_period("90m") == timedelta(minutes=90)
    for bad in ("0h", "1w", "", "h"):
        with pytest.raises(ValueError, match="is not a period"):
            quality.parse_period(bad)
