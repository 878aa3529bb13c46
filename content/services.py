"""Writes for content blocks."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from django.db import transaction
from django.utils import timezone

from content.models import Block, BlockVariant
from content.rendering import check_template, sanitize_html
from segments.models import Segment


@transaction.atomic
def block_save(
    *,
    key: str,
    slot: str,
    title: str,
    body: str,
    data: dict[str, Any] | None = None,
    segment_slugs: Iterable[str] = (),
    priority: int = 0,
    is_default: bool = False,
    is_template: bool = False,
    status: str = Block.Status.PUBLISHED,
    holdout_percent: int = 0,
) -> Block:
    """Create or update a block by key; its HTML is sanitized before it is stored
    (a template is checked instead, and its output sanitized at every render)."""
    check_holdout(holdout_percent=holdout_percent, is_default=is_default)
    if is_template:
        check_template(body)
    block, _ = Block.objects.update_or_create(
        key=key,
        defaults={
            "slot": slot,
            "title": title,
            "body": body if is_template else sanitize_html(body),
            "is_template": is_template,
            "data": data or {},
            "priority": priority,
            "is_default": is_default,
            "status": status,
            "holdout_percent": holdout_percent,
            "updated_at": timezone.now(),
        },
    )
    slugs = list(segment_slugs)
    segments = list(Segment.objects.filter(slug__in=slugs))
    missing = sorted(set(slugs) - {s.slug for s in segments})
    if missing:
        raise ValueError(f"unknown segments: {', '.join(missing)}")
    block.segments.set(segments)
    return block


class InvalidBlock(ValueError):
    """A block, variant or holdout setting that cannot work; ``field`` names it."""

    def __init__(self, message: str, *, field: str) -> None:
        super().__init__(message)
        self.field = field


def check_holdout(*, holdout_percent: int, is_default: bool) -> None:
    if not 0 <= holdout_percent <= 100:
        raise InvalidBlock(
            f"holdout_percent must be between 0 and 100, not {holdout_percent}",
            field="holdout_percent",
        )
    if is_default and holdout_percent:
        raise InvalidBlock(
            "a default block cannot have a holdout: its holdout would see the default itself",
            field="holdout_percent",
        )


def check_variant_weights(weights: Sequence[int]) -> None:
    """A block's variants must leave something to show: some weight above 0."""
    if any(weight < 0 for weight in weights):
        raise InvalidBlock("a variant's weight cannot be negative", field="weight")
    if weights and not any(weights):
        raise InvalidBlock(
            "at least one variant needs a weight above 0 (weight 0 is never shown)",
            field="weight",
        )


def clean_variant_body(body: str, *, is_template: bool) -> str:
    """Like the block's: sanitized HTML, or a checked template when the block is one."""
    if is_template:
        check_template(body)
        return body
    return sanitize_html(body)


@transaction.atomic
def block_variant_save(
    *,
    block: Block,
    key: str,
    weight: int,
    title: str = "",
    body: str = "",
    data: dict[str, Any] | None = None,
) -> BlockVariant:
    """Create or update one variant of ``block`` by key. Empty title, body or data
    keep the block's own when the variant is shown."""
    if weight < 0:
        raise InvalidBlock("a variant's weight cannot be negative", field="weight")
    variant, _ = BlockVariant.objects.update_or_create(
        block=block,
        key=key,
        defaults={
            "weight": weight,
            "title": title,
            "body": clean_variant_body(body, is_template=block.is_template),
            "data": data or {},
        },
    )
    check_variant_weights(list(block.variants.values_list("weight", flat=True)))
    Block.objects.filter(pk=block.pk).update(updated_at=timezone.now())
    return variant
