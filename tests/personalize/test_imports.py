from __future__ import annotations

import json
from pathlib import Path

import pytest
from django.core.management import call_command

from personalize.models import Event, Profile, RejectedEvent


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
