"""Reads for content: the blocks chosen for a visitor's slots, rendered."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db.models import Prefetch
from django.utils import timezone

from content.models import Block
from content.rendering import render_body
from content.selection import Candidate, choose
from personalize.models import Profile
from segments.models import Segment
from segments.selectors import current_segment_ids, current_segment_slugs


@dataclass(frozen=True)
class RenderedBlock:
    id: int
    key: str
    slot: str
    title: str
    html: str
    data: dict[str, Any]
    reason: str

    def as_json(self, *, with_reason: bool = False) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": self.id,
            "key": self.key,
            "slot": self.slot,
            "title": self.title,
            "html": self.html,
            "data": self.data,
        }
        if with_reason:
            data["reason"] = self.reason
        return data


@dataclass(frozen=True)
class SlotUpdate:
    segments: list[str]
    slots: dict[str, list[dict[str, Any]]]


def published_blocks(slots: Iterable[str]) -> list[Block]:
    return list(
        Block.objects.filter(slot__in=list(slots), status=Block.Status.PUBLISHED).prefetch_related(
            Prefetch("segments", queryset=Segment.objects.only("id", "name")),
            Prefetch("excluded_segments", queryset=Segment.objects.only("id")),
        )
    )


class _VisitorContext:
    """Traits and segment slugs for template blocks, loaded only if one is shown."""

    def __init__(self, profile_id: int | None, segment_slugs: Sequence[str] | None = None) -> None:
        self.profile_id = profile_id
        # Given by a staff preview of a segment set; otherwise the profile's own.
        self.segment_slugs = segment_slugs
        self._loaded: tuple[dict[str, Any], list[str]] | None = None

    def get(self) -> tuple[dict[str, Any], list[str]]:
        if self._loaded is None:
            traits: dict[str, Any] = {}
            if self.profile_id is not None:
                found = (
                    Profile.objects.filter(pk=self.profile_id)
                    .values_list("traits", flat=True)
                    .first()
                )
                traits = found or {}
            slugs = (
                list(self.segment_slugs)
                if self.segment_slugs is not None
                else current_segment_slugs(profile_id=self.profile_id)
            )
            self._loaded = (traits, slugs)
        return self._loaded


def blocks_for_segments(
    *,
    slots: Iterable[str],
    segment_ids: frozenset[int],
    profile_id: int | None = None,
    segment_slugs: Sequence[str] | None = None,
    now: datetime | None = None,
) -> dict[str, list[RenderedBlock]]:
    """For each slot, the chosen block (an empty list when the slot has none).

    ``segment_slugs`` overrides what template blocks see as ``segments`` (a staff
    preview of a segment set has no profile to read them from)."""
    now = now or timezone.now()
    visitor = _VisitorContext(profile_id, segment_slugs)
    wanted = list(dict.fromkeys(slots))
    by_slot: dict[str, list[Block]] = {slot: [] for slot in wanted}
    for block in published_blocks(wanted):
        by_slot[block.slot].append(block)
    chosen: dict[str, list[RenderedBlock]] = {}
    for slot, blocks in by_slot.items():
        by_id = {block.id: block for block in blocks}
        candidates = [
            Candidate(
                id=block.id,
                slot=block.slot,
                key=block.key,
                priority=block.priority,
                is_default=block.is_default,
                segment_ids=frozenset(s.id for s in block.segments.all()),
                segment_names=tuple(s.name for s in block.segments.all() if s.id in segment_ids),
                match_all=block.match_all,
                excluded_ids=frozenset(s.id for s in block.excluded_segments.all()),
                starts_at=block.starts_at,
                ends_at=block.ends_at,
            )
            for block in blocks
        ]
        choice = choose(candidates, segment_ids, now)
        if choice is None:
            chosen[slot] = []
            continue
        block = by_id[choice.candidate.id]
        traits, segment_slugs = visitor.get() if block.is_template else ({}, [])
        chosen[slot] = [
            RenderedBlock(
                id=block.id,
                key=block.key,
                slot=block.slot,
                title=block.title,
                html=render_body(
                    block.body, is_template=block.is_template, traits=traits, segments=segment_slugs
                ),
                data=block.data or {},
                reason=choice.reason,
            )
        ]
    return chosen


def blocks_for_profile(
    *, profile_id: int | None, slots: Iterable[str]
) -> dict[str, list[RenderedBlock]]:
    return blocks_for_segments(
        slots=slots, segment_ids=current_segment_ids(profile_id=profile_id), profile_id=profile_id
    )


def slot_update_for_profile(*, profile_id: int, slots: list[str]) -> SlotUpdate:
    """What a live page needs after a change: current segments and its slots' blocks."""
    blocks = blocks_for_profile(profile_id=profile_id, slots=slots)
    return SlotUpdate(
        segments=current_segment_slugs(profile_id=profile_id),
        slots={slot: [b.as_json() for b in chosen] for slot, chosen in blocks.items()},
    )
