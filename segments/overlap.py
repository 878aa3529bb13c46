"""Over-segmentation guards: segments too small to act on, or nearly the same as another.

The overlap of every pair of segments is counted in one SQL query over open
memberships (a self-join on the profile, grouped by segment pair).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from django.conf import settings
from django.db import connection
from django.db.models import Count, Q

from segments.models import Membership, Segment


@dataclass(frozen=True)
class SegmentSize:
    id: int
    slug: str
    name: str
    members: int


@dataclass(frozen=True)
class PairOverlap:
    both: int
    # |A ∩ B| / |A ∪ B|
    jaccard: float
    # |A ∩ B| / min(|A|, |B|): how much of the smaller lies inside the larger.
    containment: float

    def measure(self, name: str) -> float:
        return self.jaccard if name == "jaccard" else self.containment


@dataclass
class OverlapMatrix:
    segments: list[SegmentSize]
    pairs: dict[tuple[int, int], PairOverlap] = field(default_factory=dict)

    def pair(self, a: int, b: int) -> PairOverlap | None:
        return self.pairs.get((min(a, b), max(a, b)))


def overlap_matrix(*, segment_ids: Iterable[int] | None = None) -> OverlapMatrix:
    """Sizes and pairwise overlaps of the active segments (or ``segment_ids``): two queries."""
    segments = Segment.objects.all()
    segments = (
        segments.filter(pk__in=list(segment_ids))
        if segment_ids is not None
        else segments.filter(is_active=True)
    )
    sizes = [
        SegmentSize(id=pk, slug=slug, name=name, members=members)
        for pk, slug, name, members in segments.annotate(
            open_members=Count("memberships", filter=Q(memberships__exited_at__isnull=True))
        )
        .order_by("name", "pk")
        .values_list("pk", "slug", "name", "open_members")
    ]
    matrix = OverlapMatrix(segments=sizes)
    ids = [s.id for s in sizes]
    if len(ids) < 2:
        return matrix
    members = {s.id: s.members for s in sizes}
    table = Membership._meta.db_table
    marks = ", ".join(["%s"] * len(ids))
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT a.segment_id, b.segment_id, COUNT(*) FROM {table} a"  # noqa: S608
            f" JOIN {table} b ON b.profile_id = a.profile_id AND b.segment_id > a.segment_id"
            f" AND b.exited_at IS NULL AND b.segment_id IN ({marks})"
            f" WHERE a.exited_at IS NULL AND a.segment_id IN ({marks})"
            " GROUP BY a.segment_id, b.segment_id",
            [*ids, *ids],
        )
        for a, b, both in cursor.fetchall():
            union = members[a] + members[b] - both
            smaller = min(members[a], members[b])
            matrix.pairs[(a, b)] = PairOverlap(
                both=both,
                jaccard=both / union if union else 0.0,
                containment=both / smaller if smaller else 0.0,
            )
    return matrix


def segment_warnings(matrix: OverlapMatrix) -> dict[int, list[str]]:
    """Per segment id, why it may not be worth acting on (empty lists for none)."""
    minimum = settings.P13N_SEGMENT_MIN_SIZE
    threshold = settings.P13N_SEGMENT_OVERLAP_THRESHOLD
    measure = settings.P13N_SEGMENT_OVERLAP_MEASURE
    by_id = {s.id: s for s in matrix.segments}
    warnings: dict[int, list[str]] = {s.id: [] for s in matrix.segments}
    for segment in matrix.segments:
        if segment.members < minimum:
            warnings[segment.id].append(
                f"{segment.members} members is under the minimum of {minimum} worth acting on"
            )
    for (a, b), pair in sorted(matrix.pairs.items()):
        value = pair.measure(measure)
        if value >= threshold:
            for this, other in ((a, b), (b, a)):
                warnings[this].append(
                    f"overlaps {value:.0%} ({measure}) with {by_id[other].name}: "
                    f"{pair.both} shared members"
                )
    return warnings
