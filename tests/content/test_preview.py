"""Staff preview: the real site as a segment set or a real profile, read-only, staff only."""

from __future__ import annotations

import pytest
from django.core import signing
from django.test import Client

from content.preview import PREVIEW_SALT, PREVIEW_SESSION_KEY
from content.services import block_save
from personalize.models import Event, Identity, Profile
from segments.models import Segment
from segments.services import recompute_profile, segment_save
from shop.models import CartLine
from tests.factories import (
    BlockFactory,
    EditorFactory,
    IdentityFactory,
    ProductFactory,
    ProfileFactory,
    UserFactory,
)

GOLD = {"type": "trait", "path": "plan", "op": "eq", "value": "gold"}


@pytest.fixture
def vip(db: None) -> Segment:
    return segment_save(slug="vip", name="VIP", rule=GOLD)


@pytest.fixture
def hero(vip: Segment) -> None:
    BlockFactory.create(slot="hero", key="hero-default", is_default=True, body="<p>Welcome</p>")
    BlockFactory.create(
        slot="hero", key="hero-vip", segments=[vip], priority=10, body="<p>Hi VIP</p>"
    )


@pytest.fixture
def editor(db: None) -> Client:
    client = Client()
    client.force_login(EditorFactory.create(username="ada"))
    return client


def _preview_segments(client: Client, *segments: Segment, next_page: str = "/") -> None:
    response = client.post(
        "/admin/editors/preview/",
        {"mode": "segments", "segments": [str(s.pk) for s in segments], "next": next_page},
    )
    assert response.status_code == 302
    assert response["Location"] == next_page


def test_an_editor_previews_the_homepage_as_a_segment_with_the_reasons(
    editor: Client, hero: None, vip: Segment
) -> None:
    before = editor.get("/").content.decode()
    _preview_segments(editor, vip)

    page = editor.get("/").content.decode()

    assert 'data-blocks="hero-default"' in before
    assert "Previewing as" not in before
    assert 'data-blocks="hero-vip"' in page
    assert "Previewing as <strong>segments: VIP</strong>" in page
    assert "slot hero → hero-vip: visitor is in VIP</small>" in page
    assert '<span class="badge">vip</span>' in page


def test_a_preview_records_no_events_and_loads_no_tracking(
    editor: Client, hero: None, vip: Segment
) -> None:
    product = ProductFactory.create(slug="tent")
    _preview_segments(editor, vip)
    events_before = Event.objects.count()

    pages = [editor.get(path).content.decode() for path in ("/", "/shop/", "/shop/p/tent/")]
    add = editor.post(f"/shop/p/{product.slug}/add/")

    assert all("analytics.js" not in page and "p13n.track" not in page for page in pages)
    assert all("p13n-live-token" not in page for page in pages)
    assert add.status_code == 403
    assert CartLine.objects.count() == 0
    assert Event.objects.count() == events_before


def test_the_block_api_answers_the_staff_session_with_the_preview(
    editor: Client, hero: None, vip: Segment
) -> None:
    _preview_segments(editor, vip)

    api = editor.get("/api/v1/blocks", {"slot": "hero"}).json()

    assert api["segments"] == ["vip"]
    assert [b["key"] for b in api["slots"]["hero"]] == ["hero-vip"]


def test_an_editor_previews_as_a_real_profile_by_user_id_with_its_traits(
    editor: Client, vip: Segment
) -> None:
    block_save(
        key="hello",
        slot="hero",
        title="Hello",
        body="<p>Hello {{ traits.first_name }}{% if 'vip' in segments %}, VIP{% endif %}</p>",
        is_template=True,
        is_default=True,
    )
    grace: Profile = ProfileFactory.create(traits={"first_name": "Grace", "plan": "gold"})
    IdentityFactory.create(profile=grace, kind=Identity.Kind.USER_ID, value="u-grace")
    recompute_profile(profile_id=grace.pk)
    traits_before = dict(grace.traits)

    response = editor.post(
        "/admin/editors/preview/",
        {"mode": "profile", "id_kind": "user_id", "id_value": "u-grace", "next": "/"},
    )
    page = editor.get("/").content.decode()

    assert response.status_code == 302
    assert f"Previewing as <strong>profile #{grace.pk} (user_id=u-grace)</strong>" in page
    assert "<p>Hello Grace, VIP</p>" in page
    grace.refresh_from_db()
    assert grace.traits == traits_before
    assert Event.objects.filter(profile=grace).count() == 0


