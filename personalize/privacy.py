"""Data subject requests: export everything held about a person, or erase it."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.db.models import Q

from personalize.models import EventMessageId, Profile, RejectedEvent
from personalize.services import forget_pending_messages
from personalize.signals import profile_erasing
from segments.models import Membership, ProfileScore


def profile_export(*, profile: Profile) -> dict[str, Any]:
    """The profile's ids, traits, events, segment history, scores and merges as plain JSON."""
    events = profile.events.order_by("timestamp", "id").values(
        "message_id", "type", "name", "properties", "context", "timestamp", "received_at"
    )
    memberships = (
        Membership.objects.filter(profile=profile).select_related("segment").order_by("entered_at")
    )
    extra: dict[str, Any] = {}
    profile_exporting_hook(profile=profile, into=extra)
    return {
        "profile_id": profile.pk,
        "identities": [{"kind": i.kind, "value": i.value} for i in profile.identities.all()],
        "traits": profile.traits,
        "consent": profile.consent,
        "created_at": profile.created_at.isoformat(),
        "last_seen_at": profile.last_seen_at.isoformat() if profile.last_seen_at else None,
        "events": [
            {
                **e,
                "timestamp": e["timestamp"].isoformat(),
                "received_at": e["received_at"].isoformat(),
            }
            for e in events
        ],
        "segments": [
            {
                "segment": m.segment.slug,
                "entered_at": m.entered_at.isoformat(),
                "exited_at": m.exited_at.isoformat() if m.exited_at else None,
            }
            for m in memberships
        ],
        "scores": [
            {"score": s.score.slug, "value": s.value, "updated_at": s.updated_at.isoformat()}
            for s in ProfileScore.objects.filter(profile=profile).select_related("score")
        ],
        # The profiles stitched into this one, and merges the policy refused.
        "merges": [
            {
                "merged_profile_id": m.merged_profile_id,
                "identities": m.identities,
                "trigger": m.trigger,
                "status": m.status,
                "reason": m.reason,
                "at": m.at.isoformat(),
            }
            for m in profile.merges.order_by("at", "id")
        ],
        **extra,
    }


def profile_exporting_hook(*, profile: Profile, into: dict[str, Any]) -> None:
    """Other apps add their rows about the person (the shop's orders) to an export."""
    from personalize.signals import profile_exporting

    profile_exporting.send(sender=Profile, profile_id=profile.pk, into=into)


@transaction.atomic
def profile_erase(*, profile: Profile) -> dict[str, int]:
    """Erase the person: events and their message ids, traits, identities,
    memberships, quarantined and set-aside inbox messages naming their ids, and (through
    ``profile_erasing``) other apps' rows."""
    ids = list(profile.identities.values_list("value", flat=True))
    rejected = RejectedEvent.objects.none()
    if ids:
        rejected = RejectedEvent.objects.filter(
            Q(payload__anonymousId__in=ids) | Q(payload__userId__in=ids)
        )
    counts = {
        "events": profile.events.count(),
        "identities": len(ids),
        "memberships": Membership.objects.filter(profile=profile).count(),
        "rejected_events": rejected.count(),
    }
    rejected.delete()
    # Inbox batches set aside after failing hold raw messages too (the web paths
    # stored every other pending batch before calling this).
    counts["pending_messages"] = forget_pending_messages(ids=ids)
    # Clients may build message ids from the person's ids: forget them too (a
    # retried message after this is stored as new, like any new visit).
    for source_id in profile.events.values_list("source_id", flat=True).distinct():
        EventMessageId.objects.filter(
            source_id=source_id,
            message_id__in=profile.events.filter(source_id=source_id).values("message_id"),
        ).delete()
    profile_erasing.send(sender=Profile, profile_id=profile.pk)
    profile.delete()  # cascades to events, identities and memberships
    return counts
