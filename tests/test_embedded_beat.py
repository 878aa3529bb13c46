"""The embedded default runs Celery beat's schedule inside the server process
(config/lifespan.py): a window that lapses flips with no worker and no beat."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.test import override_settings
from django.utils import timezone

from config.celery import app as celery_app
from config.lifespan import EmbeddedScheduler
from segments.models import Membership, SegmentSizeSnapshot
from segments.rules.text import text_to_json
from segments.services import recompute_profile
from tests.factories import EventFactory, ProfileFactory, SegmentFactory

# The data must be committed: the beat's thread has a database connection of its own.
pytestmark = pytest.mark.django_db(transaction=True)
WAIT_SECONDS = 20


class Lifespan:
    """The ASGI lifespan protocol as a server drives it: startup, then shutdown."""

    def __init__(self) -> None:
        self.inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> dict[str, Any]:
        self.task = asyncio.create_task(
            EmbeddedScheduler()({"type": "lifespan"}, self.inbox.get, self.outbox.put)
        )
        await self.inbox.put({"type": "lifespan.startup"})
        return await asyncio.wait_for(self.outbox.get(), 10)

    async def stop(self) -> dict[str, Any]:
        await self.inbox.put({"type": "lifespan.shutdown"})
        done = await asyncio.wait_for(self.outbox.get(), 10)
        assert self.task is not None
        await self.task
        return done


def beat_threads() -> int:
    return sum(1 for thread in threading.enumerate() if thread.name == "Beat" and thread.is_alive())


async def wait_for(condition: Callable[[], bool]) -> bool:
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        if await sync_to_async(condition)():
            return True
        await asyncio.sleep(0.2)
    return False


@pytest.fixture
def fast_schedule() -> Iterator[None]:
    """Beat's schedule as configured, with the size snapshots every 0.3 s (normally
    every 15 minutes) so a test can see a job other than the sweep run."""
    schedule = dict(celery_app.conf.beat_schedule)
    celery_app.conf.beat_schedule = {
        **schedule,
        "record-segment-sizes": {"task": "segments.tasks.record_segment_sizes", "schedule": 0.3},
    }
    try:
        yield
    finally:
        celery_app.conf.beat_schedule = schedule


@override_settings(P13N_EMBEDDED_BEAT=True)
async def test_a_lapsed_window_flips_and_scheduled_jobs_run_inside_the_server(
    fast_schedule: None,
) -> None:
    segment = await sync_to_async(SegmentFactory.create)(
        slug="probe-seen", rule=text_to_json("count(probe, last 3s) >= 1")
    )
    profile = await sync_to_async(ProfileFactory.create)()
    await sync_to_async(EventFactory.create)(
        profile=profile, name="probe", timestamp=timezone.now() - timedelta(seconds=1)
    )
    entered = await sync_to_async(recompute_profile)(profile_id=profile.pk)
    lifespan = Lifespan()

    started = await lifespan.start()
    running = beat_threads()
    try:
        flipped = await wait_for(
            lambda: Membership.objects.filter(segment=segment, exited_at__isnull=False).exists()
        )
        sized = await wait_for(lambda: SegmentSizeSnapshot.objects.filter(segment=segment).exists())
    finally:
        stopped = await lifespan.stop()

    assert (started, stopped) == (
        {"type": "lifespan.startup.complete"},
        {"type": "lifespan.shutdown.complete"},
    )
    assert (running, beat_threads()) == (1, 0)
    assert entered.entered == ["probe-seen"]
    assert (flipped, sized) == (True, True)
    exited = await Membership.objects.aget(segment=segment)
    assert exited.exited_at is not None
    assert exited.exited_at >= entered.next_evaluation_at  # type: ignore[operator]


async def test_without_the_setting_the_lifespan_starts_no_beat() -> None:
    # Unit tests (P13N_EMBEDDED_BEAT off) and the production stack, where beat runs.
    lifespan = Lifespan()

    started = await lifespan.start()
    running = beat_threads()
    stopped = await lifespan.stop()

    assert (started, stopped) == (
        {"type": "lifespan.startup.complete"},
        {"type": "lifespan.shutdown.complete"},
    )
    assert running == 0
