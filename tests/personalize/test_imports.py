from __future__ import annotations

import json
from pathlib import Path

import pytest
from django.core.management import call_command

from personalize.models import Event, EventMessageId, Profile, RejectedEvent


@pytest.mark.django_db
def test_a_crm_csv_imports_profiles_and_events_and_a_second_run_changes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    export = tmp_path / "crm.csv"
    export.write_text(
        "type,user_id,timestamp,event,email,plan,revenue\n"
        "identify,u-1,2026-10-01T09:00:00Z,,ada@example.com,pro,\n"
        "track,u-1,2026-10-02T09:00:00Z,order_completed,,,120.5\n"
        "track,,2026-10-03T09:00:00Z,order_completed,,,10\n"
    )

    call_command("import_events", str(export), "--source", "crm")
    first = capsys.readouterr().out
    call_command("import_events", str(export), "--source", "crm")
    second = capsys.readouterr().out

    assert "3 rows: 2 stored, 0 already there, 1 rejected" in first
    assert "row 3: userId: userId or anonymousId is required" in first
    assert "3 rows: 0 stored, 2 already there, 1 rejected" in second
    profile = Profile.objects.get(identities__value="u-1")
    assert profile.traits == {"email": "ada@example.com", "plan": "pro"}
    assert Event.objects.get(name="order_completed").properties == {"revenue": 120.5}
    assert RejectedEvent.objects.count() == 1


@pytest.mark.django_db
def test_json_lines_of_segment_messages_import_with_their_own_ids(tmp_path: Path) -> None:
    export = tmp_path / "events.jsonl"
    lines = [
        {
            "type": "track",
            "event": "email_opened",
            "userId": "u-2",
            "messageId": "e1",
            "timestamp": "2026-10-01T08:00:00Z",
        },
        {
            "type": "track",
            "event": "email_clicked",
            "userId": "u-2",
            "messageId": "e2",
            "timestamp": "2026-10-01T08:01:00Z",
        },
    ]
    export.write_text("\n".join(json.dumps(line) for line in lines) + "\nnot json\n")

    call_command("import_events", str(export), "--source", "campaigns")

    assert list(Event.objects.order_by("timestamp").values_list("message_id", "name")) == [
        ("e1", "email_opened"),
        ("e2", "email_clicked"),
    ]
    assert RejectedEvent.objects.get().reason == "line 3 is not valid JSON"


@pytest.mark.django_db
def test_a_crm_profile_export_becomes_identify_calls_with_traits(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    export = tmp_path / "customers.csv"
    export.write_text(
        "user_id,anonymous_id,email,plan,zip,lifetime_value\n"
        "u-1,anon-1,ada@example.com,pro,01234,99.5\n"
        "u-2,,grace@example.com,free,,0\n"
        ",,nobody@example.com,free,,\n"
    )

    call_command("import_events", str(export), "--source", "crm", "--kind", "profiles")

    assert "3 rows: 2 stored, 0 already there, 1 rejected" in capsys.readouterr().out
    ada = Profile.objects.get(identities__value="u-1")
    assert sorted(ada.identities.values_list("kind", "value")) == [
        ("anonymous_id", "anon-1"),
        ("user_id", "u-1"),
    ]
    assert ada.traits == {
        "email": "ada@example.com",
        "plan": "pro",
        "zip": "01234",
        "lifetime_value": 99.5,
    }
    grace = Profile.objects.get(identities__value="u-2")
    assert grace.traits == {"email": "grace@example.com", "plan": "free", "lifetime_value": 0}
    assert list(Event.objects.values_list("type", flat=True)) == ["identify", "identify"]
    rejected = RejectedEvent.objects.get()
    assert (rejected.field, rejected.reason) == ("userId", "userId or anonymousId is required")
    assert rejected.payload["traits"] == {"email": "nobody@example.com", "plan": "free"}


@pytest.mark.django_db
def test_rerunning_a_profile_import_does_not_undo_newer_traits(tmp_path: Path) -> None:
    export = tmp_path / "customers.jsonl"
    export.write_text(
        json.dumps({"userId": "u-7", "traits": {"plan": "free"}, "email": "x@example.com"}) + "\n"
    )
    call_command("import_events", str(export), "--source", "crm", "--kind", "profiles")
    profile = Profile.objects.get(identities__value="u-7")
    assert profile.traits == {"plan": "free", "email": "x@example.com"}
    # The customer upgrades afterwards (a live identify call).
    profile.traits = {**profile.traits, "plan": "pro"}
    profile.save()

    call_command("import_events", str(export), "--source", "crm", "--kind", "profiles")

    profile.refresh_from_db()
    assert profile.traits == {"plan": "pro", "email": "x@example.com"}
    assert Event.objects.count() == 1


@pytest.mark.django_db
def test_the_same_row_always_gets_the_same_message_id(tmp_path: Path) -> None:
    export = tmp_path / "events.csv"
    export.write_text("user_id,event,timestamp\nu-1,email_opened,2026-10-01T08:00:00Z\n")
    call_command("import_events", str(export), "--source", "crm")
    first = list(Event.objects.values_list("message_id", flat=True))
    # Forget the events and their claimed ids, as an erasure would.
    Event.objects.all().delete()
    EventMessageId.objects.all().delete()

    call_command("import_events", str(export), "--source", "crm")

    assert list(Event.objects.values_list("message_id", flat=True)) == first
    assert first[0].startswith("import-")


@pytest.mark.django_db
def test_a_row_holding_a_nul_or_nan_is_rejected_and_the_other_rows_are_stored(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    export = tmp_path / "events.jsonl"
    good = {"type": "track", "event": "ok", "userId": "u-1", "messageId": "m-1"}
    nul = {**good, "messageId": "m-2", "properties": {"note": "a\u0000b"}}
    export.write_text(
        "\n".join(
            [
                json.dumps(good),
                json.dumps(nul),
                '{"type": "track", "event": "ok", "userId": "u-1", "properties": {"v": NaN}}',
            ]
        )
    )

    call_command("import_events", str(export), "--source", "crm")
    out = capsys.readouterr().out

    assert "3 rows: 1 stored, 0 already there, 2 rejected" in out
    assert "row 2: properties.note: must not contain the NUL character (\\u0000)" in out
    assert "row 3: message: line 3 is not valid JSON" in out
    assert list(Event.objects.values_list("message_id", flat=True)) == ["m-1"]
    assert RejectedEvent.objects.count() == 2
