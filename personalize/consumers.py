from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from content.selection import MAX_SLOTS, is_slot_name
from content.selectors import SlotUpdate, slot_update_for_profile
from personalize import live
from personalize.services import profile_for_visitor
from personalize.visitors import (
    InvalidLiveToken,
    Visitor,
    visitor_from_cookies,
    visitor_from_live_token,
)

# Close codes (4000-4999 are the application's): the client reads them to decide
# whether reconnecting can help.
CLOSE_UNAUTHENTICATED = 4401  # no visitor cookie and no token
CLOSE_FORBIDDEN = 4403  # a token that is forged, expired or malformed


class PersonalizeConsumer(AsyncJsonWebsocketConsumer):
    """One open page of one visitor: receives its segment changes and new blocks.

    The visitor is proven by their own cookie or by a short-lived token signed
    by us (``?token=``, embedded in our pages); neither lets a client choose a
    profile, so a page can only ever listen to its own.
    """

    profile_id: int
    slots: list[str]

    async def connect(self) -> None:
        query = parse_qs(self.scope.get("query_string", b"").decode("latin-1"))
        visitor: Visitor | None
        if "token" in query:
            try:
                visitor = visitor_from_live_token(query["token"][0])
            except InvalidLiveToken:
                await self._refuse(CLOSE_FORBIDDEN)
                return
        else:
            visitor = visitor_from_cookies(self.scope.get("cookies", {}))
        if visitor is None:
            await self._refuse(CLOSE_UNAUTHENTICATED)
            return
        profile = await database_sync_to_async(profile_for_visitor)(visitor)
        self.profile_id = profile.pk
        self.slots = []
        await self.channel_layer.group_add(live.group_name(self.profile_id), self.channel_name)
        await self.accept()

    async def _refuse(self, code: int) -> None:
        # Accept, then close with a code: a handshake refused outright reaches
        # the browser as a bare failure, and the client could not tell why.
        await self.accept()
        await self.close(code=code)

    async def disconnect(self, code: int) -> None:
        if hasattr(self, "profile_id"):
            await self.channel_layer.group_discard(
                live.group_name(self.profile_id), self.channel_name
            )

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        kind = content.get("type") if isinstance(content, dict) else None
        if kind == "ping":
            await self.send_json({"type": "pong"})
        elif kind == "subscribe":
            slots = content.get("slots")
            if (
                not isinstance(slots, list)
                or len(slots) > MAX_SLOTS
                or not all(is_slot_name(s) for s in slots)
            ):
                await self.send_json(
                    {
                        "type": "error",
                        "field": "slots",
                        "message": f"a list of up to {MAX_SLOTS} slot names",
                    }
                )
                return
            self.slots = list(dict.fromkeys(slots))
            await self._send_update(entered=[], exited=[])
        else:
            await self.send_json(
                {"type": "error", "field": "type", "message": "expected subscribe or ping"}
            )

    async def segments_changed(self, event: dict[str, Any]) -> None:
        await self._send_update(entered=event["entered"], exited=event["exited"])

    async def profile_merged(self, event: dict[str, Any]) -> None:
        await self.channel_layer.group_discard(live.group_name(self.profile_id), self.channel_name)
        self.profile_id = int(event["profile_id"])
        await self.channel_layer.group_add(live.group_name(self.profile_id), self.channel_name)
        await self._send_update(entered=[], exited=[])

    async def _send_update(self, *, entered: list[str], exited: list[str]) -> None:
        update: SlotUpdate = await database_sync_to_async(slot_update_for_profile)(
            profile_id=self.profile_id, slots=self.slots
        )
        await self.send_json(
            {
                "type": "update",
                "entered": entered,
                "exited": exited,
                "segments": update.segments,
                "slots": update.slots,
            }
        )
