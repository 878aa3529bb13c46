from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString
from simple_history.admin import SimpleHistoryAdmin

from content.models import Block
from content.reach import block_reach
from content.rendering import BlockTemplateError, check_template, sanitize_html
from content.schedule import BlockState, block_state, in_state

# The admin index links the editors' pages (preview, audit log).
admin.site.index_template = "admin/content/index.html"


class BlockForm(forms.ModelForm):
    class Meta:
        model = Block
        fields = (
            "slot",
            "key",
            "title",
            "body",
            "is_template",
            "data",
            "segments",
            "match_all",
            "excluded_segments",
            "starts_at",
            "ends_at",
            "priority",
            "is_default",
            "status",
        )
        widgets = {
            "body": forms.Textarea(
                attrs={"rows": 10, "cols": 90, "style": "font-family: monospace"}
            )
        }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Reverting from history: the old version's targeting, not today's.
        historical = getattr(self.instance, "_history", None)
        if historical is not None and not self.is_bound:
            self.initial["segments"] = [row.segment_id for row in historical.segments.all()]
            self.initial["excluded_segments"] = [
                row.segment_id for row in historical.excluded_segments.all()
            ]

    def clean(self) -> dict[str, Any]:
        cleaned: dict[str, Any] = super().clean() or {}
        body = cleaned.get("body") or ""
        if cleaned.get("is_template"):
            # A template is checked now and its output sanitized at every render.
            try:
                check_template(body)
            except BlockTemplateError as exc:
                self.add_error("body", f"template: {exc}")
        else:
            cleaned["body"] = sanitize_html(body)
        return cleaned


class StateFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(state.value, state.label) for state in BlockState]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Block]) -> QuerySet[Block]:
        value = self.value()
        if value is not None and value in BlockState.values:
            return queryset.filter(in_state(BlockState(value), now=timezone.now()))
        return queryset


@admin.register(Block)
class BlockAdmin(SimpleHistoryAdmin):
    form = BlockForm
    list_display = ("title", "slot", "key", "state", "priority", "is_default", "targets")
    list_filter = ("slot", StateFilter, "status", "is_default")
    readonly_fields = ("reach", "preview")
    actions = ["show_reach"]
    search_fields = ("title", "key")
    filter_horizontal = ("segments", "excluded_segments")
    prepopulated_fields = {"key": ("title",)}

    def get_queryset(self, request: HttpRequest) -> Any:
        return super().get_queryset(request).prefetch_related("segments", "excluded_segments")

    @admin.display(description="targets")
    def targets(self, block: Block) -> str:
        names = [s.name for s in block.segments.all()]
        text = (" and " if block.match_all else ", ").join(names) if names else "everyone"
        excluded = [s.name for s in block.excluded_segments.all()]
        return f"{text} except {', '.join(excluded)}" if excluded else text

    @admin.display(description="state")
    def state(self, block: Block) -> str:
        return block_state(
            status=block.status,
            starts_at=block.starts_at,
            ends_at=block.ends_at,
            now=timezone.now(),
        ).label

    @admin.display(description="reach now")
    def reach(self, block: Block) -> str:
        if block.pk is None:
            return "known once saved"
        return f"{block_reach(block=block)}, by current memberships and the saved targeting"

    @admin.display(description="preview")
    def preview(self, block: Block) -> SafeString | str:
        if block.pk is None:
            return "-"
        segments = list(block.segments.all())
        return format_html(
            '<a href="{}?{}">Preview the site as {}</a>',
            reverse("editors-preview"),
            urlencode([("segments", s.pk) for s in segments]),
            self.targets(block) if segments else "a visitor in no segment",
        )

    @admin.action(description="Show the reach of the selected blocks")
    def show_reach(self, request: HttpRequest, queryset: QuerySet[Block]) -> None:
        for block in queryset.prefetch_related("segments", "excluded_segments"):
            messages.info(request, f"{block.key}: {block_reach(block=block)}")

    def save_model(self, request: HttpRequest, obj: Block, form: Any, change: bool) -> None:
        obj.updated_at = timezone.now()
        super().save_model(request, obj, form, change)
