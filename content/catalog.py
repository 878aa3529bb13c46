"""The published catalog: every published block ready for selection, kept per process.

Choosing blocks reads the same rows for every visitor: the published blocks, their
targeting, variants and slot capacities, and the segments' slugs and names. The
catalog holds them, built in one go (five queries) with the non-template bodies
already sanitized, and is reused across requests until the content changes.

Freshness: a version stamp (``config.stamps``) lives in Django's cache (Redis on
the production stack, so every process and worker shares it; each process hears
of bumps over Redis pub/sub instead of reading the stamp per request). Any write to a block, variant, slot,
segment or block targeting bumps it, at once and again when the transaction
commits (``content.signals``; ``Block``/``BlockVariant``/``Slot`` querysets bump
on ``update``/``delete``/``bulk_*`` too). Every read compares the stamp with the
one the catalog was built under, so a published edit is seen by the next request
in every process. ``CONTENT_CATALOG_MAX_AGE_SECONDS`` bounds how long a catalog is
kept even when nothing bumped (a raw SQL write, a cache that lost the stamp).

What stays per request: schedules (``starts_at``/``ends_at`` are checked against
the request's ``now``), template blocks (they render the visitor's traits), and
recommendations (they are the visitor's).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

from django.conf import settings
from django.db import models
from django.db.models import Value
from django.http import HttpRequest

from config import stamps
from config.stamps import StampBumpingQuerySet
from content.rendering import sanitize_html
from content.selection import Candidate, VariantOption

logger = logging.getLogger(__name__)

VERSION_KEY = "content:catalog-version"
_Model = TypeVar("_Model", bound=models.Model)


# --- the version stamp ------------------------------------------------------------------------


def _forget_local() -> None:
    global _current
    _current = None  # this process rebuilds at once, whatever the stamp says


def catalog_changed() -> None:
    """Content that selection reads has changed: every process rebuilds its catalog
    (the stamp is bumped now and again after commit, ``config.stamps.bump``)."""
    _forget_local()
    stamps.bump(VERSION_KEY)


def shared_version() -> str:
    """The catalog's current stamp: no round trip on Redis while subscribed to bumps;
    a unique one (rebuild) if the cache cannot be reached, so a cache outage costs
    speed, never freshness."""
    return stamps.current(VERSION_KEY)


class CatalogChangingQuerySet(StampBumpingQuerySet[_Model]):
    """For the models the catalog is built from: bulk writes bump its version too
    (they send no ``post_save``/``post_delete`` per row)."""

    def rows_changed(self) -> None:
        catalog_changed()


# --- the catalog ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ShownContent:
    """What a block (or one of its variants) shows: ``html`` is the sanitized body,
    or for a template block the template itself, rendered per visitor."""

    title: str
    html: str
    data: Mapping[str, Any]
    is_template: bool


@dataclass(frozen=True)
class CatalogBlock:
    # ``segment_names`` of the candidate is filled per visitor (reasons name only
    # the visitor's segments): here the names of all the block's segments by id.
    candidate: Candidate
    segment_names_by_id: Mapping[int, str]
    content: ShownContent
    variants: Mapping[str, ShownContent]
    # The candidate with the names of each set of its segments a visitor was in so
    # far: a block targets a few segments, so there are few such sets.
    _named: dict[frozenset[int], Candidate] = field(default_factory=dict, compare=False)

    def candidate_for(self, segment_ids: frozenset[int]) -> Candidate:
        shared = self.candidate.segment_ids & segment_ids
        if not shared:
            return self.candidate
        named = self._named.get(shared)
        if named is None:
            names = tuple(name for sid, name in self.segment_names_by_id.items() if sid in shared)
            # Racing threads may both build it: the same value either way.
            named = self._named[shared] = replace(self.candidate, segment_names=names)
        return named


@dataclass(frozen=True)
class SlotCatalog:
    capacity: int
    blocks: Mapping[int, CatalogBlock]
    # Who can qualify, without looking at every block: by targeted segment, plus
    # the untargeted blocks and the defaults (always looked at).
    by_segment: Mapping[int, tuple[int, ...]]
    always: tuple[int, ...]

    def candidates_for(self, segment_ids: frozenset[int]) -> list[Candidate]:
        """The slot's blocks that may be chosen for a visitor in ``segment_ids``, each
        with the reasons' segment names of that visitor; ``choose`` decides among them."""
        ids = set(self.always)
        for segment_id in segment_ids:
            ids.update(self.by_segment.get(segment_id, ()))
        found: list[Candidate] = []
        for block_id in ids:
            block = self.blocks[block_id]
            if block.candidate.is_default or block.candidate.targets(segment_ids):
                found.append(block.candidate_for(segment_ids))
        return found


EMPTY_SLOT = SlotCatalog(capacity=1, blocks={}, by_segment={}, always=())


@dataclass(frozen=True)
class PublishedCatalog:
    version: str
    built_at: float  # time.monotonic()
    slots: Mapping[str, SlotCatalog]
    segment_slugs: Mapping[int, str]
    capacities: Mapping[str, int] = field(default_factory=dict)

    def slot(self, name: str) -> SlotCatalog:
        found = self.slots.get(name)
        if found is not None:
            return found
        capacity = self.capacities.get(name)
        return replace(EMPTY_SLOT, capacity=capacity) if capacity else EMPTY_SLOT

    def slugs_of(self, segment_ids: Iterable[int]) -> list[str] | None:
        """Sorted slugs of ``segment_ids``; None when one is unknown to this catalog."""
        slugs = []
        for segment_id in segment_ids:
            slug = self.segment_slugs.get(segment_id)
            if slug is None:
                return None
            slugs.append(slug)
        return sorted(slugs)


