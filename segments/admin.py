from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any, ClassVar

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed, JsonResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from simple_history.admin import SimpleHistoryAdmin

from personalize.models import Profile
from personalize.selectors import profile_by_id_value
from segments import history, overlap, selectors
from segments.models import (
    Membership,
    ProfileScore,
    Score,
    Segment,
    SegmentKind,
    SegmentSizeSnapshot,
    Webhook,
    WebhookDelivery,
)
from segments.preview import preview_segment
from segments.rules import RuleError
from segments.rules.text import criteria_from_text, criteria_to_text, json_to_text, text_to_json
from segments.services import (
    explain_profile,
    request_score_recompute,
    request_segment_recompute,
    validate_score_criteria,
    validate_segment_rule,
)
from segments.static import StaticSegmentError, static_segment_freeze, static_segment_import

MEMBERS_PER_PAGE = 50


_MONOSPACE = {"cols": 90, "style": "font-family: monospace"}


def _text_field(label: str, *, rows: int, help_text: str) -> forms.CharField:
    return forms.CharField(
        label=label,
        required=False,
        widget=forms.Textarea(attrs={"rows": rows, **_MONOSPACE}),
        help_text=f"{help_text} Edit either this or the JSON below; a changed text wins.",
    )


def _json_widget(*, rows: int) -> forms.Textarea:
    return forms.Textarea(attrs={"rows": rows, **_MONOSPACE})


class _TextOrJsonForm(forms.ModelForm):
    """A model form whose JSON rule field (``json_field``) editors may also write in the
    text form (``text_field``): either one is enough, a changed text wins, and the value
    is validated (references, cycles) and stored in its canonical JSON."""

    json_field: ClassVar[str]
    text_field: ClassVar[str]
    # JSON → text, text → JSON (both raise RuleError), and the service's validation
    # (called with ``slug`` and the value under ``json_field``'s name).
    to_text: Callable[[Any], str]
    from_text: Callable[[str], Any]
    validator: Callable[..., Any]

    def keeps_stored_value(self) -> bool:
        """Whether the stored JSON is not editable here (it is kept as it is)."""
        return False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # One of the two forms is enough: clean() checks that the value is there.
        if self.json_field in self.fields:
            self.fields[self.json_field].required = False
        stored = getattr(self.instance, self.json_field, None)
        if self.instance.pk and stored:
            try:
                self.initial[self.text_field] = self.to_text(stored)
            except RuleError:
                self.initial[self.text_field] = ""

    def clean(self) -> dict[str, Any]:
        cleaned: dict[str, Any] = super().clean() or {}
        if self.keeps_stored_value():
            cleaned[self.json_field] = getattr(self.instance, self.json_field)
            return cleaned
        slug = cleaned.get("slug")
        text = (cleaned.get(self.text_field) or "").strip()
        if text and text != (self.initial.get(self.text_field) or "").strip():
            try:
                cleaned[self.json_field] = self.from_text(text)
            except RuleError as exc:
                self.add_error(self.text_field, f"{exc.path}: {exc.reason}")
                return cleaned
        if not text and not cleaned.get(self.json_field):
            self.add_error(self.json_field, f"write the {self.json_field}, as text or as JSON")
            return cleaned
        if slug and self.json_field in cleaned:
            try:
                value = {self.json_field: cleaned[self.json_field]}
                cleaned[self.json_field] = self.validator(slug=slug, **value)
            except RuleError as exc:
                self.add_error(self.json_field, f"{exc.path}: {exc.reason}")
        return cleaned


class SegmentForm(_TextOrJsonForm):
    json_field = "rule"
    text_field = "rule_text"
    rule_text = _text_field(
        "Rule (text)",
        rows=3,
        help_text=(
            "e.g. count(product_viewed, last 48h) >= 3 and sum(order_completed.revenue, last 30d)"
            " > 500."
        ),
    )

    class Meta:
        model = Segment
        fields = ("name", "slug", "description", "rule", "is_active")
        widgets = {"rule": _json_widget(rows=16)}

    to_text = staticmethod(json_to_text)
    from_text = staticmethod(text_to_json)
    validator = staticmethod(validate_segment_rule)

    def keeps_stored_value(self) -> bool:
        # A static segment is a list, not a rule: only its name, description and
        # activity change here.
        return bool(self.instance.pk) and self.instance.kind == SegmentKind.STATIC


