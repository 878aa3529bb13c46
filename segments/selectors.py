"""Reads for segments: definitions, snapshots for the engine, current memberships."""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.db import connection
from django.db.models import Q, QuerySet
from django.http import HttpRequest

from personalize.models import Event, Identity, Profile, Session
from personalize.selectors import remember_profile_id_for_request
from personalize.visitors import Visitor
from segments import profile_rows
from segments.definitions import (
    ChangedInputs,
    Definitions,
    ScoreRow,
    SegmentDefinition,
    SnapshotPlan,
    current_definitions,
    snapshot_plan,
)
from segments.models import Membership, ProfileScore, Segment, SegmentKind
from segments.rules import EventRecord, ProfileSnapshot, Rule
from segments.rules.evaluate import SessionRecord, context_value
from segments.rules.sql import Vendor, compile_rule
from segments.rules.tree import ScoreDefinition


def active_segment_definitions() -> list[SegmentDefinition]:
    return list(current_definitions().segments)


def active_static_segment_ids() -> dict[str, int]:
    """Slug → id of the active static segments, whose members are a fixed list."""
    return dict(
        Segment.objects.filter(is_active=True, kind=SegmentKind.STATIC).values_list("slug", "id")
    )


@functools.cache
def _profile_and_segment_ids_sql() -> str:
    """The identities of a user id and an anonymous id, each joined to its profile's
    open memberships (one row per membership, one with NULL for a profile in none).
    Built once: on the block API's hot path, building it cost a quarter of the query."""
    quote = connection.ops.quote_name
    identity, membership = Identity._meta, Membership._meta

    def column(meta: Any, name: str) -> str:
        return quote(meta.get_field(name).column)

    return (
        f"SELECT i.{column(identity, 'kind')}, i.{column(identity, 'profile')},"
        f" m.{column(membership, 'segment')}"
        f" FROM {quote(identity.db_table)} i"
        f" LEFT JOIN {quote(membership.db_table)} m"
        f" ON m.{column(membership, 'profile')} = i.{column(identity, 'profile')}"
        f" AND m.{column(membership, 'exited_at')} IS NULL"
        f" WHERE (i.{column(identity, 'kind')} = %s AND i.{column(identity, 'value')} = %s)"
        f" OR (i.{column(identity, 'kind')} = %s AND i.{column(identity, 'value')} = %s)"
    )


def profile_and_segment_ids(visitor: Visitor) -> tuple[int | None, frozenset[int]]:
    """The visitor's profile (as ``profile_id_for_visitor``: the user id's first) and
    its current segment ids, in one query.

    Plain SQL: on the block API's hot path, building and compiling the equivalent
    ORM query cost more than running it.
    """
    if not (visitor.user_id or visitor.anonymous_id):
        return None, frozenset()
    with connection.cursor() as cursor:
        # A missing id compares with NULL: that half matches nothing.
        cursor.execute(
            _profile_and_segment_ids_sql(),
            [
                Identity.Kind.USER_ID.value,
                visitor.user_id or None,
                Identity.Kind.ANONYMOUS_ID.value,
                visitor.anonymous_id or None,
            ],
        )
        rows = cursor.fetchall()
    profiles: dict[str, int] = {}
    segments: dict[int, set[int]] = {}
    for kind, profile_id, segment_id in rows:
        profiles[kind] = profile_id
        found = segments.setdefault(profile_id, set())
        if segment_id is not None:
            found.add(segment_id)
    chosen = profiles.get(Identity.Kind.USER_ID, profiles.get(Identity.Kind.ANONYMOUS_ID))
    if chosen is None:
        return None, frozenset()
    return chosen, frozenset(segments[chosen])


_REQUEST_CACHE = "_p13n_profile_and_segment_ids"


def profile_and_segment_ids_for_request(request: HttpRequest) -> tuple[int | None, frozenset[int]]:
    """Looked up once per request (every slot of a page shares it); afterwards
    ``profile_id_for_request`` answers without a query."""
    cached: tuple[int | None, frozenset[int]] | None = getattr(request, _REQUEST_CACHE, None)
    if cached is None:
        visitor: Visitor | None = getattr(request, "visitor", None)
        cached = (None, frozenset()) if visitor is None else profile_and_segment_ids(visitor)
        setattr(request, _REQUEST_CACHE, cached)
        remember_profile_id_for_request(request, cached[0])
    return cached


