"""Writes for visitors and events: identity resolution and ingestion."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db import IntegrityError, OperationalError, transaction
from django.db.models import Max, Min, Q
from django.utils import timezone

from personalize.models import Event, Identity, Profile, Source
from personalize.sessions import rebuild_sessions
from personalize.signals import profile_merging
from personalize.tracking import TrackedMessage
from personalize.visitors import Visitor

logger = logging.getLogger(__name__)

SERVER_SOURCE = "server"
# The event our snippet sends when the visitor grants or withdraws consent.
CONSENT_EVENT = "consent_changed"


@dataclass
class IngestResult:
    stored: int = 0
    duplicates: int = 0
    profile_ids: set[int] = field(default_factory=set)


# --- identity ---------------------------------------------------------------------------


def _identities_of(anonymous_id: str, user_id: str) -> list[tuple[str, str]]:
    ids = []
    if user_id:
        ids.append((Identity.Kind.USER_ID.value, user_id))
    if anonymous_id:
        ids.append((Identity.Kind.ANONYMOUS_ID.value, anonymous_id))
    return ids


def resolve_profile(*, anonymous_id: str = "", user_id: str = "") -> Profile:
    """The profile these ids belong to, creating or stitching as needed.

    A user id already known wins: an anonymous visitor who logs in becomes that
    user's profile, and the anonymous history is merged into it.
    """
    ids = _identities_of(anonymous_id, user_id)
    if not ids:
        raise ValueError("a profile needs an anonymous id or a user id")
    for _attempt in range(3):
        query = Q()
        for kind, value in ids:
            query |= Q(kind=kind, value=value)
        found = {
            identity.kind: identity
            for identity in Identity.objects.filter(query).select_related("profile")
        }
        user_identity = found.get(Identity.Kind.USER_ID.value)
        anon_identity = found.get(Identity.Kind.ANONYMOUS_ID.value)
        known = user_identity or anon_identity
        owner = known.profile if known is not None else None
        try:
            with transaction.atomic():
                if owner is None:
                    owner = Profile.objects.create()
                if (
                    user_identity is not None
                    and anon_identity is not None
                    and anon_identity.profile_id != user_identity.profile_id
                ):
                    merge_profiles(
                        source_id=anon_identity.profile_id, target_id=user_identity.profile_id
                    )
                for kind, value in ids:
                    if kind not in found:
                        Identity.objects.create(profile=owner, kind=kind, value=value)
            return owner
        except IntegrityError:
            # Another request created one of these ids at the same moment: read again.
            continue
    raise RuntimeError(f"could not resolve a profile for {ids!r}")


def merge_profiles(*, source_id: int, target_id: int) -> None:
    """Fold ``source`` into ``target``: events, identities and traits move, then
    ``source`` is deleted and ``target``'s memberships recomputed."""
    from personalize import live
    from segments.services import request_recompute

    with transaction.atomic():
        source = Profile.objects.select_for_update().get(pk=source_id)
        target = Profile.objects.select_for_update().get(pk=target_id)
        first_moved = Event.objects.filter(profile_id=source_id).aggregate(first=Min("timestamp"))[
            "first"
        ]
        Event.objects.filter(profile_id=source_id).update(profile_id=target_id)
        Identity.objects.filter(profile_id=source_id).update(profile_id=target_id)
        target.traits = {**(source.traits or {}), **(target.traits or {})}
        target.last_seen_at = max(
            (t for t in (source.last_seen_at, target.last_seen_at) if t is not None), default=None
        )
        target.save(update_fields=["traits", "last_seen_at"])
        profile_merging.send(sender=Profile, source_id=source_id, target_id=target_id)
        source.delete()
        if first_moved is not None:
            rebuild_sessions(profile_id=target_id, since=first_moved)
        request_recompute(profile_ids=[target_id])
        transaction.on_commit(lambda: live.announce_merge(source_id=source_id, target_id=target_id))


