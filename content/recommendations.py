"""Recommended items: item-to-item collaborative filtering over tracked events.

Three layers, top to bottom:

- **pure**: events become ``Interaction``s (``interactions_from_event``), interactions
  become an ``ItemModel`` (a sparse profile×item matrix, item-item cosine similarity,
  top-K neighbours, popularity: ``build_item_model``), and a visitor's seeds and the
  stored neighbours become a ranked list (``rank_by_similarity``, ``fill``);
- **the job** (``recompute_recommendations``): reads events over the lookback window,
  builds the model outside any transaction, then replaces ``Item`` popularity and
  every ``ItemSimilarity`` row in one transaction, so readers see the old model or
  the new one, never half of each;
- **the reads** (``recommend_for_profile``, ``block_extras``): at most five queries
  whatever the visitor's history or the catalog's size.

Nothing here knows the demo shop: items are whatever ``product_id`` (or ``sku``)
the events name, as in Segment's e-commerce spec.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

import numpy as np
from django.conf import settings
from django.db import transaction
from django.utils import timezone
from scipy.sparse import csr_matrix  # type: ignore[import-untyped]
from sklearn.metrics.pairwise import cosine_similarity  # type: ignore[import-untyped]

from content.models import Item, ItemSimilarity
from personalize.models import Event

Kind = Literal["view", "cart", "purchase"]
# When one item was both viewed and bought, the reason names the strongest signal.
KIND_STRENGTH: dict[Kind, int] = {"view": 0, "cart": 1, "purchase": 2}
DEFAULT_LIMIT = 4
MAX_LIMIT = 20
# Purchases read per visitor to exclude what they already bought.
MAX_PURCHASE_EVENTS = 1000


@dataclass(frozen=True)
class RecommenderConfig:
    """Which event names mean what, their weights, and the model's sizes."""

    event_kinds: Mapping[str, Kind]
    weights: Mapping[Kind, float]
    lookback: timedelta = timedelta(days=90)
    neighbours: int = 20
    profile_events: int = 200

    @classmethod
    def from_settings(cls) -> RecommenderConfig:
        kinds: dict[str, Kind] = {}
        for names, kind in (
            (settings.RECOMMENDATIONS_VIEW_EVENTS, "view"),
            (settings.RECOMMENDATIONS_CART_EVENTS, "cart"),
            (settings.RECOMMENDATIONS_PURCHASE_EVENTS, "purchase"),
        ):
            for name in names:
                kinds[name] = kind  # type: ignore[assignment]
        return cls(
            event_kinds=kinds,
            weights={
                "view": float(settings.RECOMMENDATIONS_VIEW_WEIGHT),
                "cart": float(settings.RECOMMENDATIONS_CART_WEIGHT),
                "purchase": float(settings.RECOMMENDATIONS_PURCHASE_WEIGHT),
            },
            lookback=timedelta(days=settings.RECOMMENDATIONS_LOOKBACK_DAYS),
            neighbours=max(1, settings.RECOMMENDATIONS_NEIGHBOURS),
            profile_events=max(1, settings.RECOMMENDATIONS_PROFILE_EVENTS),
        )

    def names_of(self, kind: Kind) -> list[str]:
        return sorted(name for name, k in self.event_kinds.items() if k == kind)


# --- pure: events to interactions -----------------------------------------------------------


@dataclass(frozen=True)
class ItemFacts:
    """What one event says about an item; empty strings and None where it says nothing."""

    item_id: str
    name: str = ""
    category: str = ""
    price: float | None = None
    url: str = ""
    image_url: str = ""


@dataclass(frozen=True)
class Interaction:
    profile_id: int
    kind: Kind
    item: ItemFacts
    at: datetime


def _text(value: object, max_length: int = 255) -> str:
    return value.strip()[:max_length] if isinstance(value, str) else ""


def _link(value: object) -> str:
    """Absolute http(s) links or site-relative paths only: these end up in href and src."""
    text = _text(value, 2000)
    if text.startswith(("https://", "http://")) or (
        text.startswith("/") and not text.startswith("//")
    ):
        return text
    return ""


