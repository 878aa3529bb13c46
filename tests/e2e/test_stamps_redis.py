"""Shared stamps on a real Redis (config.stamps): bumps reach other processes over
pub/sub with no read per call, and a lost subscription misses no bump.

Each ``SharedStamps`` stands for one process (the module keeps one per process).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from django.core.cache import caches

from config import stamps
from config.stamps import SUBSCRIBER_NAME, SharedStamps
from tests.e2e.conftest import REDIS_URL, _claim_redis_db

pytestmark = pytest.mark.stack

STAMP = "test:stamp"


@pytest.fixture
def redis_db(settings: Any) -> Iterator[tuple[int, redis.Redis]]:
    """Django's cache on a Redis database of this test's own."""
    db, client = _claim_redis_db(uuid.uuid4().hex[:12])
    settings.CACHES = {
        "default": {
            "BACKEND": stamps.REDIS_BACKEND,
            "LOCATION": f"{REDIS_URL}/{db}",
            "KEY_PREFIX": "p13n-test",
        }
    }
    try:
        yield db, client
    finally:
        client.flushdb()
        client.close()


def _cached(name: str) -> Any:
    """The stamp as Django's cache holds it (what a process without pub/sub reads)."""
    return caches.create_connection("default").get(name)


def _subscribers(client: redis.Redis, db: int) -> list[dict[str, Any]]:
    return [
        info
        for info in client.client_list()
        if info.get("name") == SUBSCRIBER_NAME and info.get("db") == str(db)
    ]


def _kill_subscribers(client: redis.Redis, db: int) -> int:
    """Close this database's stamp subscriptions from the server side (a Redis restart)."""
    return sum(client.client_kill_filter(_id=info["id"]) for info in _subscribers(client, db))


def test_a_bump_in_another_process_is_seen_on_the_next_read_from_memory(
    redis_db: tuple[int, redis.Redis],
) -> None:
    web, editor = SharedStamps(), SharedStamps()
    first = web.current(STAMP)  # subscribes, then reads the stamp once
    # Gone from the cache: a process that read it on every call would now see another.
    caches.create_connection("default").delete(STAMP)
    assert web.current(STAMP) == first

    editor.bump(STAMP)

    bumped = web.current(STAMP)
    assert bumped != first
    assert bumped == editor.current(STAMP)


def test_a_process_sees_its_own_bump_at_once(redis_db: tuple[int, redis.Redis]) -> None:
    web = SharedStamps()
    first = web.current(STAMP)

    web.bump(STAMP)

    assert web.current(STAMP) not in {first, ""}


def test_a_lost_subscription_falls_back_to_the_cache_and_misses_no_bump(
    redis_db: tuple[int, redis.Redis], monkeypatch: pytest.MonkeyPatch
) -> None:
    db, client = redis_db
    web, editor = SharedStamps(), SharedStamps()
    web.current(STAMP)
    assert _kill_subscribers(client, db) == 1

    editor.bump(STAMP)  # published while nobody listens: only the cache has it
    bumped = _cached(STAMP)
    after_loss = web.current(STAMP)
    monkeypatch.setattr(stamps, "RESUBSCRIBE_SECONDS", 0.0)
    resubscribed = web.current(STAMP)  # subscribes again and reads the stamp afresh
    editor.bump(STAMP)
    after_resubscribe = web.current(STAMP)

    assert after_loss == resubscribed == bumped
    assert after_resubscribe != resubscribed
    assert after_resubscribe == _cached(STAMP)
    assert len(_subscribers(client, db)) == 1


def test_without_redis_the_stamp_is_unique_per_read(settings: Any) -> None:
    settings.CACHES = {
        "default": {
            "BACKEND": stamps.REDIS_BACKEND,
            # Nothing listens there: connection refused.
            "LOCATION": "redis://127.0.0.1:1/0",
        }
    }
    process = SharedStamps()

    first, second = process.current(STAMP), process.current(STAMP)

    # Every read rebuilds: slower, never stale.
    assert first.startswith("unavailable-")
    assert second.startswith("unavailable-")
    assert first != second
