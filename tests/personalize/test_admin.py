"""Admin smoke tests: editors can open every page they work with."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from django.test import Client

from content.models import Block
from personalize.models import Identity
from segments.models import Segment
from segments.services import recompute_profile
from tests.factories import (
    BlockFactory,
    EventFactory,
    IdentityFactory,
    ProfileFactory,
    SegmentFactory,
)


@pytest.fixture
def vip(db: None) -> Segment:
    segment: Segment = SegmentFactory.create(
        slug="vip", name="VIP", rule={"type": "trait", "path": "plan", "op": "eq", "value": "gold"}
    )
    return segment


@pytest.mark.parametrize(
    "path", ["/admin/content/block/", "/admin/segments/segment/", "/admin/personalize/profile/"]
)
def test_staff_can_open_the_changelists(admin_client: Client, vip: Segment, path: str) -> None:
    BlockFactory.create(slot="hero", key="hero-vip", segments=[vip])
    profile = ProfileFactory.create(traits={"plan": "gold"})
    IdentityFactory.create(profile=profile, kind=Identity.Kind.ANONYMOUS_ID, value="anon-42")

    response = admin_client.get(path)

    assert response.status_code == 200


def test_block_change_page_opens(admin_client: Client, vip: Segment) -> None:
    block = BlockFactory.create(slot="hero", key="hero-vip", title="VIP hero", segments=[vip])

    response = admin_client.get(f"/admin/content/block/{block.pk}/change/")

    assert response.status_code == 200
    assert "VIP hero" in response.content.decode()


def test_segment_change_page_opens(admin_client: Client, vip: Segment) -> None:
    response = admin_client.get(f"/admin/segments/segment/{vip.pk}/change/")

    assert response.status_code == 200
    assert "VIP" in response.content.decode()


def test_profile_change_page_shows_current_segments_and_recent_events(
    admin_client: Client, vip: Segment
) -> None:
    profile = ProfileFactory.create(traits={"plan": "gold"})
    IdentityFactory.create(profile=profile, kind=Identity.Kind.ANONYMOUS_ID, value="anon-42")
    EventFactory.create(
        profile=profile,
        name="product_viewed",
        properties={"sku": "tent"},
        timestamp=datetime(2026, 1, 10, 12, 30, 15, tzinfo=UTC),
    )
    recompute_profile(profile_id=profile.pk, now=datetime(2026, 1, 10, 13, 0, tzinfo=UTC))

    response = admin_client.get(f"/admin/personalize/profile/{profile.pk}/change/")

    assert response.status_code == 200
    page = response.content.decode()
    assert "<strong>VIP</strong> since 2026-01-10 13:00:00" in page
    assert "trait plan is &#x27;gold&#x27;; needs = &#x27;gold&#x27;" in page
    assert "<td>2026-01-10 12:30:15</td><td>product_viewed</td>" in page
    assert "anon-42" in page


def test_profile_change_page_without_segments_says_none(admin_client: Client, db: None) -> None:
    profile = ProfileFactory.create()

    response = admin_client.get(f"/admin/personalize/profile/{profile.pk}/change/")

    assert response.status_code == 200
    assert "<em>none</em>" in response.content.decode()


def test_invalid_segment_rule_in_the_admin_form_shows_the_path_and_saves_nothing(
    admin_client: Client, db: None
) -> None:
    rule = {"type": "and", "rules": [{"type": "trait", "path": "plan", "op": "eq"}]}

    response = admin_client.post(
        "/admin/segments/segment/add/",
        {"name": "Broken", "slug": "broken", "rule": json.dumps(rule), "is_active": "on"},
    )

    assert response.status_code == 200
    assert "rules[0].value: is required" in response.content.decode()
    assert Segment.objects.count() == 0


def test_valid_segment_rule_in_the_admin_form_is_saved_canonical(
    admin_client: Client, vip: Segment
) -> None:
    response = admin_client.post(
        "/admin/segments/segment/add/",
        {
            "name": "VIP fans",
            "slug": "vip-fans",
            "rule": json.dumps({"type": "segment", "slug": "vip"}),
            "is_active": "on",
        },
    )

    assert response.status_code == 302
    assert Segment.objects.get(slug="vip-fans").rule == {
        "type": "segment",
        "slug": "vip",
        "member": True,
    }


def test_block_saved_in_the_admin_has_its_html_sanitized(admin_client: Client, db: None) -> None:
    response = admin_client.post(
        "/admin/content/block/add/",
        {
            "slot": "hero",
            "key": "hero-new",
            "title": "New",
            "body": '<p onclick="steal()">Hi</p><script>steal()</script>',
            "data": "{}",
            "priority": "0",
            "holdout_percent": "0",
            "status": "published",
            "variants-TOTAL_FORMS": "0",
            "variants-INITIAL_FORMS": "0",
        },
    )

    assert response.status_code == 302
    assert Block.objects.get(key="hero-new").body == "<p>Hi</p>"


def test_anonymous_user_is_sent_to_the_admin_login(client: Client, db: None) -> None:
    response = client.get("/admin/personalize/profile/")

    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


def test_an_editor_writes_a_segment_rule_in_the_text_form_and_reads_it_back(
    admin_client: Client, db: None
) -> None:
    text = "count(product_viewed, last 48h) >= 3 and sum(order_completed.revenue, last 30d) > 500"

    response = admin_client.post(
        "/admin/segments/segment/add/",
        {"name": "Keen", "slug": "keen", "rule_text": text, "rule": "{}", "is_active": "on"},
    )

    assert response.status_code == 302
    segment = Segment.objects.get(slug="keen")
    assert segment.rule["type"] == "and"
    assert [r["fn"] for r in segment.rule["rules"]] == ["count", "sum"]
    page = admin_client.get(f"/admin/segments/segment/{segment.pk}/change/").content.decode()
    assert (
        "count(product_viewed, last 48h) &gt;= 3 and sum(order_completed.revenue, last 30d) &gt; 500"
        in page
    )


def test_an_invalid_text_rule_shows_line_column_and_reason(admin_client: Client, db: None) -> None:
    response = admin_client.post(
        "/admin/segments/segment/add/",
        {
            "name": "Bad",
            "slug": "bad",
            "rule_text": "count(product_viewed, last 48x) >= 3",
            "rule": "{}",
        },
    )

    assert response.status_code == 200
    assert "line 1, column 28: unexpected" in response.content.decode()
    assert Segment.objects.count() == 0


def test_profile_change_page_lists_its_merges_and_refusals(admin_client: Client, db: None) -> None:
    from personalize.models import ProfileMerge

    profile = ProfileFactory.create()
    ProfileMerge.objects.create(
        profile=profile,
        merged_profile_id=4242,
        identities=[{"kind": "anonymous_id", "value": "anon-merged"}],
        events_moved=7,
        trigger=ProfileMerge.Trigger.ALIAS,
    )
    ProfileMerge.objects.create(
        profile=profile,
        identities=[{"kind": "anonymous_id", "value": "undefined"}],
        trigger=ProfileMerge.Trigger.IDENTIFY,
        status=ProfileMerge.Status.REFUSED,
        reason="never attached",
    )

    response = admin_client.get(f"/admin/personalize/profile/{profile.pk}/change/")
    changelist = admin_client.get("/admin/personalize/profilemerge/?status=refused")

    page = response.content.decode()
    assert response.status_code == 200
    for shown in ("4242", "anon-merged", "Alias call", "Refused by policy", "never attached"):
        assert shown in page
    assert changelist.status_code == 200
    assert changelist.context["cl"].result_count == 1
