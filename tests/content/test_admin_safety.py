"""Safety of the editors' workflow: staff only, CSRF on every write, no visitor sees another's data."""

from __future__ import annotations

import pytest
from django.test import Client

from content.models import Block
from content.preview import PREVIEW_SESSION_KEY
from content.services import block_save
from personalize.models import Identity
from tests.factories import (
    BlockFactory,
    EditorFactory,
    IdentityFactory,
    ProfileFactory,
    SegmentFactory,
    UserFactory,
)


@pytest.fixture
def block(db: None) -> Block:
    return BlockFactory.create(key="hero", body="<p>Hello</p>")


@pytest.mark.parametrize(
    "path",
    [
        "/admin/",
        "/admin/content/block/",
        "/admin/content/block/{id}/change/",
        "/admin/content/block/{id}/history/",
        "/admin/segments/segment/",
        "/admin/editors/preview/",
        "/admin/editors/audit/",
    ],
)
def test_admin_pages_send_a_logged_in_non_staff_user_to_the_login(block: Block, path: str) -> None:
    client = Client()
    client.force_login(UserFactory.create(username="visitor", is_staff=False))
    url = path.format(id=block.pk)

    response = client.get(url)

    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/?next=")


def _csrf_enforcing_editor() -> Client:
    client = Client(enforce_csrf_checks=True)
    client.force_login(EditorFactory.create(username="ada"))
    return client


def test_an_admin_save_without_a_csrf_token_is_refused(block: Block) -> None:
    client = _csrf_enforcing_editor()

    response = client.post(
        f"/admin/content/block/{block.pk}/change/",
        {"slot": "hero", "key": "hero", "title": "Owned", "body": "<p>Owned</p>", "data": "{}"},
    )

    assert response.status_code == 403
    block.refresh_from_db()
    assert block.body == "<p>Hello</p>"


def test_a_revert_without_a_csrf_token_is_refused(block: Block) -> None:
    first = block.history.latest()
    Block.objects.filter(pk=block.pk).update(body="<p>Now</p>")
    client = _csrf_enforcing_editor()

    response = client.post(f"/admin/content/block/{block.pk}/history/{first.history_id}/", {})

    assert response.status_code == 403
    block.refresh_from_db()
    assert block.body == "<p>Now</p>"


def test_starting_or_ending_a_preview_without_a_csrf_token_is_refused(db: None) -> None:
    vip = SegmentFactory.create(slug="vip")
    client = _csrf_enforcing_editor()

    started = client.post(
        "/admin/editors/preview/", {"mode": "segments", "segments": [str(vip.pk)], "next": "/"}
    )
    ended = client.post("/admin/editors/preview/exit/")

    assert (started.status_code, ended.status_code) == (403, 403)
    assert PREVIEW_SESSION_KEY not in client.session


def test_a_visitors_blocks_never_carry_another_visitors_traits(db: None) -> None:
    block_save(
        key="greeting",
        slot="hero",
        title="Greeting",
        body="<p>Hello {{ traits.first_name|default('there') }}</p>",
        is_template=True,
        is_default=True,
    )
    clients = {}
    for anonymous_id, name in (("a-alice", "Alice"), ("a-bob", "Bob")):
        profile = ProfileFactory.create(traits={"first_name": name})
        IdentityFactory.create(profile=profile, kind=Identity.Kind.ANONYMOUS_ID, value=anonymous_id)
        client = Client()
        client.cookies["ajs_anonymous_id"] = anonymous_id
        clients[name] = client

    # Interleaved, so any state kept between requests would show.
    responses = {
        (name, kind): client.get("/api/v1/blocks", {"slot": "hero"})
        if kind == "api"
        else client.get("/")
        for kind in ("page", "api", "page")
        for name, client in clients.items()
    }
    stranger = Client().get("/").content.decode()

    for (name, _kind), response in responses.items():
        body = response.content.decode()
        other = "Bob" if name == "Alice" else "Alice"
        assert f"Hello {name}" in body
        assert other not in body
        assert response["Cache-Control"].startswith("private")
    assert "Hello there" in stranger
    assert "Alice" not in stranger
    assert "Bob" not in stranger
