"""Bulk imports started in admin: upload, a worker job in chunks, progress, rejects."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from pytest_django.fixtures import DjangoCaptureOnCommitCallbacks

from personalize import imports
from personalize.import_jobs import import_job_run
from personalize.models import Event, ImportJob, Profile, RejectedEvent, Source
from tests.factories import SourceFactory

ADD_URL = "/admin/personalize/importjob/add/"


@pytest.fixture(autouse=True)
def media_root(settings: Any, tmp_path: Path) -> Path:
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


@pytest.fixture
def crm(db: None) -> Source:
    source: Source = SourceFactory.create(name="crm")
    return source


def _events_csv(good: int, bad: int) -> bytes:
    lines = ["type,user_id,event,timestamp,revenue"]
    for n in range(good):
        lines.append(f"track,u-{n % 7},email_opened,2026-10-01T08:{n % 60:02d}:00Z,{n}")
    for n in range(bad):
        lines.append(f"track,u-{n},email_opened,2026-10-01T08:00:00Z,-{n + 1}")
    return ("\n".join(lines) + "\n").encode()


def _upload(
    client: Client,
    captured: DjangoCaptureOnCommitCallbacks,
    *,
    name: str,
    content: bytes,
    source: Source,
    kind: str = "events",
    file_format: str = "",
) -> ImportJob:
    with captured(execute=True):
        response = client.post(
            ADD_URL,
            {
                "file": SimpleUploadedFile(name, content),
                "kind": kind,
                "file_format": file_format,
                "source": source.pk,
            },
        )
    assert response.status_code == 302, response.content.decode()[:2000]
    job = ImportJob.objects.latest("pk")
    assert response["Location"] == f"/admin/personalize/importjob/{job.pk}/change/"
    return job


def test_an_uploaded_events_file_is_imported_in_chunks_with_exact_counts(
    admin_client: Client,
    admin_user: User,
    crm: Source,
    django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks,
    monkeypatch: pytest.MonkeyPatch,
    media_root: Path,
) -> None:
    monkeypatch.setattr(imports, "CHUNK", 4)
    seen: list[int] = []
    real_store = imports.store_chunk

    def store_and_watch(**kwargs: Any) -> imports.ImportResult:
        seen.append(ImportJob.objects.get().processed)
        return real_store(**kwargs)

    monkeypatch.setattr("personalize.import_jobs.store_chunk", store_and_watch)

    job = _upload(
        admin_client,
        django_capture_on_commit_callbacks,
        name="campaign.csv",
        content=_events_csv(good=9, bad=2),
        source=crm,
    )

    job.refresh_from_db()
    assert (job.status, job.file_format, job.kind) == ("done", "csv", "events")
    assert (job.total_rows, job.processed, job.stored, job.duplicates, job.rejected) == (
        11,
        11,
        9,
        0,
        2,
    )
    # Progress moved chunk by chunk (4 rows each), claimed before each chunk was stored.
    assert seen == [4, 8, 11]
    assert job.started_by == admin_user
    assert job.started_at is not None
    assert job.finished_at is not None
    assert (media_root / str(job.file.name)).read_bytes() == _events_csv(good=9, bad=2)
    assert Event.objects.filter(source=crm).count() == 9
    assert sorted(RejectedEvent.objects.values_list("field", "reason")) == [
        ("properties.revenue", "must not be negative"),
        ("properties.revenue", "must not be negative"),
    ]
    assert job.row_errors == [
        "row 10: properties.revenue: must not be negative",
        "row 11: properties.revenue: must not be negative",
    ]


def test_uploading_the_same_file_again_stores_nothing(
    admin_client: Client,
    crm: Source,
    django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks,
) -> None:
    content = _events_csv(good=5, bad=1)
    _upload(
        admin_client, django_capture_on_commit_callbacks, name="a.csv", content=content, source=crm
    )
    events_before = list(Event.objects.order_by("pk").values_list("pk", "message_id"))

    rerun = _upload(
        admin_client, django_capture_on_commit_callbacks, name="a.csv", content=content, source=crm
    )

    rerun.refresh_from_db()
    assert (rerun.status, rerun.processed, rerun.stored, rerun.duplicates, rerun.rejected) == (
        "done",
        6,
        0,
        5,
        1,
    )
    assert list(Event.objects.order_by("pk").values_list("pk", "message_id")) == events_before
    assert RejectedEvent.objects.count() == 1


def test_a_profiles_jsonl_upload_detects_its_format_and_sets_traits(
    admin_client: Client,
    crm: Source,
    django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks,
) -> None:
    lines = [
        {"user_id": "u-1", "email": "ada@example.com", "traits": {"plan": "pro"}},
        {"anonymous_id": "a-2", "email": "grace@example.com"},
    ]
    content = "\n".join(json.dumps(line) for line in lines).encode() + b"\n"

    job = _upload(
        admin_client,
        django_capture_on_commit_callbacks,
        name="customers.export",
        content=content,
        source=crm,
        kind="profiles",
    )

    job.refresh_from_db()
    assert (job.file_format, job.status, job.stored, job.rejected) == ("jsonl", "done", 2, 0)
    assert Profile.objects.get(identities__value="u-1").traits == {
        "email": "ada@example.com",
        "plan": "pro",
    }
    assert Profile.objects.get(identities__value="a-2").traits == {"email": "grace@example.com"}


def test_the_job_page_shows_a_progress_bar_that_polls_until_done(
    admin_client: Client, crm: Source
) -> None:
    job = ImportJob.objects.create(
        file="imports/x.csv",
        file_format="csv",
        source=crm,
        status="running",
        total_rows=1000,
        processed=500,
        stored=490,
        rejected=10,
    )

    page = admin_client.get(f"/admin/personalize/importjob/{job.pk}/change/").content.decode()
    progress = admin_client.get(f"/admin/personalize/importjob/{job.pk}/progress/")

    assert '<progress max="1000" value="500"' in page
    assert f'data-progress-url="/admin/personalize/importjob/{job.pk}/progress/"' in page
    assert 'data-finished="false"' in page
    assert "p13n/import-progress.js" in page
    assert "imports/x.csv" in page
    assert 'href="/media/' not in page  # uploads hold personal data: never linked or served
    assert progress.json() == {
        "status": "running",
        "total_rows": 1000,
        "processed": 500,
        "stored": 490,
        "duplicates": 0,
        "rejected": 10,
        "error": "",
        "finished": False,
    }


def test_a_finished_job_links_to_its_quarantined_rows(admin_client: Client, crm: Source) -> None:
    job = ImportJob.objects.create(
        file="imports/x.csv",
        file_format="csv",
        source=crm,
        status="done",
        total_rows=3,
        processed=3,
        stored=1,
        rejected=2,
    )

    page = admin_client.get(f"/admin/personalize/importjob/{job.pk}/change/").content.decode()

    assert 'data-finished="true"' in page
    assert (
        f'href="/admin/personalize/rejectedevent/?source__id__exact={crm.pk}'
        '&amp;status__exact=quarantined"'
    ) in page
    assert (
        admin_client.get(
            f"/admin/personalize/rejectedevent/?source__id__exact={crm.pk}&status__exact=quarantined"
        ).status_code
        == 200
    )


def test_a_redelivered_job_resumes_after_its_last_committed_chunk(
    crm: Source, monkeypatch: pytest.MonkeyPatch, media_root: Path
) -> None:
    monkeypatch.setattr(imports, "CHUNK", 2)
    media_root.mkdir(parents=True)
    (media_root / "imports").mkdir()
    (media_root / "imports" / "e.csv").write_bytes(_events_csv(good=5, bad=0))
    # A worker died after committing the first two rows.
    job = ImportJob.objects.create(
        file="imports/e.csv",
        file_format="csv",
        source=crm,
        status="running",
        total_rows=5,
        processed=2,
        stored=2,
    )

    import_job_run(job_id=job.pk)

    job.refresh_from_db()
    assert (job.status, job.processed, job.stored, job.duplicates) == ("done", 5, 5, 0)
    # Rows 1 and 2 were skipped, not stored again or counted as duplicates.
    assert Event.objects.count() == 3

    assert import_job_run(job_id=job.pk).stored == 5  # a late redelivery changes nothing
    assert Event.objects.count() == 3


def test_a_file_that_is_not_utf8_fails_the_job_with_a_reason(
    admin_client: Client,
    crm: Source,
    django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks,
) -> None:
    job = _upload(
        admin_client,
        django_capture_on_commit_callbacks,
        name="latin1.csv",
        content="user_id,event\nu-1,caf\xe9\n".encode("latin-1"),
        source=crm,
    )

    job.refresh_from_db()
    assert job.status == "failed"
    assert job.error.startswith("file: not readable as CSV in UTF-8")
    assert Event.objects.count() == 0


def test_non_staff_users_can_neither_upload_nor_poll(
    client: Client,
    crm: Source,
    django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks,
) -> None:
    user = User.objects.create_user("visitor", password="pw-visitor-123")
    client.force_login(user)
    job = ImportJob.objects.create(file="imports/x.csv", file_format="csv", source=crm)

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        upload = client.post(
            ADD_URL,
            {
                "file": SimpleUploadedFile("a.csv", _events_csv(1, 0)),
                "kind": "events",
                "source": crm.pk,
            },
        )
    progress = client.get(f"/admin/personalize/importjob/{job.pk}/progress/")

    assert upload.status_code == 302
    assert upload["Location"].startswith("/admin/login/")
    assert progress.status_code == 302
    assert progress["Location"].startswith("/admin/login/")
    assert callbacks == []
    assert ImportJob.objects.count() == 1
    assert Event.objects.count() == 0


def test_staff_without_import_permission_cannot_poll(client: Client, crm: Source) -> None:
    staff = User.objects.create_user("editor", password="pw-editor-123", is_staff=True)
    client.force_login(staff)
    job = ImportJob.objects.create(file="imports/x.csv", file_format="csv", source=crm)

    assert client.get(f"/admin/personalize/importjob/{job.pk}/progress/").status_code == 403
    assert client.post(ADD_URL, {}).status_code == 403


def test_staff_can_open_the_upload_form(admin_client: Client, crm: Source) -> None:
    page = admin_client.get(ADD_URL).content.decode()

    assert 'enctype="multipart/form-data"' in page
    assert '<option value="" selected>Detect from the file</option>' in page
    assert '<option value="profiles">Profiles (one person per row)</option>' in page