def test_an_unknown_profile_is_refused_naming_the_id(editor: Client, db: None) -> None:
    response = editor.post(
        "/admin/editors/preview/",
        {"mode": "profile", "id_kind": "anonymous_id", "id_value": "nobody", "next": "/"},
    )

    assert response.status_code == 200
    assert response.context["form"].errors == {"id_value": ["no profile has anonymous id 'nobody'"]}
    assert PREVIEW_SESSION_KEY not in editor.session


@pytest.mark.parametrize("value", ["12abc", "99999999999999999999999", "١٢"])
def test_a_profile_id_that_is_not_a_number_names_no_profile(editor: Client, value: str) -> None:
    response = editor.post(
        "/admin/editors/preview/",
        {"mode": "profile", "id_kind": "profile", "id_value": value, "next": "/"},
    )

    assert response.status_code == 200
    assert response.context["form"].errors == {"id_value": [f"no profile has profile {value!r}"]}


def test_exiting_the_preview_shows_the_editors_own_content_again(
    editor: Client, hero: None, vip: Segment
) -> None:
    _preview_segments(editor, vip)

    response = editor.post("/admin/editors/preview/exit/", {"next": "/shop/"})
    page = editor.get("/").content.decode()

    assert response["Location"] == "/shop/"
    assert 'data-blocks="hero-default"' in page
    assert "Previewing as" not in page


def test_a_preview_cannot_redirect_to_another_site(editor: Client, vip: Segment) -> None:
    response = editor.post(
        "/admin/editors/preview/",
        {"mode": "segments", "segments": [str(vip.pk)], "next": "https://evil.example/"},
    )
    assert response["Location"] == "/"


def _session_with_preview(client: Client, payload: dict[str, object]) -> None:
    session = client.session
    session[PREVIEW_SESSION_KEY] = signing.dumps(payload, salt=PREVIEW_SALT)
    session.save()


def test_a_non_staff_session_holding_a_preview_is_ignored(hero: None, vip: Segment) -> None:
    visitor = UserFactory.create(username="mallory", is_staff=False)
    client = Client()
    client.force_login(visitor)
    _session_with_preview(client, {"u": visitor.pk, "s": [vip.pk]})

    page = client.get("/").content.decode()
    api = client.get("/api/v1/blocks", {"slot": "hero"}).json()

    assert 'data-blocks="hero-default"' in page
    assert "Previewing as" not in page
    assert "analytics.js" in page
    assert [b["key"] for b in api["slots"]["hero"]] == ["hero-default"]


def test_an_anonymous_session_holding_a_preview_is_ignored(hero: None, vip: Segment) -> None:
    editor = EditorFactory.create()
    client = Client()
    _session_with_preview(client, {"u": editor.pk, "s": [vip.pk]})

    page = client.get("/").content.decode()

    assert 'data-blocks="hero-default"' in page
    assert "Previewing as" not in page


def test_a_preview_signed_for_another_editor_or_unsigned_is_ignored(
    hero: None, vip: Segment
) -> None:
    ada = EditorFactory.create(username="ada")
    grace = EditorFactory.create(username="grace")
    client = Client()
    client.force_login(ada)
    _session_with_preview(client, {"u": grace.pk, "s": [vip.pk]})
    other_editors = client.get("/").content.decode()
    session = client.session
    session[PREVIEW_SESSION_KEY] = {"u": ada.pk, "s": [vip.pk]}
    session.save()
    unsigned = client.get("/").content.decode()

    assert 'data-blocks="hero-default"' in other_editors
    assert 'data-blocks="hero-default"' in unsigned


def test_non_staff_cannot_start_a_preview(vip: Segment) -> None:
    client = Client()
    client.force_login(UserFactory.create(username="mallory"))

    response = client.post(
        "/admin/editors/preview/", {"mode": "segments", "segments": [str(vip.pk)], "next": "/"}
    )

    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")
    assert PREVIEW_SESSION_KEY not in client.session


def test_a_blocks_preview_link_ticks_its_segments(editor: Client, hero: None, vip: Segment) -> None:
    block = BlockFactory.create(slot="promo", key="promo-vip", segments=[vip])

    change = editor.get(f"/admin/content/block/{block.pk}/change/").content.decode()
    form = editor.get("/admin/editors/preview/", {"segments": str(vip.pk)}).context["form"]

    assert f'href="/admin/editors/preview/?segments={vip.pk}">Preview the site as VIP</a>' in change
    assert form["segments"].value() == [str(vip.pk)]
