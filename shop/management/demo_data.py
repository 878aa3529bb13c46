"""The demo shop's catalog, segments and blocks, close to the seed articles' examples."""

from __future__ import annotations

from typing import Any

CATEGORIES = [
    ("camping", "Camping"),
    ("hiking", "Hiking"),
    ("climbing", "Climbing"),
    ("apparel", "Apparel"),
]

PRODUCTS = [
    (
        "trail-tent-2p",
        "Trail Tent 2P",
        "camping",
        "289.00",
        "#3d6b4f",
        "A two-person, three-season tent at 1.9 kg.",
    ),
    (
        "down-sleeping-bag",
        "Down Sleeping Bag -5°C",
        "camping",
        "329.00",
        "#6b3d3d",
        "800-fill down, packs to a loaf.",
    ),
    (
        "camp-stove",
        "Compact Camp Stove",
        "camping",
        "59.00",
        "#c27c2c",
        "Boils a litre in three minutes.",
    ),
    (
        "headlamp-400",
        "Headlamp 400",
        "camping",
        "39.00",
        "#d6b03a",
        "400 lumens, USB-C rechargeable.",
    ),
    (
        "hiking-boots",
        "Ridge Hiking Boots",
        "hiking",
        "179.00",
        "#7a5230",
        "Waterproof leather, grippy soles.",
    ),
    (
        "trekking-poles",
        "Carbon Trekking Poles",
        "hiking",
        "119.00",
        "#333d47",
        "Three sections, 210 g each.",
    ),
    (
        "daypack-28",
        "Daypack 28 L",
        "hiking",
        "95.00",
        "#2c6e8f",
        "Ventilated back panel, rain cover.",
    ),
    (
        "water-filter",
        "Squeeze Water Filter",
        "hiking",
        "35.00",
        "#4fa3a8",
        "Filters 0.1 micron, 85 g.",
    ),
    (
        "climbing-harness",
        "All-Round Harness",
        "climbing",
        "75.00",
        "#8f2c5e",
        "Four gear loops, adjustable legs.",
    ),
    ("rope-60m", "Dynamic Rope 60 m", "climbing", "189.00", "#5e8f2c", "9.8 mm, dry-treated."),
    (
        "rain-shell",
        "Storm Rain Shell",
        "apparel",
        "249.00",
        "#2c3e8f",
        "Three-layer membrane, pit zips.",
    ),
    (
        "merino-base",
        "Merino Base Layer",
        "apparel",
        "69.00",
        "#8f7a2c",
        "Soft, warm, does not smell.",
    ),
]

SEGMENTS: list[dict[str, Any]] = [
    {
        "slug": "engaged-shoppers",
        "name": "Engaged shoppers",
        "description": "Viewed 3 or more products in the last 48 hours.",
        "rule": {
            "type": "aggregate",
            "fn": "count",
            "event": "product_viewed",
            "window": {"last": "48h"},
            "op": "gte",
            "value": 3,
        },
    },
    {
        "slug": "cart-abandoners",
        "name": "Cart abandoners",
        "description": "Added to cart in the last 24 hours and did not order within 30 minutes.",
        "rule": {
            "type": "sequence",
            "first": {"event": "add_to_cart"},
            "then": {"event": "order_completed"},
            "within": "30m",
            "followed": False,
            "window": {"last": "24h"},
        },
    },
    {
        "slug": "high-value-customers",
        "name": "High-value customers",
        "description": "Two or more orders totalling over 500 in the last 30 days.",
        "rule": {
            "type": "and",
            "rules": [
                {
                    "type": "aggregate",
                    "fn": "count",
                    "event": "order_completed",
                    "window": {"last": "30d"},
                    "op": "gte",
                    "value": 2,
                },
                {
                    "type": "aggregate",
                    "fn": "sum",
                    "event": "order_completed",
                    "property": "revenue",
                    "window": {"last": "30d"},
                    "op": "gt",
                    "value": 500,
                },
            ],
        },
    },
    {
        "slug": "camping-enthusiasts",
        "name": "Camping enthusiasts",
        "description": "Viewed 2 or more camping products in the last 7 days.",
        "rule": {
            "type": "aggregate",
            "fn": "count",
            "event": "product_viewed",
            "where": [{"property": "category", "op": "eq", "value": "camping"}],
            "window": {"last": "7d"},
            "op": "gte",
            "value": 2,
        },
    },
]


