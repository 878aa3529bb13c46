"""A block's publishing state at an instant: draft, scheduled, live or ended."""

from __future__ import annotations

from datetime import datetime

from django.db import models
from django.db.models import Q

from content.models import Block


class BlockState(models.TextChoices):
    DRAFT = "draft", "Draft"
    SCHEDULED = "scheduled", "Scheduled"
    LIVE = "live", "Live"
    ENDED = "ended", "Ended"


def block_state(
    *, status: str, starts_at: datetime | None, ends_at: datetime | None, now: datetime
) -> BlockState:
    """Matches content.selection.Candidate.on_schedule: live from ``starts_at``
    (inclusive) until ``ends_at`` (exclusive)."""
    if status != Block.Status.PUBLISHED:
        return BlockState.DRAFT
    if ends_at is not None and ends_at <= now:
        return BlockState.ENDED
    if starts_at is not None and starts_at > now:
        return BlockState.SCHEDULED
    return BlockState.LIVE


def in_state(state: BlockState, *, now: datetime) -> Q:
    """The blocks in ``state`` at ``now``, as a filter."""
    published = Q(status=Block.Status.PUBLISHED)
    ended = Q(ends_at__isnull=False, ends_at__lte=now)
    waiting = Q(starts_at__isnull=False, starts_at__gt=now)
    if state == BlockState.DRAFT:
        return ~published
    if state == BlockState.ENDED:
        return published & ended
    if state == BlockState.SCHEDULED:
        return published & waiting & ~ended
    return published & ~ended & ~waiting
