from __future__ import annotations

import io
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from personalize.models import Identity
from segments import services
from segments.models import Membership, Segment, SegmentKind
from segments.static import email_sha256, static_segment_freeze, static_segment_import
from tests.factories import (
    EventFactory,
    IdentityFactory,
    MembershipFactory,
    ProfileFactory,
    SegmentFactory,
    StaticSegmentFactory,
)

pytestmark = pytest.mark.django_db


def _open(segment: Segment) -> set[int]:
    return set(
        Membership.objects.filter(segment=segment, exited_at__isnull=True).values_list(
            "profile_id", flat=True
        )
    )


def _viewer(views: int) -> int:
    profile = ProfileFactory.create()
    for hours in range(views):
        EventFactory.create(
            profile=profile,
            name="product_viewed",
            timestamp=timezone.now() - timedelta(hours=hours + 1),
        )
    return profile.pk


def test_csv_import_reports_matched_unknown_duplicate_and_invalid_rows() -> None:
    alice = ProfileFactory.create()
    IdentityFactory.create(profile=alice, kind=Identity.Kind.USER_ID, value="alice")
    bob = ProfileFactory.create()
    IdentityFactory.create(profile=bob, kind=Identity.Kind.ANONYMOUS_ID, value="anon-bob")
    carol = ProfileFactory.create(traits={"email": "Carol@Example.com"})
    ProfileFactory.create(traits={"email": "dave@example.com"})
    csv_text = (
        "user_id,anonymous_id,email_sha256\n"
        "alice,,\n"
        ",anon-bob,\n"
        f",,{email_sha256(' carol@example.COM ')}\n"
        "alice,,\n"
        "nobody,,\n"
        ",,not-a-hash\n"
        ",,\n"
    )

    report = static_segment_import(slug="vip", name="VIP", handle=io.StringIO(csv_text))

    assert (report.rows, report.matched, report.duplicates, report.unknown, report.invalid) == (
        7,
        3,
        1,
        1,
        2,
    )
    assert report.unknown_ids == ["user_id=nobody"]
    assert report.errors == [
        "line 7: email_sha256 is not 64 hex digits",
        "line 8: no user_id, anonymous_id or email_sha256",
    ]
    segment = Segment.objects.get(slug="vip")
    assert segment.kind == SegmentKind.STATIC
    assert _open(segment) == {alice.pk, bob.pk, carol.pk}
    assert (report.members, report.entered, report.exited) == (3, 3, 0)


def test_reimport_replaces_the_list_and_a_csv_without_an_id_column_is_refused() -> None:
    alice = ProfileFactory.create()
    IdentityFactory.create(profile=alice, kind=Identity.Kind.USER_ID, value="alice")
    bob = ProfileFactory.create()
    IdentityFactory.create(profile=bob, kind=Identity.Kind.USER_ID, value="bob")
    static_segment_import(slug="vip", name="VIP", handle=io.StringIO("user_id\nalice\n"))

    report = static_segment_import(slug="vip", name="VIP", handle=io.BytesIO(b"user_id\nbob\n"))

    assert (report.entered, report.exited, report.members) == (1, 1, 1)
    assert _open(Segment.objects.get(slug="vip")) == {bob.pk}
    assert Membership.objects.get(profile=alice).exited_at is not None
    from segments.static import StaticSegmentError

    with pytest.raises(StaticSegmentError, match="needs a column named"):
        static_segment_import(slug="vip", name="VIP", handle=io.StringIO("email\nx@y.z\n"))
    assert _open(Segment.objects.get(slug="vip")) == {bob.pk}


def test_recomputes_never_exit_a_static_segments_members() -> None:
    listed = _viewer(0)
    static = StaticSegmentFactory.create(slug="vip")
    MembershipFactory.create(profile_id=listed, segment=static)

    change = services.recompute_profile(profile_id=listed)
    batch = services.recompute_segment(segment_id=static.pk)

    assert change.exited == []
    assert change.current == ["vip"]
    assert (batch.members, batch.entered, batch.exited) == (1, 0, 0)
    assert _open(static) == {listed}


def test_a_rule_on_a_static_segment_reads_its_list_on_both_paths(
    django_capture_on_commit_callbacks: Any,
) -> None:
    listed_keen, listed_idle, unlisted_keen = _viewer(4), _viewer(0), _viewer(4)
    static = StaticSegmentFactory.create(slug="vip")
    for pid in (listed_keen, listed_idle):
        MembershipFactory.create(profile_id=pid, segment=static)
    keen_vips = SegmentFactory.create(
        slug="keen-vips",
        rule={
            "type": "and",
            "rules": [
                {"type": "segment", "slug": "vip", "member": True},
                {
                    "type": "aggregate",
                    "fn": "count",
                    "event": "product_viewed",
                    "window": {"last": "48h"},
                    "op": "gte",
                    "value": 3,
                },
            ],
        },
    )

    batch = services.recompute_segment(segment_id=keen_vips.pk)
    per_profile = {
        pid: services.recompute_profile(profile_id=pid).current
        for pid in (listed_keen, listed_idle, unlisted_keen)
    }

    assert (batch.members, batch.entered) == (1, 1)
    assert _open(keen_vips) == {listed_keen}
    assert per_profile == {
        listed_keen: ["keen-vips", "vip"],
        listed_idle: ["vip"],
        unlisted_keen: [],
    }


def test_importing_a_static_list_recomputes_the_segments_built_on_it(
    django_capture_on_commit_callbacks: Any,
) -> None:
    keen = _viewer(4)
    IdentityFactory.create(profile_id=keen, kind=Identity.Kind.USER_ID, value="keen")
    static_segment_import(slug="vip", name="VIP", handle=io.StringIO("user_id\n"))
    keen_vips = SegmentFactory.create(
        slug="keen-vips", rule={"type": "segment", "slug": "vip", "member": True}
    )
    assert _open(keen_vips) == set()

    with django_capture_on_commit_callbacks(execute=True):
        static_segment_import(slug="vip", name="VIP", handle=io.StringIO("user_id\nkeen\n"))

    assert _open(keen_vips) == {keen}


def test_freezing_keeps_the_members_of_the_moment() -> None:
    keen, other = _viewer(4), _viewer(4)
    dynamic = SegmentFactory.create(slug="keen")
    services.recompute_segment(segment_id=dynamic.pk)

    frozen = static_segment_freeze(source=dynamic, slug="keen-then", name="Keen then")
    # The visitors' views lapse: the dynamic segment empties, the snapshot stays.
    later = timezone.now() + timedelta(days=3)
    services.recompute_segment(segment_id=dynamic.pk, now=later)
    services.recompute_profile(profile_id=keen, now=later)

    assert _open(dynamic) == set()
    assert frozen.kind == SegmentKind.STATIC
    assert frozen.rule == {}
    assert _open(frozen) == {keen, other}


def test_saving_a_rule_onto_a_static_segment_is_refused() -> None:
    StaticSegmentFactory.create(slug="vip")
    from segments.rules import RuleError

    with pytest.raises(RuleError, match="is static"):
        services.segment_save(
            slug="vip", name="VIP", rule={"type": "trait", "path": "plan", "op": "exists"}
        )
    assert Segment.objects.get(slug="vip").rule == {}
