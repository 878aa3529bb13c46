from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.utils import timezone

from personalize.models import Identity
from segments import services
from segments.models import Membership, Segment, SegmentKind
from tests.factories import (
    EventFactory,
    IdentityFactory,
    MembershipFactory,
    ProfileFactory,
    SegmentFactory,
    StaticSegmentFactory,
    WebhookFactory,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def keen() -> Segment:
    profile = ProfileFactory.create()
    IdentityFactory.create(profile=profile, kind=Identity.Kind.USER_ID, value="u-1")
    for hours in (1, 2, 3, 4):
        EventFactory.create(
            profile=profile,
            name="product_viewed",
            timestamp=timezone.now() - timedelta(hours=hours),
        )
    segment = SegmentFactory.create(slug="keen", name="Keen")
    services.recompute_segment(segment_id=segment.pk)
    return segment


def _pages(segment: Segment) -> list[str]:
    return [
        "/admin/segments/segment/",
        f"/admin/segments/segment/{segment.pk}/change/",
        "/admin/segments/segment/add/",
        "/admin/segments/segment/overlap/",
        "/admin/segments/segment/import-static/",
        "/admin/segments/webhook/",
        "/admin/segments/webhookdelivery/",
        "/admin/segments/segmentsizesnapshot/",
    ]


def test_segment_pages_render_for_staff_and_refuse_others(
    admin_client: Client, keen: Segment
) -> None:
    WebhookFactory.create()
    User.objects.create_user("visitor", password="pw", is_staff=False)
    outsider = Client()
    outsider.login(username="visitor", password="pw")

    staff = {url: admin_client.get(url).status_code for url in _pages(keen)}
    others = {url: outsider.get(url).status_code for url in _pages(keen)}

    assert staff == dict.fromkeys(_pages(keen), 200)
    assert others == dict.fromkeys(_pages(keen), 302)
    preview = outsider.post("/admin/segments/segment/preview/", {"rule_text": "count(x) >= 1"})
    assert preview.status_code == 302


def test_the_segment_page_shows_chart_flow_members_warnings_and_an_explanation(
    admin_client: Client, keen: Segment
) -> None:
    page = admin_client.get(
        f"/admin/segments/segment/{keen.pk}/change/", {"user_id": "u-1"}
    ).content.decode()

    assert 'class="segment-size-chart"' in page
    assert "Last 7 days: <strong>1</strong> entered, <strong>0</strong> exited." in page
    assert "Members (1)" in page
    assert "user_id=u-1" in page
    assert "1 members is under the minimum of 50 worth acting on" in page
    assert "<strong>matches</strong> Keen." in page
    assert "count of product_viewed in the last 48h is 4; needs ≥ 3" in page
    missing = admin_client.get(f"/admin/segments/segment/{keen.pk}/change/", {"user_id": "nobody"})
    assert "no profile with user_id &#x27;nobody&#x27;" in missing.content.decode()


def test_the_overlap_page_highlights_near_duplicates(
    admin_client: Client, settings: object
) -> None:
    profiles = [ProfileFactory.create() for _ in range(3)]
    twins = [SegmentFactory.create(slug=f"twin-{n}", name=f"Twin {n}") for n in (1, 2)]
    for segment in twins:
        for profile in profiles:
            MembershipFactory.create(profile=profile, segment=segment)

    page = admin_client.get("/admin/segments/segment/overlap/").content.decode()

    assert page.count('class="overlap-high"') == 2
    assert "Twin 1: overlaps 100% (containment) with Twin 2: 3 shared members" in page


def test_csv_upload_creates_a_static_segment_and_shows_the_report(admin_client: Client) -> None:
    profile = ProfileFactory.create()
    IdentityFactory.create(profile=profile, kind=Identity.Kind.USER_ID, value="u-1")
    upload = SimpleUploadedFile("vip.csv", b"user_id\nu-1\nu-404\n", content_type="text/csv")

    page = admin_client.post(
        "/admin/segments/segment/import-static/", {"slug": "vip", "name": "VIP", "file": upload}
    ).content.decode()

    assert "<tr><th>Unknown ids</th><td>1</td></tr>" in page
    assert "<code>user_id=u-404</code>" in page
    vip = Segment.objects.get(slug="vip")
    assert vip.kind == SegmentKind.STATIC
    assert list(vip.memberships.values_list("profile_id", flat=True)) == [profile.pk]
    assert admin_client.get(f"/admin/segments/segment/{vip.pk}/change/").status_code == 200


def test_the_freeze_action_makes_a_static_copy(admin_client: Client, keen: Segment) -> None:
    response = admin_client.post(
        "/admin/segments/segment/",
        {"action": "freeze_snapshot", "_selected_action": [keen.pk]},
        follow=True,
    )

    frozen = Segment.objects.get(kind=SegmentKind.STATIC)
    assert frozen.slug.startswith("keen-")
    assert "1 members." in response.content.decode()
    assert set(
        Membership.objects.filter(segment=frozen).values_list("profile_id", flat=True)
    ) == set(Membership.objects.filter(segment=keen).values_list("profile_id", flat=True))


def test_the_profile_page_explains_each_segment(admin_client: Client, keen: Segment) -> None:
    member = Membership.objects.get(segment=keen)

    page = admin_client.get(
        f"/admin/personalize/profile/{member.profile_id}/change/"
    ).content.decode()

    assert "Explain each segment" in page
    assert "<strong>Keen</strong>: matches" in page
    assert "✔ count of product_viewed in the last 48h is 4; needs ≥ 3" in page


def test_static_segment_form_keeps_its_list(admin_client: Client) -> None:
    vip = StaticSegmentFactory.create(slug="vip", name="VIP")
    MembershipFactory.create(segment=vip)

    response = admin_client.post(
        f"/admin/segments/segment/{vip.pk}/change/",
        {"name": "VIP customers", "description": "", "is_active": "on"},
    )

    vip.refresh_from_db()
    assert response.status_code == 302
    assert (vip.name, vip.rule, vip.kind) == ("VIP customers", {}, SegmentKind.STATIC)
    assert vip.memberships.filter(exited_at__isnull=True).count() == 1
