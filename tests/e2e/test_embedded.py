"""The no-configuration default as one real process: SQLite, eager tasks, in-memory layer."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import Server, block_keys

pytestmark = pytest.mark.stack


def test_three_product_views_push_the_engaged_hero_from_the_single_embedded_process(
    embedded: Server,
) -> None:
    visitor = embedded.visitor()

    with visitor.socket() as page:
        first = page.subscribe("hero")
        bodies = [visitor.track("product_viewed", category="hiking") for _ in range(3)]
        pushed = page.receive_json(timeout=10)

    assert list(embedded.processes) == ["uvicorn"]
    assert block_keys(first, "hero") == ["hero-welcome"]
    assert bodies == [{"success": True, "stored": 1, "duplicates": 0, "rejected": []}] * 3
    assert pushed["entered"] == ["engaged-shoppers"]
    assert pushed["exited"] == []
    assert pushed["segments"] == ["engaged-shoppers"]
    assert block_keys(pushed, "hero") == ["hero-engaged"]
    assert 'data-blocks="hero-engaged"' in visitor.homepage()
    assert block_keys(visitor.blocks("hero"), "hero") == ["hero-engaged"]
