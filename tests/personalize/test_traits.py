"""Profile traits: last write wins per key by event time, not by arrival order."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.test import Client

from personalize.models import Profile, Source
from personalize.traits import TraitState, apply_group, apply_identify, merge_states
from tests.factories import SourceFactory

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)


@pytest.fixture
def source(db: None) -> Source:
    source: Source = SourceFactory.create(name="web")
    return source


def _send(source: Source, *messages: dict[str, Any]) -> None:
    response = Client().post(
        "/v1/batch",
        data={"writeKey": source.write_key, "batch": list(messages)},
        content_type="application/json",
    )
    assert response.status_code == 200, response.content


def _identify(message_id: str, at: datetime, traits: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "identify",
        "userId": "u-1",
        "messageId": message_id,
        "timestamp": at.isoformat(),
        "traits": traits,
    }


def _group(message_id: str, at: datetime, group_id: str, traits: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "group",
        "userId": "u-1",
        "groupId": group_id,
        "messageId": message_id,
        "timestamp": at.isoformat(),
        "traits": traits,
    }


def test_a_late_older_identify_does_not_overwrite_a_newer_trait_but_sets_new_keys(
    source: Source,
) -> None:
    _send(source, _identify("new", T0, {"plan": "gold"}))

    _send(source, _identify("old", T0 - HOUR, {"plan": "silver", "city": "Oslo"}))

    profile = Profile.objects.get()
    assert profile.traits == {"plan": "gold", "city": "Oslo"}
    assert profile.trait_times == {
        "plan": T0.isoformat(),
        "city": (T0 - HOUR).isoformat(),
    }


def test_a_newer_identify_overwrites_an_older_trait(source: Source) -> None:
    _send(source, _identify("old", T0 - HOUR, {"plan": "silver"}))

    _send(source, _identify("new", T0, {"plan": "gold"}))

    assert Profile.objects.get().traits == {"plan": "gold"}


def test_within_one_batch_event_time_decides_not_position(source: Source) -> None:
    _send(
        source,
        _identify("new", T0, {"plan": "gold"}),
        _identify("old", T0 - HOUR, {"plan": "silver"}),
    )

    assert Profile.objects.get().traits == {"plan": "gold"}


def test_traits_sent_only_in_context_traits_reach_the_profile(source: Source) -> None:
    _send(
        source,
        {
            "type": "identify",
            "userId": "u-1",
            "messageId": "1",
            "context": {"traits": {"plan": "gold"}},
        },
    )

    assert Profile.objects.get().traits == {"plan": "gold"}


def test_group_traits_combine_per_key_by_time_and_an_older_other_group_is_ignored(
    source: Source,
) -> None:
    _send(source, _group("1", T0, "acme", {"plan": "enterprise"}))

    _send(
        source,
        _group("2", T0 - HOUR, "initech", {"plan": "free"}),
        _group("3", T0 - 2 * HOUR, "acme", {"plan": "trial", "employees": 40}),
    )

    profile = Profile.objects.get()
    assert profile.traits == {"group": {"id": "acme", "plan": "enterprise", "employees": 40}}
    assert profile.trait_times == {
        "group.id": T0.isoformat(),
        "group.plan": T0.isoformat(),
        "group.employees": (T0 - 2 * HOUR).isoformat(),
    }


def test_a_newer_group_call_for_another_group_replaces_the_group(source: Source) -> None:
    _send(source, _group("1", T0 - HOUR, "acme", {"plan": "enterprise", "employees": 40}))

    _send(source, _group("2", T0, "initech", {"plan": "free"}))

    profile = Profile.objects.get()
    assert profile.traits == {"group": {"id": "initech", "plan": "free"}}
    assert profile.trait_times == {"group.id": T0.isoformat(), "group.plan": T0.isoformat()}


# --- the pure rules ----------------------------------------------------------------------


def test_a_trait_with_no_recorded_time_loses_to_any_timed_write() -> None:
    state = TraitState.of({"plan": "typed in the admin"}, {})

    apply_identify(state, {"plan": "gold"}, T0 - 100 * HOUR)

    assert state.traits == {"plan": "gold"}


def test_merging_traits_takes_each_key_from_the_newer_side_and_ties_go_to_the_survivor() -> None:
    survivor = TraitState.of(
        {"name": "Ann", "plan": "gold", "tier": 1, "legacy": "s"},
        {"name": (T0 - HOUR).isoformat(), "plan": T0.isoformat(), "tier": T0.isoformat()},
    )
    merged = TraitState.of(
        {"name": "Ann B.", "plan": "silver", "tier": 2, "legacy": "m", "city": "Oslo"},
        {
            "name": T0.isoformat(),
            "plan": (T0 - HOUR).isoformat(),
            "tier": T0.isoformat(),
            "city": T0.isoformat(),
        },
    )

    result = merge_states(survivor, merged)

    assert result.traits == {
        "name": "Ann B.",
        "plan": "gold",
        "tier": 1,
        "legacy": "s",
        "city": "Oslo",
    }
    assert result.times == {
        "name": T0.isoformat(),
        "plan": T0.isoformat(),
        "tier": T0.isoformat(),
        "city": T0.isoformat(),
    }
    assert survivor.traits["name"] == "Ann"  # the inputs are left as they were


def test_merging_groups_of_the_same_id_combines_keys_and_of_another_id_takes_the_newer() -> None:
    survivor = TraitState()
    apply_group(survivor, "acme", {"plan": "enterprise"}, T0)
    same = TraitState()
    apply_group(same, "acme", {"plan": "trial", "employees": 40}, T0 - HOUR)
    newer_other = TraitState()
    apply_group(newer_other, "initech", {"plan": "free"}, T0 + HOUR)

    assert merge_states(survivor, same).traits == {
        "group": {"id": "acme", "plan": "enterprise", "employees": 40}
    }
    assert merge_states(survivor, newer_other).traits == {
        "group": {"id": "initech", "plan": "free"}
    }
    assert merge_states(newer_other, survivor).traits == {
        "group": {"id": "initech", "plan": "free"}
    }
