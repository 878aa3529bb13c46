"""Variants, holdouts and slot capacity as the API, the server-rendered page and the
live socket deliver them: the same assignment everywhere, sticky across a visitor's life."""

from __future__ import annotations

import re
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.test import Client
from pytest_django import DjangoAssertNumQueries

from config.asgi import application
from content.models import Block
from content.selection import holdout_bucket, variant_bucket
from content.selectors import assignment_unit, blocks_for_segments
from personalize.models import Identity
from personalize.services import resolve_profile
from personalize.visitors import Visitor
from tests.factories import (
    BlockFactory,
    BlockVariantFactory,
    IdentityFactory,
    ProfileFactory,
    SlotFactory,
)

# Buckets of "hero-sale" for these units (sha256, see test_variant_selection):
# visitor-1 → variant bucket 16 (a), visitor-3 → 78 (b); holdout buckets 31 and 59.
IN_A, IN_B = "visitor-1", "visitor-3"


@pytest.fixture
def sale(db: None) -> Block:
    BlockFactory.create(slot="hero", key="hero-default", title="Welcome", is_default=True)
    block: Block = BlockFactory.create(
        slot="hero",
        key="hero-sale",
        title="Sale",
        body="<p>Sale</p>",
        data={"cta": "/sale"},
        priority=10,
    )
    BlockVariantFactory.create(
        block=block, key="a", weight=50, title="Sale A", body="<p>A</p>", data={"cta": "/a"}
    )
    BlockVariantFactory.create(block=block, key="b", weight=50)  # keeps the block's content
    return block


def _hero(client: Client, **params: str) -> dict[str, object]:
    body = client.get("/api/v1/blocks", {"slot": "hero", **params}).json()
    [hero] = body["slots"]["hero"]
    assert isinstance(hero, dict)
    return hero


def _cookie(anonymous_id: str, user_id: str | None = None) -> Client:
    client = Client()
    client.cookies["ajs_anonymous_id"] = anonymous_id
    if user_id:
        client.cookies["ajs_user_id"] = user_id
    return client


def test_the_units_of_this_module_land_where_its_comment_says() -> None:
    assert [variant_bucket("hero-sale", u, 100) for u in (IN_A, IN_B)] == [16, 78]
    assert [holdout_bucket("hero-sale", u) for u in (IN_A, IN_B)] == [31, 59]


def test_a_variant_replaces_the_blocks_content_and_an_empty_variant_keeps_it(sale: Block) -> None:
    in_a = _hero(_cookie(IN_A))
    in_b = _hero(_cookie(IN_B))

    assert (in_a["key"], in_a["variant"], in_a["holdout"]) == ("hero-sale", "a", False)
    assert (in_a["title"], in_a["html"], in_a["data"]) == ("Sale A", "<p>A</p>", {"cta": "/a"})
    assert (in_b["key"], in_b["variant"], in_b["holdout"]) == ("hero-sale", "b", False)
    assert (in_b["title"], in_b["html"], in_b["data"]) == ("Sale", "<p>Sale</p>", {"cta": "/sale"})
    assert in_a["id"] == in_b["id"] == sale.pk


def test_debug_explains_the_variant_with_its_weight_and_bucket(
    sale: Block, admin_user: object
) -> None:
    client = _cookie(IN_B)
    client.force_login(admin_user)  # type: ignore[arg-type]

    hero = _hero(client, debug="1")

    assert hero["reason"] == "shown to everyone; variant b: weight 50 of 100, bucket 78"


def test_a_new_visitor_keeps_their_variant_once_profiled_and_after_signing_up(
    sale: Block,
) -> None:
    before_any_event = _hero(_cookie(IN_A))["variant"]
    resolve_profile(anonymous_id=IN_A)
    profiled = _hero(_cookie(IN_A))["variant"]
    resolve_profile(anonymous_id=IN_A, user_id="new-user")
    signed_up = _hero(_cookie(IN_A, user_id="new-user"))["variant"]

    assert (before_any_event, profiled, signed_up) == ("a", "a", "a")


def test_logging_in_to_a_known_account_takes_that_accounts_assignment_on_every_device(
    sale: Block,
) -> None:
    # The account was first seen on a device whose anonymous id lands in b.
    resolve_profile(anonymous_id=IN_B, user_id="ada")
    # A second device, anonymous for a while, sees its own variant...
    resolve_profile(anonymous_id=IN_A)
    assert _hero(_cookie(IN_A))["variant"] == "a"

    # ...logs in: its profile merges into the account's.
    resolve_profile(anonymous_id=IN_A, user_id="ada")

    assert _hero(_cookie(IN_A, user_id="ada"))["variant"] == "b"
    assert _hero(_cookie(IN_B, user_id="ada"))["variant"] == "b"


def test_the_assignment_unit_is_the_profiles_first_anonymous_id_else_its_user_id(
    db: None,
) -> None:
    with_anonymous = ProfileFactory.create()
    IdentityFactory.create(profile=with_anonymous, kind=Identity.Kind.USER_ID, value="u-1")
    IdentityFactory.create(profile=with_anonymous, kind=Identity.Kind.ANONYMOUS_ID, value="first")
    IdentityFactory.create(profile=with_anonymous, kind=Identity.Kind.ANONYMOUS_ID, value="later")
    server_only = ProfileFactory.create()
    IdentityFactory.create(profile=server_only, kind=Identity.Kind.USER_ID, value="u-2")

    assert assignment_unit(profile_id=with_anonymous.pk) == "first"
    assert assignment_unit(profile_id=server_only.pk) == "user_id:u-2"
    assert assignment_unit(profile_id=None, visitor=Visitor(anonymous_id="cookie")) == "cookie"
    assert assignment_unit(profile_id=None, visitor=Visitor("", user_id="u-3")) == "user_id:u-3"
    assert assignment_unit(profile_id=None) == ""


