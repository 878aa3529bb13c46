"""The published catalog: reused across requests, and every kind of edit is seen by the
next selection (the version stamp in the cache, bumped by every write path)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.core.cache import cache
from django.db import connection
from django.test import Client
from django.utils import timezone
from pytest_django import DjangoAssertNumQueries

from content import catalog
from content.models import Block
from content.selectors import blocks_for_segments
from content.services import block_save, block_variant_save
from personalize.models import Identity
from personalize.visitors import Visitor
from segments.models import Segment
from segments.selectors import profile_and_segment_ids
from tests.factories import (
    BlockFactory,
    BlockVariantFactory,
    IdentityFactory,
    ProfileFactory,
    SegmentFactory,
    SlotFactory,
)

# Variant buckets of "hero-sale" (sha256, see test_variant_selection): visitor-1 → a (16 of 100).
IN_A = "visitor-1"
NOW = datetime(2025, 5, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def vip(db: None) -> Segment:
    segment: Segment = SegmentFactory.create(slug="vip", name="VIP")
    return segment


def _keys(slot: str, segment_ids: frozenset[int] = frozenset()) -> list[str]:
    return [b.key for b in blocks_for_segments(slots=[slot], segment_ids=segment_ids)[slot]]


def _html(slot: str, segment_ids: frozenset[int] = frozenset()) -> list[str]:
    return [b.html for b in blocks_for_segments(slots=[slot], segment_ids=segment_ids)[slot]]


def test_a_warm_catalog_chooses_without_a_query(
    vip: Segment, django_assert_num_queries: DjangoAssertNumQueries
) -> None:
    BlockFactory.create(slot="hero", key="hero-default", is_default=True)
    BlockFactory.create(slot="hero", key="hero-vip", segments=[vip], priority=5)
    assert _keys("hero") == ["hero-default"]

    with django_assert_num_queries(0):
        chosen = _keys("hero", frozenset({vip.pk}))

    assert chosen == ["hero-vip"]


def test_a_cold_catalog_is_built_in_five_queries(
    vip: Segment, django_assert_num_queries: DjangoAssertNumQueries
) -> None:
    for i in range(5):
        block = BlockFactory.create(slot=f"s{i}", key=f"b{i}", segments=[vip])
        block.excluded_segments.set([SegmentFactory.create()])
        BlockVariantFactory.create(block=block, key="a")
    SlotFactory.create(name="s1", capacity=2)
    catalog.forget_published_catalog()

    # Segments, slots, blocks, their targeting and their variants.
    with django_assert_num_queries(5):
        catalog.published_catalog()


def test_an_edited_body_is_served_on_the_next_request(db: None) -> None:
    block_save(key="hero-1", slot="hero", title="Hi", body="<p>Old</p>")
    assert _html("hero") == ["<p>Old</p>"]

    block_save(key="hero-1", slot="hero", title="Hi", body="<p>New</p><script>x()</script>")

    assert _html("hero") == ["<p>New</p>"]


def test_publishing_and_unpublishing_show_and_hide_the_block(db: None) -> None:
    block_save(key="hero-1", slot="hero", title="Hi", body="<p>1</p>", status="draft")
    assert _keys("hero") == []

    block_save(key="hero-1", slot="hero", title="Hi", body="<p>1</p>", status="published")
    assert _keys("hero") == ["hero-1"]

    block_save(key="hero-1", slot="hero", title="Hi", body="<p>1</p>", status="draft")
    assert _keys("hero") == []


def test_a_bulk_status_update_is_seen_too(db: None) -> None:
    block = BlockFactory.create(slot="hero", key="hero-1")
    assert _keys("hero") == ["hero-1"]

    Block.objects.filter(pk=block.pk).update(status=Block.Status.DRAFT)
    assert _keys("hero") == []

    Block.objects.filter(pk=block.pk).delete()
    assert _keys("hero") == []


def test_changed_targeting_and_exclusions_are_seen(vip: Segment) -> None:
    other = SegmentFactory.create(slug="other")
    BlockFactory.create(slot="hero", key="hero-default", is_default=True)
    block = BlockFactory.create(slot="hero", key="hero-vip", segments=[vip], priority=5)
    assert _keys("hero", frozenset({other.pk})) == ["hero-default"]

    block.segments.add(other)
    assert _keys("hero", frozenset({other.pk})) == ["hero-vip"]

    block.excluded_segments.add(other)
    assert _keys("hero", frozenset({other.pk})) == ["hero-default"]

    block.excluded_segments.clear()
    block.segments.remove(other)
    assert _keys("hero", frozenset({other.pk})) == ["hero-default"]
    assert _keys("hero", frozenset({vip.pk})) == ["hero-vip"]


def test_a_start_after_the_catalog_was_built_is_honoured_at_request_time(db: None) -> None:
    BlockFactory.create(
        slot="hero", key="hero-soon", starts_at=timezone.now() + timedelta(milliseconds=300)
    )
    assert _keys("hero") == []

    time.sleep(0.35)

    assert _keys("hero") == ["hero-soon"]


def test_a_segments_new_slug_is_reported_and_shown_to_templates(vip: Segment) -> None:
    profile = ProfileFactory.create()
    IdentityFactory.create(profile=profile, kind=Identity.Kind.ANONYMOUS_ID, value="anon-1")
    profile.memberships.create(segment=vip, entered_at=NOW)
    BlockFactory.create(
        slot="hero", key="hero-tpl", is_template=True, body="<p>{{ segments|join(',') }}</p>"
    )
    client = Client()
    client.cookies["ajs_anonymous_id"] = "anon-1"
    before = client.get("/api/v1/blocks", {"slot": "hero"}).json()

    vip.slug = "very-important"
    vip.save()
    after = client.get("/api/v1/blocks", {"slot": "hero"}).json()

    assert (before["segments"], before["slots"]["hero"][0]["html"]) == (["vip"], "<p>vip</p>")
    assert (after["segments"], after["slots"]["hero"][0]["html"]) == (
        ["very-important"],
        "<p>very-important</p>",
    )


def test_a_variant_weight_change_moves_the_visitor(db: None) -> None:
    block = BlockFactory.create(slot="hero", key="hero-sale", body="<p>Sale</p>")
    block_variant_save(block=block, key="a", weight=50, body="<p>A</p>")
    block_variant_save(block=block, key="b", weight=50, body="<p>B</p>")
    visitor = Visitor(anonymous_id=IN_A)

    [before] = blocks_for_segments(slots=["hero"], segment_ids=frozenset(), visitor=visitor)["hero"]
    block_variant_save(block=block, key="a", weight=0, body="<p>A</p>")
    [after] = blocks_for_segments(slots=["hero"], segment_ids=frozenset(), visitor=visitor)["hero"]

    assert (before.variant, before.html) == ("a", "<p>A</p>")
    assert (after.variant, after.html) == ("b", "<p>B</p>")


def test_a_slots_new_capacity_is_seen(db: None) -> None:
    for i in range(3):
        BlockFactory.create(slot="recs", key=f"recs-{i}", priority=i)
    slot = SlotFactory.create(name="recs", capacity=1)
    assert _keys("recs") == ["recs-2"]

    slot.capacity = 2
    slot.save()

    assert _keys("recs") == ["recs-2", "recs-1"]


def test_another_processs_write_is_seen_through_the_shared_version(db: None) -> None:
    BlockFactory.create(slot="hero", key="hero-1", body="<p>Old</p>")
    assert _html("hero") == ["<p>Old</p>"]
    # Another process writes (no signal here) and bumps the shared version on commit.
    with connection.cursor() as cursor:
        cursor.execute("UPDATE content_block SET body = '<p>New</p>' WHERE key = 'hero-1'")
    assert _html("hero") == ["<p>Old</p>"]  # this process has not been told yet

    cache.set(catalog.VERSION_KEY, "bumped-elsewhere", timeout=None)

    assert _html("hero") == ["<p>New</p>"]


def test_a_lost_version_stamp_rebuilds_the_catalog(db: None) -> None:
    BlockFactory.create(slot="hero", key="hero-1", body="<p>Old</p>")
    assert _html("hero") == ["<p>Old</p>"]
    with connection.cursor() as cursor:
        cursor.execute("UPDATE content_block SET body = '<p>New</p>' WHERE key = 'hero-1'")

    cache.delete(catalog.VERSION_KEY)

    assert _html("hero") == ["<p>New</p>"]


def test_the_catalog_is_rebuilt_after_its_max_age(
    db: None, settings: pytest.FixtureRequest
) -> None:
    BlockFactory.create(slot="hero", key="hero-1", body="<p>Old</p>")
    assert _html("hero") == ["<p>Old</p>"]
    with connection.cursor() as cursor:
        cursor.execute("UPDATE content_block SET body = '<p>New</p>' WHERE key = 'hero-1'")

    settings.CONTENT_CATALOG_MAX_AGE_SECONDS = 0  # type: ignore[attr-defined]

    assert _html("hero") == ["<p>New</p>"]


def test_profile_and_segment_ids_prefer_the_user_ids_profile_in_one_query(
    vip: Segment, django_assert_num_queries: DjangoAssertNumQueries
) -> None:
    other = SegmentFactory.create(slug="other")
    known = ProfileFactory.create()
    IdentityFactory.create(profile=known, kind=Identity.Kind.USER_ID, value="u-1")
    known.memberships.create(segment=vip, entered_at=NOW)
    known.memberships.create(segment=other, entered_at=NOW, exited_at=NOW)
    anonymous = ProfileFactory.create()
    IdentityFactory.create(profile=anonymous, kind=Identity.Kind.ANONYMOUS_ID, value="a-1")
    anonymous.memberships.create(segment=other, entered_at=NOW)
    nowhere = ProfileFactory.create()
    IdentityFactory.create(profile=nowhere, kind=Identity.Kind.ANONYMOUS_ID, value="a-2")

    with django_assert_num_queries(1):
        both = profile_and_segment_ids(Visitor(anonymous_id="a-1", user_id="u-1"))

    assert both == (known.pk, frozenset({vip.pk}))
    assert profile_and_segment_ids(Visitor(anonymous_id="a-1")) == (
        anonymous.pk,
        frozenset({other.pk}),
    )
    assert profile_and_segment_ids(Visitor(anonymous_id="a-2")) == (nowhere.pk, frozenset())
    assert profile_and_segment_ids(Visitor(anonymous_id="a-3")) == (None, frozenset())
    assert profile_and_segment_ids(Visitor(anonymous_id="a-1", user_id="u-9")) == (
        anonymous.pk,
        frozenset({other.pk}),
    )


def test_the_block_api_hot_path_is_one_query(
    vip: Segment, django_assert_num_queries: DjangoAssertNumQueries, settings: Any
) -> None:
    # Selection alone: impressions go to a worker (test_measurement_recording).
    settings.MEASUREMENT_RECORD_SERVER_IMPRESSIONS = False
    for slot in ("hero", "promo", "recs"):
        BlockFactory.create(slot=slot, key=f"{slot}-default", is_default=True)
        for i in range(5):
            BlockFactory.create(slot=slot, key=f"{slot}-{i}", segments=[vip], priority=i)
    profile = ProfileFactory.create()
    IdentityFactory.create(profile=profile, kind=Identity.Kind.ANONYMOUS_ID, value="anon-1")
    profile.memberships.create(segment=vip, entered_at=NOW)
    client = Client()
    client.cookies["ajs_anonymous_id"] = "anon-1"
    client.get("/api/v1/blocks", {"slot": "hero"})  # builds the catalog

    # The visitor's profile and segments; nothing else.
    with django_assert_num_queries(1):
        body = client.get("/api/v1/blocks", {"slot": ["hero", "promo", "recs"]}).json()

    assert body == {
        "segments": ["vip"],
        "slots": {
            slot: [
                {
                    "id": Block.objects.get(key=f"{slot}-4").pk,
                    "key": f"{slot}-4",
                    "slot": slot,
                    "title": Block.objects.get(key=f"{slot}-4").title,
                    "html": f"<p>{Block.objects.get(key=f'{slot}-4').title}</p>",
                    "data": {},
                    "variant": "",
                    "holdout": False,
                }
            ]
            for slot in ("hero", "promo", "recs")
        },
    }