def item_facts(properties: Mapping[str, Any]) -> ItemFacts | None:
    """The item an event's (or an order line's) properties name, or None when none is named."""
    raw_id = properties.get("product_id")
    if raw_id in (None, ""):
        raw_id = properties.get("sku")
    if isinstance(raw_id, bool) or not isinstance(raw_id, str | int):
        return None
    item_id = str(raw_id).strip()[:255]
    if not item_id:
        return None
    price = properties.get("price")
    return ItemFacts(
        item_id=item_id,
        name=_text(properties.get("name")),
        category=_text(properties.get("category")),
        price=(
            float(price)
            if isinstance(price, int | float)
            and not isinstance(price, bool)
            and math.isfinite(price)
            else None
        ),
        url=_link(properties.get("url")),
        image_url=_link(properties.get("image_url")),
    )


def interactions_from_event(
    *,
    profile_id: int,
    name: str,
    properties: Mapping[str, Any],
    at: datetime,
    config: RecommenderConfig,
) -> list[Interaction]:
    """A view or a cart add names one item; an order names each of its ``products``."""
    kind = config.event_kinds.get(name)
    if kind is None or not isinstance(properties, Mapping):
        return []
    products = properties.get("products")
    lines: Iterable[Any] = (
        products if kind == "purchase" and isinstance(products, list) else [properties]
    )
    found = []
    for line in lines:
        facts = item_facts(line) if isinstance(line, Mapping) else None
        if facts is not None:
            found.append(Interaction(profile_id=profile_id, kind=kind, item=facts, at=at))
    return found


# --- pure: the item-item model --------------------------------------------------------------


@dataclass
class ItemModel:
    # Each field of an item from the latest interaction that had a value for it.
    items: dict[str, ItemFacts] = field(default_factory=dict)
    last_seen: dict[str, datetime] = field(default_factory=dict)
    popularity: dict[str, float] = field(default_factory=dict)
    interactions: dict[str, int] = field(default_factory=dict)
    # item_id -> [(similar item_id, cosine)], best first, ties by item_id.
    neighbours: dict[str, list[tuple[str, float]]] = field(default_factory=dict)
    profiles: int = 0

    @property
    def pairs(self) -> int:
        return sum(len(n) for n in self.neighbours.values())


def _merge(old: ItemFacts | None, new: ItemFacts) -> ItemFacts:
    if old is None:
        return new
    return ItemFacts(
        item_id=new.item_id,
        name=new.name or old.name,
        category=new.category or old.category,
        price=new.price if new.price is not None else old.price,
        url=new.url or old.url,
        image_url=new.image_url or old.image_url,
    )


def build_item_model(
    interactions: Iterable[Interaction], *, weights: Mapping[Kind, float], neighbours: int
) -> ItemModel:
    """Profile×item matrix of summed interaction weights; items' cosine similarity over it.

    Two items are similar when the same people interact with both, in similar
    proportions: cosine over the items' columns ignores how active each item is
    overall, so a best-seller is not everyone's neighbour.
    """
    model = ItemModel()
    cells: dict[tuple[int, str], float] = defaultdict(float)
    for interaction in sorted(interactions, key=lambda i: i.at):
        item_id = interaction.item.item_id
        weight = weights.get(interaction.kind, 0.0)
        model.items[item_id] = _merge(model.items.get(item_id), interaction.item)
        model.last_seen[item_id] = interaction.at
        if weight <= 0:
            continue
        cells[(interaction.profile_id, item_id)] += weight
        model.popularity[item_id] = model.popularity.get(item_id, 0.0) + weight
        model.interactions[item_id] = model.interactions.get(item_id, 0) + 1
    if not cells:
        return model
    # Sorted ids give every run the same matrix, so ties break the same way each time.
    item_ids = sorted({item_id for _, item_id in cells})
    column = {item_id: i for i, item_id in enumerate(item_ids)}
    profile_ids = sorted({profile_id for profile_id, _ in cells})
    row = {profile_id: i for i, profile_id in enumerate(profile_ids)}
    model.profiles = len(profile_ids)
    keys = sorted(cells)
    matrix = csr_matrix(
        (
            np.array([cells[k] for k in keys], dtype=np.float64),
            (np.array([row[p] for p, _ in keys]), np.array([column[i] for _, i in keys])),
        ),
        shape=(len(profile_ids), len(item_ids)),
    )
    similarity = csr_matrix(cosine_similarity(matrix.T, dense_output=False))
    for i, item_id in enumerate(item_ids):
        start, end = similarity.indptr[i], similarity.indptr[i + 1]
        columns = similarity.indices[start:end]
        scores = similarity.data[start:end]
        keep = (columns != i) & (scores > 0)
        columns, scores = columns[keep], scores[keep]
        # Highest score first; equal scores in item_id order (columns are in item_id order).
        order = np.lexsort((columns, -scores))[:neighbours]
        if len(order):
            model.neighbours[item_id] = [(item_ids[columns[j]], float(scores[j])) for j in order]
    return model


