from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from personalize.models import Event, Profile
from personalize.retention import purge_expired_events
from tests.factories import EventFactory, ProfileFactory


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