def test_a_held_out_visitor_gets_the_defaults_content_under_the_held_out_block(
    sale: Block,
) -> None:
    Block.objects.filter(pk=sale.pk).update(holdout_percent=100)

    hero = _hero(_cookie(IN_A))

    assert (hero["id"], hero["key"], hero["variant"], hero["holdout"]) == (
        sale.pk,
        "hero-sale",
        "",
        True,
    )
    assert (hero["title"], hero["html"]) == ("Welcome", "<p>Welcome</p>")


def test_a_held_out_visitor_of_a_slot_without_default_gets_an_empty_block(db: None) -> None:
    BlockFactory.create(slot="promo", key="promo-sale", holdout_percent=100, data={"x": 1})

    chosen = blocks_for_segments(slots=["promo"], segment_ids=frozenset())

    [promo] = chosen["promo"]
    assert (promo.key, promo.html, promo.title, promo.data, promo.holdout) == (
        "promo-sale",
        "",
        "",
        {},
        True,
    )


def test_a_slot_shows_up_to_its_capacity_in_priority_order(db: None) -> None:
    SlotFactory.create(name="recs", capacity=3)
    BlockFactory.create(slot="recs", key="recs-default", is_default=True)
    for key, priority in [("second", 20), ("fourth", 0), ("first", 30), ("third", 10)]:
        BlockFactory.create(slot="recs", key=key, priority=priority)
    BlockFactory.create(slot="hero", key="hero-1", priority=1)
    BlockFactory.create(slot="hero", key="hero-2", priority=2)

    body = Client().get("/api/v1/blocks", {"slot": ["recs", "hero"]}).json()

    assert [b["key"] for b in body["slots"]["recs"]] == ["first", "second", "third"]
    # No settings row: one block.
    assert [b["key"] for b in body["slots"]["hero"]] == ["hero-2"]


def test_the_page_marks_each_block_with_its_id_variant_and_holdout(sale: Block) -> None:
    page = _cookie(IN_A).get("/").content.decode()
    Block.objects.filter(pk=sale.pk).update(holdout_percent=100)
    held_page = _cookie(IN_A).get("/").content.decode()

    assert (
        f'<div class="p13n-block" data-p13n-block="hero-sale" data-p13n-block-id="{sale.pk}"'
        ' data-p13n-variant="a" data-p13n-holdout="false"><p>A</p></div>'
    ) in page
    assert (
        f'<div class="p13n-block" data-p13n-block="hero-sale" data-p13n-block-id="{sale.pk}"'
        ' data-p13n-variant="" data-p13n-holdout="true"><p>Welcome</p></div>'
    ) in held_page


def test_the_page_and_the_api_agree_on_a_brand_new_visitors_variant(sale: Block) -> None:
    client = Client()
    page = client.get("/").content.decode()  # the first visit gets its anonymous id here
    anonymous_id = client.cookies["ajs_anonymous_id"].value
    expected = "a" if variant_bucket("hero-sale", anonymous_id, 100) < 50 else "b"

    ssr = re.search(r'data-p13n-block="hero-sale"[^>]*data-p13n-variant="(\w*)"', page)

    assert ssr is not None
    assert ssr.group(1) == expected
    assert _hero(client)["variant"] == expected


@pytest.mark.django_db(transaction=True)
async def test_the_live_push_carries_each_blocks_variant_and_holdout() -> None:
    def given() -> None:
        block = BlockFactory.create(slot="hero", key="hero-sale", priority=10)
        BlockVariantFactory.create(block=block, key="a", weight=50)
        BlockVariantFactory.create(block=block, key="b", weight=50)
        BlockFactory.create(slot="promo", key="promo-sale", holdout_percent=100)

    await sync_to_async(given)()
    communicator = WebsocketCommunicator(
        application,
        "/ws/personalize/",
        headers=[
            (b"origin", b"http://testserver"),
            (b"cookie", f"ajs_anonymous_id={IN_B}".encode()),
        ],
    )
    connected, _ = await communicator.connect()
    assert connected

    await communicator.send_json_to({"type": "subscribe", "slots": ["hero", "promo"]})
    update = await communicator.receive_json_from()
    await communicator.disconnect()

    assert {
        slot: [(b["key"], b["variant"], b["holdout"]) for b in blocks]
        for slot, blocks in update["slots"].items()
    } == {"hero": [("hero-sale", "b", False)], "promo": [("promo-sale", "", True)]}


def test_blocks_without_variants_cost_no_extra_query_and_variants_cost_one(
    sale: Block, django_assert_num_queries: DjangoAssertNumQueries, settings: Any
) -> None:
    # Selection alone: recording impressions has its own budget (test_measurement_recording).
    settings.MEASUREMENT_RECORD_SERVER_IMPRESSIONS = False
    BlockFactory.create(slot="promo", key="promo-plain")
    resolve_profile(anonymous_id=IN_A)
    client = _cookie(IN_A)
    client.get("/api/v1/blocks", {"slot": "promo"})  # builds the published catalog

    # The profile with its memberships (blocks, variants, slugs: the catalog).
    with django_assert_num_queries(1):
        client.get("/api/v1/blocks", {"slot": "promo"})
    # ... and the visitor's assignment unit.
    with django_assert_num_queries(2):
        client.get("/api/v1/blocks", {"slot": ["promo", "hero"]})
