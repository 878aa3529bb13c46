"""The no-configuration default as one real process: SQLite, eager tasks, in-memory layer."""

from __future__ import annotations

import time

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
    assert (
        bodies
        == [{"success": True, "accepted": 1, "stored": 1, "duplicates": 0, "rejected": []}] * 3
    )
    assert pushed["entered"] == ["engaged-shoppers"]
    assert pushed["exited"] == []
    assert pushed["segments"] == ["engaged-shoppers"]
    assert block_keys(pushed, "hero") == ["hero-engaged"]
    assert 'data-blocks="hero-engaged"' in visitor.homepage()
    assert block_keys(visitor.blocks("hero"), "hero") == ["hero-engaged"]


def test_a_lapsed_window_moves_the_visitor_out_with_no_worker_and_no_beat(
    embedded: Server,
) -> None:
    # `make run` has neither: the server process runs beat's schedule itself.
    embedded.manage(
        "shell",
        "-c",
        "from segments.services import segment_save; "
        "segment_save(slug='teaser-seen', name='Teaser seen', rule={"
        "'type': 'aggregate', 'fn': 'count', 'event': 'teaser_seen', "
        "'window': {'last': '5s'}, 'op': 'gte', 'value': 1})",
    )
    visitor = embedded.visitor()

    with visitor.socket() as page:
        page.subscribe("hero")
        sent = time.monotonic()
        visitor.track("teaser_seen", campaign="spring")
        entered = page.receive_json(timeout=10)
        exited = page.receive_json(timeout=15)
        seconds_to_exit = time.monotonic() - sent

    assert (entered["entered"], entered["exited"]) == (["teaser-seen"], [])
    assert (exited["entered"], exited["exited"]) == ([], ["teaser-seen"])
    assert exited["segments"] == []
    # Not before the 5 s window lapsed; the sweep runs every SEGMENT_SWEEP_SECONDS.
    assert 5.0 <= seconds_to_exit <= 15
    assert list(embedded.processes) == ["uvicorn"]
