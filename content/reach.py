"""How many profiles a block's targeting matches now, from current memberships."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from django.db.models import Count, Q

from content.models import Block
from personalize.models import Profile
from segments.models import Membership


@dataclass(frozen=True)
class Reach:
    profiles: int
    total: int

    @property
    def share(self) -> float:
        return self.profiles / self.total if self.total else 0.0

    def __str__(self) -> str:
        return f"{self.profiles} of {self.total} profiles ({self.share:.1%})"


def targeting_reach(
    *, segment_ids: Collection[int], match_all: bool, excluded_ids: Collection[int]
) -> Reach:
    """Profiles in any (or, with ``match_all``, every) of ``segment_ids`` and in none
    of ``excluded_ids``, by their open memberships; no segments means everyone.
    One aggregate query: the matching count and the total side by side."""
    reached = Q()
    if segment_ids:
        members = Membership.objects.filter(segment_id__in=segment_ids, exited_at__isnull=True)
        if match_all:
            holding_all = (
                members.values("profile_id")
                .annotate(held=Count("segment_id", distinct=True))
                .filter(held=len(set(segment_ids)))
            )
            reached &= Q(pk__in=holding_all.values("profile_id"))
        else:
            reached &= Q(pk__in=members.values("profile_id"))
    if excluded_ids:
        excluded = Membership.objects.filter(segment_id__in=excluded_ids, exited_at__isnull=True)
        reached &= ~Q(pk__in=excluded.values("profile_id"))
    counts = Profile.objects.aggregate(total=Count("pk"), reached=Count("pk", filter=reached))
    return Reach(profiles=counts["reached"], total=counts["total"])


def block_reach(*, block: Block) -> Reach:
    """Reach of ``block``'s targeting now (its schedule and status aside)."""
    return targeting_reach(
        segment_ids=[s.pk for s in block.segments.all()],
        match_all=block.match_all,
        excluded_ids=[s.pk for s in block.excluded_segments.all()],
    )
