"""Reads for content: the blocks chosen for a visitor's slots, rendered."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.utils import timezone

from content.catalog import PublishedCatalog, SlotCatalog, published_catalog
from content.recommendations import block_extras
from content.rendering import render_body
from content.selection import Choice, choose
from personalize.models import Identity, Profile
from personalize.visitors import Visitor
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
        visitor: Visitor | None,
        segment_ids: frozenset[int],
        catalog: PublishedCatalog,
        segment_slugs: Sequence[str] | None = None,
    ) -> None:
        self.profile_id = profile_id
        self.visitor = visitor
        self.segment_ids = segment_ids
        self.catalog = catalog
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
                else segment_slugs(
                    self.segment_ids, profile_id=self.profile_id, catalog=self.catalog
                )
            )
            self._loaded = (traits, slugs)
        return self._loaded


def segment_slugs(
    segment_ids: frozenset[int], *, profile_id: int | None, catalog: PublishedCatalog | None = None
) -> list[str]:
    """The sorted slugs of the visitor's segments, from the catalog (a query only for
    a segment newer than the catalog)."""
    slugs = (catalog or published_catalog()).slugs_of(segment_ids)
    return slugs if slugs is not None else current_segment_slugs(profile_id=profile_id)


def _rendered(
    choice: Choice, slot: SlotCatalog, visitor: _VisitorContext, now: datetime
) -> RenderedBlock:
    """The chosen block as shown: its variant's content over its own, or for a
    holdout the default's content (nothing when there is none to show)."""
    candidate = choice.candidate
    title, body = "", ""
    data: dict[str, Any] = {}
    if choice.content is not None:
        shown = slot.blocks[choice.content.id]
        content = shown.variants[choice.variant] if choice.variant else shown.content
        title = content.title
        # Data-driven additions (a recommendations block's items) for template and API alike.
        extras = block_extras(data=content.data, profile_id=visitor.profile_id, now=now)
        data = extras.data
        if content.is_template:
            traits, slugs = visitor.get()
            body = render_body(
                content.html, is_template=True, traits=traits, segments=slugs, extra=extras.context
            )
        else:
            body = content.html  # sanitized when the catalog was built
    return RenderedBlock(
        id=candidate.id,
        key=candidate.key,
        slot=candidate.slot,
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
    catalog: PublishedCatalog | None = None,
    segment_slugs: Sequence[str] | None = None,
    now: datetime | None = None,
) -> dict[str, list[RenderedBlock]]:
    """For each slot, the chosen blocks in order (an empty list when the slot has none).

    ``visitor`` (the request's ids) is the assignment unit while no profile exists.
    ``segment_slugs`` overrides what template blocks see as ``segments`` (a staff
    preview of a segment set has no profile to read them from).
    No query beyond the catalog's version check, except for what is per visitor:
    the assignment unit (variants, holdouts), traits (templates), recommendations.
    """
    now = now or timezone.now()
    catalog = catalog or published_catalog()
    context = _VisitorContext(profile_id, visitor, segment_ids, catalog, segment_slugs)
    chosen: dict[str, list[RenderedBlock]] = {}
    for name in dict.fromkeys(slots):
        slot = catalog.slot(name)
        candidates = slot.candidates_for(segment_ids)
        # Only blocks the visitor may get need whom their variant or holdout sticks to.
        needs_unit = any(c.variants or c.holdout_percent for c in candidates)
        choices = choose(
            candidates,
            segment_ids,
            now,
            unit=context.unit() if needs_unit else "",
            capacity=slot.capacity,
        )
        chosen[name] = [_rendered(choice, slot, context, now) for choice in choices]
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
    segment_ids = current_segment_ids(profile_id=profile_id)
    catalog = published_catalog()
    blocks = blocks_for_segments(
        slots=slots, segment_ids=segment_ids, profile_id=profile_id, catalog=catalog
    )
    return SlotUpdate(
        segments=segment_slugs(segment_ids, profile_id=profile_id, catalog=catalog),
        slots={slot: [b.as_json() for b in chosen] for slot, chosen in blocks.items()},
    )
