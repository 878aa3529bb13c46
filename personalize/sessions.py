"""Sessions derived from events: a new one after SESSION_TIMEOUT_MINUTES of inactivity.

A session is a maximal run of a profile's events with no gap over the timeout.
New events are folded into the stored sessions (:func:`fold_into_sessions`): an
event joins every session it lies within one timeout of, so a late event can
extend a session or bridge two into one, and the result is the same as deriving
the sessions from all events again; the events themselves are never read back.
A batch folds every profile it touched with a fixed number of queries and gets
back what changed, which the caller adds to the profile's totals (session count,
time on site, pages) in its own profile update. After a merge, whose moved
sessions may overlap, :func:`rebuild_sessions` derives them from the events.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection

from personalize.bulk import insert_rows, update_rows
from personalize.codec import encode_json
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


@dataclass
class _Run:
    """Sessions and new events being merged into one session."""

    started_at: datetime
    ended_at: datetime
    events: int
    pages: int
    stored: list[Session]
    new_events: int = 0


def fold_into_sessions(
    *, events_by_profile: Mapping[int, Sequence[tuple[datetime, bool]]]
) -> dict[int, SessionTotals]:
    """Fold each profile's new events, ``(timestamp, is_page)``, into its sessions.

    Three queries whatever the number of profiles: read the stored sessions the
    new events can reach, then update the ones that grew, delete the ones that
    merged into another, and insert the new ones. Returns each profile's change
    in totals.
    """
    new = {pid: sorted(events) for pid, events in events_by_profile.items() if events}
    if not new:
        return {}
    timeout = _timeout()
    stored: dict[int, list[Session]] = defaultdict(list)
    for session in _sessions_within(new, timeout):
        stored[session.profile_id].append(session)

    changes = {pid: SessionTotals() for pid in new}
    grown: list[Session] = []
    merged_away: list[int] = []
    created: list[Session] = []
    for profile_id, events in new.items():
        # Stored sessions are already maximal runs: only a new event can join two.
        items: list[tuple[datetime, datetime, int, int, Session | None]] = [
            (s.started_at, s.ended_at, s.events, s.pages, s) for s in stored[profile_id]
        ]
        items += [(at, at, 1, int(is_page), None) for at, is_page in events]
        items.sort(key=lambda item: item[0])
        runs: list[_Run] = []
        for started_at, ended_at, count, pages, reached in items:
            run = runs[-1] if runs else None
            if run is None or started_at - run.ended_at > timeout:
                run = _Run(started_at, ended_at, 0, 0, [])
                runs.append(run)
            run.ended_at = max(run.ended_at, ended_at)
            run.events += count
            run.pages += pages
            if reached is None:
                run.new_events += 1
            else:
                run.stored.append(reached)
        change = changes[profile_id]
        for run in runs:
            if not run.new_events:
                continue  # a stored session no new event reached
            for old in run.stored:
                change.add(old, sign=-1)
            if run.stored:
                keep, *others = run.stored
                merged_away += [other.pk for other in others]
            else:
                keep = Session(profile_id=profile_id)
                created.append(keep)
            keep.started_at, keep.ended_at = run.started_at, run.ended_at
            keep.events, keep.pages = run.events, run.pages
            change.add(keep)
            if run.stored:
                grown.append(keep)
    if merged_away:
        Session.objects.filter(pk__in=merged_away).delete()
    update_rows(Session, grown, ["started_at", "ended_at", "events", "pages"])
    insert_rows(Session, created)
    return changes


_SESSION_COLUMNS = ("id", "profile_id", "started_at", "ended_at", "events", "pages")


def _sessions_within(
    events_by_profile: Mapping[int, Sequence[tuple[datetime, bool]]], timeout: timedelta
) -> list[Session]:
    """The stored sessions a new event can join: within one timeout of it.

    (A new event that bridges two sessions is within a timeout of both, so the
    sessions near each event are all the fold needs.) On PostgreSQL the events'
    ranges join the sessions in one statement, so a visitor with a long history
    costs only the sessions near the new events; elsewhere one query over the
    profiles' widest ranges, narrowed here.
    """
    if connection.vendor == "postgresql":
        columns = ", ".join(f"s.{column}" for column in _SESSION_COLUMNS)
        ranges = [
            {"p": pid, "lo": at - timeout, "hi": at + timeout}
            for pid, events in events_by_profile.items()
            for at in sorted({at for at, _ in events})
        ]
        return list(
            Session.objects.raw(
                f"SELECT DISTINCT {columns} FROM {Session._meta.db_table} s "
                "JOIN json_to_recordset(%s::json) AS r(p bigint, lo timestamptz, hi timestamptz) "
                "ON s.profile_id = r.p AND s.started_at <= r.hi AND s.ended_at >= r.lo",
                [encode_json(ranges).decode()],
            )
        )
    reach = {
        pid: (events[0][0] - timeout, events[-1][0] + timeout)
        for pid, events in events_by_profile.items()
    }
    candidates = Session.objects.filter(
        profile_id__in=sorted(reach),
        ended_at__gte=min(low for low, _ in reach.values()),
        started_at__lte=max(high for _, high in reach.values()),
    ).only(*_SESSION_COLUMNS)
    return [
        session
        for session in candidates
        if any(
            session.started_at <= at + timeout and session.ended_at >= at - timeout
            for at, _ in events_by_profile[session.profile_id]
        )
    ]


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