def _hero(css: str, title: str, text: str, link: str, label: str) -> str:
    return (
        f'<div class="hero-block {css}"><h1>{title}</h1><p>{text}</p>'
        f'<a href="{link}">{label} →</a></div>'
    )


def _recs_template(heading: str) -> str:
    """A recommendations block: each item with its price and why it is shown."""
    return (
        f'<div class="recs-block"><h2>{heading}</h2><ul class="recs-list">'
        "{% for item in recommendations %}"
        '<li><a href="{{ item.url }}">{{ item.name }}</a>'
        "{% if item.price is not none %}"
        ' <span class="price">€{{ "%.2f"|format(item.price) }}</span>{% endif %}'
        ' <span class="reason">{{ item.reason }}</span></li>'
        '{% else %}<li><a href="/shop/">Browse the shop</a></li>{% endfor %}'
        "</ul></div>"
    )


BLOCKS: list[dict[str, Any]] = [
    {
        "key": "hero-welcome",
        "slot": "hero",
        "title": "Welcome",
        "body": _hero(
            "",
            "Gear up for the trail",
            "Tents, boots and layers tested in the hills.",
            "/shop/",
            "Browse the shop",
        ),
        "is_default": True,
        "data": {"cta": {"label": "Browse the shop", "url": "/shop/"}},
    },
    {
        "key": "hero-engaged",
        "slot": "hero",
        "title": "Engaged shoppers hero",
        "body": _hero(
            "engaged",
            "Found something you like?",
            "You have been looking around: here is 10% off your first order with TRAIL10.",
            "/shop/cart/",
            "Go to your cart",
        ),
        "segments": ["engaged-shoppers"],
        "priority": 10,
        "data": {"cta": {"label": "Go to your cart", "url": "/shop/cart/"}, "coupon": "TRAIL10"},
    },
    {
        "key": "hero-camping",
        "slot": "hero",
        "title": "Camping enthusiasts hero",
        "body": _hero(
            "camp",
            "Nights under the stars",
            "Our camping range: tents, bags and stoves that pack small.",
            "/shop/?category=camping",
            "Shop camping",
        ),
        "segments": ["camping-enthusiasts"],
        "priority": 20,
        "data": {"cta": {"label": "Shop camping", "url": "/shop/?category=camping"}},
    },
    {
        "key": "hero-vip",
        "slot": "hero",
        "title": "High-value customers hero",
        "body": _hero(
            "vip",
            "Thank you for trekking with us",
            "As one of our best customers, early access to the winter collection is yours.",
            "/shop/?category=apparel",
            "See the collection",
        ),
        "segments": ["high-value-customers"],
        "priority": 30,
        "data": {"cta": {"label": "See the collection", "url": "/shop/?category=apparel"}},
    },
    {
        "key": "promo-shipping",
        "slot": "promo",
        "title": "Free shipping",
        "body": '<div class="promo-block">Free shipping on orders over €75.</div>',
        "is_default": True,
    },
    {
        "key": "promo-cart-reminder",
        "slot": "promo",
        "title": "Cart reminder",
        "body": (
            '<div class="promo-block cart">Your cart is waiting: finish your order today '
            'with code <strong>CART10</strong>. <a href="/shop/cart/">Open cart</a></div>'
        ),
        "segments": ["cart-abandoners"],
        "priority": 10,
        "data": {"coupon": "CART10"},
    },
    {
        "key": "recs-popular",
        "slot": "recs",
        "title": "Recommended for you",
        # Filled per visitor by content.recommendations: similar to what they viewed,
        # added or bought, else popular in their favourite category, else popular.
        "body": _recs_template("Recommended for you"),
        "is_template": True,
        "is_default": True,
        "data": {"recommendations": {"limit": 4}},
    },
    {
        "key": "recs-camping",
        "slot": "recs",
        "title": "For campers",
        "body": _recs_template("Complete your camp kit"),
        "is_template": True,
        "segments": ["camping-enthusiasts"],
        "priority": 10,
        "data": {"recommendations": {"limit": 3}},
    },
]
