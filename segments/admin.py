from __future__ import annotations

import json
from typing import Any

from django import forms
from django.contrib import admin
from django.http import HttpRequest
from simple_history.admin import SimpleHistoryAdmin

from personalize.models import Profile
from segments.models import Membership, ProfileScore, Score, Segment
from segments.rules import RuleError
from segments.rules.text import criteria_from_text, criteria_to_text, json_to_text, text_to_json
from segments.services import (
    request_score_recompute,
    request_segment_recompute,
    validate_score_criteria,
    validate_segment_rule,
)


class SegmentForm(forms.ModelForm):
    rule_text = forms.CharField(
        label="Rule (text)",
        required=False,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 90, "style": "font-family: monospace"}),
        help_text=(
            "e.g. count(product_viewed, last 48h) >= 3 and sum(order_completed.revenue, last 30d) > 500. "
            "Edit either this or the JSON below; a changed text wins."
        ),
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # One of the two forms is enough: clean() checks that the rule is there.
        self.fields["rule"].required = False
        if self.instance.pk and self.instance.rule:
            try:
                self.initial["rule_text"] = json_to_text(self.instance.rule)
            except RuleError:
                self.initial["rule_text"] = ""

    class Meta:
        model = Segment
        fields = ("name", "slug", "description", "rule", "is_active")
        widgets = {
            "rule": forms.Textarea(
                attrs={"rows": 16, "cols": 90, "style": "font-family: monospace"}
            )
        }

    def clean(self) -> dict[str, Any]:
        cleaned: dict[str, Any] = super().clean() or {}
        slug = cleaned.get("slug")
        text = (cleaned.get("rule_text") or "").strip()
        if text and text != (self.initial.get("rule_text") or "").strip():
            try:
                cleaned["rule"] = text_to_json(text)
            except RuleError as exc:
                self.add_error("rule_text", f"{exc.path}: {exc.reason}")
                return cleaned
        if not text and not cleaned.get("rule"):
            self.add_error("rule", "write the rule, as text or as JSON")
            return cleaned
        if slug and "rule" in cleaned:
            try:
                cleaned["rule"] = validate_segment_rule(slug=slug, rule=cleaned["rule"])
            except RuleError as exc:
                self.add_error("rule", f"{exc.path}: {exc.reason}")
        return cleaned


@admin.register(Segment)
class SegmentAdmin(SimpleHistoryAdmin):
    """History pages revert through this form and save_model: validated, then recomputed."""

    form = SegmentForm
    fields = ("name", "slug", "description", "rule_text", "rule", "is_active")
    list_display = ("name", "slug", "is_active", "member_count", "updated_at")
    list_filter = ("is_active",)
    search_fields = ("name", "slug")
    prepopulated_fields = {"slug": ("name",)}

    @admin.display(description="members now")
    def member_count(self, segment: Segment) -> int:
        return segment.memberships.filter(exited_at__isnull=True).count()

    def save_model(self, request: HttpRequest, obj: Segment, form: Any, change: bool) -> None:
        from django.utils import timezone

        obj.updated_at = timezone.now()
        super().save_model(request, obj, form, change)
        request_segment_recompute(segment_id=obj.pk)


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


class ScoreForm(forms.ModelForm):
    criteria_text = forms.CharField(
        label="Criteria (text)",
        required=False,
        widget=forms.Textarea(attrs={"rows": 6, "cols": 90, "style": "font-family: monospace"}),
        help_text=(
            "One criterion per line: points, a colon, a rule. e.g. "
            "10: count(email_opened, last 30d) >= 1. Edit either this or the JSON below; "
            "a changed text wins."
        ),
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["criteria"].required = False
        if self.instance.pk and self.instance.criteria:
            try:
                self.initial["criteria_text"] = criteria_to_text(self.instance.criteria)
            except RuleError:
                self.initial["criteria_text"] = ""

    class Meta:
        model = Score
        fields = ("name", "slug", "description", "criteria", "is_active")
        widgets = {
            "criteria": forms.Textarea(
                attrs={"rows": 12, "cols": 90, "style": "font-family: monospace"}
            )
        }

    def clean(self) -> dict[str, Any]:
        cleaned: dict[str, Any] = super().clean() or {}
        slug = cleaned.get("slug")
        text = (cleaned.get("criteria_text") or "").strip()
        if text and text != (self.initial.get("criteria_text") or "").strip():
            try:
                cleaned["criteria"] = criteria_from_text(text)
            except RuleError as exc:
                self.add_error("criteria_text", f"{exc.path}: {exc.reason}")
                return cleaned
        if not text and not cleaned.get("criteria"):
            self.add_error("criteria", "write the criteria, as text or as JSON")
            return cleaned
        if slug and "criteria" in cleaned:
            try:
                cleaned["criteria"] = validate_score_criteria(
                    slug=slug, criteria=cleaned["criteria"]
                )
            except RuleError as exc:
                self.add_error("criteria", f"{exc.path}: {exc.reason}")
        return cleaned


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
