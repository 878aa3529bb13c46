"""The admin's segment and score forms: the rule (or criteria) written as text or as
JSON, either one enough, a changed text winning, errors on the field at fault."""

from __future__ import annotations

import json
from typing import Any

import pytest

from segments.admin import ScoreForm, SegmentForm
from segments.models import Segment, SegmentKind
from segments.rules.text import criteria_from_text, text_to_json
from tests.factories import SegmentFactory

pytestmark = pytest.mark.django_db

VIEWS = "count(product_viewed, last 48h) >= 3"
OPENED = "10: count(email_opened, last 30d) >= 1"
# (form, JSON field, text field, a valid text, its JSON, a referring-to-nothing text)
FORMS: list[tuple[Any, str, str, str, Any, str]] = [
    (SegmentForm, "rule", "rule_text", VIEWS, text_to_json(VIEWS), "in_segment(nowhere)"),
    (
        ScoreForm,
        "criteria",
        "criteria_text",
        OPENED,
        criteria_from_text(OPENED),
        "5: in_segment(nowhere)",
    ),
]
IDS = ["segment", "score"]


def data(**values: Any) -> dict[str, Any]:
    return {"name": "Keen", "slug": "keen", "description": "", "is_active": "on", **values}


@pytest.mark.parametrize(
    ("form", "json_field", "text_field", "text", "canonical", "bad"), FORMS, ids=IDS
)
def test_the_text_alone_is_stored_as_its_json(
    form: Any, json_field: str, text_field: str, text: str, canonical: Any, bad: str
) -> None:
    bound = form(data=data(**{text_field: text, json_field: ""}))

    assert bound.is_valid(), bound.errors
    assert bound.cleaned_data[json_field] == canonical


@pytest.mark.parametrize(
    ("form", "json_field", "text_field", "text", "canonical", "bad"), FORMS, ids=IDS
)
def test_neither_text_nor_json_is_an_error_on_the_json_field(
    form: Any, json_field: str, text_field: str, text: str, canonical: Any, bad: str
) -> None:
    bound = form(data=data(**{text_field: "", json_field: ""}))

    assert not bound.is_valid()
    assert bound.errors == {json_field: [f"write the {json_field}, as text or as JSON"]}


@pytest.mark.parametrize(
    ("form", "json_field", "text_field", "text", "canonical", "bad"), FORMS, ids=IDS
)
def test_unparsable_text_is_an_error_on_the_text_field(
    form: Any, json_field: str, text_field: str, text: str, canonical: Any, bad: str
) -> None:
    bound = form(data=data(**{text_field: text.replace("48h", "48x").replace("30d", "30x")}))

    assert not bound.is_valid()
    assert list(bound.errors) == [text_field]


@pytest.mark.parametrize(
    ("form", "json_field", "text_field", "text", "canonical", "bad"), FORMS, ids=IDS
)
def test_a_reference_to_nothing_is_an_error_on_the_json_field(
    form: Any, json_field: str, text_field: str, text: str, canonical: Any, bad: str
) -> None:
    bound = form(data=data(**{text_field: bad}))

    assert not bound.is_valid()
    assert list(bound.errors) == [json_field]
    assert "refers to segment 'nowhere', which does not exist" in bound.errors[json_field][0]


@pytest.mark.parametrize(
    ("form", "json_field", "text_field", "text", "canonical", "bad"), FORMS, ids=IDS
)
def test_an_unchanged_text_leaves_the_edited_json_to_win(
    form: Any, json_field: str, text_field: str, text: str, canonical: Any, bad: str
) -> None:
    model = form._meta.model
    instance = model.objects.create(name="Keen", slug="keen", **{json_field: canonical})
    edited = text.replace("3", "4") if model is Segment else text.replace("10:", "20:")
    edited_json = text_to_json(edited) if model is Segment else criteria_from_text(edited)
    shown = form(instance=instance).initial[text_field]

    bound = form(
        instance=instance, data=data(**{text_field: shown, json_field: json.dumps(edited_json)})
    )

    assert shown == text
    assert bound.is_valid(), bound.errors
    assert bound.cleaned_data[json_field] == edited_json


def test_a_static_segment_keeps_its_list_whatever_is_posted() -> None:
    static = SegmentFactory.create(slug="vips", name="VIPs", kind=SegmentKind.STATIC, rule={})

    bound = SegmentForm(instance=static, data=data(slug="vips", rule_text=VIEWS))

    assert bound.is_valid(), bound.errors
    assert bound.cleaned_data["rule"] == {}
