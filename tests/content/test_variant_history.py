"""Version history of block variants: who saved what, revert through the variant checks,
recovery after a delete, and the audit log's variant rows."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from content.audit import FieldChange, audit_log
from content.models import Block, BlockVariant
from content.selectors import blocks_for_segments
from personalize.visitors import Visitor
from tests.content.admin_forms import change_page_as_post_data
from tests.factories import BlockFactory, BlockVariantFactory, EditorFactory


@pytest.fixture
def editor_client(db: None) -> Client:
    client = Client()
    client.force_login(EditorFactory.create(username="ada"))
    return client


def _post_page(client: Client, url: str, **overrides: Any) -> Any:
    return client.post(url, change_page_as_post_data(client.get(url).context, **overrides))


def _revert(client: Client, variant_id: int, history_id: int, **overrides: Any) -> Any:
    return _post_page(
        client, f"/admin/content/blockvariant/{variant_id}/history/{history_id}/", **overrides
    )


def _variant_rows(block: Block) -> list[tuple[str, str, str, str | None]]:
    records = BlockVariant.history.filter(block_id=block.pk).order_by("history_date", "history_id")
    return [
        (r.history_type, r.key, r.body, r.history_user.username if r.history_user else None)
        for r in records
    ]


def test_a_variant_edited_on_its_blocks_page_records_a_version_with_the_editor(
    editor_client: Client,
) -> None:
    block = BlockFactory.create(key="hero-sale", body="<p>Sale</p>")
    BlockVariantFactory.create(block=block, key="a", body="<p>A</p>")

    response = _post_page(
        editor_client,
        f"/admin/content/block/{block.pk}/change/",
        **{"variants-0-body": "<p>A, new</p>"},
    )

    assert response.status_code == 302
    assert _variant_rows(block) == [
        ("+", "a", "<p>A</p>", None),
        ("~", "a", "<p>A, new</p>", "ada"),
    ]
    page = editor_client.get(f"/admin/content/block/{block.pk}/change/").content.decode()
    variant = block.variants.get()
    # The block page links each variant's own page, where its history is.
    assert f"/admin/content/blockvariant/{variant.pk}/change/" in page
    history = editor_client.get(f"/admin/content/blockvariant/{variant.pk}/history/")
    assert history.status_code == 200
    assert "ada" in history.content.decode()


def test_reverting_a_variant_restores_its_content_sanitized_and_serves_it(
    editor_client: Client,
) -> None:
    block = BlockFactory.create(key="hero-sale", body="<p>Sale</p>")
    # Stored unsanitized on purpose (bypassing the forms): a revert must clean it again.
    variant = BlockVariantFactory.create(
        block=block, key="a", weight=3, body='<p onclick="steal()">First</p>'
    )
    first = variant.history.latest()
    _post_page(
        editor_client,
        f"/admin/content/blockvariant/{variant.pk}/change/",
        body="<p>Second</p>",
        weight="5",
    )
    variant.refresh_from_db()
    assert (variant.body, variant.weight) == ("<p>Second</p>", 5)

    response = _revert(editor_client, variant.pk, first.history_id)

    assert response.status_code == 302
    variant.refresh_from_db()
    assert (variant.body, variant.weight) == ("<p>First</p>", 3)
    assert variant.history.latest().history_user.username == "ada"
    [shown] = blocks_for_segments(
        slots=[block.slot], segment_ids=frozenset(), visitor=Visitor(anonymous_id="v-1")
    )[block.slot]
    assert (shown.variant, shown.html) == ("a", "<p>First</p>")


def test_a_revert_that_would_leave_no_weight_is_refused_naming_the_field(
    editor_client: Client,
) -> None:
    block = BlockFactory.create(key="hero-sale")
    variant = BlockVariantFactory.create(block=block, key="a", weight=0)
    first = variant.history.latest()
    variant.weight = 2
    variant.save()

    response = _revert(editor_client, variant.pk, first.history_id)

    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert errors["weight"] == [
        "variants: at least one variant needs a weight above 0 (weight 0 is never shown)"
    ]
    variant.refresh_from_db()
    assert variant.weight == 2
    assert variant.history.count() == 2


def test_a_deleted_variant_keeps_its_history_and_can_be_recovered(
    editor_client: Client,
) -> None:
    block = BlockFactory.create(key="hero-sale")
    variant = BlockVariantFactory.create(block=block, key="b", body="<p>B</p>")
    variant_id = variant.pk
    created = variant.history.latest()
    variant.delete()
    assert not BlockVariant.objects.filter(pk=variant_id).exists()

    history = editor_client.get(f"/admin/content/blockvariant/{variant_id}/history/")
    response = _revert(editor_client, variant_id, created.history_id)

    assert history.status_code == 200
    assert response.status_code == 302
    recovered = BlockVariant.objects.get(pk=variant_id)
    assert (recovered.block_id, recovered.key, recovered.body) == (block.pk, "b", "<p>B</p>")
    assert [t for t, *_ in _variant_rows(block)] == ["+", "-", "+"]


def test_a_variant_of_a_deleted_block_cannot_be_recovered(editor_client: Client) -> None:
    block = BlockFactory.create(key="gone")
    variant = BlockVariantFactory.create(block=block, key="a")
    variant_id, created = variant.pk, variant.history.latest()
    block.delete()

    response = _revert(editor_client, variant_id, created.history_id)

    assert response.status_code == 200
    assert "block" in response.context["adminform"].form.errors
    assert not BlockVariant.objects.filter(pk=variant_id).exists()


def test_the_audit_log_lists_variant_changes_with_the_editor(editor_client: Client) -> None:
    block = BlockFactory.create(key="hero", title="Hero")
    variant = BlockVariantFactory.create(block=block, key="a", weight=1)
    _post_page(editor_client, f"/admin/content/blockvariant/{variant.pk}/change/", weight="4")
    variant.delete()

    entries = audit_log(object_types=["variant"]).entries

    assert [(e.user, e.object_label, e.change, e.changes) for e in entries] == [
        ("system", "hero / a", "deleted", ()),
        ("ada", "hero / a", "changed", (FieldChange("weight", "1", "4"),)),
        ("system", "hero / a", "created", ()),
    ]
    page = editor_client.get("/admin/editors/audit/", {"object_type": "variant"})
    assert page.status_code == 200
    assert page.content.decode().count("<tr data-history-id=") == 3


def test_a_variant_whose_block_is_gone_is_still_labelled_in_the_log(db: None) -> None:
    block = BlockFactory.create(key="gone")
    BlockVariantFactory.create(block=block, key="a")
    block_id = block.pk
    block.delete()

    entries = audit_log(object_types=["variant"]).entries

    assert [(e.object_label, e.change) for e in entries] == [
        (f"block #{block_id} / a", "deleted"),
        (f"block #{block_id} / a", "created"),
    ]