class StaticImportForm(forms.Form):
    slug = forms.SlugField(max_length=100)
    name = forms.CharField(max_length=200)
    file = forms.FileField(
        help_text="CSV with a header naming a user_id, anonymous_id or email_sha256 column."
    )


def _profile_from(params: Any) -> tuple[Profile | None, str]:
    """The profile named by ``profile_id``, ``user_id`` or ``anonymous_id`` (and an error)."""
    profile_id = str(params.get("profile_id") or "").strip()
    user_id = str(params.get("user_id") or "").strip()
    anonymous_id = str(params.get("anonymous_id") or "").strip()
    if profile_id:
        if not profile_id.isdigit():
            return None, "profile id is a whole number"
        found = Profile.objects.filter(pk=int(profile_id)).first()
        return found, "" if found else f"no profile {profile_id}"
    for kind, value in (("user_id", user_id), ("anonymous_id", anonymous_id)):
        if value:
            found = profile_by_id_value(kind=kind, value=value)
            return found, "" if found else f"no profile with {kind} {value!r}"
    return None, ""


def _candidate_rule(data: Any, saved_text: str) -> Any:
    """The rule the form holds: a changed text wins over the JSON, as when saving."""
    text = str(data.get("rule_text") or "").strip()
    raw_json = str(data.get("rule") or "").strip()
    if text and (text != saved_text.strip() or not raw_json):
        return text_to_json(text)
    if not raw_json:
        raise RuleError("rule", "write the rule, as text or as JSON")
    try:
        return json.loads(raw_json)
    except json.JSONDecodeError as exc:
        raise RuleError("rule", f"is not valid JSON: {exc.msg} at line {exc.lineno}") from None


