"""Editing variants, holdouts and slot capacities: in services and the admin, with clear errors."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from content.models import Block, BlockVariant, Slot
from content.rendering import BlockTemplateError
from content.selectors import blocks_for_segments
from content.services import InvalidBlock, block_save, block_variant_save
from personalize.models import Identity
from tests.factories import BlockFactory, BlockVariantFactory, IdentityFactory, ProfileFactory

HOSTILE = '<p onclick="steal()">Hi</p><script>steal()</script>'


def test_a_variants_body_is_sanitized_when_saved(db: None) -> None:
    block = BlockFactory.create()

    variant = block_variant_save(block=block, key="a", weight=1, body=HOSTILE)

    assert variant.body == "<p>Hi</p>"


def test_a_template_blocks_variant_is_a_template_rendered_for_the_visitor(db: None) -> None:
    block = block_save(
        key="hello", slot="hero", title="Hi", body="<p>Hi</p>", is_template=True, is_default=True
    )
    block_variant_save(block=block, key="named", weight=1, body="<p>Hi {{ traits.first_name }}</p>")
    profile = ProfileFactory.create(traits={"first_name": "Ada"})
    IdentityFactory.create(profile=profile, kind=Identity.Kind.ANONYMOUS_ID, value="a-ada")

    [hello] = blocks_for_segments(slots=["hero"], segment_ids=frozenset(), profile_id=profile.pk)[
        "hero"
    ]

    assert (hello.variant, hello.html) == ("named", "<p>Hi Ada</p>")


def test_an_invalid_template_variant_is_refused_and_not_stored(db: None) -> None:
    block = block_save(key="t", slot="hero", title="T", body="<p>x</p>", is_template=True)

    with pytest.raises(BlockTemplateError, match="line 1"):
        block_variant_save(block=block, key="bad", weight=1, body="{% if %}")

    assert not BlockVariant.objects.exists()


def test_variants_that_would_all_weigh_zero_are_refused_and_not_stored(db: None) -> None:
    block = BlockFactory.create()
    with pytest.raises(InvalidBlock, match="at least one variant needs a weight above 0"):
        block_variant_save(block=block, key="a", weight=0)
    block_variant_save(block=block, key="a", weight=1)
    block_variant_save(block=block, key="b", weight=0)

    with pytest.raises(InvalidBlock, match="at least one variant needs a weight above 0"):
        block_variant_save(block=block, key="a", weight=0)

    assert list(BlockVariant.objects.values_list("key", "weight")) == [("a", 1), ("b", 0)]


def test_a_negative_weight_is_refused_naming_the_weight(db: None) -> None:
    with pytest.raises(InvalidBlock) as refused:
        block_variant_save(block=BlockFactory.create(), key="a", weight=-1)

    assert refused.value.field == "weight"
    assert not BlockVariant.objects.exists()


@pytest.mark.parametrize(
    ("holdout", "is_default", "message"),
    [
        (101, False, "holdout_percent must be between 0 and 100, not 101"),
        (-1, False, "holdout_percent must be between 0 and 100, not -1"),
        (10, True, "a default block cannot have a holdout: its holdout would see the default"),
    ],
)
def test_an_impossible_holdout_is_refused(
    db: None, holdout: int, is_default: bool, message: str
) -> None:
    with pytest.raises(InvalidBlock, match=message):
        block_save(
            key="k", slot="hero", title="T", body="", is_default=is_default, holdout_percent=holdout
        )

    assert not Block.objects.exists()


def _block_form(**overrides: str) -> dict[str, str]:
    form = {
        "slot": "hero",
        "key": "hero-test",
        "title": "Test",
        "body": "<p>Test</p>",
        "data": "{}",
        "priority": "0",
        "holdout_percent": "10",
        "status": "published",
        "variants-TOTAL_FORMS": "2",
        "variants-INITIAL_FORMS": "0",
        "variants-0-key": "a",
        "variants-0-weight": "3",
        "variants-0-body": HOSTILE,
        "variants-0-data": "{}",
        "variants-1-key": "b",
        "variants-1-weight": "1",
        "variants-1-data": '{"cta": "/b"}',
    }
    form.update(overrides)
    return form


def test_an_editor_adds_a_block_with_variants_and_a_holdout_in_the_admin(
    admin_client: Client, db: None
) -> None:
    response = admin_client.post("/admin/content/block/add/", _block_form())

    assert response.status_code == 302
    block = Block.objects.get(key="hero-test")
    assert block.holdout_percent == 10
    assert list(block.variants.values_list("key", "weight", "body", "data")) == [
        ("a", 3, "<p>Hi</p>", {}),
        ("b", 1, "", {"cta": "/b"}),
    ]


def _errors(response: Any) -> list[str]:
    """Every error the admin lists at the top of the page: the form's and the inlines'."""
    return [str(e) for e in response.context["errors"]]


def test_the_admin_refuses_variants_that_all_weigh_zero(admin_client: Client, db: None) -> None:
    response = admin_client.post(
        "/admin/content/block/add/",
        _block_form(**{"variants-0-weight": "0", "variants-1-weight": "0"}),
    )

    assert response.status_code == 200
    assert _errors(response) == [
        "variants: at least one variant needs a weight above 0 (weight 0 is never shown)"
    ]
    assert not Block.objects.exists()


def test_the_admin_refuses_a_holdout_above_a_hundred_naming_the_field(
    admin_client: Client, db: None
) -> None:
    response = admin_client.post("/admin/content/block/add/", _block_form(holdout_percent="150"))

    assert response.status_code == 200
    assert response.context["adminform"].form.errors["holdout_percent"] == [
        "Ensure this value is less than or equal to 100."
    ]
    assert not Block.objects.exists()


def test_the_admin_refuses_an_invalid_template_in_a_variant(admin_client: Client, db: None) -> None:
    response = admin_client.post(
        "/admin/content/block/add/",
        _block_form(is_template="on", **{"variants-0-body": "{% if %}"}),
    )

    assert response.status_code == 200
    [formset] = response.context["inline_admin_formsets"]
    assert formset.formset.forms[0].errors["body"] == [
        "template: line 1: Expected an expression, got 'end of statement block'"
    ]
    assert not Block.objects.exists()


def test_the_admin_refuses_a_holdout_on_the_slots_default(admin_client: Client, db: None) -> None:
    response = admin_client.post("/admin/content/block/add/", _block_form(is_default="on"))

    assert response.status_code == 200
    assert response.context["adminform"].form.errors["holdout_percent"] == [
        "a default block cannot have a holdout: its holdout would see the default itself"
    ]


def test_an_editor_sets_a_slots_capacity_and_a_wrong_name_is_refused(
    admin_client: Client, db: None
) -> None:
    saved = admin_client.post(
        "/admin/content/slot/add/", {"name": "recs", "capacity": "3", "description": "Picks"}
    )
    refused = admin_client.post("/admin/content/slot/add/", {"name": "Recs!", "capacity": "0"})

    assert saved.status_code == 302
    assert list(Slot.objects.values_list("name", "capacity")) == [("recs", 3)]
    assert refused.status_code == 200
    assert refused.context["adminform"].form.errors == {
        "name": ["a-z, 0-9, - and _ only"],
        "capacity": ["Ensure this value is greater than or equal to 1."],
    }


def test_deleting_a_block_deletes_its_variants(db: None) -> None:
    variant = BlockVariantFactory.create()

    variant.block.delete()

    assert not BlockVariant.objects.exists()
