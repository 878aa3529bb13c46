"""Version history of blocks and segments: who saved what, and revert through the same checks as a save."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from content.models import Block
from personalize.models import Profile
from segments.models import Membership, Segment
from segments.services import segment_save
from tests.content.admin_forms import change_page_as_post_data
from tests.factories import BlockFactory, EditorFactory, ProfileFactory, SegmentFactory

GOLD = {"type": "trait", "path": "plan", "op": "eq", "value": "gold"}
SILVER = {"type": "trait", "path": "plan", "op": "eq", "value": "silver"}


@pytest.fixture
def editor_client(db: None) -> Client:
    client = Client()
    client.force_login(EditorFactory.create(username="ada"))
    return client


def _change(client: Client, url: str, **overrides: Any) -> Any:
    return client.post(url, change_page_as_post_data(client.get(url).context, **overrides))


def _revert(client: Client, model: str, obj_id: int, history_id: int, **overrides: Any) -> Any:
    url = f"/admin/{model}/{obj_id}/history/{history_id}/"
    return client.post(url, change_page_as_post_data(client.get(url).context, **overrides))


def test_an_admin_save_records_a_version_with_the_editor(editor_client: Client) -> None:
    block = BlockFactory.create(key="hero-sale", body="<p>Old</p>")

    response = _change(editor_client, f"/admin/content/block/{block.pk}/change/", body="<p>New</p>")

    assert response.status_code == 302
    versions = list(block.history.order_by("history_date", "history_id"))
    assert [(v.history_type, v.body) for v in versions] == [
        ("+", "<p>Old</p>"),
        ("~", "<p>New</p>"),
    ]
    assert versions[0].history_user is None
    assert versions[1].history_user.username == "ada"
    page = editor_client.get(f"/admin/content/block/{block.pk}/history/")
    assert page.status_code == 200
    assert "ada" in page.content.decode()


def test_reverting_a_block_restores_its_old_text_and_targeting_sanitized(
    editor_client: Client,
) -> None:
    vip = SegmentFactory.create(slug="vip", name="VIP")
    fans = SegmentFactory.create(slug="fans", name="Fans")
    # Stored unsanitized on purpose (bypassing the form): a revert must clean it again.
    block = BlockFactory.create(key="hero", body='<p onclick="steal()">Hi VIP</p>', segments=[vip])
    first = block.history.latest()
    _change(
        editor_client,
        f"/admin/content/block/{block.pk}/change/",
        body="<p>Hi fans</p>",
        segments=[str(fans.pk)],
    )
    block.refresh_from_db()
    assert [s.slug for s in block.segments.all()] == ["fans"]

    response = _revert(editor_client, "content/block", block.pk, first.history_id)

    assert response.status_code == 302
    block.refresh_from_db()
    assert block.body == "<p>Hi VIP</p>"
    assert [s.slug for s in block.segments.all()] == ["vip"]
    assert block.history.latest().history_user.username == "ada"


def test_reverting_a_segment_recomputes_its_members(
    editor_client: Client, django_capture_on_commit_callbacks: Any
) -> None:
    gold_member: Profile = ProfileFactory.create(traits={"plan": "gold"})
    with django_capture_on_commit_callbacks(execute=True):
        segment = segment_save(slug="best", name="Best", rule=GOLD)
    first = segment.history.latest()
    with django_capture_on_commit_callbacks(execute=True):
        _change(
            editor_client,
            f"/admin/segments/segment/{segment.pk}/change/",
            rule_text="",
            rule='{"type": "trait", "path": "plan", "op": "eq", "value": "silver"}',
        )
    assert not Membership.objects.filter(profile=gold_member, exited_at__isnull=True).exists()

    with django_capture_on_commit_callbacks(execute=True):
        response = _revert(editor_client, "segments/segment", segment.pk, first.history_id)

    assert response.status_code == 302
    segment.refresh_from_db()
    assert segment.rule == GOLD
    assert list(
        Membership.objects.filter(segment=segment, exited_at__isnull=True).values_list(
            "profile_id", flat=True
        )
    ) == [gold_member.pk]


def test_reverting_a_segment_to_a_rule_that_no_longer_validates_is_refused(
    editor_client: Client,
) -> None:
    segment_save(slug="vip", name="VIP", rule=GOLD)
    fans = segment_save(
        slug="fans", name="Fans", rule={"type": "segment", "slug": "vip", "member": True}
    )
    first = fans.history.latest()
    segment_save(slug="fans", name="Fans", rule=SILVER)
    Segment.objects.filter(slug="vip").delete()

    response = _revert(editor_client, "segments/segment", fans.pk, first.history_id)

    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert errors["rule"] == ["rule: refers to segment 'vip', which does not exist"]
    fans.refresh_from_db()
    assert fans.rule == SILVER
    assert fans.history.count() == 2


def test_a_deleted_blocks_history_is_kept(editor_client: Client) -> None:
    block = BlockFactory.create(key="gone")
    block_id = block.pk
    block.delete()

    assert [v.history_type for v in Block.history.filter(id=block_id).order_by("history_date")] == [
        "+",
        "-",
    ]
