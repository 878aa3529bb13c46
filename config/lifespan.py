"""ASGI lifespan: in embedded mode, sweep due memberships from inside the server.

The production stack runs Celery beat for this; the embedded default has one
process and no beat, so time-driven segment changes (a 48-hour window lapsing)
would never happen without this loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings

logger = logging.getLogger(__name__)

Scope = dict[str, Any]
Receive = Any
Send = Any


class EmbeddedScheduler:
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        sweeper: asyncio.Task[None] | None = None
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                if settings.EMBEDDED:
                    sweeper = asyncio.create_task(self._sweep_forever())
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if sweeper is not None:
                    sweeper.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await sweeper
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _sweep_forever(self) -> None:
        from segments.services import recompute_due_profiles

        while True:
            await asyncio.sleep(settings.SEGMENT_SWEEP_SECONDS)
            try:
                await sync_to_async(recompute_due_profiles)()
            except Exception:  # keep the loop alive; the next sweep retries
                logger.exception("embedded sweep of due memberships failed")
