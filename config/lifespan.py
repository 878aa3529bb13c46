"""ASGI lifespan: when tasks run eagerly (the embedded default), Celery beat's
schedule runs inside the server process too.

The production stack runs ``celery beat``, which sends each scheduled task to a
worker. The embedded default has one process, no worker and no beat: without
this, memberships whose window lapses would never flip (no event arrives to
recompute them), and segment size snapshots, webhook retries, event retention
and the other scheduled jobs would never run. So each server process starts
Celery's own embedded beat service on a daemon thread with the same
``CELERY_BEAT_SCHEDULE``; with ``CELERY_TASK_ALWAYS_EAGER`` every task it sends
runs right there, on that thread, never blocking the event loop. The schedule
lives in memory: a restart runs each job again one interval after start.

``P13N_EMBEDDED_BEAT`` (default: ``CELERY_TASK_ALWAYS_EAGER``) turns it on or
off; unit tests, which drive no lifespan, never start it.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol, cast

from asgiref.sync import sync_to_async
from django.conf import settings

logger = logging.getLogger(__name__)

Scope = dict[str, Any]
Receive = Any
Send = Any


class Beat(Protocol):
    def start(self) -> None: ...

    def stop(self) -> None: ...


def embedded_beat() -> Beat:
    """Celery's embedded beat service on a daemon thread, with the schedule in memory
    (threaded, it looks at the schedule at least every second)."""
    from celery.beat import EmbeddedService

    from config.celery import app

    # What the worker and beat do at start: import every app's tasks, so the
    # scheduler finds them here and runs them, instead of sending them by name.
    app.loader.import_default_modules()
    # thread=True always gives the threaded service (start/stop like a Thread).
    return cast(Beat, EmbeddedService(app, thread=True, scheduler_cls="celery.beat:Scheduler"))


class EmbeddedScheduler:
    """The ``lifespan`` application: starts the embedded beat once per server process
    and stops it (waiting for a running task) at shutdown."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        beat: Beat | None = None
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                if settings.P13N_EMBEDDED_BEAT:
                    beat = embedded_beat()
                    beat.start()
                    logger.info(
                        "embedded beat started: %s", ", ".join(settings.CELERY_BEAT_SCHEDULE)
                    )
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if beat is not None:
                    await sync_to_async(beat.stop, thread_sensitive=False)()
                await send({"type": "lifespan.shutdown.complete"})
                return
