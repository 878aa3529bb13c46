"""The live channel: membership changes go to the visitor's open pages.

Domain code never talks to sockets: segments emits ``memberships_changed``
after commit, and this module forwards it to the profile's channel group,
where each connected page's consumer renders the blocks it declared.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import Coroutine
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import BaseChannelLayer, InMemoryChannelLayer, get_channel_layer
from channels_redis.core import RedisChannelLayer

from segments.signals import SegmentsChanged, memberships_changed

logger = logging.getLogger(__name__)

# How long pushes may hold up the recompute that sent them: this much, plus a
# second per hundred profiles of a batch.
PUSH_TIMEOUT_SECONDS = 5.0
# Pushes in flight at once (a whole-segment recompute sends a chunk of profiles).
PUSH_CONCURRENCY = 64


def group_name(profile_id: int) -> str:
    return f"profile.{profile_id}"


def _send(profile_id: int, message: dict[str, Any]) -> None:
    _send_many([(profile_id, message)])


class _PushLoop:
    """One event loop per process, on a daemon thread, that pushes from sync code.

    channels-redis keeps its connections per event loop: ``async_to_sync`` from a
    worker (no loop of its own) would start a new loop, and so open and close a
    Redis connection, for every recompute that changes a membership. Pushing from
    one long-lived loop reuses the connection (most of a small recompute's time).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pid = 0

    def _running_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            # A forked child (Celery prefork) inherits the object but not the thread.
            if self._loop is None or self._pid != os.getpid():
                loop = asyncio.new_event_loop()
                threading.Thread(
                    target=loop.run_forever, name="p13n-push-loop", daemon=True
                ).start()
                self._loop, self._pid = loop, os.getpid()
            return self._loop

    def run(self, coroutine: Coroutine[Any, Any, None], *, timeout: float) -> None:
        future = asyncio.run_coroutine_threadsafe(coroutine, self._running_loop())
        future.result(timeout=timeout)


_push_loop = _PushLoop()


def _send_many(messages: list[tuple[int, dict[str, Any]]]) -> None:
    """All pushes in one event loop (``async_to_sync`` per message would open a loop,
    and with channels-redis a connection, for each one), several profiles at once:
    each ``group_send`` waits on Redis twice even when nobody listens. A profile's
    own messages keep their order."""
    layer = get_channel_layer()
    if layer is None or not messages:
        return
    by_profile: dict[int, list[dict[str, Any]]] = {}
    for profile_id, message in messages:
        by_profile.setdefault(profile_id, []).append(message)

    async def send_all() -> None:
        if len(by_profile) > 1:
            listening = await _listening(layer, [group_name(pid) for pid in by_profile])
            for profile_id in [pid for pid in by_profile if group_name(pid) not in listening]:
                del by_profile[profile_id]
        limit = asyncio.Semaphore(PUSH_CONCURRENCY)

        async def send(profile_id: int, queued: list[dict[str, Any]]) -> None:
            async with limit:
                for message in queued:
                    await layer.group_send(group_name(profile_id), message)

        results = await asyncio.gather(
            *(send(pid, queued) for pid, queued in by_profile.items()), return_exceptions=True
        )
        failures = [r for r in results if isinstance(r, BaseException)]
        if failures:
            raise failures[0]

    try:
        _run(layer, send_all, timeout=PUSH_TIMEOUT_SECONDS + len(by_profile) / 100)
    except Exception:
        # A push is best effort: the next page load and the polling fallback
        # still show the right blocks, so a layer hiccup must not fail the caller.
        logger.exception("could not push to %d profiles", len(by_profile))


async def _listening(layer: BaseChannelLayer, groups: list[str]) -> set[str]:
    """The groups some page listens on, for a batch of pushes: a group that no page
    joined has no key in Redis, and checking that is one pipelined round trip per
    shard where a ``group_send`` costs two round trips (and most of the CPU) each.
    Any doubt (another layer, a channels-redis whose internals moved): all of them.
    """
    if not isinstance(layer, RedisChannelLayer):
        return set(groups)
    try:
        shards: dict[int, list[str]] = {}
        for group in groups:
            shards.setdefault(layer.consistent_hash(group), []).append(group)
        found: set[str] = set()
        for index, names in shards.items():
            pipeline = layer.connection(index).pipeline(transaction=False)
            for name in names:
                # channels-redis keeps a group's channels in this sorted set.
                pipeline.exists(layer._group_key(name))
            answers = await pipeline.execute()
            found.update(name for name, exists in zip(names, answers, strict=True) if exists)
        return found
    except Exception:
        logger.exception("could not tell which of %d groups listen; pushing to all", len(groups))
        return set(groups)


def _run(layer: BaseChannelLayer, send_all: Any, *, timeout: float) -> None:
    if isinstance(layer, InMemoryChannelLayer):
        # Its queues belong to the server's own loop (embedded default), where
        # async_to_sync sends from a sync_to_async thread.
        async_to_sync(send_all)()
    else:
        _push_loop.run(send_all(), timeout=timeout)


def push_membership_changes(sender: Any, *, changes: list[SegmentsChanged], **_: Any) -> None:
    _send_many(
        [
            (
                change.profile_id,
                {
                    "type": "segments.changed",
                    "entered": change.entered,
                    "exited": change.exited,
                    "segments": change.segments,
                },
            )
            for change in changes
        ]
    )


def announce_merge(*, source_id: int, target_id: int) -> None:
    """Pages listening on a merged-away profile follow it to the surviving one."""
    _send(source_id, {"type": "profile.merged", "profile_id": target_id})


def connect() -> None:
    memberships_changed.connect(push_membership_changes, dispatch_uid="personalize.live.push")
