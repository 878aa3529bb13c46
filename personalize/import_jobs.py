"""Import jobs started in admin: the upload is stored, a worker imports it in chunks.

Each chunk is stored in one transaction together with the job's progress, and
the chunk is claimed by a conditional update on ``processed``: a redelivered
task (worker lost, broker visibility timeout) resumes after the last committed
chunk, and two deliveries running at once never import the same chunk twice.
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Callable
from datetime import datetime

from django.contrib.auth.models import User
from django.core.files import File
from django.core.files.storage import default_storage
from django.db import OperationalError, transaction
from django.db.models import F
from django.db.models.functions import Coalesce
from django.utils import timezone

from personalize.imports import (
    MAX_LISTED_ERRORS,
    FileFormat,
    ImportKind,
    count_records,
    detect_format,
    parse_chunks,
    read_records,
    store_chunk,
    text_stream,
)
from personalize.models import ImportJob, Source
from personalize.plans import plan_for

logger = logging.getLogger(__name__)


def import_job_create(
    *,
    upload: File,
    kind: ImportKind,
    source: Source,
    file_format: FileFormat | None = None,
    started_by: User | None = None,
) -> ImportJob:
    """Store the upload under MEDIA_ROOT and queue its import once the job is committed."""
    from personalize.tasks import run_import_job

    name = upload.name or "import"
    if file_format is None:
        head = upload.read(64)
        upload.seek(0)
        file_format = detect_format(name, head if isinstance(head, bytes) else head.encode())
    with transaction.atomic():
        job = ImportJob(kind=kind, file_format=file_format, source=source, started_by=started_by)
        job.file.save(name, upload, save=False)
        job.save()
        job_id = job.pk
        transaction.on_commit(lambda: run_import_job.delay(job_id))
    return job


def import_job_run(*, job_id: int, now: Callable[[], datetime] = timezone.now) -> ImportJob:
    """Import the job's file from where it stands; safe to call again at any point."""
    claimed = ImportJob.objects.filter(
        pk=job_id, status__in=[ImportJob.Status.QUEUED, ImportJob.Status.RUNNING]
    ).update(status=ImportJob.Status.RUNNING, started_at=Coalesce(F("started_at"), now()))
    job = ImportJob.objects.select_related("source").get(pk=job_id)
    if not claimed:
        return job  # finished already: a late redelivery
    try:
        _import(job, now=now)
    except OperationalError:
        raise  # transient (database restarting): the task retries and resumes
    except (UnicodeDecodeError, csv.Error) as exc:
        _finish(
            job_id,
            ImportJob.Status.FAILED,
            now(),
            error=f"file: not readable as {job.get_file_format_display()} in UTF-8 ({exc})",
        )
    except Exception as exc:
        logger.exception("import job %s failed", job_id)
        _finish(job_id, ImportJob.Status.FAILED, now(), error=f"{type(exc).__name__}: {exc}")
    else:
        _finish(job_id, ImportJob.Status.DONE, now())
    job.refresh_from_db()
    return job


def import_job_resume(*, job_id: int) -> bool:
    """Queue a failed job again; it continues after its last committed chunk."""
    from personalize.tasks import run_import_job

    with transaction.atomic():
        requeued = ImportJob.objects.filter(pk=job_id, status=ImportJob.Status.FAILED).update(
            status=ImportJob.Status.QUEUED, error="", finished_at=None
        )
        if requeued:
            transaction.on_commit(lambda: run_import_job.delay(job_id))
    return bool(requeued)


def _import(job: ImportJob, *, now: Callable[[], datetime]) -> None:
    file_format: FileFormat = job.file_format  # type: ignore[assignment]
    kind: ImportKind = job.kind  # type: ignore[assignment]
    stored_name = str(job.file.name)
    if job.total_rows is None:
        with default_storage.open(stored_name, "rb") as binary:
            total = count_records(text_stream(binary), file_format=file_format)
        ImportJob.objects.filter(pk=job.pk).update(total_rows=total)
    with default_storage.open(stored_name, "rb") as binary:
        records = read_records(text_stream(binary), file_format=file_format, kind=kind)
        for chunk in parse_chunks(
            records, start_at=job.processed, now=now, plan=plan_for(job.source)
        ):
            with transaction.atomic():
                claimed = ImportJob.objects.filter(
                    pk=job.pk, status=ImportJob.Status.RUNNING, processed=chunk.first_row
                ).update(processed=chunk.first_row + chunk.rows)
                if claimed != 1:
                    logger.info("import job %s moved on elsewhere; stopping here", job.pk)
                    return
                result = store_chunk(source=job.source, chunk=chunk, received_at=now())
                listed = ImportJob.objects.values_list("row_errors", flat=True).get(pk=job.pk)
                ImportJob.objects.filter(pk=job.pk).update(
                    stored=F("stored") + result.stored,
                    duplicates=F("duplicates") + result.duplicates,
                    rejected=F("rejected") + result.rejected,
                    row_errors=[*listed, *result.errors][:MAX_LISTED_ERRORS],
                )


def _finish(job_id: int, status: str, at: datetime, *, error: str = "") -> None:
    ImportJob.objects.filter(pk=job_id, status=ImportJob.Status.RUNNING).update(
        status=status, finished_at=at, error=error
    )


def import_job_progress(*, job_id: int) -> dict[str, object] | None:
    """What the admin's progress bar polls; None for an unknown job."""
    row = (
        ImportJob.objects.filter(pk=job_id)
        .values("status", "total_rows", "processed", "stored", "duplicates", "rejected", "error")
        .first()
    )
    if row is None:
        return None
    return {**row, "finished": row["status"] in {ImportJob.Status.DONE, ImportJob.Status.FAILED}}
