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

from segments.signals import SegmentsChanged, memberships_changed

logger = logging.getLogger(__name__)

# How long a push may hold up the recompute that sent it.
PUSH_TIMEOUT_SECONDS = 5.0


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

    def run(self, coroutine: Coroutine[Any, Any, None]) -> None:
        future = asyncio.run_coroutine_threadsafe(coroutine, self._running_loop())
        future.result(timeout=PUSH_TIMEOUT_SECONDS)


_push_loop = _PushLoop()


def _run(layer: BaseChannelLayer, send_all: Any) -> None:
    if isinstance(layer, InMemoryChannelLayer):
        # Its queues belong to the server's own loop (embedded default), where
        # async_to_sync sends from a sync_to_async thread.
        async_to_sync(send_all)()
    else:
        _push_loop.run(send_all())


def _send_many(messages: list[tuple[int, dict[str, Any]]]) -> None:
    """All pushes in one event loop: ``async_to_sync`` per message would open a
    loop, and with channels-redis a connection, for each one."""
    layer = get_channel_layer()
    if layer is None or not messages:
        return

    async def send_all() -> None:
        for profile_id, message in messages:
            await layer.group_send(group_name(profile_id), message)

    try:
        _run(layer, send_all)
    except Exception:
        # A push is best effort: the next page load and the polling fallback
        # still show the right blocks, so a layer hiccup must not fail the caller.
        logger.exception("could not push to %d profiles", len(messages))


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