@admin.register(Segment)
class SegmentAdmin(SimpleHistoryAdmin):
    """History pages revert through this form and save_model: validated, then recomputed."""

    form = SegmentForm
    list_display = ("name", "slug", "kind", "is_active", "member_count", "updated_at")
    list_filter = ("is_active", "kind")
    search_fields = ("name", "slug")
    prepopulated_fields = {"slug": ("name",)}
    change_form_template = "admin/segments/segment/change_form.html"
    change_list_template = "admin/segments/segment/change_list.html"
    actions = ["freeze_snapshot"]

    def get_fields(self, request: HttpRequest, obj: Segment | None = None) -> list[str]:
        if obj is not None and obj.kind == SegmentKind.STATIC:
            return ["name", "slug", "kind", "description", "is_active"]
        return ["name", "slug", "description", "rule_text", "rule", "is_active"]

    def get_readonly_fields(self, request: HttpRequest, obj: Segment | None = None) -> list[str]:
        if obj is not None and obj.kind == SegmentKind.STATIC:
            return ["slug", "kind"]
        return []

    def get_prepopulated_fields(
        self, request: HttpRequest, obj: Segment | None = None
    ) -> dict[str, Sequence[str]]:
        return {} if obj is not None and obj.kind == SegmentKind.STATIC else {"slug": ("name",)}

    @admin.display(description="members now")
    def member_count(self, segment: Segment) -> int:
        return segment.memberships.filter(exited_at__isnull=True).count()

    def save_model(self, request: HttpRequest, obj: Segment, form: Any, change: bool) -> None:
        obj.updated_at = timezone.now()
        super().save_model(request, obj, form, change)
        if obj.kind == SegmentKind.DYNAMIC:
            request_segment_recompute(segment_id=obj.pk)

    # --- list: warnings, overlap, import ------------------------------------------------

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        if request.method == "GET":
            matrix = overlap.overlap_matrix()
            names = {s.id: s.name for s in matrix.segments}
            for segment_id, warnings in overlap.segment_warnings(matrix).items():
                for warning in warnings:
                    messages.warning(request, f"{names[segment_id]}: {warning}")
        return super().changelist_view(request, extra_context)

    def get_urls(self) -> list[URLPattern]:
        view = self.admin_site.admin_view
        return [
            path("overlap/", view(self.overlap_view), name="segments_segment_overlap"),
            path("import-static/", view(self.import_view), name="segments_segment_import"),
            path("preview/", view(self.preview_view), name="segments_segment_preview"),
            path(
                "<int:segment_id>/preview/",
                view(self.preview_view),
                name="segments_segment_preview_saved",
            ),
            *super().get_urls(),
        ]

    def overlap_view(self, request: HttpRequest) -> TemplateResponse:
        """The overlap matrix of the active segments, cells over the threshold highlighted."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        matrix = overlap.overlap_matrix()
        measure = settings.P13N_SEGMENT_OVERLAP_MEASURE
        threshold = settings.P13N_SEGMENT_OVERLAP_THRESHOLD
        rows = []
        for row in matrix.segments:
            cells: list[dict[str, Any]] = []
            for column in matrix.segments:
                if row.id == column.id:
                    cells.append({"self": True, "both": row.members})
                    continue
                pair = matrix.pair(row.id, column.id)
                both = pair.both if pair else 0
                value = pair.measure(measure) if pair else 0.0
                share = both / row.members if row.members else 0.0
                cells.append(
                    {
                        "self": False,
                        "both": both,
                        "share": f"{share:.0%}",
                        "value": f"{value:.0%}",
                        "high": value >= threshold,
                    }
                )
            rows.append({"segment": row, "cells": cells})
        context = {
            **self.admin_site.each_context(request),
            "title": "Segment overlap",
            "opts": self.model._meta,
            "segments": matrix.segments,
            "rows": rows,
            "measure": measure,
            "threshold": f"{threshold:.0%}",
            "warnings": [
                (s.name, w) for s in matrix.segments for w in overlap.segment_warnings(matrix)[s.id]
            ],
        }
        return TemplateResponse(request, "admin/segments/segment/overlap.html", context)

    def import_view(self, request: HttpRequest) -> HttpResponse:
        """Create a static segment (or replace its list) from a CSV upload; show the report."""
        if not self.has_add_permission(request):
            raise PermissionDenied
        report = None
        form = StaticImportForm(request.POST or None, request.FILES or None)
        if request.method == "POST" and form.is_valid():
            upload = form.cleaned_data["file"]
            try:
                report = static_segment_import(
                    slug=form.cleaned_data["slug"],
                    name=form.cleaned_data["name"],
                    handle=upload.file,
                    source=f"CSV upload {upload.name}",
                )
            except StaticSegmentError as exc:
                form.add_error("file" if exc.field == "file" else "slug", exc.reason)
            else:
                messages.success(request, f"Imported {report.segment}: {report.summary()}")
        context = {
            **self.admin_site.each_context(request),
            "title": "Import a static segment from CSV",
            "opts": self.model._meta,
            "form": form,
            "report": report,
        }
        return TemplateResponse(request, "admin/segments/segment/import.html", context)

    def preview_view(self, request: HttpRequest, segment_id: int | None = None) -> HttpResponse:
        """Size, sample and entering/leaving for the form's rule, without saving (JSON)."""
        return _preview(self, request, segment_id)

    @admin.action(description="Freeze a snapshot as a static segment")
    def freeze_snapshot(self, request: HttpRequest, queryset: QuerySet[Segment]) -> None:
        now = timezone.now()
        for source in queryset.order_by("slug"):
            slug = f"{source.slug}-{now:%Y%m%d%H%M%S}"[:100]
            try:
                frozen = static_segment_freeze(
                    source=source,
                    slug=slug,
                    name=f"{source.name} (snapshot {now:%Y-%m-%d %H:%M})",
                    now=now,
                )
            except StaticSegmentError as exc:
                messages.error(request, f"{source.name}: {exc.reason}")
                continue
            count = frozen.memberships.filter(exited_at__isnull=True).count()
            messages.success(request, f"Froze {source.name} as {frozen.slug}: {count} members.")

    # --- the change page: guards, size chart, members, explain ---------------------------

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        segment = self.get_object(request, object_id)
        extra = dict(extra_context or {})
        if segment is not None:
            extra.update(_segment_page_context(request, segment))
        return super().change_view(request, object_id, form_url, extra)


