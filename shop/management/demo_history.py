"""Synthetic shoppers' past behaviour, so the demo's recommendations have something to learn.

Each demo shopper leans to one kit (camping, hiking, climbing, apparel): views a
few of its products, now and then one from another kit, adds some to the cart
and often buys two together. The history is regenerated (same choices, fresh
timestamps inside the lookback window) every time ``load_demo`` runs.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction

from personalize.models import Event, Identity, Profile, Source
from shop.models import Product
from shop.services import product_properties

DEMO_SHOPPER_PREFIX = "demo-shopper-"
SHOPPERS = 40
# Products people shop together (slugs from demo_data.PRODUCTS).
KITS = [
    ["trail-tent-2p", "down-sleeping-bag", "camp-stove", "headlamp-400"],
    ["hiking-boots", "trekking-poles", "daypack-28", "water-filter"],
    ["climbing-harness", "rope-60m", "headlamp-400"],
    ["rain-shell", "merino-base", "daypack-28"],
]


@dataclass(frozen=True)
class DemoEvent:
    anonymous_id: str
    name: str
    properties: dict[str, Any]
    timestamp: datetime


def demo_events(*, products: dict[str, Product], now: datetime, seed: int = 13) -> list[DemoEvent]:
    """The same shoppers and choices for the same seed; timestamps within the last 14 days."""
    rng = random.Random(seed)
    events: list[DemoEvent] = []
    for n in range(SHOPPERS):
        anonymous_id = f"{DEMO_SHOPPER_PREFIX}{n:02d}"
        kit = KITS[n % len(KITS)]
        viewed = rng.sample(kit, k=rng.randint(2, len(kit)))
        if rng.random() < 0.3:
            viewed.append(rng.choice(sorted(slug for slug in products if slug not in kit)))
        carted = viewed[: rng.randint(1, 2)]
        actions: list[tuple[str, dict[str, Any]]] = [
            ("product_viewed", product_properties(products[slug])) for slug in viewed
        ] + [("add_to_cart", product_properties(products[slug])) for slug in carted]
        if rng.random() < 0.6:
            order = {
                "order_id": f"demo-{n:02d}",
                "revenue": float(sum(products[slug].price for slug in carted)),
                "currency": "EUR",
                "products": [product_properties(products[slug]) for slug in carted],
            }
            actions.append(("order_completed", order))
        start = now - timedelta(days=14) + timedelta(minutes=rng.randrange(13 * 24 * 60))
        for step, (name, properties) in enumerate(actions, start=1):
            at = start + timedelta(minutes=2 * step)
            events.append(DemoEvent(anonymous_id, name, properties, at))
    return events


@transaction.atomic
def load_demo_history(*, source: Source, now: datetime) -> int:
    """Replace the demo shoppers' events; returns how many were written."""
    products = {p.slug: p for p in Product.objects.select_related("category")}
    events = demo_events(products=products, now=now)
    profiles: dict[str, Profile] = {}
    for anonymous_id in sorted({event.anonymous_id for event in events}):
        identity = Identity.objects.filter(
            kind=Identity.Kind.ANONYMOUS_ID, value=anonymous_id
        ).first()
        if identity is None:
            profile = Profile.objects.create(created_at=now)
            Identity.objects.create(
                profile=profile, kind=Identity.Kind.ANONYMOUS_ID, value=anonymous_id
            )
        else:
            profile = identity.profile
        profiles[anonymous_id] = profile
    # Replaced wholesale, never retried: these skip the message-id table that
    # ingestion de-duplicates with (docs/partitioning.md).
    Event.objects.filter(profile__in=profiles.values()).delete()
    Event.objects.bulk_create(
        Event(
            source=source,
            profile=profiles[event.anonymous_id],
            message_id=f"{event.anonymous_id}-{i}",
            type=Event.Type.TRACK,
            name=event.name,
            properties=event.properties,
            context={"library": {"name": "p13n-demo"}},
            anonymous_id=event.anonymous_id,
            timestamp=event.timestamp,
            received_at=event.timestamp,
        )
        for i, event in enumerate(events)
    )
    return len(events)
