from __future__ import annotations

import json
from typing import Any

from django.contrib import admin, messages
from django.http import HttpRequest, HttpResponse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from personalize.keys import issue_key
from personalize.models import ApiKey, Event, Identity, Profile, RejectedEvent, Source
from personalize.privacy import profile_erase, profile_export
from personalize.quarantine import replay
from personalize.selectors import recent_events
from segments.selectors import current_memberships


@admin.register(Source)
class SourceAdmin(admin.ModelAdmin[Source]):
    list_display = ("name", "write_key", "enabled", "created_at")
    list_filter = ("enabled",)
    search_fields = ("name",)
    readonly_fields = ("created_at",)


@admin.register(RejectedEvent)
class RejectedEventAdmin(admin.ModelAdmin[RejectedEvent]):
    list_display = ("received_at", "source", "field", "reason", "status")
    list_filter = ("status", "source", "field")
    search_fields = ("reason", "field")
    list_select_related = ("source",)
    readonly_fields = ("source", "received_at", "field", "reason", "status", "replayed_at")
    fields = ("source", "received_at", "field", "reason", "status", "replayed_at", "payload")
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
        "recent_events",
        "consent",
        "session_count",
        "time_on_site_seconds",
    )
    fields = (
        "traits",
        "consent",
        ("session_count", "time_on_site_seconds"),
        "current_segments",
        "recent_events",
        "created_at",
        "last_seen_at",
        "next_evaluation_at",
        "recompute_requested_at",
    )
    inlines = [IdentityInline]
    actions = ["export_json", "erase_profiles"]

    @admin.action(description="Export the selected profiles as JSON (data access request)")
    def export_json(self, request: HttpRequest, queryset: Any) -> HttpResponse:
        exports = [profile_export(profile=p) for p in queryset.prefetch_related("identities")]
        response = HttpResponse(
            json.dumps(exports, indent=2, default=str), content_type="application/json"
        )
        response["Content-Disposition"] = 'attachment; filename="profiles.json"'
        return response

    @admin.action(description="Erase the selected profiles and everything derived (GDPR/CCPA)")
    def erase_profiles(self, request: HttpRequest, queryset: Any) -> None:
        erased = [profile_erase(profile=p) for p in queryset]
        events = sum(c["events"] for c in erased)
        messages.success(request, f"Erased {len(erased)} profile(s) and {events} event(s).")

    def get_queryset(self, request):  # type: ignore[no-untyped-def]
        return super().get_queryset(request).prefetch_related("identities")

    @admin.display(description="ids")
    def ids(self, profile: Profile) -> str:
        return ", ".join(f"{i.kind}={i.value}" for i in profile.identities.all()[:3])

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


@admin.register(Event)
class EventAdmin(admin.ModelAdmin[Event]):
    list_display = ("timestamp", "name", "type", "profile", "source")
    list_filter = ("type", "source")
    search_fields = ("name", "anonymous_id", "user_id", "message_id")
    date_hierarchy = "timestamp"
    list_select_related = ("profile", "source")
    readonly_fields = [f.name for f in Event._meta.fields]


from personalize import admin_imports  # noqa: E402, F401