def _preview(
    model_admin: SegmentAdmin, request: HttpRequest, segment_id: int | None
) -> HttpResponse:
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    if not model_admin.has_view_permission(request):
        return JsonResponse({"error": "staff only"}, status=403)
    saved = get_object_or_404(Segment, pk=segment_id) if segment_id is not None else None
    slug = saved.slug if saved is not None else str(request.POST.get("slug") or "").strip()
    saved_text = ""
    if saved is not None and saved.kind == SegmentKind.DYNAMIC:
        try:
            saved_text = json_to_text(saved.rule)
        except RuleError:
            saved_text = ""
    try:
        preview = preview_segment(rule=_candidate_rule(request.POST, saved_text), slug=slug)
    except RuleError as exc:
        return JsonResponse({"error": f"{exc.path}: {exc.reason}", "field": exc.path}, status=400)
    return JsonResponse(preview.as_json())


def _segment_page_context(request: HttpRequest, segment: Segment) -> dict[str, Any]:
    now = timezone.now()
    week_ago = now - history.LAST_WEEK
    members = selectors.segment_members(segment_id=segment.pk)
    page = Paginator(members, MEMBERS_PER_PAGE).get_page(request.GET.get("members_page"))
    matrix = overlap.overlap_matrix()
    context: dict[str, Any] = {
        "segment": segment,
        "guard_warnings": overlap.segment_warnings(matrix).get(segment.pk, []),
        "size_chart": history.size_chart_svg(
            history.size_series(segment_id=segment.pk, since=now - timedelta(days=30))
        ),
        "flow": history.membership_flow(segment_id=segment.pk, since=week_ago),
        "members_page": page,
        "member_rows": [
            {
                "profile_id": m.profile_id,
                "url": reverse("admin:personalize_profile_change", args=[m.profile_id]),
                "ids": ", ".join(f"{i.kind}={i.value}" for i in m.profile.identities.all()),
                "entered_at": m.entered_at,
            }
            for m in page.object_list
        ],
        "explain_params": {
            key: request.GET.get(key, "") for key in ("profile_id", "user_id", "anonymous_id")
        },
    }
    profile, error = _profile_from(request.GET)
    context["explain_error"] = error
    if profile is not None:
        evaluation = explain_profile(profile_id=profile.pk, segment=segment, now=now)
        context["explanation"] = {
            "profile_id": profile.pk,
            "url": reverse("admin:personalize_profile_change", args=[profile.pk]),
            "matched": evaluation.matched,
            "conditions": evaluation.conditions,
            "next_change_at": evaluation.next_change_at,
        }
    return context


def explanations_html(*, profile_id: int) -> SafeString:
    """Every active segment explained for one profile (the Profile admin page)."""
    now = timezone.now()
    sections = []
    for segment in Segment.objects.filter(is_active=True).order_by("name"):
        evaluation = explain_profile(profile_id=profile_id, segment=segment, now=now)
        conditions = format_html_join(
            "",
            "<li>{} {}</li>",
            (("✔" if c.held else "✘", c.text) for c in evaluation.conditions),
        )
        sections.append(
            format_html(
                "<div><strong>{}</strong>: {}<ul>{}</ul></div>",
                segment.name,
                "matches" if evaluation.matched else "does not match",
                conditions,
            )
        )
    if not sections:
        return format_html("<em>{}</em>", "no active segments")
    return format_html_join("", "{}", ((section,) for section in sections))


