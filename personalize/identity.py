"""Identity resolution: which profile a message's ids belong to, stitching and merging.

A message carries up to three kinds of ids, most specific first: its user id,
the configured identify traits used as ids (P13N_STITCH_TRAITS, e.g. a hashed
email), and its anonymous id. Ids seen together belong to one profile: new ids
are attached to it, and two known profiles are merged (alias calls merge the
``previousId``'s profile too). The policy in docs/identity.md bounds it: ids in
P13N_NEVER_MERGE_IDS are never attached, and no merge or attach makes a profile
hold more than P13N_MAX_IDENTITIES_PER_PROFILE ids. A refused merge is recorded
(:class:`ProfileMerge` with status refused) and the event is stored anyway.

A whole batch is resolved with one read of the known ids, one insert of new
profiles and one of new ids; only merges of existing profiles cost queries each.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Count, Min, Q

from personalize.models import Event, Identity, Profile, ProfileMerge
from personalize.sessions import rebuild_sessions
from personalize.signals import profile_merging
from personalize.traits import TraitState, merge_states, stitch_values

logger = logging.getLogger(__name__)

IdKey = tuple[str, str]  # (Identity.Kind, value)

USER_ID = Identity.Kind.USER_ID.value
ANONYMOUS_ID = Identity.Kind.ANONYMOUS_ID.value
TRAIT = Identity.Kind.TRAIT.value
MAX_ID_LENGTH = 255
RESOLVE_ATTEMPTS = 3


@dataclass(frozen=True)
class IdentityPolicy:
    max_identities: int
    never_merge: frozenset[str]
    stitch_traits: tuple[str, ...]
    hash_email: bool

    @classmethod
    def from_settings(cls) -> IdentityPolicy:
        return cls(
            max_identities=settings.P13N_MAX_IDENTITIES_PER_PROFILE,
            never_merge=frozenset(v.strip().lower() for v in settings.P13N_NEVER_MERGE_IDS),
            stitch_traits=tuple(settings.P13N_STITCH_TRAITS),
            hash_email=settings.P13N_HASH_EMAIL_TRAIT,
        )

    def is_blocked(self, value: str) -> bool:
        return value.strip().lower() in self.never_merge


@dataclass(frozen=True)
class IdRequest:
    """The ids one message carries, most specific first, and those the policy drops."""

    ids: tuple[IdKey, ...]
    blocked: tuple[IdKey, ...] = ()
    previous_id: str = ""  # an alias call's previousId


def id_request(
    *,
    policy: IdentityPolicy,
    anonymous_id: str = "",
    user_id: str = "",
    traits: dict[str, Any] | None = None,
    previous_id: str = "",
) -> IdRequest:
    ids: list[IdKey] = []
    blocked: list[IdKey] = []

    def add(kind: str, raw: str, value: str) -> None:
        (blocked if policy.is_blocked(raw) else ids).append((kind, value))

    if user_id:
        add(USER_ID, user_id, user_id)
    for key, value in stitch_values(traits or {}, policy.stitch_traits):
        if len(key) + 1 + len(value) <= MAX_ID_LENGTH:
            add(TRAIT, value, f"{key}:{value}")
    if anonymous_id:
        add(ANONYMOUS_ID, anonymous_id, anonymous_id)
    if previous_id and policy.is_blocked(previous_id):
        blocked.append((USER_ID, previous_id))
        previous_id = ""
    return IdRequest(ids=tuple(ids), blocked=tuple(blocked), previous_id=previous_id)


def resolve_requests(
    requests: Sequence[IdRequest], *, policy: IdentityPolicy | None = None
) -> list[int]:
    """The profile id for each request, in order, creating, stitching and merging."""
    policy = policy or IdentityPolicy.from_settings()
    for _attempt in range(RESOLVE_ATTEMPTS):
        try:
            with transaction.atomic():
                return _Resolver(policy).run(requests)
        except _ConcurrentInsert:
            # Another transaction created some of these ids first: read them again.
            logger.info("ids of this batch were created concurrently; resolving again")
            continue
    raise RuntimeError("could not resolve profiles: ids kept being created concurrently")


def resolve_profile(*, anonymous_id: str = "", user_id: str = "") -> Profile:
    """The profile these ids belong to, creating or stitching as needed.

    A user id already known wins: an anonymous visitor who logs in becomes that
    user's profile, and the anonymous history is merged into it.
    """
    if not anonymous_id and not user_id:
        raise ValueError("a profile needs an anonymous id or a user id")
    policy = IdentityPolicy.from_settings()
    request = id_request(policy=policy, anonymous_id=anonymous_id, user_id=user_id)
    [profile_id] = resolve_requests([request], policy=policy)
    return Profile.objects.get(pk=profile_id)


# --- the batch resolver -------------------------------------------------------------------


class _ConcurrentInsert(Exception):
    pass


class _New:
    """A profile this batch creates; its pk is known after the bulk insert."""

    pk: int | None = None


Ref = int | _New


@dataclass(frozen=True)
class _Refusal:
    profile: Ref
    other: Ref | None
    identities: tuple[IdKey, ...]
    trigger: str
    reason: str


class _Resolver:
    def __init__(self, policy: IdentityPolicy) -> None:
        self.policy = policy
        self.owner: dict[IdKey, Ref] = {}
        self.forward: dict[Ref, Ref] = {}  # folded or merged away -> survivor
        self.counts: dict[Ref, int] = {}
        self.counts_loaded = False
        self.new_profiles: list[_New] = []
        self.new_ids: dict[IdKey, Ref] = {}
        self.refusals: list[_Refusal] = []

    def run(self, requests: Sequence[IdRequest]) -> list[int]:
        self._load_known(requests)
        refs = [self._resolve(request) for request in requests]
        self._create()
        return [self._pk(ref) for ref in refs]

    # reads

    def _load_known(self, requests: Sequence[IdRequest]) -> None:
        wanted: dict[str, set[str]] = defaultdict(set)
        for request in requests:
            for kind, value in request.ids:
                wanted[kind].add(value)
            if request.previous_id:
                wanted[USER_ID].add(request.previous_id)
                wanted[ANONYMOUS_ID].add(request.previous_id)
        for kind, value, profile_id in _identities_matching(wanted):
            self.owner[(kind, value)] = profile_id

    def _count(self, ref: Ref) -> int:
        if isinstance(ref, int) and not self.counts_loaded:
            # Only needed when ids are attached or profiles merged: one query for
            # every existing profile this batch can touch.
            existing = {r for r in self.owner.values() if isinstance(r, int)}
            counted = (
                Identity.objects.filter(profile_id__in=existing)
                .values("profile_id")
                .annotate(n=Count("id"))
                .values_list("profile_id", "n")
            )
            for profile_id, n in counted:
                self.counts.setdefault(profile_id, n)
            self.counts_loaded = True
        return self.counts.get(ref, 0)

    def _find(self, ref: Ref) -> Ref:
        while ref in self.forward:
            ref = self.forward[ref]
        return ref

    # decisions

    def _resolve(self, request: IdRequest) -> Ref:
        if not request.ids:
            # Nothing usable to recognise the sender by: a profile of its own.
            ref = self._new()
            self._refuse_blocked(ref, request)
            return ref
        via: dict[Ref, list[IdKey]] = defaultdict(list)
        unknown: list[IdKey] = []
        for key in request.ids:
            known = self.owner.get(key)
            if known is None:
                unknown.append(key)
            else:
                via[self._find(known)].append(key)
        alias_owners: list[Ref] = []
        if request.previous_id:
            previous = [(k, request.previous_id) for k in (USER_ID, ANONYMOUS_ID)]
            alias_owners = _unique(self._find(self.owner[k]) for k in previous if k in self.owner)
            if not alias_owners and (USER_ID, request.previous_id) not in request.ids:
                unknown.append((USER_ID, request.previous_id))
        owners = _unique([*via, *alias_owners])
        existing = [o for o in owners if isinstance(o, int)]
        survivor: Ref | None = existing[0] if existing else (owners[0] if owners else None)
        others = [o for o in owners if o != survivor]
        if survivor is not None and not others and not unknown:
            self._refuse_blocked(survivor, request)
            return survivor  # the common case: every id already known, on one profile

        total = sum(self._count(o) for o in owners) + len(unknown)
        if total <= self.policy.max_identities:
            target = survivor if survivor is not None else self._new()
            for other in others:
                trigger = _trigger(via.get(target), via.get(other), alias=other in alias_owners)
                self._fold(other, into=target, trigger=trigger)
            for key in unknown:
                self._attach(key, target)
            self._refuse_blocked(target, request)
            return target

        # Over the cap: nothing merges. The event goes to the profile of its most
        # specific id (a new one if that id is new).
        reason = (
            f"the profile would hold {total} ids; the limit is "
            f"P13N_MAX_IDENTITIES_PER_PROFILE={self.policy.max_identities}"
        )
        primary_known = self.owner.get(request.ids[0])
        primary = self._find(primary_known) if primary_known is not None else self._new()
        attachable = self._count(primary) + len(unknown) <= self.policy.max_identities
        for key in unknown if attachable else []:
            self._attach(key, primary)
        for other in owners:
            if other != primary:
                linking = tuple(via.get(other, [])) or ((USER_ID, request.previous_id),)
                trigger = _trigger(via.get(primary), via.get(other), alias=other in alias_owners)
                self._refuse(primary, other, linking, trigger, reason)
        if not attachable and unknown:
            self._refuse(primary, None, tuple(unknown), ProfileMerge.Trigger.IDENTIFY, reason)
        self._refuse_blocked(primary, request)
        return primary

    def _new(self) -> _New:
        ref = _New()
        self.new_profiles.append(ref)
        self.counts[ref] = 0
        return ref

    def _attach(self, key: IdKey, ref: Ref) -> None:
        self.owner[key] = ref
        self.new_ids[key] = ref
        self.counts[ref] = self._count(ref) + 1

    def _fold(self, other: Ref, *, into: Ref, trigger: str) -> None:
        moved = self._count(other)
        if isinstance(other, int):
            # Existing profiles are always preferred as survivors.
            assert isinstance(into, int)
            merge_profiles(source_id=other, target_id=into, trigger=trigger)
        self.forward[other] = into
        self.counts[into] = self._count(into) + moved
        self.counts.pop(other, None)

    def _refuse(
        self, profile: Ref, other: Ref | None, ids: tuple[IdKey, ...], trigger: str, reason: str
    ) -> None:
        refusal = _Refusal(profile, other, ids, trigger, reason)
        if refusal not in self.refusals:
            self.refusals.append(refusal)

    def _refuse_blocked(self, ref: Ref, request: IdRequest) -> None:
        if request.blocked:
            self._refuse(
                ref,
                None,
                request.blocked,
                ProfileMerge.Trigger.IDENTIFY,
                "ids listed in P13N_NEVER_MERGE_IDS are never attached to a profile",
            )

    # writes

    def _create(self) -> None:
        roots = [ref for ref in self.new_profiles if ref not in self.forward]
        if roots:
            created = Profile.objects.bulk_create([Profile() for _ in roots])
            for ref, profile in zip(roots, created, strict=True):
                ref.pk = profile.pk
        if self.new_ids:
            Identity.objects.bulk_create(
                [
                    Identity(profile_id=self._pk(ref), kind=kind, value=value)
                    for (kind, value), ref in self.new_ids.items()
                ],
                ignore_conflicts=True,
            )
            wanted: dict[str, set[str]] = defaultdict(set)
            for kind, value in self.new_ids:
                wanted[kind].add(value)
            stored = {(k, v): p for k, v, p in _identities_matching(wanted)}
            if any(stored.get(key) != self._pk(ref) for key, ref in self.new_ids.items()):
                raise _ConcurrentInsert
        if self.refusals:
            ProfileMerge.objects.bulk_create(
                ProfileMerge(
                    profile_id=self._pk(r.profile),
                    merged_profile_id=self._pk(r.other) if r.other is not None else None,
                    identities=[{"kind": k, "value": v} for k, v in r.identities],
                    trigger=r.trigger,
                    status=ProfileMerge.Status.REFUSED,
                    reason=r.reason,
                )
                for r in self.refusals
            )
            for r in self.refusals:
                logger.warning(
                    "identity policy refused a merge into profile %s: %s (ids %s)",
                    self._pk(r.profile),
                    r.reason,
                    ", ".join(f"{k}={v}" for k, v in r.identities),
                )

    def _pk(self, ref: Ref) -> int:
        ref = self._find(ref)
        if isinstance(ref, int):
            return ref
        assert ref.pk is not None
        return ref.pk


def _unique(refs: Iterable[Ref]) -> list[Ref]:
    seen: list[Ref] = []
    for ref in refs:
        if ref not in seen:
            seen.append(ref)
    return seen


def _trigger(*links: list[IdKey] | None, alias: bool) -> str:
    """Why two profiles meet: ``links`` are the ids by which the message reached
    each of them. Reached through stitched traits alone on either side, the
    traits joined them; reached through no id at all, the alias did."""
    reached = [keys for keys in links if keys]
    if alias and len(reached) < len(links):
        return ProfileMerge.Trigger.ALIAS
    if any(all(kind == TRAIT for kind, _ in keys) for keys in reached):
        return ProfileMerge.Trigger.TRAIT
    return ProfileMerge.Trigger.IDENTIFY


def _identities_matching(wanted: dict[str, set[str]]) -> list[tuple[str, str, int]]:
    """Known (kind, value, profile id) among ``wanted``; one indexed query."""
    if not wanted:
        return []
    query = Q()
    for kind, values in wanted.items():
        query |= Q(kind=kind, value__in=sorted(values))
    return [
        (kind, value, profile_id)
        for kind, value, profile_id in Identity.objects.filter(query).values_list(
            "kind", "value", "profile_id"
        )
        if value in wanted[kind]
    ]


# --- merging ----------------------------------------------------------------------------


def merge_profiles(
    *, source_id: int, target_id: int, trigger: str = ProfileMerge.Trigger.IDENTIFY
) -> ProfileMerge:
    """Fold ``source`` into ``target``: events, identities, memberships, merge
    records and traits (key by key, newest wins) move; ``source`` is deleted, the
    merge recorded and ``target``'s sessions and memberships recomputed."""
    from personalize import live
    from segments.services import request_recompute

    with transaction.atomic():
        locked = {
            p.pk: p
            for p in Profile.objects.select_for_update()
            .filter(pk__in=[source_id, target_id])
            .order_by("pk")
        }
        source, target = locked[source_id], locked[target_id]
        brought = [
            {"kind": kind, "value": value}
            for kind, value in Identity.objects.filter(profile_id=source_id)
            .order_by("kind", "value")
            .values_list("kind", "value")
        ]
        first_moved = Event.objects.filter(profile_id=source_id).aggregate(first=Min("timestamp"))[
            "first"
        ]
        moved = Event.objects.filter(profile_id=source_id).update(profile_id=target_id)
        Identity.objects.filter(profile_id=source_id).update(profile_id=target_id)
        ProfileMerge.objects.filter(profile_id=source_id).update(profile_id=target_id)
        _move_memberships(source_id=source_id, target_id=target_id)

        traits = merge_states(
            TraitState.of(target.traits, target.trait_times),
            TraitState.of(source.traits, source.trait_times),
        )
        target.traits, target.trait_times = traits.traits, traits.times
        target.last_seen_at = max(
            (t for t in (source.last_seen_at, target.last_seen_at) if t is not None), default=None
        )
        target.created_at = min(source.created_at, target.created_at)
        if source.consent_updated_at is not None and (
            target.consent_updated_at is None
            or source.consent_updated_at > target.consent_updated_at
        ):
            # The person's latest statement stands, whichever id made it.
            target.consent, target.consent_updated_at = source.consent, source.consent_updated_at
        target.save(
            update_fields=[
                "traits",
                "trait_times",
                "last_seen_at",
                "created_at",
                "consent",
                "consent_updated_at",
            ]
        )
        profile_merging.send(sender=Profile, source_id=source_id, target_id=target_id)
        source.delete()
        if first_moved is not None:
            rebuild_sessions(profile_id=target_id, since=first_moved)
        record = ProfileMerge.objects.create(
            profile_id=target_id,
            merged_profile_id=source_id,
            identities=brought,
            events_moved=moved,
            trigger=trigger,
        )
        logger.info(
            "merged profile %s into %s (%s, %d events)", source_id, target_id, trigger, moved
        )
        request_recompute(profile_ids=[target_id])
        transaction.on_commit(lambda: live.announce_merge(source_id=source_id, target_id=target_id))
    return record


def _move_memberships(*, source_id: int, target_id: int) -> None:
    """Segment history moves with the person. Where both profiles are in the same
    segment, the stay that began first is kept: it covers the other one."""
    from segments.models import Membership

    target_open = {
        m.segment_id: m for m in Membership.objects.filter(profile_id=target_id, exited_at=None)
    }
    for membership in Membership.objects.filter(profile_id=source_id, exited_at=None):
        theirs = target_open.get(membership.segment_id)
        if theirs is None:
            continue
        later = theirs if membership.entered_at < theirs.entered_at else membership
        later.delete()
    Membership.objects.filter(profile_id=source_id).update(profile_id=target_id)
