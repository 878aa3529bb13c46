"""The live channel: membership changes go to the visitor's open pages.

Domain code never talks to sockets: segments emits ``memberships_changed``
after commit, and this module forwards it to the profile's channel group,
where each connected page's consumer renders the blocks it declared.
"""

from __future__ import annotations

import logging
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from segments.signals import SegmentsChanged, memberships_changed

logger = logging.getLogger(__name__)


def group_name(profile_id: int) -> str:
    return f"profile.{profile_id}"


def _send(profile_id: int, message: dict[str, Any]) -> None:
    _send_many([(profile_id, message)])


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
        async_to_sync(send_all)()
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
