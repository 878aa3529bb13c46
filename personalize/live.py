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

from segments.signals import memberships_changed

logger = logging.getLogger(__name__)


def group_name(profile_id: int) -> str:
    return f"profile.{profile_id}"


def _send(profile_id: int, message: dict[str, Any]) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        async_to_sync(layer.group_send)(group_name(profile_id), message)
    except Exception:
        # A push is best effort: the next page load and the polling fallback
        # still show the right blocks, so a layer hiccup must not fail the caller.
        logger.exception("could not push to profile %s", profile_id)


def push_membership_change(
    sender: Any,
    *,
    profile_id: int,
    entered: list[str],
    exited: list[str],
    segments: list[str],
    **_: Any,
) -> None:
    _send(
        profile_id,
        {"type": "segments.changed", "entered": entered, "exited": exited, "segments": segments},
    )


def announce_merge(*, source_id: int, target_id: int) -> None:
    """Pages listening on a merged-away profile follow it to the surviving one."""
    _send(source_id, {"type": "profile.merged", "profile_id": target_id})


def connect() -> None:
    memberships_changed.connect(push_membership_change, dispatch_uid="personalize.live.push")
