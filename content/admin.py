from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.http import HttpRequest
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.html import format_html

from content.measurement_admin import block_results_view
from content.models import Block
from content.rendering import BlockTemplateError, check_template, sanitize_html


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


@admin.register(Block)
class BlockAdmin(admin.ModelAdmin[Block]):
    form = BlockForm
    list_display = (
        "title",
        "slot",
        "key",
        "status",
        "priority",
        "is_default",
        "targets",
        "results_link",
    )
    readonly_fields = ("results_link",)
    list_filter = ("slot", "status", "is_default")
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

    def get_urls(self) -> list[URLPattern]:
        view = self.admin_site.admin_view(
            lambda request, object_id: block_results_view(self, request, object_id)
        )
        return [
            path("<int:object_id>/results/", view, name="content_block_results"),
            *super().get_urls(),
        ]

    @admin.display(description="results")
    def results_link(self, block: Block) -> str:
        if block.pk is None:
            return "—"
        url = reverse("admin:content_block_results", args=[block.pk])
        return format_html('<a href="{}">Results</a>', url)

    def save_model(self, request: HttpRequest, obj: Block, form: Any, change: bool) -> None:
        obj.updated_at = timezone.now()
        super().save_model(request, obj, form, change)
