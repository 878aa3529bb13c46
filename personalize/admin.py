from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import URLPattern, path
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from personalize import quality
from personalize.keys import issue_key
from personalize.models import (
    ApiKey,
    Event,
    Identity,
    PendingBatch,
    Profile,
    ProfileMerge,
    QualityAlert,
    RejectedEvent,
    Source,
)
from personalize.privacy import profile_erase, profile_export
from personalize.quarantine import replay
from personalize.selectors import recent_events
from personalize.services import store_again, store_pending_batches
from segments.selectors import current_memberships


@admin.register(Source)
class SourceAdmin(admin.ModelAdmin[Source]):
    list_display = ("name", "write_key", "enabled", "has_plan", "plan_mode", "created_at")
    list_filter = ("enabled", "plan_mode")
    search_fields = ("name",)
    readonly_fields = ("created_at",)
    fieldsets = (
        (None, {"fields": ("name", "write_key", "enabled", "created_at")}),
        ("Tracking plan", {"fields": ("tracking_plan", "plan_mode", "unplanned_events")}),
    )
    change_list_template = "admin/personalize/source/change_list.html"

    @admin.display(boolean=True, description="plan")
    def has_plan(self, source: Source) -> bool:
        return bool(source.tracking_plan)

    def get_urls(self) -> list[URLPattern]:
        return [
            path(
                "data-quality/",
                self.admin_site.admin_view(self.data_quality_view),
                name="personalize_data_quality",
            ),
            *super().get_urls(),
        ]

    def data_quality_view(self, request: HttpRequest) -> TemplateResponse:
        """Counts per source and event name, rejects by reason and recent alerts."""
        period = request.GET.get("since", "24h")
        try:
            span = quality.parse_period(period)
        except ValueError as exc:
            messages.error(request, str(exc))
            period, span = "24h", timedelta(hours=24)
        source_name = request.GET.get("source") or None
        report = quality.quality_report(since=timezone.now() - span, source_name=source_name)
        context = {
            **self.admin_site.each_context(request),
            "title": "Data quality",
            "opts": self.model._meta,
            "report": report,
            "period": period,
            "periods": ("1h", "24h", "7d", "30d"),
            "source_name": source_name or "",
            "sources": Source.objects.order_by("name").values_list("name", flat=True),
        }
        return TemplateResponse(request, "admin/personalize/data_quality.html", context)


