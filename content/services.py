"""Writes for content blocks."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.db import transaction
from django.utils import timezone

from content.models import Block
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
) -> Block:
    """Create or update a block by key; its HTML is sanitized before it is stored
    (a template is checked instead, and its output sanitized at every render)."""
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
