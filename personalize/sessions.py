"""Sessions derived from events: a new one after SESSION_TIMEOUT_MINUTES of inactivity.

Late events can land inside an old session or bridge two, so after new events
arrive a profile's sessions are rebuilt from the earliest new event on (minus one
timeout), never patched in place. A batch rebuilds every profile it touched with
a fixed number of queries (:func:`rebuild_sessions_of`) and returns what changed,
which the caller adds to the profile's totals (session count, time on site,
pages) in its own profile update.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings

from personalize.models import Event, Profile, Session

PAGE_TYPES = frozenset({Event.Type.PAGE.value, Event.Type.SCREEN.value})


def _timeout() -> timedelta:
    return timedelta(minutes=settings.SESSION_TIMEOUT_MINUTES)


@dataclass
class SessionTotals:
    """Per-profile totals, or a change to them."""

    sessions: int = 0
    seconds: float = 0.0
    pages: int = 0

    def add(self, session: Session, sign: int = 1) -> None:
        self.sessions += sign
        self.seconds += sign * session.duration_seconds
        self.pages += sign * session.pages


def rebuild_sessions_of(*, since_by_profile: Mapping[int, datetime]) -> dict[int, SessionTotals]:
    """Re-derive each profile's sessions touched by events at or after its ``since``.

    Four queries whatever the number of profiles: read the sessions that may be
    touched, delete them, read the events from there on, insert the new ones.
    Returns each profile's change in totals.
    """
    if not since_by_profile:
        return {}
    timeout = _timeout()
    profile_ids = sorted(since_by_profile)
    floor = min(since_by_profile.values()) - timeout
    touched: dict[int, list[Session]] = defaultdict(list)
    for session in Session.objects.filter(profile_id__in=profile_ids, ended_at__gte=floor).only(
        "id", "profile_id", "started_at", "ended_at", "pages"
    ):
        touched[session.profile_id].append(session)

    # Start from the session that was open at `since`, so it can be extended or split.
    start: dict[int, datetime] = {}
    for profile_id, since in since_by_profile.items():
        open_then = [s.started_at for s in touched[profile_id] if s.ended_at >= since - timeout]
        start[profile_id] = min([since, *open_then])
    changes = {profile_id: SessionTotals() for profile_id in profile_ids}
    doomed = []
    for profile_id, sessions in touched.items():
        for session in sessions:
            if session.ended_at >= start[profile_id]:
                doomed.append(session.pk)
                changes[profile_id].add(session, sign=-1)
    if doomed:
        Session.objects.filter(pk__in=doomed).delete()

    rows = (
        Event.objects.filter(profile_id__in=profile_ids, timestamp__gte=min(start.values()))
        .order_by("profile_id", "timestamp", "id")
        .values_list("profile_id", "timestamp", "type")
    )
    created: list[Session] = []
    current: Session | None = None
    for profile_id, timestamp, kind in rows.iterator(chunk_size=2000):
        if timestamp < start[profile_id]:
            continue
        if (
            current is None
            or current.profile_id != profile_id
            or timestamp - current.ended_at > timeout
        ):
            current = Session(profile_id=profile_id, started_at=timestamp, ended_at=timestamp)
            created.append(current)
        current.ended_at = max(current.ended_at, timestamp)
        current.events += 1
        current.pages += int(kind in PAGE_TYPES)
    Session.objects.bulk_create(created)
    for session in created:
        changes[session.profile_id].add(session)
    return changes


def rebuild_sessions(*, profile_id: int, since: datetime) -> None:
    """Rebuild one profile's sessions from ``since`` and recount its totals from all of
    them (after a merge, whose moved sessions the totals cannot know about)."""
    rebuild_sessions_of(since_by_profile={profile_id: since})
    totals = SessionTotals()
    for session in Session.objects.filter(profile_id=profile_id).only(
        "started_at", "ended_at", "pages"
    ):
        totals.add(session)
    Profile.objects.filter(pk=profile_id).update(
        session_count=totals.sessions,
        time_on_site_seconds=totals.seconds,
        page_count=totals.pages,
    )