# --- pure: ranking for one visitor ----------------------------------------------------------


@dataclass(frozen=True)
class Seed:
    """One item a visitor interacted with recently, and how much that counts."""

    item_id: str
    name: str
    category: str
    weight: float
    count: int
    strongest: Kind


def seeds_from(interactions: Iterable[Interaction], weights: Mapping[Kind, float]) -> list[Seed]:
    weight: dict[str, float] = defaultdict(float)
    count: Counter[str] = Counter()
    strongest: dict[str, Kind] = {}
    facts: dict[str, ItemFacts] = {}
    for interaction in sorted(interactions, key=lambda i: i.at):
        item_id = interaction.item.item_id
        weight[item_id] += weights.get(interaction.kind, 0.0)
        count[item_id] += 1
        facts[item_id] = _merge(facts.get(item_id), interaction.item)
        if KIND_STRENGTH[interaction.kind] >= KIND_STRENGTH[strongest.get(item_id, "view")]:
            strongest[item_id] = interaction.kind
    return [
        Seed(
            item_id=item_id,
            name=facts[item_id].name or item_id,
            category=facts[item_id].category,
            weight=weight[item_id],
            count=count[item_id],
            strongest=strongest[item_id],
        )
        for item_id in sorted(weight)
    ]


def favourite_category(seeds: Iterable[Seed]) -> str:
    """The category the visitor interacted with most (then by weight, then by name)."""
    count: Counter[str] = Counter()
    weight: dict[str, float] = defaultdict(float)
    for seed in seeds:
        if seed.category:
            count[seed.category] += seed.count
            weight[seed.category] += seed.weight
    if not count:
        return ""
    return min(count, key=lambda c: (-count[c], -weight[c], c))


def because(seed: Seed) -> str:
    if seed.strongest == "purchase":
        return f"because you bought {seed.name}"
    if seed.strongest == "cart":
        return f"because you added {seed.name} to your cart"
    return f"because you viewed {seed.name}"


@dataclass(frozen=True)
class Ranked:
    item_id: str
    score: float
    reason: str


def rank_by_similarity(
    *,
    seeds: Sequence[Seed],
    neighbours: Iterable[tuple[str, str, float]],
    excluded: frozenset[str],
    limit: int,
) -> list[Ranked]:
    """Candidates scored by Σ seed weight × similarity; the reason names the seed that
    contributed most. ``neighbours`` are (seed item_id, candidate item_id, score)."""
    by_id = {seed.item_id: seed for seed in seeds}
    score: dict[str, float] = defaultdict(float)
    best: dict[str, tuple[float, str]] = {}
    for seed_id, candidate, similarity in neighbours:
        seed = by_id.get(seed_id)
        if seed is None or candidate in excluded:
            continue
        contribution = seed.weight * similarity
        score[candidate] += contribution
        current = best.get(candidate)
        if current is None or (-contribution, seed_id) < (-current[0], current[1]):
            best[candidate] = (contribution, seed_id)
    ordered = sorted(score, key=lambda c: (-score[c], c))[:limit]
    return [Ranked(c, score[c], because(by_id[best[c][1]])) for c in ordered]


# --- the job --------------------------------------------------------------------------------


@dataclass(frozen=True)
class RecomputeResult:
    profiles: int
    interactions: int
    items: int
    pairs: int