@admin.register(PendingBatch)
class PendingBatchAdmin(admin.ModelAdmin[PendingBatch]):
    """The ingest inbox: batches the tracking API accepted that no worker has stored
    yet; normally empty within seconds. A batch whose storing kept failing is set
    aside here with its error, to be stored again once the cause is fixed."""

    list_display = ("pk", "received_at", "source", "size", "failed_attempts", "last_error")
    list_filter = ("source",)
    list_select_related = ("source",)
    fields = ("source", "received_at", "size", "failed_attempts", "last_error")
    readonly_fields = fields
    actions = ["store_selected_again"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # accepted messages are never dropped by a click

    @admin.action(description="Store the selected batches again (after fixing the cause)")
    def store_selected_again(self, request: HttpRequest, queryset: Any) -> None:
        count = store_again(batch_ids=list(queryset.values_list("pk", flat=True)))
        messages.info(request, f"{count} batch(es) queued to be stored again.")


@admin.register(RejectedEvent)
class RejectedEventAdmin(admin.ModelAdmin[RejectedEvent]):
    list_display = ("received_at", "source", "event_name", "field", "reason", "status")
    list_filter = ("status", "source", "field")
    search_fields = ("reason", "field", "event_name")
    list_select_related = ("source",)
    readonly_fields = (
        "source",
        "received_at",
        "event_name",
        "field",
        "reason",
        "violations",
        "status",
        "replayed_at",
    )
    fields = (
        "source",
        "received_at",
        "event_name",
        "field",
        "reason",
        "violations",
        "status",
        "replayed_at",
        "payload",
    )
    actions = ["replay_selected", "discard_selected"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.action(description="Replay the selected messages (after fixing their data or the rules)")
    def replay_selected(self, request: HttpRequest, queryset: Any) -> None:
        result = replay(rejected_ids=queryset.values_list("pk", flat=True))
        messages.info(
            request,
            f"{result.replayed} replayed and stored; {result.still_rejected} still rejected.",
        )

    @admin.action(description="Discard the selected messages")
    def discard_selected(self, request: HttpRequest, queryset: Any) -> None:
        queryset.filter(status=RejectedEvent.Status.QUARANTINED).update(
            status=RejectedEvent.Status.DISCARDED
        )


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin[ApiKey]):
    list_display = ("name", "prefix", "created_at", "last_used_at", "revoked")
    list_filter = ("revoked",)
    readonly_fields = ("prefix", "created_at", "last_used_at")
    fields = ("name", "revoked", "prefix", "created_at", "last_used_at")
    actions = ["revoke"]

    def save_model(self, request: HttpRequest, obj: ApiKey, form: Any, change: bool) -> None:
        if not change:
            # Issue the key here and show it once; only its hash is kept.
            raw_key = issue_key(obj)
            messages.warning(request, f"Copy the key now, it is not shown again: {raw_key}")
        super().save_model(request, obj, form, change)

    @admin.action(description="Revoke the selected keys")
    def revoke(self, request: HttpRequest, queryset: Any) -> None:
        queryset.update(revoked=True)


class IdentityInline(admin.TabularInline[Identity, Profile]):
    model = Identity
    extra = 0
    readonly_fields = ("kind", "value", "created_at")
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Profile | None = None) -> bool:
        # Identities come from tracked ids and merges, never typed in by hand.
        return False


class ProfileMergeInline(admin.TabularInline[ProfileMerge, Profile]):
    """Merges into this profile and merges the identity policy refused."""

    model = ProfileMerge
    extra = 0
    fields = readonly_fields = (
        "at",
        "status",
        "trigger",
        "merged_profile_id",
        "identities",
        "events_moved",
        "reason",
    )
    can_delete = False
    verbose_name_plural = "merges"

    def has_add_permission(self, request: HttpRequest, obj: Profile | None = None) -> bool:
        return False


