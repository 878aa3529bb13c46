"""Segment size over time: snapshots for charts, and entries and exits per period."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Count, Q
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from segments.models import Membership, Segment, SegmentSizeSnapshot


def record_segment_sizes(
    *, segment_ids: Iterable[int] | None = None, now: datetime | None = None
) -> int:
    """Snapshot the member count of the active segments (or of ``segment_ids``).

    One grouped query counts the open memberships of every segment, empty ones
    included; returns how many snapshots were written.
    """
    now = now or timezone.now()
    segments = Segment.objects.all()
    segments = (
        segments.filter(pk__in=list(segment_ids))
        if segment_ids is not None
        else segments.filter(is_active=True)
    )
    counts = segments.annotate(
        open_members=Count("memberships", filter=Q(memberships__exited_at__isnull=True))
    ).values_list("pk", "open_members")
    snapshots = SegmentSizeSnapshot.objects.bulk_create(
        SegmentSizeSnapshot(segment_id=pk, at=now, members=members) for pk, members in counts
    )
    return len(snapshots)


def size_series(*, segment_id: int, since: datetime) -> list[tuple[datetime, int]]:
    return list(
        SegmentSizeSnapshot.objects.filter(segment_id=segment_id, at__gte=since)
        .order_by("at")
        .values_list("at", "members")
    )


@dataclass(frozen=True)
class MembershipFlow:
    """Entries into and exits from a segment since a moment."""

    since: datetime
    entered: int
    exited: int


def membership_flow(*, segment_id: int, since: datetime) -> MembershipFlow:
    counts = Membership.objects.filter(segment_id=segment_id).aggregate(
        entered=Count("pk", filter=Q(entered_at__gte=since)),
        exited=Count("pk", filter=Q(exited_at__gte=since)),
    )
    return MembershipFlow(since=since, entered=counts["entered"], exited=counts["exited"])


def size_chart_svg(
    points: Sequence[tuple[datetime, int]], *, width: int = 640, height: int = 180
) -> SafeString:
    """An inline SVG line chart of members over time (no script, no CDN)."""
    if not points:
        return format_html("<em>{}</em>", "no size snapshots yet")
    pad_left, pad_right, pad_y = 48, 12, 20
    first, last = points[0][0], points[-1][0]
    span = max((last - first).total_seconds(), 1.0)
    top = max(max(members for _, members in points), 1)

    def x(at: datetime) -> float:
        return pad_left + (at - first).total_seconds() / span * (width - pad_left - pad_right)

    def y(members: int) -> float:
        return height - pad_y - members / top * (height - 2 * pad_y)

    path = " ".join(f"{x(at):.1f},{y(members):.1f}" for at, members in points)
    dots = format_html_join(
        "",
        '<circle cx="{}" cy="{}" r="2.5"><title>{}: {}</title></circle>',
        ((f"{x(at):.1f}", f"{y(m):.1f}", f"{at:%Y-%m-%d %H:%M}", m) for at, m in points),
    )
    return format_html(
        '<svg class="segment-size-chart" role="img" aria-label="members over time" '
        'width="{w}" height="{h}" viewBox="0 0 {w} {h}" xmlns="http://www.w3.org/2000/svg" '
        'style="background:#fafafa;border:1px solid #ddd">'
        '<line x1="{l}" y1="{b}" x2="{r}" y2="{b}" stroke="#999"/>'
        '<line x1="{l}" y1="{t}" x2="{l}" y2="{b}" stroke="#999"/>'
        '<text x="{tx}" y="{ty}" font-size="11" text-anchor="end">{top}</text>'
        '<text x="{tx}" y="{b}" font-size="11" text-anchor="end">0</text>'
        '<text x="{l}" y="{h}" font-size="11">{start}</text>'
        '<text x="{r}" y="{h}" font-size="11" text-anchor="end">{end}</text>'
        '<polyline fill="none" stroke="#417690" stroke-width="2" points="{path}"/>'
        '<g fill="#417690">{dots}</g></svg>',
        w=width,
        h=height,
        l=pad_left,
        r=width - pad_right,
        t=pad_y,
        b=height - pad_y,
        tx=pad_left - 4,
        ty=pad_y + 4,
        top=top,
        start=f"{first:%Y-%m-%d %H:%M}",
        end=f"{last:%Y-%m-%d %H:%M}",
        path=path,
        dots=dots,
    )


LAST_WEEK = timedelta(days=7)
