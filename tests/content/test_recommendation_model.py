"""The pure part of recommendations: events to interactions, the item-item model, ranking."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest

from content.recommendations import (
    Interaction,
    ItemFacts,
    Kind,
    RecommenderConfig,
    Seed,
    build_item_model,
    favourite_category,
    interactions_from_event,
    item_facts,
    rank_by_similarity,
    seeds_from,
)

T0 = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
WEIGHTS: dict[Kind, float] = {"view": 1.0, "cart": 3.0, "purchase": 5.0}
CONFIG = RecommenderConfig(
    event_kinds={
        "product_viewed": "view",
        "add_to_cart": "cart",
        "order_completed": "purchase",
    },
    weights=WEIGHTS,
)


def _did(profile_id: int, kind: Kind, item_id: str, minutes: int = 0, **facts: str) -> Interaction:
    return Interaction(
        profile_id=profile_id,
        kind=kind,
        item=ItemFacts(item_id=item_id, **facts),  # type: ignore[arg-type]
        at=T0 + timedelta(minutes=minutes),
    )


def test_items_always_bought_together_are_each_others_neighbours_with_cosine_one() -> None:
    # Profiles 1 and 2 buy A and B; 3 views A and C; 4 buys D and E and nothing else.
    interactions = [
        _did(1, "purchase", "A"),
        _did(1, "purchase", "B"),
        _did(2, "purchase", "A"),
        _did(2, "purchase", "B"),
        _did(3, "view", "A"),
        _did(3, "view", "C"),
        _did(4, "purchase", "D"),
        _did(4, "purchase", "E"),
    ]

    model = build_item_model(interactions, weights=WEIGHTS, neighbours=10)

    # Item columns over profiles 1..4: A=(5,5,1,0), B=(5,5,0,0), C=(0,0,1,0), D=E=(0,0,0,5).
    assert model.neighbours.keys() == {"A", "B", "C", "D", "E"}
    assert [n for n, _ in model.neighbours["A"]] == ["B", "C"]
    assert model.neighbours["A"][0][1] == pytest.approx(50 / math.sqrt(51 * 50))
    assert model.neighbours["A"][1][1] == pytest.approx(1 / math.sqrt(51))
    assert model.neighbours["B"] == [("A", pytest.approx(50 / math.sqrt(51 * 50)))]
    assert model.neighbours["C"] == [("A", pytest.approx(1 / math.sqrt(51)))]
    assert model.neighbours["D"] == [("E", pytest.approx(1.0))]
    assert model.neighbours["E"] == [("D", pytest.approx(1.0))]
    # Nobody bought B with C: they are not neighbours at all, nor is any item its own.
    assert "C" not in dict(model.neighbours["B"])
    assert all(item not in dict(n) for item, n in model.neighbours.items())
    assert model.popularity == {"A": 11.0, "B": 10.0, "C": 1.0, "D": 5.0, "E": 5.0}
    assert model.interactions == {"A": 3, "B": 2, "C": 1, "D": 1, "E": 1}
    assert (model.profiles, model.pairs) == (4, 6)


def test_equal_similarities_break_ties_by_item_id_and_only_the_top_k_are_kept() -> None:
    # One profile viewed four items: every pair has cosine 1.
    interactions = [_did(1, "view", item) for item in ["d", "b", "a", "c"]]

    model = build_item_model(interactions, weights=WEIGHTS, neighbours=2)

    assert model.neighbours["c"] == [("a", pytest.approx(1.0)), ("b", pytest.approx(1.0))]
    assert model.neighbours["a"] == [("b", pytest.approx(1.0)), ("c", pytest.approx(1.0))]


def test_an_item_keeps_the_latest_value_of_each_field_its_events_carried() -> None:
    interactions = [
        _did(1, "view", "A", minutes=0, name="Old name", category="tents", url="/old/"),
        _did(1, "view", "A", minutes=5, name="New name"),
    ]

    model = build_item_model(interactions, weights=WEIGHTS, neighbours=5)

    assert model.items["A"] == ItemFacts(
        item_id="A", name="New name", category="tents", url="/old/"
    )
    assert model.last_seen["A"] == T0 + timedelta(minutes=5)
    assert model.neighbours == {}


def test_an_order_is_one_purchase_per_product_line() -> None:
    found = interactions_from_event(
        profile_id=7,
        name="order_completed",
        properties={
            "order_id": "o-1",
            "revenue": 90.0,
            "products": [
                {"product_id": "p1", "name": "Tent", "price": 80},
                {"sku": "stove", "price": 10.5},
                {"quantity": 1},
                "not a product",
            ],
        },
        at=T0,
        config=CONFIG,
    )

    assert [(i.kind, i.item.item_id, i.item.price) for i in found] == [
        ("purchase", "p1", 80.0),
        ("purchase", "stove", 10.5),
    ]


def test_events_outside_the_configured_names_are_not_interactions() -> None:
    assert (
        interactions_from_event(
            profile_id=1,
            name="page_viewed",
            properties={"product_id": "p1"},
            at=T0,
            config=CONFIG,
        )
        == []
    )


@pytest.mark.parametrize(
    ("properties", "expected"),
    [
        ({"product_id": 42, "sku": "x"}, ItemFacts(item_id="42")),
        ({"product_id": "", "sku": "boots"}, ItemFacts(item_id="boots")),
        ({"product_id": True}, None),
        ({"product_id": ["a"]}, None),
        ({"name": "No id"}, None),
        (
            {"product_id": "p", "price": "12", "url": "javascript:alert(1)", "image_url": "//x"},
            ItemFacts(item_id="p"),
        ),
        (
            {"product_id": "p", "price": float("nan"), "url": "https://shop.example/p"},
            ItemFacts(item_id="p", url="https://shop.example/p"),
        ),
        (
            {"product_id": "p", "image_url": "/img/p.png", "category": " tents "},
            ItemFacts(item_id="p", image_url="/img/p.png", category="tents"),
        ),
    ],
)
def test_item_facts_keep_only_well_typed_values_and_safe_links(
    properties: dict[str, object], expected: ItemFacts | None
) -> None:
    assert item_facts(properties) == expected


def test_a_visitors_seeds_sum_their_weights_and_remember_the_strongest_signal() -> None:
    seeds = seeds_from(
        [
            _did(1, "view", "A", minutes=0, name="Tent", category="tents"),
            _did(1, "purchase", "A", minutes=1),
            _did(1, "view", "A", minutes=2),
            _did(1, "cart", "B", minutes=3, name="Stove", category="stoves"),
        ],
        WEIGHTS,
    )

    assert seeds == [
        Seed(item_id="A", name="Tent", category="tents", weight=7.0, count=3, strongest="purchase"),
        Seed(item_id="B", name="Stove", category="stoves", weight=3.0, count=1, strongest="cart"),
    ]
    assert favourite_category(seeds) == "tents"


def test_the_favourite_category_is_the_most_interacted_with_then_by_name() -> None:
    def seed(item_id: str, category: str, count: int) -> Seed:
        return Seed(item_id, item_id, category, weight=1.0, count=count, strongest="view")

    assert favourite_category([seed("a", "b-cat", 2), seed("b", "a-cat", 2)]) == "a-cat"
    assert favourite_category([seed("a", "b-cat", 3), seed("b", "a-cat", 2)]) == "b-cat"
    assert favourite_category([seed("a", "", 3)]) == ""


def test_candidates_sum_weighted_similarities_and_name_the_seed_that_counted_most() -> None:
    tent = Seed("tent", "Tent", "tents", weight=1.0, count=1, strongest="view")
    boots = Seed("boots", "Boots", "shoes", weight=5.0, count=1, strongest="purchase")
    neighbours = [
        ("tent", "stove", 0.9),  # 0.9
        ("boots", "stove", 0.1),  # 0.5 -> stove 1.4, mostly because of the tent
        ("boots", "socks", 0.3),  # 1.5
        ("tent", "tent-peg", 0.2),  # 0.2
        ("boots", "tent", 0.5),  # tent excluded (the item on screen)
        ("unknown", "x", 1.0),  # not a seed of this visitor
    ]

    ranked = rank_by_similarity(
        seeds=[tent, boots], neighbours=neighbours, excluded=frozenset({"tent"}), limit=3
    )

    assert [(r.item_id, round(r.score, 6), r.reason) for r in ranked] == [
        ("socks", 1.5, "because you bought Boots"),
        ("stove", 1.4, "because you viewed Tent"),
        ("tent-peg", 0.2, "because you viewed Tent"),
    ]