def active_score_definitions() -> list[ScoreRow]:
    return list(current_definitions().scores)


def criteria_rules(scores: Iterable[ScoreRow]) -> dict[str, Rule]:
    """Every score criterion as a named rule, for what a snapshot must load."""
    return {
        f"score:{row.slug}#{index}": criterion.rule
        for row in scores
        for index, criterion in enumerate(row.definition.criteria)
    }


@dataclass(frozen=True)
class SegmentInputs:
    """What the active segments and scores read, to decide whether a call can change
    a membership or score (and so needs a recompute at all)."""

    definitions: Definitions

    @property
    def event_names(self) -> frozenset[str]:
        return self.definitions.read_anywhere.event_names

    def reads(self, *, name: str, kind: str) -> bool:
        """Whether an event of this name and call type can change a membership or score."""
        return self.definitions.reads(ChangedInputs.of_call(name=name, kind=kind))


def segment_inputs() -> SegmentInputs:
    return SegmentInputs(definitions=current_definitions())


# Where each context shortcut may be carried, to narrow the search for the latest carrier.
_CONTEXT_KEYS: dict[str, list[str]] = {
    "device": ["context__device__type", "context__userAgent"],
    "country": ["context__location__country"],
    "referrer": ["context__page__referrer", "context__referrer__url"],
    "utm_source": ["context__campaign__source"],
    "utm_medium": ["context__campaign__medium"],
    "utm_campaign": ["context__campaign__name"],
}
_EVENT_FIELDS = ("id", "name", "timestamp", "properties", "context")


def _record(row: tuple[int, str, datetime, Any, Any]) -> tuple[int, EventRecord]:
    pk, name, ts, props, ctx = row
    return pk, EventRecord(name=name, timestamp=ts, properties=props or {}, context=ctx or {})


def _context_events(*, profile: Profile, fields: set[str], now: datetime) -> dict[int, EventRecord]:
    """For context shortcuts: each field's latest carrier at or before ``now``, and
    every event after ``now`` (a later carrier takes over when its time comes)."""
    found: dict[int, EventRecord] = {}
    later = Event.objects.filter(profile=profile, timestamp__gt=now)
    found.update(_record(row) for row in later.values_list(*_EVENT_FIELDS))
    for field in sorted(fields):
        maybe = Q()
        for key in _CONTEXT_KEYS[field]:
            maybe |= Q(**{f"{key}__isnull": False})
        candidates = (
            Event.objects.filter(profile=profile, timestamp__lte=now)
            .filter(maybe)
            .order_by("-timestamp", "-id")
            .values_list(*_EVENT_FIELDS)
        )
        for row in candidates.iterator(chunk_size=200):
            pk, record = _record(row)
            if context_value(field, record.context) is not None:
                found[pk] = record
                break
    return found


def profile_sessions(*, profile: Profile, since: datetime | None) -> list[SessionRecord]:
    """The profile's sessions that started after ``since`` (all: None), oldest first."""
    sessions = Session.objects.filter(profile=profile)
    if since is not None:
        sessions = sessions.filter(started_at__gt=since)
    return [
        SessionRecord(started_at=start, ended_at=end, events=events, pages=pages)
        for start, end, events, pages in sessions.order_by("started_at", "id").values_list(
            "started_at", "ended_at", "events", "pages"
        )
    ]


def profile_snapshot(
    *,
    profile: Profile,
    event_names: Iterable[str],
    since: datetime | None,
    extra_events: Mapping[int, EventRecord] | None = None,
    sessions: list[SessionRecord] | None = None,
) -> ProfileSnapshot:
    """The profile's traits and the events the rules can see, oldest first (ties by id)."""
    found = dict(profile_rows.events(profile_id=profile.pk, names=event_names, since=since))
    found.update(extra_events or {})
    ordered = sorted(found.items(), key=lambda item: (item[1].timestamp, item[0]))
    return ProfileSnapshot(
        traits=profile.traits or {},
        events=[record for _, record in ordered],
        sessions=sessions or [],
    )


