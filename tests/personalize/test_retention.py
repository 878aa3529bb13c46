from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from personalize.models import Event, Profile, QualityCount, RejectedEvent
from personalize.retention import purge_expired_events, purge_expired_quality_counts
from tests.factories import EventFactory, ProfileFactory, SourceFactory


@pytest.mark.django_db
def test_events_past_retention_are_purged_in_chunks_and_their_profiles_recomputed(
    settings: Any, django_capture_on_commit_callbacks: Any
) -> None:
    settings.EVENT_RETENTION_DAYS = 30
    now = timezone.now()
    profile = ProfileFactory.create()
    for age in (31, 40, 50):
        EventFactory.create(
            profile=profile, message_id=f"old-{age}", timestamp=now - timedelta(days=age)
        )
    EventFactory.create(profile=profile, message_id="recent", timestamp=now - timedelta(days=29))

    with django_capture_on_commit_callbacks(execute=True):
        purged = purge_expired_events(now=now, chunk=2)

    assert purged == 3
    assert list(Event.objects.values_list("message_id", flat=True)) == ["recent"]
    # The recompute ran (eagerly here) and cleared the request it made.
    assert Profile.objects.get(pk=profile.pk).recompute_requested_at is None


@pytest.mark.django_db
def test_no_retention_keeps_every_event(settings: Any) -> None:
    settings.EVENT_RETENTION_DAYS = 0
    EventFactory.create(timestamp=timezone.now() - timedelta(days=4000))
    assert purge_expired_events() == 0
    assert Event.objects.count() == 1


@pytest.mark.django_db
def test_quarantined_messages_past_event_retention_are_purged_with_the_events(
    settings: Any,
) -> None:
    settings.EVENT_RETENTION_DAYS = 30
    now = timezone.now()
    source = SourceFactory.create()
    for age in (31, 29):
        RejectedEvent.objects.create(
            source=source,
            payload={"type": "track", "userId": f"u-{age}"},
            field="event",
            reason="is required for track",
            received_at=now - timedelta(days=age),
        )

    purge_expired_events(now=now)

    assert list(RejectedEvent.objects.values_list("payload__userId", flat=True)) == ["u-29"]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("retention_days", "kept_ages"),
    [
        (30, [29, 5]),
        # Never shorter than the alerts' baseline (7 days) plus the day compared: 8.
        (3, [5]),
        (0, [400, 29, 5]),
    ],
)
def test_data_quality_counters_are_kept_for_their_own_retention(
    settings: Any, retention_days: int, kept_ages: list[int]
) -> None:
    settings.P13N_QUALITY_RETENTION_DAYS = retention_days
    settings.P13N_QUALITY_BASELINE_DAYS = 7
    now = timezone.now()
    source = SourceFactory.create()
    for age in (400, 29, 5):
        QualityCount.objects.create(
            source=source, hour=now - timedelta(days=age), event_name=f"age-{age}", received=1
        )

    purge_expired_quality_counts(now=now)

    assert sorted(QualityCount.objects.values_list("event_name", flat=True)) == sorted(
        f"age-{age}" for age in kept_ages
    )
