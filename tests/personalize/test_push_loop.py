"""Pushes from sync code (a Celery worker's recompute) go through one event loop per
process, so channels-redis keeps its connection instead of opening one per push."""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Iterator

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.test import override_settings

from personalize import live
from segments.signals import SegmentsChanged


def test_pushes_from_sync_code_share_one_running_loop_on_its_own_thread() -> None:
    seen: list[tuple[asyncio.AbstractEventLoop, str]] = []

    async def record() -> None:
        seen.append((asyncio.get_running_loop(), threading.current_thread().name))

    pusher = live._PushLoop()
    pusher.run(record())
    pusher.run(record())

    (first, thread), (second, _) = seen
    assert first is second
    assert thread == "p13n-push-loop"
    assert thread != threading.current_thread().name


def test_a_forked_child_starts_a_loop_of_its_own(monkeypatch: pytest.MonkeyPatch) -> None:
    loops: list[asyncio.AbstractEventLoop] = []

    async def record() -> None:
        loops.append(asyncio.get_running_loop())

    pusher = live._PushLoop()
    pusher.run(record())
    # What a Celery prefork child sees: the parent's object, another pid, no thread.
    monkeypatch.setattr(os, "getpid", lambda: -1)
    pusher.run(record())

    assert loops[0] is not loops[1]


# The stack's Redis; a key prefix of its own keeps other users' channels apart.
REDIS_URL = "redis://127.0.0.1:6379/8"


@pytest.fixture
def redis_layer() -> Iterator[None]:
    layer = {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {"hosts": [REDIS_URL], "prefix": "p13n-test-push"},
    }
    with override_settings(CHANNEL_LAYERS={"default": layer}):
        yield


@pytest.mark.stack
def test_membership_changes_reach_a_listening_channel_through_redis(redis_layer: None) -> None:
    layer = get_channel_layer()
    assert layer is not None
    channel = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)(live.group_name(42), channel)
    change = SegmentsChanged(profile_id=42, entered=["vip"], exited=[], segments=["vip"])

    live.push_membership_changes(None, changes=[change])
    live.push_membership_changes(None, changes=[change])

    async def receive_two() -> list[dict[str, object]]:
        return [await layer.receive(channel), await layer.receive(channel)]

    received = async_to_sync(receive_two)()
    async_to_sync(layer.group_discard)(live.group_name(42), channel)
    assert (
        received
        == [{"type": "segments.changed", "entered": ["vip"], "exited": [], "segments": ["vip"]}] * 2
    )
