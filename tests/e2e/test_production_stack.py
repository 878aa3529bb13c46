"""The personalization loop on the production stack, as separate real processes.

Events go over HTTP to uvicorn (two workers), the recompute runs in the Celery
worker, the change comes back through the Redis channel layer to whichever web
worker holds the visitor's socket, and Celery beat flips memberships whose
time window lapses without any new event.
"""

from __future__ import annotations

import re
import time
import uuid
from contextlib import ExitStack

import pytest

from tests.e2e.conftest import (
    LiveSocket,
    Server,
    Visitor,
    _free_port,
    block_keys,
    pid_holding_connection,
)

pytestmark = pytest.mark.stack

RECOMPUTE_SUCCEEDED = re.compile(
    r"Task segments\.tasks\.recompute_profiles\[[0-9a-f-]{36}\] succeeded in [0-9.e-]+s: "
    r"\{[0-9]+: \['engaged-shoppers'\]\}"
)
PUSH_SECONDS = 15
IDLE_SECONDS = 8


def test_three_product_views_push_the_engaged_hero_computed_by_the_celery_worker(
    stack: Server,
) -> None:
    worker_log_before = len(stack.processes["celery-worker"].log())
    visitor = stack.visitor()

    with visitor.socket() as page:
        first = page.subscribe("hero")
        bodies = [visitor.track("product_viewed", category="hiking") for _ in range(3)]
        pushed = page.receive_json(timeout=PUSH_SECONDS)

    assert first["type"] == "update"
    assert (first["entered"], first["exited"], first["segments"]) == ([], [], [])
    assert block_keys(first, "hero") == ["hero-welcome"]
    # A browser's small batches are stored in the request, before the answer.
    assert (
        bodies
        == [{"success": True, "accepted": 1, "stored": 1, "duplicates": 0, "rejected": []}] * 3
    )
    assert pushed["type"] == "update"
    assert pushed["entered"] == ["engaged-shoppers"]
    assert pushed["exited"] == []
    assert pushed["segments"] == ["engaged-shoppers"]
    assert block_keys(pushed, "hero") == ["hero-engaged"]
    assert 'data-blocks="hero-engaged"' in visitor.homepage()
    api = visitor.blocks("hero")
    assert api["segments"] == ["engaged-shoppers"]
    assert [block["key"] for block in api["slots"]["hero"]] == ["hero-engaged"]
    worker_log = stack.processes["celery-worker"].log()[worker_log_before:]
    assert RECOMPUTE_SUCCEEDED.search(worker_log), worker_log


def test_a_push_reaches_every_open_page_whichever_web_worker_holds_its_socket(
    stack: Server,
) -> None:
    web = stack.processes["uvicorn"]
    visitor = stack.visitor()

    with ExitStack() as closing:
        pages: list[LiveSocket] = []
        holders: list[int | None] = []
        # At least six pages, and enough that both uvicorn workers hold some.
        while len(pages) < 6 or len(set(holders)) < 2:
            assert len(pages) < 40, f"every socket landed on one web worker: {holders}"
            page = closing.enter_context(visitor.socket())
            first = page.subscribe("hero")
            assert block_keys(first, "hero") == ["hero-welcome"]
            pages.append(page)
            holders.append(pid_holding_connection(web, stack.port, page.local_port))

        for _ in range(3):
            visitor.track("product_viewed", category="apparel")
        pushes = [page.receive_json(timeout=PUSH_SECONDS) for page in pages]

    assert None not in holders
    assert len(set(holders)) == 2
    assert [p["entered"] for p in pushes] == [["engaged-shoppers"]] * len(pages)
    assert [block_keys(p, "hero") for p in pushes] == [["hero-engaged"]] * len(pages)


def test_an_idle_page_socket_stays_open_and_still_receives_the_push(stack: Server) -> None:
    visitor = stack.visitor()

    with visitor.socket() as page:
        page.subscribe("hero")
        # Longer than the channel layer's 5 s blocking read of Redis.
        time.sleep(IDLE_SECONDS)
        page.send_json({"type": "ping"})
        pong = page.receive_json(timeout=5)
        for _ in range(3):
            visitor.track("product_viewed", category="hiking")
        pushed = page.receive_json(timeout=PUSH_SECONDS)

    assert pong == {"type": "pong"}
    assert pushed["entered"] == ["engaged-shoppers"]
    assert block_keys(pushed, "hero") == ["hero-engaged"]


