"""A real browser on the production stack: product views in one tab swap the hero in another."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Response, expect

from tests.e2e.conftest import Server

pytestmark = [pytest.mark.stack, pytest.mark.browser]

PRODUCTS = ["trail-tent-2p", "hiking-boots", "rain-shell"]
# Recorded before any page script runs, so no update can slip past the test.
RECORD_UPDATES = """
window.__p13nUpdates = [];
document.addEventListener("p13n:update", (event) => window.__p13nUpdates.push(event.detail));
"""


def _batch_tracking_view_of(slug: str) -> Callable[[Response], bool]:
    def matches(response: Response) -> bool:
        body = response.request.post_data or ""
        return response.url.endswith("/v1/batch") and f'"sku":"{slug}"' in body

    return matches


def test_product_views_in_one_tab_swap_the_hero_of_an_open_tab_without_reload(
    stack: Server, chromium: Browser, artifacts: Path
) -> None:
    context = chromium.new_context(base_url=stack.base_url)
    context.add_init_script(RECORD_UPDATES)
    try:
        home = context.new_page()
        home.goto("/")
        hero = home.locator("p13n-slot[name=hero]")
        expect(hero).to_have_attribute("data-blocks", "hero-welcome")
        # The first update arrives once the socket is open and subscribed.
        home.wait_for_function("window.__p13nUpdates.length === 1", timeout=10_000)
        home.screenshot(path=artifacts / "browser-hero-before.png")

        shopping = context.new_page()
        for slug in PRODUCTS:
            with shopping.expect_response(_batch_tracking_view_of(slug)) as sent:
                shopping.goto(f"/shop/p/{slug}/")
            assert sent.value.status == 200

        expect(hero).to_have_attribute("data-blocks", "hero-engaged", timeout=10_000)
        home.screenshot(path=artifacts / "browser-hero-after.png")
        updates = home.evaluate("window.__p13nUpdates")
        reloaded = home.reload()
        assert reloaded is not None
        ssr = reloaded.text()
    finally:
        context.close()

    assert [(u["entered"], u["exited"]) for u in updates] == [([], []), (["engaged-shoppers"], [])]
    assert [[b["key"] for b in u["slots"]["hero"]] for u in updates] == [
        ["hero-welcome"],
        ["hero-engaged"],
    ]
    assert 'data-blocks="hero-engaged"' in ssr
