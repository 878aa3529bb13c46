"""An editor previews the real site, served by the embedded process, as a segment; then exits."""

from __future__ import annotations

import re

import pytest

from tests.e2e.conftest import Server, _http

pytestmark = pytest.mark.stack

CREATE_EDITOR = (
    "from django.contrib.auth.models import User; "
    "User.objects.filter(username='editor').exists() or "
    "User.objects.create_superuser('editor', 'editor@example.com', 'correct-horse')"
)
ENGAGED_CHECKBOX = re.compile(r'value="(\d+)"[^>]*>\s*Engaged shoppers')


def test_an_editor_previews_the_homepage_as_engaged_shoppers_then_exits(embedded: Server) -> None:
    embedded.manage("shell", "-c", CREATE_EDITOR)
    base = embedded.base_url
    editor = _http()
    editor.get(f"{base}/admin/login/", timeout=10)
    logged_in = editor.post(
        f"{base}/admin/login/?next=/admin/editors/preview/",
        data={
            "username": "editor",
            "password": "correct-horse",
            "csrfmiddlewaretoken": editor.cookies["csrftoken"],
        },
        timeout=10,
    )
    found = ENGAGED_CHECKBOX.search(logged_in.text)
    assert found is not None, logged_in.text[:2000]
    csrf = {"csrfmiddlewaretoken": editor.cookies["csrftoken"]}

    started = editor.post(
        f"{base}/admin/editors/preview/",
        data={**csrf, "mode": "segments", "segments": found.group(1), "next": "/"},
        headers={"Referer": f"{base}/admin/editors/preview/"},
        timeout=10,
    )
    previewed = started.text
    add_to_cart = editor.post(
        f"{base}/shop/p/trail-tent-2p/add/",
        data=csrf,
        headers={"Referer": f"{base}/shop/"},
        allow_redirects=False,
        timeout=10,
    )
    visitor_page = embedded.visitor().homepage()
    exited = editor.post(
        f"{base}/admin/editors/preview/exit/",
        data={**csrf, "next": "/"},
        headers={"Referer": f"{base}/"},
        timeout=10,
    )

    assert started.url == f"{base}/"
    assert "Previewing as <strong>segments: Engaged shoppers</strong>" in previewed
    assert 'data-blocks="hero-engaged"' in previewed
    assert "slot hero → hero-engaged: visitor is in Engaged shoppers</small>" in previewed
    assert "analytics.js" not in previewed
    assert add_to_cart.status_code == 403
    assert 'data-blocks="hero-welcome"' in visitor_page
    assert "Previewing as" not in visitor_page
    assert "Previewing as" not in exited.text
    assert 'data-blocks="hero-welcome"' in exited.text
    assert "analytics.js" in exited.text
