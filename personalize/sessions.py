"""Sessions derived from events: a new one after SESSION_TIMEOUT_MINUTES of inactivity.

Late events can land inside an old session or bridge two, so after new events
arrive a profile's sessions are rebuilt from the earliest new event on (minus one
timeout), never patched in place.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings

from personalize.models import Event, Profile, Session


def _timeout() -> timedelta:
    return timedelta(minutes=settings.SESSION_TIMEOUT_MINUTES)


def rebuild_sessions(*, profile_id: int, since: datetime) -> None:
    """Re-derive the profile's sessions that may be touched by events at or after ``since``."""
    timeout = _timeout()
    # Start from the session that was open at `since`, so it can be extended or split.
    anchor = (
        Session.objects.filter(profile_id=profile_id, ended_at__gte=since - timeout)
        .order_by("started_at")
        .values_list("started_at", flat=True)
        .first()
    )
    start = min(anchor, since) if anchor is not None else since
    Session.objects.filter(profile_id=profile_id, ended_at__gte=start).delete()
    rows = Event.objects.filter(profile_id=profile_id, timestamp__gte=start).order_by(
        "timestamp", "id"
    )
    sessions: list[Session] = []
    current: Session | None = None
    for timestamp, kind in rows.values_list("timestamp", "type").iterator():
        if current is None or timestamp - current.ended_at > timeout:
            current = Session(profile_id=profile_id, started_at=timestamp, ended_at=timestamp)
            sessions.append(current)
        current.ended_at = max(current.ended_at, timestamp)
        current.events += 1
        current.pages += int(kind in {Event.Type.PAGE, Event.Type.SCREEN})
    Session.objects.bulk_create(sessions)
    spans = list(
        Session.objects.filter(profile_id=profile_id).values_list("started_at", "ended_at")
    )
    Profile.objects.filter(pk=profile_id).update(
        session_count=len(spans),
        time_on_site_seconds=sum((end - begin).total_seconds() for begin, end in spans),
    )
