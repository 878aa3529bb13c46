from __future__ import annotations

import pytest
from django.test import Client

from content.rendering import BlockTemplateError
from content.services import block_save
from personalize.models import Identity
from segments.services import recompute_profile, segment_save
from tests.factories import IdentityFactory, ProfileFactory


@pytest.fixture
def greeting(db: None) -> None:
    block_save(
        key="hello",
        slot="hero",
        title="Greeting",
        body=(
            "<p>Hello {{ traits.first_name|default('there') }}"
            "{% if 'fans' in segments %}, fan{% endif %}!</p>"
        ),
        is_template=True,
        is_default=True,
    )


def test_a_template_block_greets_the_visitor_with_their_traits_and_segments(greeting: None) -> None:
    profile = ProfileFactory.create(traits={"first_name": "Ada"})
    IdentityFactory.create(profile=profile, kind=Identity.Kind.ANONYMOUS_ID, value="a-ada")
    segment_save(
        slug="fans", name="Fans", rule={"type": "trait", "path": "first_name", "op": "exists"}
    )
    recompute_profile(profile_id=profile.pk)
    client = Client()
    client.cookies["ajs_anonymous_id"] = "a-ada"

    api = client.get("/api/v1/blocks", {"slot": "hero"}).json()
    page = client.get("/").content.decode()

    assert api["slots"]["hero"][0]["html"] == "<p>Hello Ada, fan!</p>"
    assert "<p>Hello Ada, fan!</p>" in page


def test_a_template_block_for_an_unknown_visitor_uses_its_defaults(greeting: None) -> None:
    api = Client().get("/api/v1/blocks", {"slot": "hero"}).json()
    assert api["slots"]["hero"][0]["html"] == "<p>Hello there!</p>"


def test_traits_are_escaped_and_the_output_sanitized(db: None) -> None:
    block_save(
        key="x",
        slot="hero",
        title="X",
        body="<p>{{ traits.name }}</p>{{ traits.raw|safe }}",
        is_template=True,
        is_default=True,
    )
    profile = ProfileFactory.create(
        traits={"name": "<b>Eve</b>", "raw": "<script>alert(1)</script><i>ok</i>"}
    )
    IdentityFactory.create(profile=profile, kind=Identity.Kind.ANONYMOUS_ID, value="a-eve")
    client = Client()
    client.cookies["ajs_anonymous_id"] = "a-eve"

    html = client.get("/api/v1/blocks", {"slot": "hero"}).json()["slots"]["hero"][0]["html"]

    assert html == "<p>&lt;b&gt;Eve&lt;/b&gt;</p><i>ok</i>"


def test_the_sandbox_refuses_reaching_beyond_what_it_is_given(db: None) -> None:
    block_save(
        key="escape",
        slot="hero",
        title="Escape",
        body="{{ traits.__class__.__mro__[1].__subclasses__() }}",
        is_template=True,
        is_default=True,
    )
    html = Client().get("/api/v1/blocks", {"slot": "hero"}).json()["slots"]["hero"][0]["html"]
    assert html == ""


def test_an_invalid_template_is_refused_on_save_with_its_line(db: None) -> None:
    with pytest.raises(BlockTemplateError, match="line 2"):
        block_save(key="bad", slot="hero", title="Bad", body="<p>\n{% if %}</p>", is_template=True)
