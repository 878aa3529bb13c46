from __future__ import annotations

import pytest
from django.test import Client
from kombu.exceptions import OperationalError

from personalize.models import Event, Profile, Source
from segments import tasks
from segments.services import recompute_profile
from tests.factories import SegmentFactory


@pytest.mark.django_db(transaction=True)
def test_events_are_kept_and_the_request_recorded_when_the_broker_refuses_the_task(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broker_down(*args: object, **kwargs: object) -> None:
        raise OperationalError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    monkeypatch.setattr(tasks.recompute_profiles, "delay", broker_down)
    SegmentFactory.create(slug="viewers")  # reads product_viewed
    source = Source.objects.create(name="site")

    response = Client().post(
        "/v1/batch",
        data={
            "writeKey": source.write_key,
            "batch": [
                {
                    "type": "track",
                    "event": "product_viewed",
                    "anonymousId": "a-1",
                    "messageId": "m-1",
                }
            ],
        },
        content_type="application/json",
    )

    assert response.status_code == 200
    assert Event.objects.filter(message_id="m-1").count() == 1
    profile = Profile.objects.get(identities__value="a-1")
    assert profile.recompute_requested_at is not None


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(("event", "queued"), [("block_impression", 0), ("product_viewed", 1)])
def test_only_events_a_segment_reads_queue_a_recompute(
    monkeypatch: pytest.MonkeyPatch, event: str, queued: int
) -> None:
    calls: list[list[int]] = []
    monkeypatch.setattr(tasks.recompute_profiles, "delay", calls.append)
    SegmentFactory.create(slug="viewers")  # reads product_viewed only
    source = Source.objects.create(name="site")
    # A new profile's first batch is always evaluated in full ("never bought" holds
    # for it); the profile below is known and evaluated already.
    Client().post(
        "/v1/batch",
        data={
            "writeKey": source.write_key,
            "batch": [{"type": "track", "event": "page", "anonymousId": "a-2", "messageId": "m-1"}],
        },
        content_type="application/json",
    )
    recompute_profile(profile_id=Profile.objects.get(identities__value="a-2").pk)
    calls.clear()

    Client().post(
        "/v1/batch",
        data={
            "writeKey": source.write_key,
            "batch": [{"type": "track", "event": event, "anonymousId": "a-2", "messageId": "m-2"}],
        },
        content_type="application/json",
    )

    assert Event.objects.filter(message_id="m-2").count() == 1
    assert len(calls) == queued