def test_beat_moves_a_visitor_out_of_a_segment_when_its_window_lapses_without_new_events(
    stack: Server,
) -> None:
    stack.manage(
        "shell",
        "-c",
        "from segments.services import segment_save; "
        "segment_save(slug='promo-seen-recently', name='Promo seen recently', rule={"
        "'type': 'aggregate', 'fn': 'count', 'event': 'promo_seen', "
        "'window': {'last': '5s'}, 'op': 'gte', 'value': 1})",
    )
    beat_log_before = len(stack.processes["celery-beat"].log())
    visitor = stack.visitor()

    with visitor.socket() as page:
        page.subscribe("hero")
        sent = time.monotonic()
        visitor.track("promo_seen", campaign="spring")
        entered = page.receive_json(timeout=PUSH_SECONDS)
        exited = page.receive_json(timeout=PUSH_SECONDS)
        seconds_to_exit = time.monotonic() - sent

    assert (entered["entered"], entered["exited"]) == (["promo-seen-recently"], [])
    assert entered["segments"] == ["promo-seen-recently"]
    assert (exited["entered"], exited["exited"]) == ([], ["promo-seen-recently"])
    assert exited["segments"] == []
    assert block_keys(exited, "hero") == ["hero-welcome"]
    # Not before the 5 s window lapsed, and soon after it: beat sweeps every second.
    assert 5.0 <= seconds_to_exit <= PUSH_SECONDS
    beat_log = stack.processes["celery-beat"].log()[beat_log_before:]
    assert "Sending due task flip-due-memberships" in beat_log, beat_log


def test_a_message_sent_twice_is_stored_once(stack: Server) -> None:
    visitor = stack.visitor()
    message = {
        "type": "track",
        "event": "newsletter_signup",
        "messageId": f"retry-{uuid.uuid4()}",
        "properties": {"list": "weekly"},
    }

    first = visitor.batch(message)
    retried = visitor.batch(message)

    assert first == {"success": True, "accepted": 1, "stored": 1, "duplicates": 0, "rejected": []}
    assert retried == {"success": True, "accepted": 1, "stored": 0, "duplicates": 1, "rejected": []}
    rows = stack.query(
        "SELECT name, anonymous_id FROM personalize_event WHERE message_id = %s",
        message["messageId"],
    )
    assert rows == [("newsletter_signup", visitor.anonymous_id)]


def test_events_accepted_while_the_broker_is_down_are_kept_and_caught_up_by_the_sweep(
    stack: Server,
) -> None:
    # A second web process whose Celery broker is unreachable (a dead port on
    # 127.0.0.1); its database and channel layer are the stack's own. Its answers
    # queue no task: the batches wait in the inbox, and the recomputes of what a
    # single call stored wait on their profile, for beat's sweeps on the healthy stack.
    dead_port = _free_port()
    broken = Server(
        port=_free_port(),
        tmp=stack.tmp,
        database_url=stack.database_url,
        env={**stack.env, "CELERY_BROKER_URL": f"redis://127.0.0.1:{dead_port}/0"},
    )
    broken.start_web(workers=1)
    try:
        visitor = broken.visitor()
        # A batch as a server library sends it: larger than a browser's, so it
        # goes through the inbox; three product views among page views.
        views = [
            {"type": "track", "event": "product_viewed", "properties": {"category": "hiking"}}
        ] * 3
        pages = [{"type": "page", "name": f"page {n}"} for n in range(60)]
        answer = visitor.batch(*views, *pages)
        assert answer == {"success": True, "accepted": 63, "rejected": []}
        web = broken.processes["uvicorn"]
        broken.wait_until(
            "the failed queueing logged",
            lambda: "could not queue the storing of a pending batch" in web.log(),
        )
        single = broken.visitor()
        response = single.http.post(
            f"{broken.base_url}/v1/track",
            json={
                "writeKey": single.write_key,
                "anonymousId": single.anonymous_id,
                "event": "product_viewed",
                "properties": {"category": "hiking"},
            },
            timeout=10,
        )
        assert response.json() == {"success": True}
    finally:
        broken.stop()

    # The single call was stored in its request.
    rows = stack.query(
        "SELECT count(*) FROM personalize_event WHERE anonymous_id = %s AND name = 'product_viewed'",
        single.anonymous_id,
    )
    assert rows == [(1,)]
    # The batch waited in the inbox (no task could be queued) until beat's sweep on
    # the healthy stack stored it...
    stack.wait_until_stored()
    stored = stack.query(
        "SELECT count(*) FROM personalize_event WHERE anonymous_id = %s AND name = 'product_viewed'",
        visitor.anonymous_id,
    )
    assert stored == [(3,)]
    # ...and recomputes their visitor, whose segment the block API then shows.
    visitor = Visitor(
        server=stack,
        http=visitor.http,
        anonymous_id=visitor.anonymous_id,
        write_key=visitor.write_key,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if visitor.blocks("hero")["segments"] == ["engaged-shoppers"]:
            break
        time.sleep(1)
    assert visitor.blocks("hero")["segments"] == ["engaged-shoppers"]
