from __future__ import annotations

import pytest
from django.test import Client

from personalize.models import Profile, Source


def _consent(source: Source, granted: bool, timestamp: str, message_id: str) -> None:
    response = Client().post(
        "/v1/batch",
        data={
            "writeKey": source.write_key,
            "batch": [
                {
                    "type": "track",
                    "event": "consent_changed",
                    "anonymousId": "a-1",
                    "messageId": message_id,
                    "timestamp": timestamp,
                    "properties": {"granted": granted},
                }
            ],
        },
        content_type="application/json",
    )
    assert response.status_code == 200


@pytest.mark.django_db
def test_consent_follows_the_latest_statement_by_event_time_not_arrival() -> None:
    source = Source.objects.create(name="site")
    _consent(source, False, "2026-11-23T10:05:00Z", "later")
    _consent(source, True, "2026-11-23T10:00:00Z", "earlier-but-late")

    profile = Profile.objects.get(identities__value="a-1")
    assert profile.consent == Profile.Consent.DENIED


@pytest.mark.django_db
def test_a_new_profile_has_not_stated_consent_until_it_does() -> None:
    source = Source.objects.create(name="site")
    Client().post(
        "/v1/track",
        data={"writeKey": source.write_key, "event": "e", "anonymousId": "a-1"},
        content_type="application/json",
    )
    assert Profile.objects.get(identities__value="a-1").consent == Profile.Consent.UNKNOWN
    _consent(source, True, "2026-11-23T10:00:00Z", "yes")
    assert Profile.objects.get(identities__value="a-1").consent == Profile.Consent.GRANTED