def _shown(title: str, body: str, data: Mapping[str, Any], *, is_template: bool) -> ShownContent:
    return ShownContent(
        title=title,
        html=body if is_template else sanitize_html(body),
        data=data,
        is_template=is_template,
    )


def build_catalog(*, version: str) -> PublishedCatalog:
    """Every published block with what selection and rendering need: five queries."""
    from content.models import Block, BlockVariant, Slot
    from segments.models import Segment

    segments = {
        sid: (slug, name) for sid, slug, name in Segment.objects.values_list("id", "slug", "name")
    }
    capacities = dict(Slot.objects.values_list("name", "capacity"))
    blocks = list(
        Block.objects.filter(status=Block.Status.PUBLISHED).values(
            "id",
            "slot",
            "key",
            "title",
            "body",
            "is_template",
            "data",
            "priority",
            "is_default",
            "match_all",
            "starts_at",
            "ends_at",
            "holdout_percent",
        )
    )
    published = Block.objects.filter(status=Block.Status.PUBLISHED).values("pk")
    targeted: dict[int, list[int]] = defaultdict(list)
    excluded: dict[int, list[int]] = defaultdict(list)
    # Targeted and excluded segments of the published blocks, in one query.
    for block_id, segment_id, is_exclusion in (
        Block.segments.through.objects.filter(block_id__in=published)
        .annotate(is_exclusion=Value(False))
        # django-stubs cannot see annotations of an auto-created through model.
        .values_list("block_id", "segment_id", "is_exclusion")  # type: ignore[misc]
        .union(
            Block.excluded_segments.through.objects.filter(block_id__in=published)
            .annotate(is_exclusion=Value(True))
            .values_list("block_id", "segment_id", "is_exclusion"),  # type: ignore[misc]
            all=True,
        )
    ):
        (excluded if is_exclusion else targeted)[block_id].append(segment_id)
    variants: dict[int, list[BlockVariant]] = defaultdict(list)
    for variant in BlockVariant.objects.filter(block__status=Block.Status.PUBLISHED).order_by(
        "block_id", "key"
    ):
        variants[variant.block_id].append(variant)

    by_slot: dict[str, list[CatalogBlock]] = defaultdict(list)
    for row in blocks:
        is_template = row["is_template"]
        segment_ids = frozenset(targeted.get(row["id"], ()))
        own = variants.get(row["id"], [])
        candidate = Candidate(
            id=row["id"],
            slot=row["slot"],
            key=row["key"],
            priority=row["priority"],
            is_default=row["is_default"],
            segment_ids=segment_ids,
            match_all=row["match_all"],
            excluded_ids=frozenset(excluded.get(row["id"], ())),
            starts_at=row["starts_at"],
            ends_at=row["ends_at"],
            variants=tuple(VariantOption(v.key, v.weight) for v in own),
            holdout_percent=row["holdout_percent"],
        )
        data = row["data"] or {}
        by_slot[row["slot"]].append(
            CatalogBlock(
                candidate=candidate,
                segment_names_by_id={
                    sid: segments[sid][1] for sid in sorted(segment_ids) if sid in segments
                },
                content=_shown(row["title"], row["body"], data, is_template=is_template),
                # A variant's empty title, body or data keep the block's own.
                variants={
                    v.key: _shown(
                        v.title or row["title"],
                        v.body or row["body"],
                        v.data or data,
                        is_template=is_template,
                    )
                    for v in own
                },
            )
        )

    slots: dict[str, SlotCatalog] = {}
    for name, slot_blocks in by_slot.items():
        by_segment: dict[int, list[int]] = defaultdict(list)
        always: list[int] = []
        for block in slot_blocks:
            candidate = block.candidate
            if candidate.is_default or not candidate.segment_ids:
                always.append(candidate.id)
            for segment_id in candidate.segment_ids:
                by_segment[segment_id].append(candidate.id)
        slots[name] = SlotCatalog(
            capacity=capacities.get(name) or 1,
            blocks={b.candidate.id: b for b in slot_blocks},
            by_segment={sid: tuple(ids) for sid, ids in by_segment.items()},
            always=tuple(always),
        )
    return PublishedCatalog(
        version=version,
        built_at=time.monotonic(),
        slots=slots,
        segment_slugs={sid: slug for sid, (slug, _) in segments.items()},
        capacities=capacities,
    )


_current: PublishedCatalog | None = None
_build_lock = threading.Lock()


def _fresh(catalog: PublishedCatalog | None, version: str) -> bool:
    return (
        catalog is not None
        and catalog.version == version
        and time.monotonic() - catalog.built_at < settings.CONTENT_CATALOG_MAX_AGE_SECONDS
    )


def published_catalog() -> PublishedCatalog:
    """This process's catalog, rebuilt first if content changed since it was built."""
    global _current
    version = shared_version()
    catalog = _current
    if catalog is not None and _fresh(catalog, version):
        return catalog
    with _build_lock:  # one build per process at a time; the others wait for it
        catalog = _current
        if catalog is not None and _fresh(catalog, version):
            return catalog
        # The stamp was read before the rows: a write committed meanwhile bumps it
        # again, and the next request rebuilds.
        catalog = build_catalog(version=version)
        _current = catalog
        return catalog


_REQUEST_CACHE = "_p13n_published_catalog"


def published_catalog_for_request(request: HttpRequest) -> PublishedCatalog:
    """One catalog for all of a page's slots (one version check per page)."""
    catalog: PublishedCatalog | None = getattr(request, _REQUEST_CACHE, None)
    if catalog is None:
        catalog = published_catalog()
        setattr(request, _REQUEST_CACHE, catalog)
    return catalog


def forget_published_catalog() -> None:
    """Drop this process's catalog (tests: rows rolled back behind the catalog's back)."""
    global _current
    _current = None
