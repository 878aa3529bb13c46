"""The audit log: who changed which block or segment, when, with before and after."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone
from pytest_django import DjangoAssertNumQueries

from content.audit import AuditEntry, FieldChange, audit_log
from content.models import Block
from segments.services import segment_save
from tests.content.admin_forms import change_page_as_post_data
from tests.factories import BlockFactory, EditorFactory, SegmentFactory, UserFactory

GOLD = {"type": "trait", "path": "plan", "op": "eq", "value": "gold"}


def _login(username: str) -> Client:
    client = Client()
    client.force_login(EditorFactory.create(username=username))
    return client


def _change(client: Client, url: str, **overrides: Any) -> None:
    response = client.post(url, change_page_as_post_data(client.get(url).context, **overrides))
    assert response.status_code == 302


@pytest.fixture
def changes(db: None) -> Block:
    """A block created by a script, then edited by ada (text) and grace (targeting)."""
    vip = SegmentFactory.create(slug="vip", name="VIP")
    block = BlockFactory.create(key="hero", title="Hero", body="<p>Old</p>")
    _change(_login("ada"), f"/admin/content/block/{block.pk}/change/", body="<p>New</p>")
    _change(_login("grace"), f"/admin/content/block/{block.pk}/change/", segments=[str(vip.pk)])
    return block


def _summary(entries: list[AuditEntry]) -> list[tuple[str, str, str, tuple[FieldChange, ...]]]:
    return [(e.user, e.object_type, e.change, e.changes) for e in entries]


def test_the_log_lists_who_changed_what_newest_first(changes: Block) -> None:
    page = audit_log(object_types=["block", "segment"])

    # grace's save writes the row, then its targeting: two entries, the second with the diff.
    assert _summary(page.entries) == [
        ("grace", "block", "changed", (FieldChange("segments", "(none)", "VIP"),)),
        ("grace", "block", "changed", ()),
        ("ada", "block", "changed", (FieldChange("body", "<p>Old</p>", "<p>New</p>"),)),
        ("system", "block", "created", ()),
        ("system", "segment", "created", ()),
    ]
    assert page.has_more is False
    assert [e.object_label for e in page.entries] == ["hero: Hero"] * 4 + ["VIP"]


def test_the_log_filters_by_user_type_and_date(changes: Block) -> None:
    segment_save(slug="gold", name="Gold", rule=GOLD)
    ada = EditorFactory.create(username="ada")
    tomorrow = timezone.now() + timedelta(days=1)

    by_ada = audit_log(object_types=["block", "segment"], user_id=ada.pk)
    segments_only = audit_log(object_types=["segment"])
    from_tomorrow = audit_log(object_types=["block", "segment"], since=tomorrow)

    assert _summary(by_ada.entries) == [
        ("ada", "block", "changed", (FieldChange("body", "<p>Old</p>", "<p>New</p>"),))
    ]
    assert [(e.object_label, e.change) for e in segments_only.entries] == [
        ("Gold", "created"),
        ("VIP", "created"),
    ]
    assert from_tomorrow.entries == []


def test_the_log_pages_through_older_entries(changes: Block) -> None:
    first = audit_log(object_types=["block"], limit=3)
    second = audit_log(object_types=["block"], offset=3, limit=3)

    assert (len(first.entries), first.has_more) == (3, True)
    assert [(e.user, e.change) for e in second.entries] == [("system", "created")]
    assert second.has_more is False


def test_a_deletion_is_logged(db: None) -> None:
    segment = segment_save(slug="gold", name="Gold", rule=GOLD)
    segment.delete()

    entries = audit_log(object_types=["segment"]).entries

    assert [(e.object_label, e.change) for e in entries] == [
        ("Gold", "deleted"),
        ("Gold", "created"),
    ]


def test_the_audit_page_shows_the_changes_read_only(
    changes: Block, django_assert_max_num_queries: DjangoAssertNumQueries
) -> None:
    client = _login("ada")
    client.get("/admin/editors/audit/")

    with django_assert_max_num_queries(20):
        page = client.get("/admin/editors/audit/", {"object_type": "block"})
    posted = client.post("/admin/editors/audit/")

    html = page.content.decode()
    assert page.status_code == 200
    assert "<del>&lt;p&gt;Old&lt;/p&gt;</del> → <ins>&lt;p&gt;New&lt;/p&gt;</ins>" in html
    assert html.count("<tr data-history-id=") == 4
    assert posted.status_code == 405


def test_the_audit_page_refuses_a_bad_date_with_the_field(changes: Block) -> None:
    page = _login("ada").get("/admin/editors/audit/", {"since": "yesterday"})

    assert page.status_code == 200
    assert page.context["form"].errors == {"since": ["Enter a valid date."]}
    assert page.context["entries"] == []


def test_staff_without_view_permission_cannot_read_the_log(db: None) -> None:
    client = Client()
    client.force_login(UserFactory.create(username="intern", is_staff=True))

    assert client.get("/admin/editors/audit/").status_code == 403


def test_the_admin_index_links_the_editors_tools(db: None) -> None:
    index = _login("ada").get("/admin/").content.decode()

    assert '<a href="/admin/editors/preview/">Preview site as…</a>' in index
    assert '<a href="/admin/editors/audit/">Audit log</a>' in index