@admin.register(Webhook)
class WebhookAdmin(admin.ModelAdmin[Webhook]):
    list_display = ("name", "url", "is_active", "watched", "last_delivery")
    list_filter = ("is_active",)
    filter_horizontal = ("segments",)
    fields = ("name", "url", "secret", "segments", "is_active", "created_at")
    readonly_fields = ("created_at",)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Webhook]:
        return super().get_queryset(request).prefetch_related("segments")

    @admin.display(description="segments")
    def watched(self, webhook: Webhook) -> str:
        return ", ".join(s.slug for s in webhook.segments.all()) or "all"

    @admin.display(description="last delivery")
    def last_delivery(self, webhook: Webhook) -> str:
        last = webhook.deliveries.order_by("-created_at", "-pk").first()
        if last is None:
            return "none yet"
        code = "" if last.last_status_code is None else f" (HTTP {last.last_status_code})"
        return f"{last.status}{code}, {last.attempts} attempt(s)"


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(admin.ModelAdmin[WebhookDelivery]):
    list_display = (
        "created_at",
        "webhook",
        "status",
        "attempts",
        "last_status_code",
        "last_attempt_at",
    )
    list_filter = ("status", "webhook")
    list_select_related = ("webhook",)
    readonly_fields = [f.name for f in WebhookDelivery._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(SegmentSizeSnapshot)
class SegmentSizeSnapshotAdmin(admin.ModelAdmin[SegmentSizeSnapshot]):
    list_display = ("segment", "at", "members")
    list_filter = ("segment",)
    list_select_related = ("segment",)
    date_hierarchy = "at"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin[Membership]):
    list_display = ("profile", "segment", "entered_at", "exited_at")
    list_filter = ("segment", ("exited_at", admin.EmptyFieldListFilter))
    list_select_related = ("profile", "segment")
    readonly_fields = ("profile", "segment", "entered_at", "exited_at", "reasons")
    exclude = ("entry_reason", "exit_reason")

    @admin.display(description="why")
    def reasons(self, membership: Membership) -> str:
        return json.dumps(
            {"entry": membership.entry_reason, "exit": membership.exit_reason}, indent=2
        )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


class ScoreForm(_TextOrJsonForm):
    json_field = "criteria"
    text_field = "criteria_text"
    criteria_text = _text_field(
        "Criteria (text)",
        rows=6,
        help_text=(
            "One criterion per line: points, a colon, a rule. e.g. "
            "10: count(email_opened, last 30d) >= 1."
        ),
    )

    class Meta:
        model = Score
        fields = ("name", "slug", "description", "criteria", "is_active")
        widgets = {"criteria": _json_widget(rows=12)}

    to_text = staticmethod(criteria_to_text)
    from_text = staticmethod(criteria_from_text)
    validator = staticmethod(validate_score_criteria)


@admin.register(Score)
class ScoreAdmin(admin.ModelAdmin[Score]):
    form = ScoreForm
    fields = ("name", "slug", "description", "criteria_text", "criteria", "is_active")
    list_display = ("name", "slug", "is_active", "updated_at")
    list_filter = ("is_active",)
    search_fields = ("name", "slug")
    prepopulated_fields = {"slug": ("name",)}

    def save_model(self, request: HttpRequest, obj: Score, form: Any, change: bool) -> None:
        from django.utils import timezone

        obj.updated_at = timezone.now()
        super().save_model(request, obj, form, change)
        request_score_recompute(score=obj)


class ProfileScoreInline(admin.TabularInline[ProfileScore, Profile]):
    model = ProfileScore
    extra = 0
    can_delete = False
    fields = ("score", "value", "held", "updated_at")
    readonly_fields = fields
    verbose_name_plural = "scores (as of the last recompute)"

    @admin.display(description="criteria that held")
    def held(self, row: ProfileScore) -> str:
        return "; ".join(c["text"] for c in row.criteria if c.get("held")) or "none"

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


# The profile admin lives in personalize (which must not import segments): add the
# scores inline to it from here, keeping whatever it already shows.
_profile_admin = admin.site._registry.get(Profile)
if _profile_admin is not None and ProfileScoreInline not in _profile_admin.inlines:
    _profile_admin.inlines = [*_profile_admin.inlines, ProfileScoreInline]  # type: ignore[misc]
