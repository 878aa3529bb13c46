"""The live channel on the production stack: who may listen, and what reaches whom."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest
from django.core import signing
from playwright.sync_api import Browser, expect
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect
from websockets.typing import Origin

from content.selection import variant_bucket
from personalize.visitors import LIVE_TOKEN_SALT
from tests.e2e.conftest import Server, block_keys
from tests.e2e.test_browser import RECORD_UPDATES

pytestmark = pytest.mark.stack

LIVE_TOKEN = re.compile(r'<meta name="p13n-live-token" content="([^"]+)">')


def _close_code(server: Server, url: str) -> int | None:
    with connect(url, origin=Origin(server.base_url), proxy=None, open_timeout=10) as socket:
        try:
            socket.recv(timeout=10)
        except ConnectionClosed as closed:
            return closed.rcvd.code if closed.rcvd else None
    return None


def _expired_token(anonymous_id: str) -> str:
    class Backdated(signing.TimestampSigner):
        def timestamp(self) -> str:
            return signing.b62_encode(int(time.time()) - 3600)

    return Backdated(salt=LIVE_TOKEN_SALT).sign_object(
        {"a": anonymous_id, "u": None}, compress=True
    )


def test_the_token_a_page_embeds_subscribes_without_cookies_and_receives_its_visitors_push(
    stack: Server,
) -> None:
    visitor = stack.visitor()
    token_match = LIVE_TOKEN.search(visitor.homepage())
    assert token_match is not None
    url = f"{stack.ws_url}?token={token_match.group(1)}"

    with connect(url, origin=Origin(stack.base_url), proxy=None, open_timeout=10) as socket:
        socket.send('{"type": "subscribe", "slots": ["hero"]}')
        socket.recv(timeout=10)
        for _ in range(3):
            visitor.track("product_viewed", category="hiking")
        pushed = json.loads(socket.recv(timeout=15))

    assert pushed["entered"] == ["engaged-shoppers"]
    assert block_keys(pushed, "hero") == ["hero-engaged"]


def test_a_forged_token_is_refused_with_4403(stack: Server) -> None:
    assert _close_code(stack, f"{stack.ws_url}?token=eyJhIjoiYW55b25lIn0:forged:signature") == 4403


def test_an_expired_token_is_refused_with_4403(stack: Server) -> None:
    visitor = stack.visitor()
    assert (
        _close_code(stack, f"{stack.ws_url}?token={_expired_token(visitor.anonymous_id)}") == 4403
    )


def test_a_socket_without_cookie_or_token_is_refused_with_4401(stack: Server) -> None:
    assert _close_code(stack, stack.ws_url) == 4401


def test_another_visitors_push_never_reaches_a_socket(stack: Server) -> None:
    shopper, bystander = stack.visitor(), stack.visitor()
    with shopper.socket() as shopper_page, bystander.socket() as bystander_page:
        shopper_page.subscribe("hero")
        bystander_page.subscribe("hero")
        for _ in range(3):
            shopper.track("product_viewed", category="hiking")
        assert shopper_page.receive_json(timeout=15)["entered"] == ["engaged-shoppers"]
        with pytest.raises(TimeoutError):
            bystander_page.receive_json(timeout=2)


@pytest.mark.browser
def test_two_tabs_of_a_visitor_both_swap_and_another_visitors_tab_does_not(
    stack: Server, chromium: Browser, artifacts: Path
) -> None:
    shopper = chromium.new_context(base_url=stack.base_url)
    other = chromium.new_context(base_url=stack.base_url)
    for context in (shopper, other):
        context.add_init_script(RECORD_UPDATES)
    try:
        tabs = [shopper.new_page(), shopper.new_page()]
        bystander = other.new_page()
        for page in [*tabs, bystander]:
            page.goto("/")
            expect(page.locator("p13n-slot[name=hero]")).to_have_attribute(
                "data-blocks", "hero-welcome"
            )
            # The first update arrives once the page's socket is open and subscribed.
            page.wait_for_function("window.__p13nUpdates.length === 1", timeout=10_000)

        browsing = shopper.new_page()
        for slug in ["trail-tent-2p", "hiking-boots", "rain-shell"]:
            browsing.goto(f"/shop/p/{slug}/")
            browsing.wait_for_load_state("networkidle")

        for tab in tabs:
            expect(tab.locator("p13n-slot[name=hero]")).to_have_attribute(
                "data-blocks", "hero-engaged", timeout=10_000
            )
            expect(tab.locator("p13n-segments .badge")).to_have_text(["engaged-shoppers"])
        tabs[1].screenshot(path=artifacts / "browser-second-tab-after.png")
        # The push has reached both tabs; give a stray one to the bystander time to land.
        bystander.wait_for_timeout(1500)
        assert bystander.evaluate("window.__p13nUpdates.length") == 1
        expect(bystander.locator("p13n-slot[name=hero]")).to_have_attribute(
            "data-blocks", "hero-welcome"
        )
        expect(bystander.locator("p13n-segments .badge")).to_have_count(0)
    finally:
        shopper.close()
        other.close()


@pytest.mark.browser
def test_a_page_without_websockets_falls_back_to_polling_the_block_api(
    stack: Server, chromium: Browser
) -> None:
    context = chromium.new_context(base_url=stack.base_url)
    # A browser (or proxy) without WebSockets: the component must still follow the visitor.
    context.add_init_script("delete window.WebSocket;")
    try:
        home = context.new_page()
        home.goto("/")
        hero = home.locator("p13n-slot[name=hero]")
        expect(hero).to_have_attribute("data-blocks", "hero-welcome")
        browsing = context.new_page()
        for slug in ["trail-tent-2p", "hiking-boots", "rain-shell"]:
            browsing.goto(f"/shop/p/{slug}/")
            browsing.wait_for_load_state("networkidle")
        expect(hero).to_have_attribute("data-blocks", "hero-engaged", timeout=15_000)
    finally:
        context.close()


# Two variants of the promo's default that keep its content: only the reported variant differs.
PROMO_VARIANTS = (
    "from content.models import Block; from content.services import block_variant_save; "
    "block = Block.objects.get(key='promo-shipping'); "
    "[block_variant_save(block=block, key=key, weight=1) for key in ('left', 'right')]"
)
# The stack is shared by the session's tests: put the promo back as it was.
NO_PROMO_VARIANTS = (
    "from content.models import BlockVariant; "
    "BlockVariant.objects.filter(block__key='promo-shipping').delete()"
)


@pytest.mark.browser
def test_block_impressions_and_clicks_are_recorded_as_events(
    stack: Server, chromium: Browser
) -> None:
    stack.manage("shell", "-c", PROMO_VARIANTS)
    context = chromium.new_context(base_url=stack.base_url)
    try:
        home = context.new_page()
        home.goto("/")
        expect(home.locator("p13n-slot[name=hero]")).to_have_attribute(
            "data-blocks", "hero-welcome"
        )
        anonymous_id = next(
            c["value"] for c in context.cookies() if c["name"] == "ajs_anonymous_id"
        )
        with home.expect_response(
            lambda r: r.url.endswith("/v1/batch") and "block_clicked" in (r.request.post_data or "")
        ):
            home.locator("p13n-slot[name=hero] a").click()
        home.wait_for_load_state("networkidle")
    finally:
        context.close()
        stack.manage("shell", "-c", NO_PROMO_VARIANTS)

    ids = dict(stack.query("SELECT key, id FROM content_block"))
    promo_variant = "left" if variant_bucket("promo-shipping", anonymous_id, 2) < 1 else "right"
    rows = stack.query(
        "SELECT name, properties FROM personalize_event "
        "WHERE anonymous_id = %s AND name IN ('block_impression', 'block_clicked') "
        "ORDER BY name, properties->>'block_key'",
        anonymous_id,
    )
    # The event contract measurement reads (docs/variants.md), with these exact types.
    hero = {"block_id": ids["hero-welcome"], "block_key": "hero-welcome", "slot": "hero"}
    promo = {"block_id": ids["promo-shipping"], "block_key": "promo-shipping", "slot": "promo"}
    seen = {**hero, "variant": "", "holdout": False, "via": "component"}
    assert ("block_clicked", {**seen, "href": "/shop/"}) in rows
    assert ("block_impression", seen) in rows
    assert (
        "block_impression",
        {**promo, "variant": promo_variant, "holdout": False, "via": "component"},
    ) in rows
    # Pages visited after the click report theirs too, always in the same shape.
    contract = frozenset({"block_id", "block_key", "slot", "variant", "holdout", "via"})
    assert {(name, frozenset(properties) - {"href"}) for name, properties in rows} == {
        ("block_clicked", contract),
        ("block_impression", contract),
    }


@pytest.mark.browser
def test_a_visitor_who_withdraws_consent_is_recorded_and_no_longer_tracked(
    stack: Server, chromium: Browser
) -> None:
    context = chromium.new_context(base_url=stack.base_url)
    try:
        page = context.new_page()
        page.goto("/")
        page.wait_for_load_state("networkidle")
        anonymous_id = next(
            c["value"] for c in context.cookies() if c["name"] == "ajs_anonymous_id"
        )
        with page.expect_response(
            lambda r: (
                r.url.endswith("/v1/batch") and "consent_changed" in (r.request.post_data or "")
            )
        ):
            page.evaluate("p13n.consent(false)")
        page.goto("/shop/p/trail-tent-2p/")
        page.wait_for_load_state("networkidle")
        page.wait_for_timeout(500)
    finally:
        context.close()

    names = stack.query(
        "SELECT name FROM personalize_event WHERE anonymous_id = %s ORDER BY timestamp, id",
        anonymous_id,
    )
    consent = stack.query(
        "SELECT p.consent FROM personalize_profile p JOIN personalize_identity i ON i.profile_id = p.id "
        "WHERE i.value = %s",
        anonymous_id,
    )
    assert ("consent_changed",) in names
    assert ("product_viewed",) not in names
    assert names[-1] == ("consent_changed",)
    assert consent == [("denied",)]