def _interactions_since(
    *, since: datetime, until: datetime, config: RecommenderConfig
) -> Iterator[Interaction]:
    rows = (
        Event.objects.filter(
            name__in=sorted(config.event_kinds), timestamp__gte=since, timestamp__lte=until
        )
        .order_by()
        .values_list("profile_id", "name", "properties", "timestamp")
        .iterator(chunk_size=2000)
    )
    for profile_id, name, properties, at in rows:
        yield from interactions_from_event(
            profile_id=profile_id, name=name, properties=properties, at=at, config=config
        )


def recompute_recommendations(
    *, now: datetime | None = None, config: RecommenderConfig | None = None
) -> RecomputeResult:
    """Rebuild the item catalog's popularity and neighbours from the lookback window.

    Idempotent: the same events at the same ``now`` give the same rows. The model
    is built before the transaction opens, so the write lock is held only for the
    writes; a failed run leaves the previous results in place.
    """
    now = now or timezone.now()
    config = config or RecommenderConfig.from_settings()
    interactions = list(_interactions_since(since=now - config.lookback, until=now, config=config))
    model = build_item_model(interactions, weights=config.weights, neighbours=config.neighbours)
    _store(model, now=now)
    return RecomputeResult(
        profiles=model.profiles,
        interactions=len(interactions),
        items=len(model.items),
        pairs=model.pairs,
    )


@transaction.atomic
def _store(model: ItemModel, *, now: datetime) -> None:
    # Updating every row first also serialises concurrent runs on PostgreSQL: the
    # second waits here for the first to commit, then replaces its results whole.
    Item.objects.update(popularity=0, interactions=0)
    Item.objects.bulk_create(
        [
            Item(
                item_id=facts.item_id,
                name=facts.name,
                category=facts.category,
                price=facts.price,
                url=facts.url,
                image_url=facts.image_url,
                popularity=model.popularity.get(item_id, 0.0),
                interactions=model.interactions.get(item_id, 0),
                last_seen_at=model.last_seen[item_id],
                updated_at=now,
            )
            for item_id, facts in sorted(model.items.items())
        ],
        batch_size=500,
        update_conflicts=True,
        unique_fields=["item_id"],
        update_fields=[
            "name",
            "category",
            "price",
            "url",
            "image_url",
            "popularity",
            "interactions",
            "last_seen_at",
            "updated_at",
        ],
    )
    pk_of = dict(Item.objects.values_list("item_id", "pk"))
    ItemSimilarity.objects.all().delete()
    ItemSimilarity.objects.bulk_create(
        [
            ItemSimilarity(item_id=pk_of[item_id], similar_item_id=pk_of[other], score=score)
            for item_id, similar in sorted(model.neighbours.items())
            for other, score in similar
        ],
        batch_size=1000,
    )


# --- the reads ------------------------------------------------------------------------------


@dataclass(frozen=True)
class RecommendedItem:
    id: str
    name: str
    category: str
    price: float | None
    url: str
    image_url: str
    reason: str

    @classmethod
    def of(cls, item: Item, reason: str) -> RecommendedItem:
        return cls(
            id=item.item_id,
            name=item.name or item.item_id,
            category=item.category,
            price=item.price,
            url=item.url,
            image_url=item.image_url,
            reason=reason,
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "url": self.url,
            "image_url": self.image_url,
            "price": self.price,
            "reason": self.reason,
        }


def _profile_interactions(
    *, profile_id: int, since: datetime, now: datetime, config: RecommenderConfig
) -> list[Interaction]:
    rows = (
        Event.objects.filter(
            profile_id=profile_id,
            name__in=sorted(config.event_kinds),
            timestamp__gte=since,
            timestamp__lte=now,
        )
        .order_by("-timestamp", "-id")
        .values_list("name", "properties", "timestamp")[: config.profile_events]
    )
    return [
        interaction
        for name, properties, at in rows
        for interaction in interactions_from_event(
            profile_id=profile_id, name=name, properties=properties, at=at, config=config
        )
    ]


