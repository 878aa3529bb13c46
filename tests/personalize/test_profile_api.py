from __future__ import annotations

from typing import Any

import pytest
from django.core.management import call_command
from django.test import Client

from personalize.keys import api_key_create
from personalize.models import ApiKey, Identity, Source
from tests.factories import EventFactory, IdentityFactory, ProfileFactory


def _lookup(client: Client, key: str | None, **params: str) -> Any:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return client.get("/api/v1/profiles/lookup", params, headers=headers)


@pytest.mark.django_db
def test_a_server_key_looks_up_a_profile_by_user_id_with_traits_segments_and_events() -> None:
    _, key = api_key_create(name="backend")
    profile = ProfileFactory.create(traits={"plan": "pro"})
    IdentityFactory.create(profile=profile, kind=Identity.Kind.USER_ID, value="u-42")
    EventFactory.create(profile=profile, name="order_completed", properties={"revenue": 120})

    response = _lookup(Client(), key, user_id="u-42")

    assert response.status_code == 200
    body = response.json()
    assert body["profile_id"] == profile.pk
    assert body["identities"] == [{"kind": "user_id", "value": "u-42"}]
    assert body["traits"] == {"plan": "pro"}
    assert body["segments"] == []
    assert [(e["name"], e["properties"]) for e in body["recent_events"]] == [
        ("order_completed", {"revenue": 120})
    ]


@pytest.mark.django_db
@pytest.mark.parametrize("key", [None, "p13n_sk_not-a-real-key", "wrong-prefix"])
def test_lookup_without_a_valid_server_key_is_refused(key: str | None) -> None:
    IdentityFactory.create(kind=Identity.Kind.USER_ID, value="u-1")
    assert _lookup(Client(), key, user_id="u-1").status_code in {401, 403}


@pytest.mark.django_db
def test_a_revoked_key_is_refused() -> None:
    api_key, key = api_key_create(name="old")
    ApiKey.objects.filter(pk=api_key.pk).update(revoked=True)
    assert _lookup(Client(), key, anonymous_id="a").status_code == 401


@pytest.mark.django_db
def test_lookup_needs_exactly_one_id_and_names_the_field() -> None:
    _, key = api_key_create(name="backend")
    response = _lookup(Client(), key)
    assert response.status_code == 400
    assert response.json()["field"] == "user_id"
    assert _lookup(Client(), key, anonymous_id="nobody").status_code == 404


@pytest.mark.django_db
def test_only_the_hash_of_a_key_is_stored_and_its_use_is_recorded() -> None:
    api_key, key = api_key_create(name="backend")
    assert api_key.hashed_key != key
    assert key[8:] not in api_key.hashed_key
    IdentityFactory.create(kind=Identity.Kind.ANONYMOUS_ID, value="a-9")
    _lookup(Client(), key, anonymous_id="a-9")
    api_key.refresh_from_db()
    assert api_key.last_used_at is not None


@pytest.mark.django_db
def test_create_source_and_create_api_key_commands_print_working_keys(
    capsys: pytest.CaptureFixture[str],
) -> None:
    call_command("create_source", "mobile-app")
    write_key = capsys.readouterr().out.strip()
    assert Source.objects.get(name="mobile-app").write_key == write_key
    call_command("create_api_key", "crm-sync")
    raw_key = capsys.readouterr().out.strip()
    IdentityFactory.create(kind=Identity.Kind.ANONYMOUS_ID, value="a-7")
    assert _lookup(Client(), raw_key, anonymous_id="a-7").status_code == 200
