"""The same messageId from the same source is stored once, also under client
retries and concurrent duplicate requests, on the real production stack; and
``/v1/import`` takes a chunked request body like a streaming server library."""

from __future__ import annotations

import json
import sqlite3
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from tests.e2e.conftest import Server, _http

pytestmark = pytest.mark.stack

VISITORS = 12
MESSAGES = 150


def _messages(run: str) -> list[dict[str, Any]]:
    return [
        {
            "type": "track" if n % 5 else "identify",
            "event": "product_viewed",
            "anonymousId": f"{run}-visitor-{n % VISITORS}",
            "messageId": f"{run}-m{n:03d}",
            "properties": {"product_id": f"sku-{n}", "category": "camping"},
            "traits": {"plan": "pro"},
        }
        for n in range(MESSAGES)
    ]


def test_concurrent_duplicate_and_overlapping_batches_store_each_message_once(
    stack: Server,
) -> None:
    write_key = stack.visitor().write_key
    run = uuid.uuid4().hex[:10]
    messages = _messages(run)
    a, b, c = messages[0:50], messages[50:100], messages[100:150]
    overlapping = [messages[25:75], messages[75:125], messages[0:150]]
    # Four copies of each batch at once, the overlapping ones twice, and every
    # request retried once after its answer, as a client that timed out would.
    bodies = [batch for batch in (a, b, c) for _ in range(4)] + overlapping * 2
    start = threading.Barrier(len(bodies))
    answers: list[list[tuple[int, str, Any]]] = [[] for _ in bodies]

    def post(index: int) -> None:
        http = _http()
        http.auth = (write_key, "")
        body = json.dumps({"batch": bodies[index]})
        start.wait()
        for _attempt in range(2):
            response = http.post(
                f"{stack.base_url}/v1/batch",
                data=body,
                headers={"Content-Type": "application/json"},
                timeout=120,
            )
            try:
                parsed = response.json()
            except ValueError:
                parsed = response.text[:500]
            answers[index].append(
                (response.status_code, response.headers.get("Content-Type", ""), parsed)
            )

    threads = [threading.Thread(target=post, args=(i,)) for i in range(len(bodies))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)

    for per_request, batch in zip(answers, bodies, strict=True):
        assert len(per_request) == 2
        for status, content_type, body in per_request:
            assert (status, content_type) == (200, "application/json"), body
            assert body["success"] is True
            assert body["success"] is True
            assert (body["accepted"], body["rejected"]) == (len(batch), [])
    # Every answer meant "in the database": batches of 50 were stored in their
    # requests, those of 150 by the worker; either way each message once.
    stack.wait_until_stored()
    stored = stack.query(
        "SELECT e.message_id, count(*) FROM personalize_event e "
        "JOIN personalize_source s ON s.id = e.source_id "
        "WHERE s.write_key = %s AND e.message_id LIKE %s GROUP BY e.message_id",
        write_key,
        f"{run}-%",
    )
    assert sorted(stored) == [(m["messageId"], 1) for m in messages]
    # Identity resolution did not split a visitor across profiles either.
    profiles_per_visitor = stack.query(
        "SELECT anonymous_id, count(DISTINCT profile_id) FROM personalize_event "
        "WHERE message_id LIKE %s GROUP BY anonymous_id",
        f"{run}-%",
    )
    assert sorted(profiles_per_visitor) == sorted(
        (f"{run}-visitor-{n}", 1) for n in range(VISITORS)
    )
    identities = stack.query(
        "SELECT count(*) FROM personalize_identity WHERE value LIKE %s", f"{run}-visitor-%"
    )
    assert identities == [(VISITORS,)]


def _chunks(payload: bytes, size: int) -> Iterator[bytes]:
    for offset in range(0, len(payload), size):
        yield payload[offset : offset + size]


def test_import_accepts_a_chunked_request_body(embedded: Server) -> None:
    write_key = embedded.visitor().write_key
    run = uuid.uuid4().hex[:10]
    batch = [
        {
            "type": "track",
            "event": "email_opened",
            "userId": f"{run}-user",
            "messageId": f"{run}-e{n}",
            "timestamp": f"2026-10-01T08:0{n}:00Z",
            "properties": {"campaign": "autumn"},
        }
        for n in range(3)
    ]
    payload = json.dumps({"batch": batch}).encode()
    http = _http()

    def post() -> requests.Response:
        # A generator body: requests sends it with Transfer-Encoding: chunked.
        return http.post(
            f"{embedded.base_url}/v1/import",
            data=_chunks(payload, 64),
            headers={"Content-Type": "application/json"},
            auth=(write_key, ""),
            timeout=30,
        )

    first = post()
    again = post()

    assert first.request.headers["Transfer-Encoding"] == "chunked"
    assert "Content-Length" not in first.request.headers
    assert (first.status_code, first.json()) == (
        200,
        {"success": True, "accepted": 3, "stored": 3, "duplicates": 0, "rejected": []},
    )
    assert (again.status_code, again.json()) == (
        200,
        {"success": True, "accepted": 3, "stored": 0, "duplicates": 3, "rejected": []},
    )
    with sqlite3.connect(embedded.tmp / "db.sqlite3") as database:
        rows = database.execute(
            "SELECT message_id, name, user_id FROM personalize_event "
            "WHERE message_id LIKE ? ORDER BY message_id",
            (f"{run}-%",),
        ).fetchall()
    assert rows == [(f"{run}-e{n}", "email_opened", f"{run}-user") for n in range(3)]