def _purchased(*, profile_id: int, config: RecommenderConfig) -> set[str]:
    """Everything the visitor ever bought, not only in the lookback window."""
    rows = (
        Event.objects.filter(profile_id=profile_id, name__in=config.names_of("purchase"))
        .order_by("-timestamp", "-id")
        .values_list("name", "properties", "timestamp")[:MAX_PURCHASE_EVENTS]
    )
    return {
        interaction.item.item_id
        for name, properties, at in rows
        for interaction in interactions_from_event(
            profile_id=profile_id, name=name, properties=properties, at=at, config=config
        )
    }


def _popular(*, category: str | None, excluded: set[str], limit: int) -> list[Item]:
    items = Item.objects.filter(popularity__gt=0).exclude(item_id__in=sorted(excluded))
    if category is not None:
        items = items.filter(category=category)
    return list(items.order_by("-popularity", "item_id")[:limit])


def recommend_for_profile(
    *,
    profile_id: int | None,
    limit: int,
    now: datetime,
    current_item_id: str | None = None,
    config: RecommenderConfig | None = None,
) -> list[RecommendedItem]:
    """Items for one visitor, best first, each with why.

    First items similar to what they recently viewed, added or bought (weighted,
    summed over their interactions), never what they already bought nor
    ``current_item_id``; then what is popular in their favourite category; then
    what is popular overall. At most five queries.
    """
    if limit <= 0:
        return []
    config = config or RecommenderConfig.from_settings()
    excluded: set[str] = {current_item_id} if current_item_id else set()
    chosen: list[RecommendedItem] = []
    category = ""
    if profile_id is not None:
        seeds = seeds_from(
            _profile_interactions(
                profile_id=profile_id, since=now - config.lookback, now=now, config=config
            ),
            config.weights,
        )
        excluded |= _purchased(profile_id=profile_id, config=config)
        category = favourite_category(seeds)
        if seeds:
            rows = list(
                ItemSimilarity.objects.filter(
                    item__item_id__in=[seed.item_id for seed in seeds]
                ).select_related("item", "similar_item")
            )
            items = {row.similar_item.item_id: row.similar_item for row in rows}
            ranked = rank_by_similarity(
                seeds=seeds,
                neighbours=[(r.item.item_id, r.similar_item.item_id, r.score) for r in rows],
                excluded=frozenset(excluded),
                limit=limit,
            )
            chosen = [RecommendedItem.of(items[r.item_id], r.reason) for r in ranked]
    taken = excluded | {item.id for item in chosen}
    if len(chosen) < limit and category:
        for item in _popular(category=category, excluded=taken, limit=limit - len(chosen)):
            chosen.append(RecommendedItem.of(item, f"popular in {category}"))
            taken.add(item.item_id)
    if len(chosen) < limit:
        for item in _popular(category=None, excluded=taken, limit=limit - len(chosen)):
            chosen.append(RecommendedItem.of(item, "popular"))
    return chosen


@dataclass(frozen=True)
class BlockExtras:
    """What a block's template and its API data get beyond the block's own fields."""

    data: dict[str, Any]
    context: dict[str, Any]


def recommendation_limit(spec: object) -> int | None:
    """From a block's ``data["recommendations"]``: ``true`` or ``{"limit": n}``; None if absent."""
    if spec is True:
        return DEFAULT_LIMIT
    if not isinstance(spec, Mapping):
        return None
    limit = spec.get("limit", DEFAULT_LIMIT)
    if isinstance(limit, bool) or not isinstance(limit, int):
        return DEFAULT_LIMIT
    return min(max(limit, 1), MAX_LIMIT)


def block_extras(*, data: Mapping[str, Any], profile_id: int | None, now: datetime) -> BlockExtras:
    """A block whose data asks for recommendations gets them, as ``recommendations``,
    in its template context and in its data (replacing the request); others unchanged."""
    limit = recommendation_limit(data.get("recommendations"))
    if limit is None:
        return BlockExtras(data=dict(data), context={})
    items = [
        item.as_json()
        for item in recommend_for_profile(profile_id=profile_id, limit=limit, now=now)
    ]
    return BlockExtras(data={**data, "recommendations": items}, context={"recommendations": items})
