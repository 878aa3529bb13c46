"""Small inline SVG charts rendered on the server (no JavaScript, no CDN).

Labels are escaped by ``Markup.format``; numbers are formatted by us. The SVGs
scale with their container (viewBox) and use the admin's text colour.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup

BAR_COLOUR = "#417690"  # the admin's header blue
LINE_COLOURS = ("#417690", "#c0392b")
MAX_LABEL = 38


@dataclass(frozen=True)
class Bar:
    label: str
    value: float
    text: str  # the value as shown, e.g. "3.2%"
    highlight: bool = False


def bar_chart(bars: Sequence[Bar], *, title: str, width: int = 480) -> Markup:
    """Horizontal bars, one row per label, scaled to the largest value."""
    row, pad = 26, 6
    # About 7 px per character at 12 px: room for the longest label, within limits.
    longest = max((len(bar.label) for bar in bars), default=0)
    label_width = min(max(7 * min(longest, MAX_LABEL) + 10, 60), 280)
    width = max(width, label_width + 200)
    height = row * max(len(bars), 1) + 24
    top = max((bar.value for bar in bars), default=0.0) or 1.0
    span = width - label_width - 70
    parts = [
        Markup(
            '<svg class="p13n-chart" role="img" viewBox="0 0 {w} {h}" width="{w}" '
            'height="{h}" xmlns="http://www.w3.org/2000/svg"><title>{t}</title>'
            '<text x="0" y="14" font-size="13" font-weight="bold" fill="currentColor">{t}</text>'
        ).format(w=width, h=height, t=title)
    ]
    for index, bar in enumerate(bars):
        y = 24 + index * row
        length = max(span * bar.value / top, 0.0)
        colour = "#c0392b" if bar.highlight else BAR_COLOUR
        parts.append(
            Markup(
                '<text x="0" y="{ty}" font-size="12" fill="currentColor">{label}</text>'
                '<rect x="{x}" y="{y}" width="{len:.1f}" height="{bh}" fill="{c}"></rect>'
                '<text x="{vx:.1f}" y="{ty}" font-size="12" fill="currentColor">{text}</text>'
            ).format(
                ty=y + row - pad - 6,
                label=bar.label[:MAX_LABEL],
                x=label_width,
                y=y + 2,
                len=length,
                bh=row - pad - 2,
                c=colour,
                vx=label_width + length + 4,
                text=bar.text,
            )
        )
    if not bars:
        parts.append(
            Markup('<text x="0" y="40" font-size="12" fill="currentColor">no data yet</text>')
        )
    parts.append(Markup("</svg>"))
    return Markup("").join(parts)


@dataclass(frozen=True)
class Series:
    name: str
    values: Sequence[float]


def line_chart(
    labels: Sequence[str],
    series: Sequence[Series],
    *,
    title: str,
    width: int = 640,
    height: int = 180,
) -> Markup:
    """Lines over days; each series on the same axis, its maximum labelled at the left."""
    left, right, top_pad, bottom = 40, 10, 34, 22
    plot_w = width - left - right
    plot_h = height - top_pad - bottom
    top = max((v for s in series for v in s.values), default=0.0) or 1.0
    count = max(len(labels), 1)
    step = plot_w / (count - 1) if count > 1 else 0.0

    def point(index: int, value: float) -> str:
        return f"{left + index * step:.1f},{top_pad + plot_h - plot_h * value / top:.1f}"

    parts = [
        Markup(
            '<svg class="p13n-chart" role="img" viewBox="0 0 {w} {h}" width="{w}" '
            'height="{h}" xmlns="http://www.w3.org/2000/svg"><title>{t}</title>'
            '<text x="0" y="14" font-size="13" font-weight="bold" fill="currentColor">{t}</text>'
            '<line x1="{l}" y1="{b}" x2="{r}" y2="{b}" stroke="#999"></line>'
            '<line x1="{l}" y1="{tp}" x2="{l}" y2="{b}" stroke="#999"></line>'
            '<text x="{lx}" y="{ty}" font-size="11" text-anchor="end" fill="currentColor">{top}</text>'
            '<text x="{lx}" y="{b}" font-size="11" text-anchor="end" fill="currentColor">0</text>'
        ).format(
            w=width,
            h=height,
            t=title,
            l=left,
            r=left + plot_w,
            b=top_pad + plot_h,
            tp=top_pad,
            lx=left - 4,
            ty=top_pad + 4,
            top=f"{top:g}",
        )
    ]
    for index, one in enumerate(series):
        colour = LINE_COLOURS[index % len(LINE_COLOURS)]
        points = " ".join(point(i, value) for i, value in enumerate(one.values))
        parts.append(
            Markup(
                '<polyline fill="none" stroke="{c}" stroke-width="2" points="{p}"></polyline>'
                '<text x="{x}" y="28" font-size="12" fill="{c}">{name}</text>'
            ).format(c=colour, p=points, x=left + 160 * index, name=one.name)
        )
    if labels:
        parts.append(
            Markup(
                '<text x="{l}" y="{y}" font-size="11" fill="currentColor">{first}</text>'
                '<text x="{r}" y="{y}" font-size="11" text-anchor="end" '
                'fill="currentColor">{last}</text>'
            ).format(l=left, r=left + plot_w, y=height - 4, first=labels[0], last=labels[-1])
        )
    parts.append(Markup("</svg>"))
    return Markup("").join(parts)
