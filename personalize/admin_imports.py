"""Admin for bulk imports: upload a file, watch its progress bar, follow its rejects."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.auth.models import User
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from personalize.import_jobs import (
    import_job_create,
    import_job_progress,
    import_job_resume,
)
from personalize.imports import detect_format
from personalize.models import ImportJob

PROGRESS_FIELDS = (
    "progress",
    "status",
    "kind",
    "file_format",
    "file_name",
    "source",
    ("total_rows", "processed"),
    ("stored", "duplicates", "rejected"),
    "rejects",
    "row_error_list",
    "error",
    "started_by",
    ("created_at", "started_at", "finished_at"),
)


class ImportJobForm(forms.ModelForm[ImportJob]):
    file_format = forms.ChoiceField(
        label="Format",
        choices=[("", "Detect from the file"), *ImportJob.Format.choices],
        required=False,
    )

    class Meta:
        model = ImportJob
        fields = ("file", "kind", "file_format", "source")
        help_texts = {
            "file": "CSV with a header row, or JSON Lines (one object per line), UTF-8.",
        }

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        upload = cleaned.get("file")
        if upload is not None and not cleaned.get("file_format"):
            head = upload.read(64)
            upload.seek(0)
            cleaned["file_format"] = detect_format(upload.name or "", head)
        return cleaned


@admin.register(ImportJob)
class ImportJobAdmin(admin.ModelAdmin[ImportJob]):
    form = ImportJobForm
    list_display = ("id", "kind", "source", "status", "processed", "total_rows", "created_at")
    list_filter = ("status", "kind", "source")
    list_select_related = ("source",)
    actions = ["resume_selected"]

    class Media:
        js = ("p13n/import-progress.js",)

    def get_fields(self, request: HttpRequest, obj: ImportJob | None = None) -> Any:
        return PROGRESS_FIELDS if obj is not None else ("file", "kind", "file_format", "source")

    def get_readonly_fields(self, request: HttpRequest, obj: ImportJob | None = None) -> Any:
        if obj is None:
            return ()
        return [
            f
            for group in PROGRESS_FIELDS
            for f in (group if isinstance(group, tuple) else (group,))
        ]

    def has_change_permission(self, request: HttpRequest, obj: ImportJob | None = None) -> bool:
        # A job is a record of what happened: viewed, never edited.
        return False

    def save_model(self, request: HttpRequest, obj: ImportJob, form: Any, change: bool) -> None:
        data = form.cleaned_data
        job = import_job_create(
            upload=data["file"],
            kind=data["kind"],
            file_format=data["file_format"],
            source=data["source"],
            started_by=request.user if isinstance(request.user, User) else None,
        )
        # The admin redirects to the saved object's page: point it at the job.
        obj.pk, obj.file = job.pk, job.file

    def response_add(
        self, request: HttpRequest, obj: ImportJob, post_url_continue: str | None = None
    ) -> HttpResponse:
        # Straight to the job's page, where its progress bar runs.
        return HttpResponseRedirect(reverse("admin:personalize_importjob_change", args=[obj.pk]))

    def get_urls(self) -> list[URLPattern]:
        progress = path(
            "<int:job_id>/progress/",
            self.admin_site.admin_view(self.progress_view),
            name="personalize_importjob_progress",
        )
        return [progress, *super().get_urls()]

    def progress_view(self, request: HttpRequest, job_id: int) -> JsonResponse:
        if not self.has_view_permission(request):
            return JsonResponse({"detail": "not allowed"}, status=403)
        progress = import_job_progress(job_id=job_id)
        if progress is None:
            raise Http404("no such import job")
        return JsonResponse(progress)

    @admin.display(description="Progress")
    def progress(self, job: ImportJob) -> SafeString:
        total = job.total_rows
        return format_html(
            '<div data-progress-url="{}" data-finished="{}">'
            '<progress max="{}" value="{}" style="width: 24em">{} of {}</progress> '
            "<span data-progress-text>{} of {} rows: {} stored, {} already there, "
            "{} rejected</span></div>",
            reverse("admin:personalize_importjob_progress", args=[job.pk]),
            "true" if job.finished else "false",
            max(total or 0, 1),
            job.processed,
            job.processed,
            "?" if total is None else total,
            job.processed,
            "?" if total is None else total,
            job.stored,
            job.duplicates,
            job.rejected,
        )

    @admin.display(description="Rejected rows")
    def rejects(self, job: ImportJob) -> SafeString:
        if not job.rejected:
            return format_html("<em>{}</em>", "none")
        url = reverse("admin:personalize_rejectedevent_changelist")
        return format_html(
            '<a href="{}?source__id__exact={}&amp;status__exact=quarantined">'
            "{} rejected row(s): quarantined messages of source {}</a>",
            url,
            job.source_id,
            job.rejected,
            job.source,
        )

    @admin.display(description="First rejections")
    def row_error_list(self, job: ImportJob) -> SafeString:
        if not job.row_errors:
            return format_html("<em>{}</em>", "none")
        return format_html_join("", "<div>{}</div>", ((e,) for e in job.row_errors))

    @admin.display(description="File")
    def file_name(self, job: ImportJob) -> str:
        # Uploads are never served over HTTP (personal data): the name, not a link.
        return str(job.file.name)

    @admin.action(description="Resume the selected failed imports")
    def resume_selected(self, request: HttpRequest, queryset: Any) -> None:
        resumed = sum(import_job_resume(job_id=pk) for pk in queryset.values_list("pk", flat=True))
        messages.info(request, f"{resumed} import(s) queued again.")
