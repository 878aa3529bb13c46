"""Block measurement on the production stack: server and component impressions, results."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import Browser

from tests.e2e.conftest import Server

pytestmark = pytest.mark.stack


def test_pages_and_the_block_api_record_impressions_and_results_credit_the_order(
    stack: Server,
) -> None:
    visitor = stack.visitor()  # a first visit: no profile yet, so nothing recorded
    visitor.track("product_viewed", sku="tent")
    # The worker stores the batch (and so creates the profile) just after the answer.
    stack.wait_until_stored()
    visitor.homepage()
    visitor.blocks("hero")
    visitor.track("order_completed", revenue=80.0)

    def impressions() -> list[tuple[Any, ...]]:
        return stack.query(
            "SELECT properties->>'via', properties->>'block_key', properties->>'variant', "
            "properties->>'holdout' FROM personalize_event "
            "WHERE anonymous_id = %s AND name = 'block_impression' ORDER BY 1, 2",
            visitor.anonymous_id,
        )

    # Each web process hands its impressions to the worker once a second.
    stack.wait_until("the impressions written by the worker", lambda: len(impressions()) >= 4)
    rows = impressions()
    assert rows == [
        ("api", "hero-welcome", "", "false"),
        ("ssr", "hero-welcome", "", "false"),
        ("ssr", "promo-shipping", "", "false"),
        ("ssr", "recs-popular", "", "false"),
    ]
    report = stack.manage("block_results", "--block", "hero-welcome", "--since", "1d")
    assert report.startswith("hero-welcome: ")
    assert "conversions credited within 168 h of an exposure" in report
    totals = next(line for line in report.splitlines() if line.startswith("all visitors"))
    converted = int(totals.split()[6])
    assert converted >= 1


@pytest.mark.browser
def test_the_component_reports_impressions_via_component(stack: Server, chromium: Browser) -> None:
    context = chromium.new_context(base_url=stack.base_url)
    try:
        page = context.new_page()
        with page.expect_response(
            lambda r: (
                r.url.endswith("/v1/batch") and "block_impression" in (r.request.post_data or "")
            )
        ):
            page.goto("/")
        anonymous_id = next(
            c["value"] for c in context.cookies() if c["name"] == "ajs_anonymous_id"
        )
    finally:
        context.close()

    rows = stack.query(
        "SELECT properties->>'via', properties->>'holdout' FROM personalize_event "
        "WHERE anonymous_id = %s AND name = 'block_impression' "
        "AND properties->>'block_key' = 'hero-welcome'",
        anonymous_id,
    )
    assert rows == [("component", "false")]