def alias_profile(*, previous_id: str, profile: Profile) -> None:
    """Segment's alias: ``previous_id`` (an earlier user or anonymous id) is the same
    person as ``profile``; its profile, if any, is merged in, else the id is attached."""
    known = Identity.objects.filter(value=previous_id).order_by("kind").first()
    if known is None:
        Identity.objects.get_or_create(
            kind=Identity.Kind.USER_ID, value=previous_id, defaults={"profile": profile}
        )
    elif known.profile_id != profile.pk:
        merge_profiles(source_id=known.profile_id, target_id=profile.pk)


def profile_for_visitor(visitor: Visitor) -> Profile:
    return resolve_profile(anonymous_id=visitor.anonymous_id, user_id=visitor.user_id or "")


# --- ingestion --------------------------------------------------------------------------


def server_source() -> Source:
    source, _ = Source.objects.get_or_create(name=SERVER_SOURCE)
    return source


# PostgreSQL's SQLSTATE for "deadlock detected".
DEADLOCK = "40P01"
INGEST_ATTEMPTS = 3


def _is_deadlock(exc: OperationalError) -> bool:
    return getattr(exc.__cause__, "sqlstate", None) == DEADLOCK


def ingest_messages(
    *, source: Source, messages: Sequence[TrackedMessage], received_at: datetime
) -> IngestResult:
    """Store validated messages once each and queue membership recomputes.

    One transaction: a caller that gets a result knows every message is stored.
    Duplicate message ids (client retries) are dropped by the unique constraint.
    Concurrent batches naming the same visitors or message ids can still
    deadlock (merges lock two profiles): PostgreSQL aborts one of them, which
    is run again rather than answered with a 500, unless the caller's own
    transaction is the one aborted.
    """
    attempts = 1 if transaction.get_connection().in_atomic_block else INGEST_ATTEMPTS
    for attempt in range(1, attempts + 1):
        try:
            return _ingest_messages_once(source=source, messages=messages, received_at=received_at)
        except OperationalError as exc:
            if attempt == attempts or not _is_deadlock(exc):
                raise
            logger.warning("ingest deadlocked with a concurrent batch; attempt %d again", attempt)
    raise AssertionError("unreachable")