def snapshot_for_rules(
    *, profile: Profile, rules: Mapping[str, Rule], now: datetime
) -> ProfileSnapshot:
    """The part of the profile's history ``rules`` can see at ``now``: only the
    events they name, and only as far back as their longest window reaches; the
    sessions their session metrics reach; for context shortcuts, the latest event
    carrying each one (and any events after ``now``)."""
    return snapshot_for_plan(profile=profile, plan=snapshot_plan(rules.values()), now=now)


def snapshot_for_plan(*, profile: Profile, plan: SnapshotPlan, now: datetime) -> ProfileSnapshot:
    """What ``plan`` says the rules can see of the profile at ``now``."""
    sessions: list[SessionRecord] = []
    if plan.reads_sessions:
        sessions = profile_sessions(
            profile=profile,
            since=None if plan.session_lookback is None else now - plan.session_lookback,
        )
    if not plan.event_names and not plan.context_fields:
        return ProfileSnapshot(traits=profile.traits or {}, events=[], sessions=sessions)
    return profile_snapshot(
        profile=profile,
        event_names=plan.event_names,
        since=None if plan.lookback is None else now - plan.lookback,
        extra_events=(
            _context_events(profile=profile, fields=set(plan.context_fields), now=now)
            if plan.context_fields
            else None
        ),
        sessions=sessions,
    )


def profile_scores(*, profile_id: int) -> QuerySet[ProfileScore]:
    return (
        ProfileScore.objects.filter(profile_id=profile_id, score__is_active=True)
        .select_related("score")
        .order_by("score__name")
    )


def current_memberships(*, profile_id: int) -> QuerySet[Membership]:
    return (
        Membership.objects.filter(profile_id=profile_id, exited_at__isnull=True)
        .select_related("segment")
        .order_by("segment__name")
    )


def segment_members(*, segment_id: int) -> QuerySet[Membership]:
    return (
        Membership.objects.filter(segment_id=segment_id, exited_at__isnull=True)
        .select_related("profile")
        .prefetch_related("profile__identities")
        .order_by("entered_at", "id")
    )


def current_segment_ids(*, profile_id: int | None) -> frozenset[int]:
    if profile_id is None:
        return frozenset()
    return frozenset(
        Membership.objects.filter(profile_id=profile_id, exited_at__isnull=True).values_list(
            "segment_id", flat=True
        )
    )


def current_segment_slugs_of(*, profile_ids: Iterable[int]) -> dict[int, list[str]]:
    """Current slugs of many profiles in one query (profiles in none are absent)."""
    found: dict[int, list[str]] = {}
    for profile_id, slug in (
        Membership.objects.filter(profile_id__in=list(profile_ids), exited_at__isnull=True)
        .order_by("profile_id", "segment__slug")
        .values_list("profile_id", "segment__slug")
    ):
        found.setdefault(profile_id, []).append(slug)
    return found


def current_segment_slugs(*, profile_id: int | None) -> list[str]:
    if profile_id is None:
        return []
    return list(
        Membership.objects.filter(profile_id=profile_id, exited_at__isnull=True)
        .order_by("segment__slug")
        .values_list("segment__slug", flat=True)
    )


def segment_member_ids(
    *,
    rule: Rule,
    segments: Mapping[str, Rule],
    now: datetime,
    scores: Mapping[str, ScoreDefinition] | None = None,
    static_segments: Mapping[str, int] | None = None,
) -> set[int]:
    """Ids of all profiles matching ``rule`` at ``now``, in one set-based query.

    ``static_segments`` (slug → id) lets the rule refer to static segments; by
    default the active ones are read.
    """
    if static_segments is None:
        static_segments = active_static_segment_ids()
    vendor: Vendor
    if connection.vendor == "postgresql":
        vendor = "postgresql"
    elif connection.vendor == "sqlite":
        vendor = "sqlite"
    else:
        # Only the two databases the product runs on have a segment SQL dialect.
        raise ImproperlyConfigured(f"segments need PostgreSQL or SQLite, not {connection.vendor}")
    query = compile_rule(
        rule,
        now=now,
        segments=segments,
        vendor=vendor,
        scores=scores,
        static_segments=static_segments,
    )
    with connection.cursor() as cursor:
        cursor.execute(query.sql, query.params)
        return {row[0] for row in cursor.fetchall()}
