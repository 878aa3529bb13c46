from __future__ import annotations

import pytest
from django.test import Client
from kombu.exceptions import OperationalError

from personalize.models import Event, Profile, Source
from segments import tasks


@pytest.mark.django_db(transaction=True)
def test_events_are_kept_and_the_request_recorded_when_the_broker_refuses_the_task(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broker_down(*args: object, **kwargs: object) -> None:
        raise OperationalError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    monkeypatch.setattr(tasks.recompute_profile, "delay", broker_down)
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
