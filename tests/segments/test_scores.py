"""Weighted scores: validated like segments, computed on recompute, stored and shown."""

from datetime import UTC, datetime, timedelta
from typing import cast

import pytest
from rest_framework.test import APIClient

from personalize.models import Event, Profile
from personalize.sessions import rebuild_sessions
from segments.models import Membership, ProfileScore
from segments.rules import RuleError
from segments.rules.text import criteria_from_text, text_to_json
from segments.services import recompute_profile, score_save, segment_save
from tests.factories import EventFactory, ProfileFactory

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
D = timedelta(days=1)

pytestmark = pytest.mark.django_db

CRITERIA = criteria_from_text(
    "10: count(email_opened, last 30d) >= 1\n"
    "15: sessions(last 7d) >= 2\n"
    "40: count(order_completed) >= 1\n"
    '-5: device = "desktop"'
)


def engaged_profile() -> Profile:
    profile = cast(Profile, ProfileFactory())
    EventFactory(profile=profile, name="email_opened", timestamp=NOW - 29 * D)
    EventFactory(profile=profile, name="page", type=Event.Type.PAGE, timestamp=NOW - 6 * D)
    EventFactory(
        profile=profile,
        name="page",
        type=Event.Type.PAGE,
        timestamp=NOW - D,
        context={"userAgent": "Mozilla/5.0 (Windows NT 10.0; Win64; x64)"},
    )
    rebuild_sessions(profile_id=profile.pk, since=NOW - 60 * D)
    return profile


def test_recompute_stores_the_score_and_when_it_next_changes() -> None:
    score = score_save(slug="engagement", name="Engagement", criteria=CRITERIA)
    profile = engaged_profile()

    change = recompute_profile(profile_id=profile.pk, now=NOW)

    stored = ProfileScore.objects.get(profile=profile, score=score)
    assert stored.value == 20  # 10 (email) + 15 (2 sessions) - 5 (desktop); no order
    assert [c["held"] for c in stored.criteria] == [True, True, False, True]
    # In one day the email open leaves its 30 days and the older session its 7.
    assert change.next_evaluation_at == NOW + D
    recompute_profile(profile_id=profile.pk, now=NOW + D)
    assert ProfileScore.objects.get(profile=profile, score=score).value == -5
    assert ProfileScore.objects.count() == 1


def test_a_segment_uses_a_score_threshold() -> None:
    score_save(slug="engagement", name="Engagement", criteria=CRITERIA)
    segment = segment_save(
        slug="engaged", name="Engaged", rule=text_to_json("score(engagement) >= 20")
    )
    engaged, idle = engaged_profile(), cast(Profile, ProfileFactory())

    recompute_profile(profile_id=engaged.pk, now=NOW)
    recompute_profile(profile_id=idle.pk, now=NOW)

    assert set(Membership.objects.filter(segment=segment).values_list("profile_id", flat=True)) == {
        engaged.pk
    }
    assert ProfileScore.objects.get(profile=idle).value == 0


def test_a_segment_cannot_refer_to_a_missing_score() -> None:
    with pytest.raises(RuleError) as caught:
        segment_save(slug="engaged", name="Engaged", rule=text_to_json("score(nope) >= 1"))

    assert caught.value.reason == "refers to score 'nope', which does not exist"


def test_scores_and_segments_cannot_refer_to_each_other_in_a_cycle() -> None:
    score_save(slug="engagement", name="Engagement", criteria=CRITERIA)
    segment_save(slug="engaged", name="Engaged", rule=text_to_json("score(engagement) >= 20"))

    with pytest.raises(RuleError) as caught:
        score_save(
            slug="engagement",
            name="Engagement",
            criteria=criteria_from_text("10: in_segment(engaged)"),
        )

    assert caught.value.reason == (
        "segments and scores refer to each other in a cycle: "
        "score(engagement) → engaged → score(engagement)"
    )
    assert ProfileScore.objects.count() == 0


def test_invalid_criteria_name_the_field() -> None:
    with pytest.raises(RuleError) as caught:
        score_save(slug="s", name="S", criteria=[{"rule": {"type": "nand"}, "points": 1}])

    assert caught.value.path == "criteria[0].rule.type"


def test_the_profile_api_shows_scores(admin_client: APIClient) -> None:
    score_save(slug="engagement", name="Engagement", criteria=CRITERIA)
    profile = engaged_profile()
    profile.identities.create(kind="user_id", value="u-1")
    recompute_profile(profile_id=profile.pk, now=NOW)

    response = admin_client.get("/api/v1/profiles/segments", {"user_id": "u-1"})

    assert response.status_code == 200
    assert [(s["slug"], s["value"]) for s in response.json()["scores"]] == [("engagement", 20.0)]
