"""Reads for content: the blocks chosen for a visitor's slots, rendered."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db.models import Exists, OuterRef, Prefetch, Subquery, prefetch_related_objects
from django.utils import timezone

from content.models import Block, BlockVariant, Slot
from content.recommendations import block_extras
from content.rendering import render_body
from content.selection import Candidate, Choice, VariantOption, choose
from personalize.models import Identity, Profile
from personalize.visitors import Visitor
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
    # What events report: the variant shown ("" for none) and whether the
    # visitor is held out of this block (then the content is the default's).
    variant: str = ""
    holdout: bool = False

    def as_json(self, *, with_reason: bool = False) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": self.id,
            "key": self.key,
            "slot": self.slot,
            "title": self.title,
            "html": self.html,
            "data": self.data,
            "variant": self.variant,
            "holdout": self.holdout,
        }
        if with_reason:
            data["reason"] = self.reason
        return data


@dataclass(frozen=True)
class SlotUpdate:
    segments: list[str]
    slots: dict[str, list[dict[str, Any]]]


def published_blocks(slots: Iterable[str]) -> list[Block]:
    """The slots' published blocks with their targeting and variants, each annotated
    with ``slot_capacity`` (None when the slot has no settings row)."""
    capacity = Slot.objects.filter(name=OuterRef("slot")).values("capacity")[:1]
    blocks: list[Block] = list(
        Block.objects.filter(slot__in=list(slots), status=Block.Status.PUBLISHED)
        .annotate(
            slot_capacity=Subquery(capacity),
            has_variants=Exists(BlockVariant.objects.filter(block=OuterRef("pk"))),
        )
        .prefetch_related(
            Prefetch("segments", queryset=Segment.objects.only("id", "name")),
            Prefetch("excluded_segments", queryset=Segment.objects.only("id")),
        )
    )
    # Most blocks run no A/B test: their variants cost a query only when some exist.
    with_variants = [b for b in blocks if getattr(b, "has_variants", True)]
    prefetch_related_objects(
        with_variants, Prefetch("variants", queryset=BlockVariant.objects.order_by("key"))
    )
    return blocks


def variants_of(block: Block) -> list[BlockVariant]:
    """The block's variants, as fetched by ``published_blocks`` (none without a query)."""
    if not getattr(block, "has_variants", True):
        return []
    return list(block.variants.all())


def assignment_unit(*, profile_id: int | None, visitor: Visitor | None = None) -> str:
    """Whom a block's variant and holdout stick to: the profile's first anonymous id.

    Not the profile id: a new visitor has an anonymous id (cookie) before any
    profile exists, and that id becomes the profile's first identity once their
    first event arrives, so the first page view and every later one agree. It
    also survives an anonymous visitor logging in (the id stays on the profile),
    and after a merge into a known user's profile the person takes that
    profile's assignment, the same on all their devices. A profile seen only
    under a user id (server events) uses ``user_id:<value>``.
    """
    if profile_id is not None:
        # "anonymous_id" sorts before "user_id": the earliest anonymous id if any.
        first = (
            Identity.objects.filter(profile_id=profile_id)
            .order_by("kind", "created_at", "id")
            .values_list("kind", "value")
            .first()
        )
        if first is not None:
            kind, value = first
            return value if kind == Identity.Kind.ANONYMOUS_ID else f"user_id:{value}"
    if visitor is None:
        return ""
    if visitor.anonymous_id:
        return visitor.anonymous_id
    return f"user_id:{visitor.user_id}" if visitor.user_id else ""


class _VisitorContext:
    """Traits and segment slugs for template blocks, loaded only if one is shown;
    the assignment unit, loaded only if a block has variants or a holdout."""

    def __init__(
        self,
        profile_id: int | None,
        visitor: Visitor | None = None,
        segment_slugs: Sequence[str] | None = None,
    ) -> None:
        self.profile_id = profile_id
        self.visitor = visitor
        # Given by a staff preview of a segment set; otherwise the profile's own.
        self.segment_slugs = segment_slugs
        self._loaded: tuple[dict[str, Any], list[str]] | None = None
        self._unit: str | None = None

    def unit(self) -> str:
        if self._unit is None:
            self._unit = assignment_unit(profile_id=self.profile_id, visitor=self.visitor)
        return self._unit

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


