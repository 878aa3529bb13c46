from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from personalize.keys import api_key_create
from personalize.models import Identity
from segments import services
from segments.models import Membership, Segment
from tests.factories import EventFactory, IdentityFactory, ProfileFactory, SegmentFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def api() -> Client:
    _, key = api_key_create(name="marketing-tool")
    return Client(headers={"Authorization": f"Bearer {key}"})


def _viewer(views: int, user_id: str) -> int:
    profile = ProfileFactory.create()
    IdentityFactory.create(profile=profile, kind=Identity.Kind.ANONYMOUS_ID, value=f"a-{user_id}")
    IdentityFactory.create(profile=profile, kind=Identity.Kind.USER_ID, value=user_id)
    for hours in range(views):
        EventFactory.create(
            profile=profile,
            name="product_viewed",
            timestamp=timezone.now() - timedelta(hours=hours + 1),
        )
    return profile.pk


@pytest.fixture
def saved_keen() -> tuple[Segment, list[int]]:
    """A saved segment "at least 3 views" over viewers of 1, 2, 3 and 4 products."""
    ids = [_viewer(views, f"u{views}") for views in (1, 2, 3, 4)]
    segment = SegmentFactory.create(slug="keen")
    services.recompute_segment(segment_id=segment.pk)
    return segment, ids


def test_preview_counts_who_would_enter_and_leave_without_saving(
    api: Client, saved_keen: tuple[Segment, list[int]]
) -> None:
    segment, (one, two, three, four) = saved_keen

    response = api.post(
        "/api/v1/segments/preview",
        {"slug": "keen", "rule_text": "count(product_viewed, last 48h) >= 2"},
        content_type="application/json",
    )

    assert response.status_code == 200
    body = response.json()
    assert (body["size"], body["saved_size"], body["entering"], body["leaving"]) == (3, 2, 1, 0)
    assert [(m["profile_id"], m["main_id"]) for m in body["sample"]] == [
        (two, "user_id=u2"),
        (three, "user_id=u3"),
        (four, "user_id=u4"),
    ]
    assert body["sample"][0]["admin_url"] == f"/admin/personalize/profile/{two}/change/"
    assert body["warnings"] == ["3 members is under the minimum of 50 worth acting on"]
    # Nothing saved: the rule and the members are as before.
    segment.refresh_from_db()
    assert segment.rule["value"] == 3
    assert Membership.objects.filter(segment=segment, exited_at__isnull=True).count() == 2


def test_preview_of_a_new_segment_has_nothing_to_compare_with(
    api: Client, saved_keen: tuple[Segment, list[int]]
) -> None:
    response = api.post(
        "/api/v1/segments/preview",
        {"rule": {"type": "segment", "slug": "keen", "member": False}},
        content_type="application/json",
    )

    body = response.json()
    assert (body["size"], body["saved_size"], body["entering"], body["leaving"]) == (2, None, 2, 0)


def test_preview_names_the_field_of_a_bad_rule(api: Client) -> None:
    bad_text = api.post(
        "/api/v1/segments/preview",
        {"rule_text": "count(product_viewed >= "},
        content_type="application/json",
    )
    bad_ref = api.post(
        "/api/v1/segments/preview",
        {"rule": {"type": "segment", "slug": "ghost"}},
        content_type="application/json",
    )
    anonymous = Client().post(
        "/api/v1/segments/preview", {"rule_text": "count(x) >= 1"}, content_type="application/json"
    )

    assert bad_text.status_code == 400
    assert bad_text.json()["field"] == "rule_text"
    assert bad_ref.status_code == 400
    assert bad_ref.json() == {
        "code": "invalid",
        "message": "rule: refers to segment 'ghost', which does not exist",
        "field": "rule.rule",
    }
    assert anonymous.status_code in (401, 403)


def test_admin_preview_reads_the_forms_rule_and_shows_the_difference(
    admin_client: Client, saved_keen: tuple[Segment, list[int]]
) -> None:
    segment, _ = saved_keen

    changed = admin_client.post(
        f"/admin/segments/segment/{segment.pk}/preview/",
        {"rule_text": "count(product_viewed, last 48h) >= 4", "rule": "{}"},
    )
    broken = admin_client.post(
        "/admin/segments/segment/preview/", {"rule_text": "", "rule": "{not json"}
    )
    by_get = admin_client.get(f"/admin/segments/segment/{segment.pk}/preview/")

    assert changed.status_code == 200
    body = changed.json()
    assert (body["size"], body["saved_size"], body["entering"], body["leaving"]) == (1, 2, 0, 1)
    assert broken.status_code == 400
    assert broken.json()["field"] == "rule"
    assert by_get.status_code == 405
    assert Membership.objects.filter(segment=segment, exited_at__isnull=True).count() == 2
