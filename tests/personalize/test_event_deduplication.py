"""Exactly-once ingestion through the message-id table (personalize.deduplication).

The same code runs on SQLite and PostgreSQL; tests/e2e/test_event_partitions.py
proves it across time partitions and concurrent requests on PostgreSQL.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from django.db import transaction
from django.utils import timezone

from content.measurement import Impression, record_impressions
from personalize.deduplication import claim_message_ids
from personalize.models import Event, EventMessageId, Profile, Source
from personalize.privacy import profile_erase
from personalize.retention import purge_expired_events
from personalize.services import IngestResult, ingest_messages
from personalize.tracking import TrackedMessage, parse_message
from tests.factories import ProfileFactory, SourceFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def source() -> Source:
    return SourceFactory.create(name="web")


def message(message_id: str, *, at: datetime, anonymous_id: str = "a-1") -> TrackedMessage:
    return parse_message(
        {
            "type": "track",
            "event": "product_viewed",
            "anonymousId": anonymous_id,
            "messageId": message_id,
            "timestamp": at.isoformat(),
        },
        message_type=None,
        received_at=timezone.now(),
    )


def ingest(source: Source, *messages: TrackedMessage) -> IngestResult:
    return ingest_messages(source=source, messages=messages, received_at=timezone.now())


def test_it_claims_each_new_id_once_at_its_first_position(source: Source) -> None:
    now = timezone.now()
    EventMessageId.objects.create(source=source, message_id="seen", timestamp=now)

    claimed = claim_message_ids(
        source=source,
        message_ids=["b", "seen", "a", "b", "c", "a"],
        timestamps=[now] * 6,
    )

    assert claimed == [0, 2, 4]
    assert sorted(EventMessageId.objects.values_list("message_id", flat=True)) == [
        "a",
        "b",
        "c",
        "seen",
    ]


def test_it_keeps_ids_of_other_sources_apart(source: Source) -> None:
    other = SourceFactory.create(name="app")
    now = timezone.now()
    claim_message_ids(source=other, message_ids=["m"], timestamps=[now])

    assert claim_message_ids(source=source, message_ids=["m"], timestamps=[now]) == [0]
    assert claim_message_ids(source=source, message_ids=["m"], timestamps=[now]) == []


def test_a_claim_rolled_back_with_its_batch_frees_the_id(source: Source) -> None:
    now = timezone.now()

    def claim_then_fail() -> None:
        with transaction.atomic():
            assert claim_message_ids(source=source, message_ids=["m"], timestamps=[now]) == [0]
            raise RuntimeError("the events failed to store")

    with pytest.raises(RuntimeError):
        claim_then_fail()

    assert EventMessageId.objects.count() == 0
    assert claim_message_ids(source=source, message_ids=["m"], timestamps=[now]) == [0]


def test_duplicates_in_and_across_batches_are_counted_exactly(source: Source) -> None:
    now = timezone.now()

    first = ingest(source, message("m1", at=now), message("m2", at=now), message("m1", at=now))
    second = ingest(source, message("m2", at=now), message("m3", at=now))

    assert (first.stored, first.duplicates, first.duplicate_indexes) == (2, 1, [2])
    assert (second.stored, second.duplicates, second.duplicate_indexes) == (1, 1, [0])
    assert sorted(Event.objects.values_list("message_id", flat=True)) == ["m1", "m2", "m3"]


def test_a_retry_with_another_timestamp_is_still_a_duplicate(source: Source) -> None:
    # On PostgreSQL the two timestamps fall in different partitions.
    first_sent = timezone.now().replace(microsecond=0) - timedelta(days=40)
    ingest(source, message("m", at=first_sent))

    retry = ingest(source, message("m", at=first_sent + timedelta(days=40)))

    assert (retry.stored, retry.duplicates) == (0, 1)
    assert list(Event.objects.values_list("timestamp", flat=True)) == [first_sent]


def test_the_id_row_keeps_the_stored_events_time(source: Source) -> None:
    at = timezone.now().replace(microsecond=0) - timedelta(days=3)

    ingest(source, message("m", at=at), message("m", at=at + timedelta(days=1)))

    assert list(EventMessageId.objects.values_list("message_id", "timestamp")) == [("m", at)]


def test_server_impressions_skip_the_id_table(source: Source) -> None:
    profile = ProfileFactory.create()
    shown = Impression(
        block_id=1, block_key="hero", slot="home", variant="", holdout=False, via="page"
    )

    stored = record_impressions(profile_id=profile.pk, impressions=[shown, shown])

    assert stored == 2
    assert Event.objects.filter(name="block_impression").count() == 2
    assert EventMessageId.objects.count() == 0


def test_retention_forgets_message_ids_only_after_the_grace_period(
    source: Source, settings: Any
) -> None:
    settings.EVENT_RETENTION_DAYS = 30
    settings.EVENT_DEDUPE_GRACE_DAYS = 10
    now = timezone.now()
    ingest(
        source,
        message("gone", at=now - timedelta(days=45)),
        message("remembered", at=now - timedelta(days=35)),
        message("kept", at=now - timedelta(days=5)),
    )

    assert purge_expired_events(now=now) == 2

    assert list(Event.objects.values_list("message_id", flat=True)) == ["kept"]
    assert sorted(EventMessageId.objects.values_list("message_id", flat=True)) == [
        "kept",
        "remembered",
    ]
    # Retried within the grace period: a duplicate, not silently stored again.
    retried = ingest(source, message("remembered", at=now - timedelta(days=35)))
    assert (retried.stored, retried.duplicates) == (0, 1)
    # Retried after it: stored as new (and purged again by the next run).
    resent = ingest(source, message("gone", at=now - timedelta(days=45)))
    assert (resent.stored, resent.duplicates) == (1, 0)
    assert purge_expired_events(now=now) == 1
    assert sorted(Event.objects.values_list("message_id", flat=True)) == ["kept"]


def test_erasing_a_person_forgets_their_message_ids_only(source: Source) -> None:
    now = timezone.now()
    ingest(source, message("ada-1", at=now, anonymous_id="a-ada"))
    ingest(source, message("bob-1", at=now, anonymous_id="a-bob"))
    ada = Profile.objects.get(events__message_id="ada-1")

    profile_erase(profile=ada)

    assert list(EventMessageId.objects.values_list("message_id", flat=True)) == ["bob-1"]
    assert list(Event.objects.values_list("message_id", flat=True)) == ["bob-1"]
