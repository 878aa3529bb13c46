from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString
from simple_history.admin import SimpleHistoryAdmin

from content.measurement_admin import block_results_view
from content.models import Block, BlockVariant, Item, ItemSimilarity, Slot
from content.reach import block_reach
from content.rendering import BlockTemplateError, check_template, sanitize_html
from content.schedule import BlockState, block_state, in_state
from content.services import (
    InvalidBlock,
    check_holdout,
    check_variant_weights,
    clean_variant_body,
)

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
            "holdout_percent",
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
        holdout = cleaned.get("holdout_percent")
        if holdout is not None and 0 <= holdout <= 100:  # the field's validators name the range
            try:
                check_holdout(holdout_percent=holdout, is_default=bool(cleaned.get("is_default")))
            except InvalidBlock as exc:
                self.add_error("holdout_percent", str(exc))
        return cleaned


class BlockVariantForm(forms.ModelForm):
    class Meta:
        model = BlockVariant
        fields: tuple[str, ...] = ("key", "weight", "title", "body", "data")
        widgets = {
            "body": forms.Textarea(attrs={"rows": 4, "cols": 60, "style": "font-family: monospace"})
        }


class BlockVariantFormSet(forms.BaseInlineFormSet):
    """Checks the variants together, against the block as the editor just set it
    (``self.instance``: the block form's values, saved or not)."""

    def clean(self) -> None:
        super().clean()
        kept = [
            form for form in self.forms if form.cleaned_data and not form.cleaned_data.get("DELETE")
        ]
        for form in kept:
            try:
                body = clean_variant_body(
                    form.cleaned_data.get("body") or "", is_template=self.instance.is_template
                )
            except BlockTemplateError as exc:
                form.add_error("body", f"template: {exc}")
                continue
            # The form built its instance before this clean ran: store what was cleaned.
            form.cleaned_data["body"] = form.instance.body = body
        weights = [
            f.cleaned_data["weight"] for f in kept if f.cleaned_data.get("weight") is not None
        ]
        try:
            check_variant_weights(weights)
        except InvalidBlock as exc:
            raise forms.ValidationError(f"variants: {exc}") from None


class BlockVariantInline(admin.TabularInline[BlockVariant, Block]):
    model = BlockVariant
    form = BlockVariantForm
    formset = BlockVariantFormSet
    extra = 0
    # Each variant's own page has its history (and revert).
    show_change_link = True


class BlockVariantAdminForm(BlockVariantForm):
    """One variant on its own page (and a revert from its history): the checks of the
    block page's variant rows, against the block's other variants as saved."""

    class Meta(BlockVariantForm.Meta):
        fields: tuple[str, ...] = ("block", "key", "weight", "title", "body", "data")

    def clean(self) -> dict[str, Any]:
        cleaned: dict[str, Any] = super().clean() or {}
        block: Block | None = cleaned.get("block")
        if block is None:  # the field names the problem (e.g. a deleted block)
            return cleaned
        try:
            cleaned["body"] = clean_variant_body(
                cleaned.get("body") or "", is_template=block.is_template
            )
        except BlockTemplateError as exc:
            self.add_error("body", f"template: {exc}")
        weight = cleaned.get("weight")
        if weight is not None:
            others = block.variants.exclude(pk=self.instance.pk).values_list("weight", flat=True)
            try:
                check_variant_weights([*others, weight])
            except InvalidBlock as exc:
                self.add_error("weight", f"variants: {exc}")
        return cleaned


@admin.register(BlockVariant)
class BlockVariantAdmin(SimpleHistoryAdmin):
    """Variants are edited on their block's page; here each has its version history,
    revert (through the same checks) and recovery after a delete."""

    form = BlockVariantAdminForm
    list_display = ("__str__", "block", "key", "weight")
    list_select_related = ("block",)
    search_fields = ("key", "block__key", "block__title")
    autocomplete_fields = ("block",)

    def save_model(self, request: HttpRequest, obj: BlockVariant, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        # As block_variant_save: the block's own "last changed" follows its variants.
        Block.objects.filter(pk=obj.block_id).update(updated_at=timezone.now())


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
    list_display = (
        "title",
        "slot",
        "key",
        "state",
        "priority",
        "is_default",
        "targets",
        "holdout_percent",
        "results_link",
    )
    list_filter = ("slot", StateFilter, "status", "is_default")
    readonly_fields = ("reach", "preview", "results_link")
    actions = ["show_reach"]
    search_fields = ("title", "key")
    filter_horizontal = ("segments", "excluded_segments")
    prepopulated_fields = {"key": ("title",)}
    inlines = [BlockVariantInline]

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


@admin.register(Slot)
class SlotAdmin(admin.ModelAdmin[Slot]):
    list_display = ("name", "capacity", "description")
    search_fields = ("name",)


class ItemSimilarityInline(admin.TabularInline[ItemSimilarity, Item]):
    model = ItemSimilarity
    fk_name = "item"
    fields = ("similar_item", "score")
    readonly_fields = fields
    ordering = ("-score", "similar_item__item_id")
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Item)
class ItemAdmin(admin.ModelAdmin[Item]):
    """What the recommendations job learned; read-only, rebuilt by every run."""

    list_display = ("item_id", "name", "category", "price", "popularity", "interactions")
    list_filter = ("category",)
    search_fields = ("item_id", "name")
    ordering = ("-popularity", "item_id")
    inlines = [ItemSimilarityInline]

    def get_readonly_fields(self, request: HttpRequest, obj: Item | None = None) -> list[str]:
        return [f.name for f in Item._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False
