"""Reads for segments: definitions, snapshots for the engine, current memberships."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.db import connection
from django.db.models import QuerySet
from django.http import HttpRequest

from personalize.models import Event, Identity, Profile
from personalize.selectors import remember_profile_id_for_request
from personalize.visitors import Visitor
from segments.models import Membership, Segment
from segments.rules import (
    EventRecord,
    ProfileSnapshot,
    Rule,
    referenced_events,
    rule_from_json,
    uses_traits,
)
from segments.rules.sql import Vendor, compile_rule
from segments.rules.tree import Aggregate, Recency, Sequence, walk


@dataclass(frozen=True)
class SegmentDefinition:
    id: int
    slug: str
    name: str
    rule: Rule


def active_segment_definitions() -> list[SegmentDefinition]:
    return [
        SegmentDefinition(id=s.id, slug=s.slug, name=s.name, rule=rule_from_json(s.rule))
        for s in Segment.objects.filter(is_active=True).only("id", "slug", "name", "rule")
    ]


@dataclass(frozen=True)
class SegmentInputs:
    """What the active segments read: events by name, and whether any reads traits."""

    event_names: frozenset[str]
    uses_traits: bool


def segment_inputs() -> SegmentInputs:
    names: set[str] = set()
    traits = False
    for definition in active_segment_definitions():
        names |= referenced_events(definition.rule)
        traits = traits or uses_traits(definition.rule)
    return SegmentInputs(event_names=frozenset(names), uses_traits=traits)


def lookback(rules: Iterable[Rule]) -> timedelta | None:
    """How far back events matter for ``rules``; None means all of history."""
    longest = timedelta(0)
    for rule in rules:
        for node in walk(rule):
            if isinstance(node, Recency):
                return None
            if isinstance(node, Aggregate | Sequence):
                if node.window.oldest_age is None:
                    return None
                extra = node.within if isinstance(node, Sequence) else timedelta(0)
                longest = max(longest, node.window.oldest_age + extra)
    return longest


def profile_snapshot(
    *, profile: Profile, event_names: Iterable[str], since: datetime | None
) -> ProfileSnapshot:
    """The profile's traits and the events the rules can see, oldest first."""
    events = Event.objects.filter(profile=profile, name__in=list(event_names))
    if since is not None:
        events = events.filter(timestamp__gt=since)
    records = [
        EventRecord(name=name, timestamp=ts, properties=props or {}, context=ctx or {})
        for name, ts, props, ctx in events.order_by("timestamp", "id").values_list(
            "name", "timestamp", "properties", "context"
        )
    ]
    return ProfileSnapshot(traits=profile.traits or {}, events=records)


def snapshot_for_rules(
    *, profile: Profile, rules: Mapping[str, Rule], now: datetime
) -> ProfileSnapshot:
    """The part of the profile's history ``rules`` can see at ``now``: only the
    events they name, and only as far back as their longest window reaches."""
    names: set[str] = set()
    for rule in rules.values():
        names |= referenced_events(rule)
    reach = lookback(rules.values())
    return profile_snapshot(
        profile=profile, event_names=names, since=None if reach is None else now - reach
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


def _profile_and_segment_ids_sql() -> str:
    """The identities of a user id and an anonymous id, each joined to its profile's
    open memberships (one row per membership, one with NULL for a profile in none)."""
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


def segment_member_ids(*, rule: Rule, segments: Mapping[str, Rule], now: datetime) -> set[int]:
    """Ids of all profiles matching ``rule`` at ``now``, in one set-based query."""
    vendor: Vendor
    if connection.vendor == "postgresql":
        vendor = "postgresql"
    elif connection.vendor == "sqlite":
        vendor = "sqlite"
    else:
        # Only the two databases the product runs on have a segment SQL dialect.
        raise ImproperlyConfigured(f"segments need PostgreSQL or SQLite, not {connection.vendor}")
    query = compile_rule(rule, now=now, segments=segments, vendor=vendor)
    with connection.cursor() as cursor:
        cursor.execute(query.sql, query.params)
        return {row[0] for row in cursor.fetchall()}
