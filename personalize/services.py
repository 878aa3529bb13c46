"""Writes for visitors and events: identity resolution and ingestion."""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import Any, TypeVar

from django.core.cache import cache
from django.db import OperationalError, connection, transaction
from django.db.models import F
from django.utils import timezone

from personalize import quality
from personalize.bulk import insert_bound, insert_values, update_rows
from personalize.deduplication import claim_message_ids
from personalize.identity import (
    IdentityPolicy,
    id_request,
    resolve_profile,
    resolve_requests,
)
from personalize.identity import merge_profiles as merge_profiles  # re-exported
from personalize.models import Event, PendingBatch, Profile, Source
from personalize.plans import violations_payload
from personalize.sessions import PAGE_TYPES, fold_into_sessions
from personalize.tracking import TrackedMessage, decode_messages, encode_messages
from personalize.traits import TraitState, apply_group, apply_identify, identify_traits
from personalize.visitors import Visitor

logger = logging.getLogger(__name__)

_T = TypeVar("_T")

SERVER_SOURCE = "server"
# The event our snippet sends when the visitor grants or withdraws consent.
CONSENT_EVENT = "consent_changed"


@dataclass
class IngestResult:
    stored: int = 0
    duplicates: int = 0
    profile_ids: set[int] = field(default_factory=set)
    # Positions in the batch of the messages dropped as duplicates (for personalize.quality).
    duplicate_indexes: list[int] = field(default_factory=list)
    # Each message's profile, in batch order (empty until the batch is stored).
    message_profile_ids: list[int] = field(default_factory=list)


# --- identity (resolution and merges live in personalize.identity) ----------------------


def profile_for_visitor(visitor: Visitor) -> Profile:
    return resolve_profile(anonymous_id=visitor.anonymous_id, user_id=visitor.user_id or "")


# --- ingestion --------------------------------------------------------------------------


def server_source() -> Source:
    source, _ = Source.objects.get_or_create(name=SERVER_SOURCE)
    return source


