"""The recommendations job, a visitor's recommendations, and the recommendations block."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.conf import settings
from django.core.management import call_command
from django.db import DatabaseError
from django.test import Client
from django.utils import timezone
from pytest_django import DjangoAssertNumQueries

from content.models import Item, ItemSimilarity
from content.recommendations import (
    RecomputeResult,
    block_extras,
    recommend_for_profile,
    recompute_recommendations,
)
from content.services import block_save
from content.tasks import recompute_recommendations as recompute_task
from personalize.models import Identity, Profile, Source
from shop.models import Product
from tests.factories import EventFactory, IdentityFactory, ItemFactory, ProfileFactory

NOW = timezone.now().replace(microsecond=0)


def _product(item_id: str, category: str = "tents", **extra: Any) -> dict[str, Any]:
    return {
        "product_id": item_id,
        "name": item_id.title(),
        "category": category,
        "price": 10.0,
        "url": f"/p/{item_id}/",
        **extra,
    }


def _viewed(profile: Profile, item_id: str, category: str = "tents", ago: int = 60) -> None:
    EventFactory.create(
        profile=profile,
        name="product_viewed",
        properties=_product(item_id, category),
        timestamp=NOW - timedelta(minutes=ago),
    )


def _bought(profile: Profile, *item_ids: str, category: str = "tents", ago: int = 30) -> None:
    EventFactory.create(
        profile=profile,
        name="order_completed",
        properties={"order_id": "o", "products": [_product(i, category) for i in item_ids]},
        timestamp=NOW - timedelta(minutes=ago),
    )


def _similarities() -> set[tuple[str, str, float]]:
    return set(
        ItemSimilarity.objects.values_list("item__item_id", "similar_item__item_id", "score")
    )


@pytest.fixture
def campers(db: None) -> None:
    """Two people bought the tent with the stove; one viewed the tent and the lamp."""
    for _ in range(2):
        _bought(ProfileFactory.create(), "tent", "stove")
    lamp_viewer = ProfileFactory.create()
    _viewed(lamp_viewer, "tent")
    _viewed(lamp_viewer, "lamp")


def test_the_job_learns_items_neighbours_and_popularity_from_events(campers: None) -> None:
    result = recompute_recommendations(now=NOW)

    assert result == RecomputeResult(profiles=3, interactions=6, items=3, pairs=4)
    assert sorted(
        Item.objects.values_list("item_id", "name", "category", "url", "popularity", "interactions")
    ) == [
        ("lamp", "Lamp", "tents", "/p/lamp/", 1.0, 1),
        ("stove", "Stove", "tents", "/p/stove/", 10.0, 2),
        ("tent", "Tent", "tents", "/p/tent/", 11.0, 3),
    ]
    # tent=(5,5,1), stove=(5,5,0), lamp=(0,0,1) over the three profiles.
    assert {(a, b, round(s, 6)) for a, b, s in _similarities()} == {
        ("tent", "stove", round(50 / (51 * 50) ** 0.5, 6)),
        ("stove", "tent", round(50 / (51 * 50) ** 0.5, 6)),
        ("tent", "lamp", round(1 / 51**0.5, 6)),
        ("lamp", "tent", round(1 / 51**0.5, 6)),
    }


def test_the_job_is_idempotent(campers: None) -> None:
    recompute_recommendations(now=NOW)
    first = (_similarities(), sorted(Item.objects.values_list("item_id", "popularity")))

    recompute_recommendations(now=NOW)

    assert (_similarities(), sorted(Item.objects.values_list("item_id", "popularity"))) == first
    assert ItemSimilarity.objects.count() == 4


def test_a_new_run_replaces_neighbours_and_popularity_of_events_that_left_the_window(
    campers: None,
) -> None:
    recompute_recommendations(now=NOW)

    recompute_recommendations(now=NOW + timedelta(days=settings.RECOMMENDATIONS_LOOKBACK_DAYS + 1))

    assert ItemSimilarity.objects.count() == 0
    # Items are kept (their names still explain old recommendations) but are no longer popular.
    assert sorted(Item.objects.values_list("item_id", "popularity", "interactions")) == [
        ("lamp", 0.0, 0),
        ("stove", 0.0, 0),
        ("tent", 0.0, 0),
    ]


def test_a_failed_run_leaves_the_previous_results_whole(
    campers: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    recompute_recommendations(now=NOW)
    before = (_similarities(), sorted(Item.objects.values_list("item_id", "popularity")))
    _bought(ProfileFactory.create(), "lamp", "stove")

    def fail(*args: object, **kwargs: object) -> None:
        raise DatabaseError("disk full")

    monkeypatch.setattr(ItemSimilarity.objects, "bulk_create", fail)
    with pytest.raises(DatabaseError):
        recompute_recommendations(now=NOW)

    # Neither the deleted neighbours nor the zeroed or raised popularity leaked out.
    assert (_similarities(), sorted(Item.objects.values_list("item_id", "popularity"))) == before


def test_the_task_and_the_command_run_the_job_and_beat_schedules_it(campers: None) -> None:
    assert recompute_task.delay().get() == {
        "profiles": 3,
        "interactions": 6,
        "items": 3,
        "pairs": 4,
    }
    call_command("recompute_recommendations", stdout=open("/dev/null", "w"))  # noqa: SIM115
    assert ItemSimilarity.objects.count() == 4
    assert settings.CELERY_BEAT_SCHEDULE["recompute-recommendations"]["task"] == (
        "content.tasks.recompute_recommendations"
    )


def test_a_visitor_gets_items_similar_to_what_they_viewed_with_the_reason(campers: None) -> None:
    recompute_recommendations(now=NOW)
    visitor = ProfileFactory.create()
    _viewed(visitor, "lamp", ago=5)

    recs = recommend_for_profile(profile_id=visitor.pk, limit=1, now=NOW)

    assert [(r.id, r.name, r.url, r.price, r.reason) for r in recs] == [
        ("tent", "Tent", "/p/tent/", 10.0, "because you viewed Lamp")
    ]


def test_items_the_visitor_bought_are_never_recommended(campers: None) -> None:
    recompute_recommendations(now=NOW)
    visitor = ProfileFactory.create()
    _viewed(visitor, "tent", ago=5)
    # Bought long before the lookback window: still excluded.
    _bought(visitor, "stove", ago=(settings.RECOMMENDATIONS_LOOKBACK_DAYS + 10) * 24 * 60)

    recs = recommend_for_profile(profile_id=visitor.pk, limit=3, now=NOW)

    assert [(r.id, r.reason) for r in recs] == [
        ("lamp", "because you viewed Tent"),
        ("tent", "popular in tents"),
    ]
    assert "stove" not in {r.id for r in recs}


def test_the_item_on_screen_is_not_recommended(campers: None) -> None:
    recompute_recommendations(now=NOW)
    visitor = ProfileFactory.create()
    _viewed(visitor, "tent", ago=5)

    recs = recommend_for_profile(profile_id=visitor.pk, limit=5, now=NOW, current_item_id="stove")

    assert [r.id for r in recs] == ["lamp", "tent"]


def test_without_neighbours_it_falls_back_to_the_favourite_category_then_to_popular(
    db: None,
) -> None:
    ItemFactory.create(item_id="big-tent", category="tents", popularity=9)
    ItemFactory.create(item_id="small-tent", category="tents", popularity=3)
    ItemFactory.create(item_id="old-tent", category="tents", popularity=0)
    ItemFactory.create(item_id="boots", category="shoes", popularity=50)
    ItemFactory.create(item_id="socks", category="shoes", popularity=9)
    ItemFactory.create(item_id="hat", category="hats", popularity=9)
    visitor = ProfileFactory.create()
    _viewed(visitor, "small-tent", category="tents")
    _viewed(visitor, "big-tent", category="tents")
    _viewed(visitor, "hat", category="hats")

    recs = recommend_for_profile(profile_id=visitor.pk, limit=5, now=NOW)

    assert [(r.id, r.reason) for r in recs] == [
        ("big-tent", "popular in tents"),
        ("small-tent", "popular in tents"),
        ("boots", "popular"),
        # hat and socks tie on popularity: by id.
        ("hat", "popular"),
        ("socks", "popular"),
    ]
    assert "old-tent" not in {r.id for r in recs}


def test_an_unknown_visitor_gets_what_is_popular(db: None) -> None:
    ItemFactory.create(item_id="a", popularity=1)
    ItemFactory.create(item_id="b", popularity=2)

    recs = recommend_for_profile(profile_id=None, limit=4, now=NOW)

    assert [(r.id, r.reason) for r in recs] == [("b", "popular"), ("a", "popular")]
    assert recommend_for_profile(profile_id=None, limit=0, now=NOW) == []


def test_recommending_takes_five_queries_whatever_the_history(
    db: None, django_assert_num_queries: DjangoAssertNumQueries
) -> None:
    shoppers = [ProfileFactory.create() for _ in range(5)]
    for n, shopper in enumerate(shoppers):
        for i in range(20):
            _viewed(shopper, f"item-{(n * 7 + i) % 40}", category=f"cat-{i % 3}", ago=i + 1)
        _bought(shopper, f"item-{n}", f"item-{n + 1}")
    recompute_recommendations(now=NOW)

    # More than there are items, so both fallbacks query too.
    with django_assert_num_queries(5):
        recs = recommend_for_profile(profile_id=shoppers[0].pk, limit=50, now=NOW)

    # All 40 items but the two the visitor bought, each once.
    assert len({r.id for r in recs}) == len(recs) == 38
    assert {"item-0", "item-1"}.isdisjoint(r.id for r in recs)


def test_blocks_without_a_recommendations_request_are_left_alone(db: None) -> None:
    extras = block_extras(data={"cta": {"url": "/"}}, profile_id=None, now=NOW)

    assert (extras.data, extras.context) == ({"cta": {"url": "/"}}, {})


@pytest.mark.parametrize(
    ("request_", "expected_count"),
    [(True, 4), ({}, 4), ({"limit": 2}, 2), ({"limit": 0}, 1), ({"limit": "x"}, 4)],
)
def test_the_block_limit_is_read_leniently_and_clamped(
    db: None, request_: object, expected_count: int
) -> None:
    for i in range(6):
        ItemFactory.create(item_id=f"i{i}", popularity=i + 1)

    extras = block_extras(data={"recommendations": request_}, profile_id=None, now=NOW)

    assert len(extras.data["recommendations"]) == expected_count
    assert extras.context == {"recommendations": extras.data["recommendations"]}


@pytest.fixture
def recs_block(db: None) -> None:
    block_save(
        key="recs-for-you",
        slot="recs",
        title="For you",
        body=(
            "<ul>{% for item in recommendations %}"
            '<li><a href="{{ item.url }}">{{ item.name }}</a> <em>{{ item.reason }}</em></li>'
            "{% endfor %}</ul>"
        ),
        is_template=True,
        is_default=True,
        data={"recommendations": {"limit": 2}, "heading": "For you"},
    )


def test_the_block_api_returns_recommendations_for_a_visitor_with_history(
    campers: None, recs_block: None, client: Client
) -> None:
    recompute_recommendations(now=NOW)
    visitor = ProfileFactory.create()
    IdentityFactory.create(profile=visitor, kind=Identity.Kind.ANONYMOUS_ID, value="a-lamp")
    _viewed(visitor, "lamp", ago=5)
    client.cookies["ajs_anonymous_id"] = "a-lamp"

    block = client.get("/api/v1/blocks", {"slot": "recs"}).json()["slots"]["recs"][0]
    page = client.get("/").content.decode()

    assert block["data"] == {
        "heading": "For you",
        "recommendations": [
            {
                "id": "tent",
                "name": "Tent",
                "url": "/p/tent/",
                "image_url": "",
                "price": 10.0,
                "reason": "because you viewed Lamp",
            },
            {
                "id": "stove",
                "name": "Stove",
                "url": "/p/stove/",
                "image_url": "",
                "price": 10.0,
                "reason": "popular in tents",
            },
        ],
    }
    expected_html = (
        '<ul><li><a href="/p/tent/" rel="noopener noreferrer">Tent</a> '
        "<em>because you viewed Lamp</em></li>"
        '<li><a href="/p/stove/" rel="noopener noreferrer">Stove</a> '
        "<em>popular in tents</em></li></ul>"
    )
    assert block["html"] == expected_html
    assert expected_html in page


def test_the_block_api_with_a_recommendations_block_stays_within_its_query_budget(
    campers: None,
    recs_block: None,
    client: Client,
    django_assert_max_num_queries: DjangoAssertNumQueries,
    settings: Any,
) -> None:
    # Selection alone: recording impressions has its own budget (test_measurement_recording).
    settings.MEASUREMENT_RECORD_SERVER_IMPRESSIONS = False
    recompute_recommendations(now=NOW)
    visitor = ProfileFactory.create()
    IdentityFactory.create(profile=visitor, kind=Identity.Kind.ANONYMOUS_ID, value="a-busy")
    for i in range(30):
        _viewed(visitor, ["tent", "lamp", "stove"][i % 3], ago=i + 1)
    client.cookies["ajs_anonymous_id"] = "a-busy"

    # The block API's own queries plus the recommendations' five, however long the history.
    with django_assert_max_num_queries(11):
        response = client.get("/api/v1/blocks", {"slot": "recs"})

    assert response.status_code == 200
    assert len(response.json()["slots"]["recs"][0]["data"]["recommendations"]) == 2


def test_the_demo_recommends_from_its_past_shoppers_to_a_new_visitor(
    demo_data: None, client: Client
) -> None:
    anonymous_id = client.get("/").cookies["ajs_anonymous_id"].value
    client.post(
        "/v1/track",
        {
            "writeKey": Source.objects.get(name=settings.P13N_WEB_SOURCE).write_key,
            "anonymousId": anonymous_id,
            "event": "product_viewed",
            "properties": {
                "product_id": str(Product.objects.get(slug="rope-60m").pk),
                "name": "Dynamic Rope 60 m",
                "category": "climbing",
            },
        },
        content_type="application/json",
    )

    block = client.get("/api/v1/blocks", {"slot": "recs"}).json()["slots"]["recs"][0]
    page = client.get("/").content.decode()

    assert block["key"] == "recs-popular"
    recommended = block["data"]["recommendations"]
    assert len(recommended) == 4
    # The demo's climbers buy the rope with the harness and a headlamp.
    assert {item["name"] for item in recommended[:2]} == {"All-Round Harness", "Headlamp 400"}
    assert {item["reason"] for item in recommended} == {"because you viewed Dynamic Rope 60 m"}
    assert "Dynamic Rope 60 m" not in {item["name"] for item in recommended}
    assert "because you viewed Dynamic Rope 60 m" in page
    assert 'href="/shop/p/climbing-harness/"' in page
    assert "€75.00" in page


def test_admin_shows_an_items_neighbours_read_only(campers: None, admin_client: Client) -> None:
    recompute_recommendations(now=NOW)
    tent = Item.objects.get(item_id="tent")

    listing = admin_client.get("/admin/content/item/")
    detail = admin_client.get(f"/admin/content/item/{tent.pk}/change/")

    assert listing.status_code == detail.status_code == 200
    assert "Stove" in detail.content.decode()
    assert admin_client.get("/admin/content/item/add/").status_code == 403
