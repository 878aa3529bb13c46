"""Reads for segments: definitions, snapshots for the engine, current memberships."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.core.exceptions import ImproperlyConfigured
from django.db import connection
from django.db.models import QuerySet

from personalize.models import Event, Profile
from segments.models import Membership, Segment, SegmentKind
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
    """Active segments defined by a rule (static segments have none: segments.static)."""
    return [
        SegmentDefinition(id=s.id, slug=s.slug, name=s.name, rule=rule_from_json(s.rule))
        for s in Segment.objects.filter(is_active=True, kind=SegmentKind.DYNAMIC).only(
            "id", "slug", "name", "rule"
        )
    ]


def active_static_segment_ids() -> dict[str, int]:
    """Slug → id of the active static segments, whose members are a fixed list."""
    return dict(
        Segment.objects.filter(is_active=True, kind=SegmentKind.STATIC).values_list("slug", "id")
    )


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
        rule, now=now, segments=segments, vendor=vendor, static_segments=static_segments
    )
    with connection.cursor() as cursor:
        cursor.execute(query.sql, query.params)
        return {row[0] for row in cursor.fetchall()}