# The columns a tracked message fills, in the order ingest writes them.
EVENT_FIELDS = (
    "source_id",
    "profile_id",
    "message_id",
    "type",
    "name",
    "properties",
    "context",
    "anonymous_id",
    "user_id",
    "timestamp",
    "original_timestamp",
    "sent_at",
    "received_at",
    "violations",
)

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
    Duplicate message ids (client retries) are dropped: only the messages whose
    id ``claim_message_ids`` recorded are stored (personalize.deduplication).
    """

    def store() -> IngestResult:
        new_indexes = _claim(source, messages, received_at)
        return _store_claimed(
            source=source, messages=messages, received_at=received_at, new_indexes=new_indexes
        )

    result = _retrying_deadlocks(store)
    if messages:
        _record_quality(source, messages, result, received_at)
    return result


def _retrying_deadlocks(work: Callable[[], _T]) -> _T:
    """Run ``work`` in a transaction, again if PostgreSQL aborted it as a deadlock.

    Concurrent batches naming the same visitors can deadlock (merges lock two
    profiles): PostgreSQL aborts one of them, which is run again rather than
    answered with a 500, unless the caller's own transaction is the one aborted.
    """
    attempts = 1 if transaction.get_connection().in_atomic_block else INGEST_ATTEMPTS
    for attempt in range(1, attempts + 1):
        try:
            with transaction.atomic():
                return work()
        except OperationalError as exc:
            if attempt == attempts or not _is_deadlock(exc):
                raise
            logger.warning("ingest deadlocked with a concurrent batch; attempt %d again", attempt)
    raise AssertionError("unreachable")


def _claim(source: Source, messages: Sequence[TrackedMessage], received_at: datetime) -> list[int]:
    """The positions of the messages whose id this batch is the first to send."""
    return claim_message_ids(
        source=source,
        message_ids=[m.message_id for m in messages],
        timestamps=[m.timestamp or received_at for m in messages],
    )


# --- the ingest inbox (the production stack's /v1/batch) --------------------------------


def accept_messages(
    *, source: Source, messages: Sequence[TrackedMessage], received_at: datetime
) -> None:
    """Keep a batch of validated messages for a worker to store.

    What the tracking API does on the production stack: the answer waits for
    one insert, not for the message-id claims, identity resolution and the
    profile, session and event writes, which a worker then does a batch at a
    time (:func:`store_pending_batches`). A 200 still means the messages are in
    the database; each is stored as an event exactly once, since the worker
    claims the ids in the transaction that stores the events.
    """
    if not messages:
        return
    # One statement: in autocommit it is committed when the task is asked for
    # (on_commit runs at once); inside a caller's transaction, after that commits.
    insert_bound(
        PendingBatch,
        {
            "source_id": source.pk,
            "received_at": received_at,
            "messages": encode_messages(messages),
            "size": len(messages),
        },
    )
    transaction.on_commit(_enqueue_pending_batches)


# Set while a task to store the inbox is queued and has not started: a batch
# committed meanwhile is stored by that task (it reads the inbox when it starts),
# so its request publishes nothing. One task per busy spell instead of one per
# request, and a cache write instead of a broker message on the request path.
# The timeout covers a task lost before it started; beat's sweep covers the rest.
_WAKEUP_KEY = "pending-batches:task-queued"
WAKEUP_SECONDS = 10


def _enqueue_pending_batches() -> None:
    """Ask a worker to store the inbox; never fail the caller, whose batch is
    committed already: if the broker is down, the scheduled sweep stores it."""
    from personalize.tasks import store_pending_events

    try:
        if not cache.add(_WAKEUP_KEY, 1, timeout=WAKEUP_SECONDS):
            return
    except Exception:
        logger.exception("the cache is unreachable; queueing a task for this batch")
    try:
        store_pending_events.delay()
    except Exception:
        _forget_wakeup()
        logger.exception("could not queue the storing of a pending batch; the sweep will")


def _forget_wakeup() -> None:
    try:
        cache.delete(_WAKEUP_KEY)
    except Exception:
        logger.exception("the cache is unreachable")


def work_off_pending_batches(*, limit: int) -> int:
    """What the queued task (and beat's sweep) does: store up to ``limit`` batches,
    and queue a task for the rest if there are more."""
    _forget_wakeup()  # from here on, a new batch queues a task of its own
    stored = store_pending_batches(limit=limit)
    if stored == limit:
        _enqueue_pending_batches()
    return stored


# Failures after which a batch is set aside for an operator (admin: pending batches).
PENDING_BATCH_ATTEMPTS = 3


def store_pending_batches(*, limit: int | None = None, wait: bool = False) -> int:
    """Store the inbox's batches as events, oldest first, each in a transaction
    that also deletes it; return how many were stored.

    Only the batches there at the call: a caller waiting for what was sent
    before it must not chase new arrivals. Workers share the inbox: each takes
    the oldest batch no other holds (``SKIP LOCKED``). With ``wait`` (a profile
    lookup, export or erase, which must see everything accepted before it) a
    batch another worker holds is waited for instead, so that its events are
    committed before the caller reads. Stops after ``limit`` batches were tried.

    A batch that fails (other than the database being unreachable) keeps its
    error and is tried again by a later task; after PENDING_BATCH_ATTEMPTS
    failures it is set aside (admin: pending batches), so that one bad batch
    cannot hold up those behind it. It is never dropped.
    """
    newest = PendingBatch.objects.order_by("-pk").values_list("pk", flat=True).first()
    stored = tried = 0
    failed: list[int] = []  # not tried again in this call
    while newest is not None and (limit is None or tried < limit):
        taken: list[int] = []  # the batch being stored, for the error
        tried += 1
        try:
            done = _retrying_deadlocks(
                partial(_store_oldest_pending, newest=newest, skip=failed, wait=wait, taken=taken)
            )
        except Exception as exc:
            if not taken or (isinstance(exc, OperationalError) and not connection.is_usable()):
                raise  # the database is unreachable: the task retries, the batch waits
            logger.exception("could not store pending batch %d; it stays in the inbox", taken[-1])
            PendingBatch.objects.filter(pk=taken[-1]).update(
                failed_attempts=F("failed_attempts") + 1, last_error=repr(exc)[:2000]
            )
            failed.append(taken[-1])
            continue
        if done is None:
            break
        batch, messages, result = done
        _record_quality(batch.source, messages, result, batch.received_at)
        stored += 1
    return stored


def _store_oldest_pending(
    *, newest: int, skip: Sequence[int], wait: bool, taken: list[int]
) -> tuple[PendingBatch, list[TrackedMessage], IngestResult] | None:
    """Store the oldest pending batch up to ``newest`` (but not in ``skip``); its id
    goes to ``taken``."""
    batch = (
        # Lock the batch row only ("of self"): the joined source row must stay free
        # for the requests and workers of the same source.
        PendingBatch.objects.select_for_update(skip_locked=not wait, of=("self",))
        .filter(pk__lte=newest, failed_attempts__lt=PENDING_BATCH_ATTEMPTS)
        .exclude(pk__in=skip)
        .select_related("source")
        .order_by("pk")
        .first()
    )
    if batch is None:
        return None
    taken.append(batch.pk)
    messages = decode_messages(bytes(batch.messages))
    result = _store_claimed(
        source=batch.source,
        messages=messages,
        received_at=batch.received_at,
        new_indexes=_claim(batch.source, messages, batch.received_at),
    )
    PendingBatch.objects.filter(pk=batch.pk).delete()
    return batch, messages, result


def forget_pending_messages(*, ids: Sequence[str]) -> int:
    """Remove the messages naming any of ``ids`` from set-aside inbox batches (an
    erase: they must not bring the person back when stored again); the number
    of messages removed. Batches left empty are deleted."""
    wanted = set(ids)
    removed = 0
    if not wanted:
        return removed
    for batch in PendingBatch.objects.select_for_update().filter(
        failed_attempts__gte=PENDING_BATCH_ATTEMPTS
    ):
        messages = decode_messages(bytes(batch.messages))
        kept = [
            m
            for m in messages
            if not wanted.intersection((m.anonymous_id, m.user_id, m.previous_id))
        ]
        removed += len(messages) - len(kept)
        if not kept:
            batch.delete()
        elif len(kept) < len(messages):
            # The error may quote the person's data too.
            PendingBatch.objects.filter(pk=batch.pk).update(
                messages=encode_messages(kept), size=len(kept), last_error=""
            )
    return removed


def store_again(*, batch_ids: Sequence[int]) -> int:
    """Give set-aside batches their attempts back (after the cause was fixed) and
    queue their storing; the number of batches."""
    count = PendingBatch.objects.filter(pk__in=batch_ids).update(failed_attempts=0, last_error="")
    if count:
        transaction.on_commit(_enqueue_pending_batches)
    return count


def _store_claimed(
    *,
    source: Source,
    messages: Sequence[TrackedMessage],
    received_at: datetime,
    new_indexes: Sequence[int],
) -> IngestResult:
    """Resolve identities, store the claimed messages (``new_indexes``) as events,
    fold every message into its profile and queue recomputes. Runs inside the
    transaction that claimed the ids or took the batch from the inbox."""
    from segments.definitions import ChangedInputs
    from segments.models import ProfileEvaluation
    from segments.selectors import segment_inputs
    from segments.services import request_recompute

    result = IngestResult()
    if not messages:
        return result
    with transaction.atomic(savepoint=False):
        policy = IdentityPolicy.from_settings()
        message_traits = [_traits_of(m, policy) for m in messages]
        profile_ids = resolve_requests(
            [
                id_request(
                    policy=policy,
                    anonymous_id=m.anonymous_id,
                    user_id=m.user_id,
                    traits=traits if m.type == "identify" else None,
                    previous_id=m.previous_id,
                )
                for m, traits in zip(messages, message_traits, strict=True)
            ],
            policy=policy,
        )
        insert_values(
            Event,
            EVENT_FIELDS,
            [_event_row(source, profile_ids[i], messages[i], received_at) for i in new_indexes],
        )
        result.stored = len(new_indexes)
        result.duplicates = len(messages) - result.stored
        claimed = set(new_indexes)
        result.duplicate_indexes = [i for i in range(len(messages)) if i not in claimed]

        # A duplicate (a client's retry, an import run again) must not state its
        # traits or consent a second time.
        _update_profiles(
            messages=messages,
            message_traits=message_traits,
            profile_ids=profile_ids,
            fresh=[index in claimed for index in range(len(messages))],
            received_at=received_at,
        )
        result.profile_ids.update(profile_ids)
        # Only events some segment reads (or traits, if some segment reads traits)
        # can change memberships: impressions and page views alone cost nothing.
        # The recompute then re-evaluates only the segments these inputs can affect.
        watched = segment_inputs()
        changed: dict[int, ChangedInputs] = {}
        for m, profile_id in zip(messages, profile_ids, strict=True):
            if watched.reads(name=m.name, kind=m.type):
                call = ChangedInputs.of_call(name=m.name, kind=m.type)
                changed[profile_id] = changed.get(profile_id, ChangedInputs()) | call
        # A profile never evaluated yet (new, or from before this bookkeeping) is
        # evaluated in full once, whatever arrived: segments such as "never bought"
        # hold for it with no event read at all.
        if watched.definitions.segments or watched.definitions.scores:
            batch_ids = set(profile_ids)
            evaluated = set(
                ProfileEvaluation.objects.filter(profile_id__in=batch_ids).values_list(
                    "profile_id", flat=True
                )
            )
            for profile_id in batch_ids - evaluated:
                changed.pop(profile_id, None)
            request_recompute(profile_ids=[*changed, *(batch_ids - evaluated)], inputs=changed)
    result.message_profile_ids = profile_ids
    return result


def _record_quality(
    source: Source, messages: Sequence[TrackedMessage], result: IngestResult, received_at: datetime
) -> None:
    """Count the stored batch for the data-quality report, outside the transaction
    that stored it: the counters are shared rows, which a batch must not hold
    locked meanwhile (unless the caller's own transaction holds both)."""
    quality.record_ingest(
        source=source,
        messages=messages,
        duplicate_indexes=result.duplicate_indexes,
        profile_ids=result.message_profile_ids,
        received_at=received_at,
    )


def _event_row(
    source: Source, profile_id: int, message: TrackedMessage, received_at: datetime
) -> tuple[Any, ...]:
    """The values of EVENT_FIELDS for one message."""
    return (
        source.pk,
        profile_id,
        message.message_id,
        message.type,
        message.name,
        message.properties,
        message.context,
        message.anonymous_id,
        message.user_id,
        message.timestamp or received_at,
        message.original_timestamp,
        message.sent_at,
        received_at,
        violations_payload(message.violations),
    )


def _traits_of(message: TrackedMessage, policy: IdentityPolicy) -> dict[str, Any]:
    if message.type == "identify":
        return identify_traits(message.traits, hash_email=policy.hash_email)
    return message.traits


def _update_profiles(
    *,
    messages: Sequence[TrackedMessage],
    message_traits: Sequence[dict[str, Any]],
    profile_ids: Sequence[int],
    fresh: Sequence[bool],
    received_at: datetime,
) -> None:
    """Traits, consent, sessions and last-seen of every profile in the batch: the
    profiles locked once in pk order, written back with one bulk update. Only
    ``fresh`` messages (not duplicates) state traits and consent."""
    profiles = {
        p.pk: p
        for p in Profile.objects.select_for_update()
        .filter(pk__in=set(profile_ids))
        .order_by("pk")
        .only(
            "traits",
            "trait_times",
            "consent",
            "consent_updated_at",
            "last_seen_at",
            "session_count",
            "time_on_site_seconds",
            "page_count",
        )
    }
    states = {pk: TraitState.of(p.traits, p.trait_times) for pk, p in profiles.items()}
    fields = {"last_seen_at", "session_count", "time_on_site_seconds", "page_count"}
    new_events: dict[int, list[tuple[datetime, bool]]] = defaultdict(list)
    # Event time order, so that within the batch too the latest statement wins.
    timeline = sorted(
        zip(messages, message_traits, profile_ids, fresh, strict=True),
        key=lambda item: item[0].timestamp or received_at,
    )
    for message, traits, profile_id, is_fresh in timeline:
        profile = profiles[profile_id]
        at = message.timestamp or received_at
        profile.last_seen_at = max(at, profile.last_seen_at or at)
        if not is_fresh:
            continue
        new_events[profile_id].append((at, message.type in PAGE_TYPES))
        if message.type == "identify" and traits:
            apply_identify(states[profile_id], traits, at)
            fields |= {"traits", "trait_times"}
        elif message.type == "group":
            apply_group(states[profile_id], message.properties["groupId"], traits, at)
            fields |= {"traits", "trait_times"}
        elif message.name == CONSENT_EVENT and isinstance(message.properties.get("granted"), bool):
            # Last statement by event time wins, whatever order the events arrive in.
            if profile.consent_updated_at is None or profile.consent_updated_at <= at:
                granted = message.properties["granted"]
                profile.consent = Profile.Consent.GRANTED if granted else Profile.Consent.DENIED
                profile.consent_updated_at = at
                fields |= {"consent", "consent_updated_at"}
    for profile_id, change in fold_into_sessions(events_by_profile=new_events).items():
        profile = profiles[profile_id]
        profile.session_count += change.sessions
        profile.time_on_site_seconds = max(0.0, profile.time_on_site_seconds + change.seconds)
        profile.page_count += change.pages
    for profile_id, state in states.items():
        profiles[profile_id].traits = state.traits
        profiles[profile_id].trait_times = state.times
    update_rows(Profile, list(profiles.values()), sorted(fields))


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