def _ingest_messages_once(
    *, source: Source, messages: Sequence[TrackedMessage], received_at: datetime
) -> IngestResult:
    from segments.selectors import segment_inputs
    from segments.services import request_recompute

    result = IngestResult()
    if not messages:
        return result
    with transaction.atomic():
        profiles: dict[tuple[str, str], Profile] = {}
        # Always in the same order, so concurrent batches insert the same new
        # identities in the same order and wait for each other instead of deadlocking.
        for key in sorted({(m.anonymous_id, m.user_id) for m in messages}):
            profiles[key] = resolve_profile(anonymous_id=key[0], user_id=key[1])
        for message in messages:
            if message.type == "alias":
                alias_profile(
                    previous_id=message.previous_id,
                    profile=profiles[(message.anonymous_id, message.user_id)],
                )
        # A merge during resolution may have deleted a profile resolved earlier.
        for key, profile in list(profiles.items()):
            if not Profile.objects.filter(pk=profile.pk).exists():
                profiles[key] = resolve_profile(anonymous_id=key[0], user_id=key[1])
        # Lock the batch's profiles up front, in one order: the updates below
        # (traits, consent, sessions, last seen, recompute requests) then take no
        # new row locks, so concurrent batches for the same people queue instead
        # of deadlocking.
        list(
            Profile.objects.select_for_update()
            .filter(pk__in={p.pk for p in profiles.values()})
            .order_by("pk")
            .values_list("pk", flat=True)
        )

        rows = [
            Event(
                source=source,
                profile=profiles[(m.anonymous_id, m.user_id)],
                message_id=m.message_id,
                type=m.type,
                name=m.name,
                properties=m.properties,
                context=m.context,
                anonymous_id=m.anonymous_id,
                user_id=m.user_id,
                timestamp=m.timestamp or received_at,
                original_timestamp=m.original_timestamp,
                sent_at=m.sent_at,
                received_at=received_at,
            )
            # In message id order, for the same reason as the identities above.
            for m in sorted(messages, key=lambda m: m.message_id)
        ]
        stored_before = set(
            Event.objects.filter(
                source=source, message_id__in=[r.message_id for r in rows]
            ).values_list("message_id", flat=True)
        )
        Event.objects.bulk_create(rows, ignore_conflicts=True, batch_size=500)
        after = Event.objects.filter(
            source=source, message_id__in=[r.message_id for r in rows]
        ).count()
        result.stored = after - len(stored_before)
        result.duplicates = len(rows) - result.stored

        # A duplicate (a client's retry, an import run again) must not apply its
        # traits or consent a second time: newer statements may have followed it.
        first_seen: dict[str, TrackedMessage] = {}
        for message in messages:
            if message.message_id not in stored_before:
                first_seen.setdefault(message.message_id, message)
        for message in sorted(first_seen.values(), key=lambda m: m.timestamp or received_at):
            profile = profiles[(message.anonymous_id, message.user_id)]
            if message.type == "identify" and message.traits:
                _apply_traits(profile, message.traits)
            elif message.name == CONSENT_EVENT and isinstance(
                message.properties.get("granted"), bool
            ):
                _apply_consent(
                    profile, message.properties["granted"], message.timestamp or received_at
                )
        earliest: dict[int, datetime] = {}
        for message in messages:
            pk = profiles[(message.anonymous_id, message.user_id)].pk
            at = message.timestamp or received_at
            earliest[pk] = min(at, earliest.get(pk, at))
        for pk, since in sorted(earliest.items()):
            rebuild_sessions(profile_id=pk, since=since)
        for _pk, profile in sorted({p.pk: p for p in profiles.values()}.items()):
            last = Event.objects.filter(profile=profile).aggregate(last=Max("timestamp"))["last"]
            Profile.objects.filter(pk=profile.pk).update(last_seen_at=last)
            result.profile_ids.add(profile.pk)
        # Only events some segment reads (or traits, if some segment reads traits)
        # can change memberships: impressions and page views alone cost nothing.
        watched = segment_inputs()
        request_recompute(
            profile_ids={
                profiles[(m.anonymous_id, m.user_id)].pk
                for m in messages
                if m.name in watched.event_names or (watched.uses_traits and m.type == "identify")
            }
        )
    return result


def _apply_consent(profile: Profile, granted: bool, at: datetime) -> None:
    """Last statement by event time wins, whatever order the events arrive in."""
    state = Profile.Consent.GRANTED if granted else Profile.Consent.DENIED
    Profile.objects.filter(pk=profile.pk).filter(
        Q(consent_updated_at__isnull=True) | Q(consent_updated_at__lte=at)
    ).update(consent=state, consent_updated_at=at)


def _apply_traits(profile: Profile, traits: dict[str, Any]) -> None:
    profile.refresh_from_db(fields=["traits"])
    profile.traits = {**(profile.traits or {}), **traits}
    profile.save(update_fields=["traits"])


def track_server_event(
    *, visitor: Visitor, event: str, properties: dict[str, Any] | None = None
) -> IngestResult:
    """Record an action the server saw itself (add to cart, checkout)."""
    from personalize.tracking import parse_message

    now = timezone.now()
    message = parse_message(
        {
            "type": "track",
            "event": event,
            "anonymousId": visitor.anonymous_id or None,
            "userId": visitor.user_id,
            "properties": properties or {},
            "context": {"library": {"name": "p13n-server"}},
        },
        message_type="track",
        received_at=now,
    )
    return ingest_messages(source=server_source(), messages=[message], received_at=now)