@admin.register(ProfileMerge)
class ProfileMergeAdmin(admin.ModelAdmin[ProfileMerge]):
    list_display = ("at", "status", "trigger", "profile", "merged_profile_id", "events_moved")
    list_filter = ("status", "trigger")
    search_fields = ("reason",)
    list_select_related = ("profile",)
    readonly_fields = [f.name for f in ProfileMerge._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


@admin.register(Profile)
class ProfileAdmin(admin.ModelAdmin[Profile]):
    list_display = ("id", "ids", "last_seen_at", "created_at")
    search_fields = ("identities__value",)
    readonly_fields = (
        "created_at",
        "last_seen_at",
        "next_evaluation_at",
        "recompute_requested_at",
        "current_segments",
        "segment_explanations",
        "recent_events",
        "consent",
        "session_count",
        "time_on_site_seconds",
        "page_count",
        "pages_per_session",
        "trait_times",
    )
    fields = (
        "traits",
        "trait_times",
        "consent",
        ("session_count", "time_on_site_seconds", "page_count", "pages_per_session"),
        "current_segments",
        "segment_explanations",
        "recent_events",
        "created_at",
        "last_seen_at",
        "next_evaluation_at",
        "recompute_requested_at",
    )
    inlines = [IdentityInline, ProfileMergeInline]
    actions = ["export_json", "erase_profiles"]

    @admin.action(description="Export the selected profiles as JSON (data access request)")
    def export_json(self, request: HttpRequest, queryset: Any) -> HttpResponse:
        store_pending_batches(wait=True)  # include what the tracking API accepted before
        exports = [profile_export(profile=p) for p in queryset.prefetch_related("identities")]
        response = HttpResponse(
            json.dumps(exports, indent=2, default=str), content_type="application/json"
        )
        response["Content-Disposition"] = 'attachment; filename="profiles.json"'
        return response

    @admin.action(description="Erase the selected profiles and everything derived (GDPR/CCPA)")
    def erase_profiles(self, request: HttpRequest, queryset: Any) -> None:
        # Events accepted before the request must not bring the person back afterwards.
        store_pending_batches(wait=True)
        erased = [profile_erase(profile=p) for p in queryset]
        events = sum(c["events"] for c in erased)
        messages.success(request, f"Erased {len(erased)} profile(s) and {events} event(s).")

    def get_queryset(self, request):  # type: ignore[no-untyped-def]
        return super().get_queryset(request).prefetch_related("identities")

    @admin.display(description="ids")
    def ids(self, profile: Profile) -> str:
        return ", ".join(f"{i.kind}={i.value}" for i in profile.identities.all()[:3])

    @admin.display(description="pages per session")
    def pages_per_session(self, profile: Profile) -> str:
        return f"{profile.pages_per_session:.1f}"

    @admin.display(description="Current segments")
    def current_segments(self, profile: Profile) -> SafeString:
        memberships = current_memberships(profile_id=profile.pk)
        if not memberships:
            return format_html("<em>{}</em>", "none")
        return format_html_join(
            "",
            "<div><strong>{}</strong> since {}<br><small>{}</small></div>",
            (
                (
                    m.segment.name,
                    # Formatted here: format_html escapes its arguments to strings
                    # first, so a date format spec in the template cannot apply.
                    f"{m.entered_at:%Y-%m-%d %H:%M:%S}",
                    "; ".join(r["text"] for r in m.entry_reason if r.get("held")),
                )
                for m in memberships
            ),
        )

    @admin.display(description="Explain each segment")
    def segment_explanations(self, profile: Profile) -> SafeString:
        # Each active segment's conditions for this profile now, with their values.
        from segments.admin import explanations_html

        return explanations_html(profile_id=profile.pk)

    @admin.display(description="Recent events")
    def recent_events(self, profile: Profile) -> SafeString:
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td><code>{}</code></td></tr>",
            (
                (f"{e.timestamp:%Y-%m-%d %H:%M:%S}", e.name, e.properties)
                for e in recent_events(profile_id=profile.pk, limit=25)
            ),
        )
        return format_html(
            "<table><tr><th>When</th><th>Event</th><th>Properties</th></tr>{}</table>", rows
        )


class FlaggedFilter(admin.SimpleListFilter):
    """Events stored with tracking-plan violations (flag mode)."""

    title = "tracking plan"
    parameter_name = "flagged"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("yes", "Flagged (violations)"), ("no", "Conforming")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Event]) -> QuerySet[Event]:
        if self.value() == "yes":
            return queryset.exclude(violations=[])
        if self.value() == "no":
            return queryset.filter(violations=[])
        return queryset


@admin.register(Event)
class EventAdmin(admin.ModelAdmin[Event]):
    list_display = ("timestamp", "name", "type", "profile", "source", "violation_count")
    list_filter = ("type", FlaggedFilter, "source")
    search_fields = ("name", "anonymous_id", "user_id", "message_id")
    date_hierarchy = "timestamp"
    list_select_related = ("profile", "source")
    readonly_fields = [f.name for f in Event._meta.fields]

    @admin.display(description="violations")
    def violation_count(self, event: Event) -> int:
        return len(event.violations)


@admin.register(QualityAlert)
class QualityAlertAdmin(admin.ModelAdmin[QualityAlert]):
    list_display = ("opened_at", "source", "kind", "observed", "expected", "resolved_at")
    list_filter = ("kind", "source", ("resolved_at", admin.EmptyFieldListFilter))
    list_select_related = ("source",)
    readonly_fields = [f.name for f in QualityAlert._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


from personalize import admin_imports  # noqa: E402, F401