def _candidate(block: Block, segment_ids: frozenset[int]) -> Candidate:
    return Candidate(
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
        variants=tuple(VariantOption(v.key, v.weight) for v in variants_of(block)),
        holdout_percent=block.holdout_percent,
    )


def _rendered(
    choice: Choice, by_id: dict[int, Block], visitor: _VisitorContext, now: datetime
) -> RenderedBlock:
    """The chosen block as shown: its variant's content over its own, or for a
    holdout the default's content (nothing when there is none to show)."""
    block = by_id[choice.candidate.id]
    shown = by_id[choice.content.id] if choice.content is not None else None
    title, body = "", ""
    data: dict[str, Any] = {}
    if shown is not None:
        variant = next((v for v in variants_of(shown) if v.key == choice.variant), None)
        title = (variant.title if variant else "") or shown.title
        body = (variant.body if variant else "") or shown.body
        data = (variant.data if variant else None) or shown.data or {}
        traits, segment_slugs = visitor.get() if shown.is_template else ({}, [])
        # Data-driven additions (a recommendations block's items) for template and API alike.
        extras = block_extras(data=data, profile_id=visitor.profile_id, now=now)
        data = extras.data
        body = render_body(
            body,
            is_template=shown.is_template,
            traits=traits,
            segments=segment_slugs,
            extra=extras.context,
        )
    return RenderedBlock(
        id=block.id,
        key=block.key,
        slot=block.slot,
        title=title,
        html=body,
        data=data,
        reason=choice.reason,
        variant=choice.variant,
        holdout=choice.holdout,
    )


def blocks_for_segments(
    *,
    slots: Iterable[str],
    segment_ids: frozenset[int],
    profile_id: int | None = None,
    visitor: Visitor | None = None,
    segment_slugs: Sequence[str] | None = None,
    now: datetime | None = None,
) -> dict[str, list[RenderedBlock]]:
    """For each slot, the chosen blocks in order (an empty list when the slot has none).

    ``visitor`` (the request's ids) is the assignment unit while no profile exists.
    ``segment_slugs`` overrides what template blocks see as ``segments`` (a staff
    preview of a segment set has no profile to read them from).
    """
    now = now or timezone.now()
    context = _VisitorContext(profile_id, visitor, segment_slugs)
    wanted = list(dict.fromkeys(slots))
    by_slot: dict[str, list[Block]] = {slot: [] for slot in wanted}
    for block in published_blocks(wanted):
        by_slot[block.slot].append(block)
    chosen: dict[str, list[RenderedBlock]] = {}
    for slot, blocks in by_slot.items():
        by_id = {block.id: block for block in blocks}
        candidates = [_candidate(block, segment_ids) for block in blocks]
        needs_unit = any(c.variants or c.holdout_percent for c in candidates)
        # The same annotation on every block of the slot; no row means one block.
        capacity: int = getattr(blocks[0], "slot_capacity", None) or 1 if blocks else 1
        choices = choose(
            candidates,
            segment_ids,
            now,
            unit=context.unit() if needs_unit else "",
            capacity=capacity,
        )
        chosen[slot] = [_rendered(choice, by_id, context, now) for choice in choices]
    return chosen


def blocks_for_profile(
    *, profile_id: int | None, slots: Iterable[str], visitor: Visitor | None = None
) -> dict[str, list[RenderedBlock]]:
    return blocks_for_segments(
        slots=slots,
        segment_ids=current_segment_ids(profile_id=profile_id),
        profile_id=profile_id,
        visitor=visitor,
    )


def slot_update_for_profile(*, profile_id: int, slots: list[str]) -> SlotUpdate:
    """What a live page needs after a change: current segments and its slots' blocks."""
    blocks = blocks_for_profile(profile_id=profile_id, slots=slots)
    return SlotUpdate(
        segments=current_segment_slugs(profile_id=profile_id),
        slots={slot: [b.as_json() for b in chosen] for slot, chosen in blocks.items()},
    )
