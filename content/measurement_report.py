"""Block results shaped for people: table rows, charts and the command's text."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta

from markupsafe import Markup

from content.charts import Bar, Series, bar_chart, line_chart
from content.measurement import HOLDOUT
from content.measurement_selectors import BlockResults, Metrics

COLUMNS = (
    "visitors",
    "impressions",
    "clicks",
    "CTR",
    "converted",
    "conversion rate",
    "revenue",
    "revenue / visitor",
)
_PERIOD = re.compile(r"^(\d{1,4})([hdw])$")
_UNITS = {"h": "hours", "d": "days", "w": "weeks"}
MAX_PERIOD = timedelta(days=366)


class InvalidPeriod(ValueError):
    pass


def parse_period(text: str) -> timedelta:
    """``30d``, ``12h`` or ``2w``: how far back results go (at most a year)."""
    match = _PERIOD.match(text.strip())
    if match is None:
        raise InvalidPeriod(f"{text[:20]!r} is not a period like 30d, 12h or 2w")
    period = timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
    if not timedelta(0) < period <= MAX_PERIOD:
        raise InvalidPeriod(f"{text!r}: a period is from 1h to 366d")
    return period


def percent(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.1f}%"


def money(value: float | None) -> str:
    return "—" if value is None else f"{value:,.2f}"


def metric_cells(metrics: Metrics) -> list[str]:
    return [
        str(metrics.visitors),
        str(metrics.impressions),
        str(metrics.clicks),
        percent(metrics.ctr),
        str(metrics.converters),
        percent(metrics.conversion_rate),
        money(metrics.revenue),
        money(metrics.revenue_per_visitor),
    ]


def arm_name(arm: str) -> str:
    """How an arm is named in tables: "holdout", "b", or "(no variant)"."""
    return arm if arm else "(no variant)"


@dataclass(frozen=True)
class Row:
    label: str
    cells: list[str]
    note: str = ""


@dataclass(frozen=True)
class LiftRow:
    metric: str
    comparison: str
    rates: str
    relative: str
    verdict: str
    significant: bool


@dataclass(frozen=True)
class ResultsPage:
    totals: Row
    arms: list[Row]
    lifts: list[LiftRow]
    segments: list[Row]
    vias: list[tuple[str, int]]
    charts: list[Markup]


def results_page(results: BlockResults) -> ResultsPage:
    arms = [
        Row(
            label=arm_name(arm.arm),
            cells=metric_cells(arm.metrics),
            note="control" if arm.arm == results.control else "",
        )
        for arm in results.arms
    ]
    lifts = [
        LiftRow(
            metric="conversion rate" if lift.metric == "conversion" else "visitors who clicked",
            comparison=f"{arm_name(lift.arm)} vs {arm_name(lift.control)}",
            rates=f"{percent(lift.arm_rate)} vs {percent(lift.control_rate)}",
            relative="—" if lift.relative is None else f"{lift.relative * 100:+.1f}%",
            verdict=lift.verdict,
            significant=lift.significant,
        )
        for lift in results.lifts
    ]
    segments = [
        Row(label=f"{row.segment_name} · {arm_name(row.arm)}", cells=metric_cells(row.metrics))
        for row in results.segments
    ]
    charts = [
        bar_chart(
            [
                Bar(
                    arm_name(a.arm),
                    a.metrics.conversion_rate or 0.0,
                    percent(a.metrics.conversion_rate),
                    a.arm == HOLDOUT,
                )
                for a in results.arms
            ],
            title="Conversion rate by variant",
        ),
        bar_chart(
            [
                Bar(arm_name(a.arm), a.metrics.ctr or 0.0, percent(a.metrics.ctr), a.arm == HOLDOUT)
                for a in results.arms
            ],
            title="CTR by variant",
        ),
        bar_chart(
            [
                Bar(
                    f"{row.segment_name} · {arm_name(row.arm)}",
                    row.metrics.conversion_rate or 0.0,
                    percent(row.metrics.conversion_rate),
                )
                for row in results.segments
            ],
            title="Conversion rate by segment",
        ),
    ]
    days = [point.day.strftime("%b %d") for point in results.daily]
    charts.append(
        line_chart(
            days,
            [Series("impressions", [p.impressions for p in results.daily])],
            title="Impressions per day",
        )
    )
    charts.append(
        line_chart(
            days,
            [Series("credited conversions", [p.conversions for p in results.daily])],
            title="Conversions per day",
        )
    )
    return ResultsPage(
        totals=Row(label="all visitors", cells=metric_cells(results.total)),
        arms=arms,
        lifts=lifts,
        segments=segments,
        vias=sorted(results.impressions_by_via.items()),
        charts=charts,
    )


def _table(title: str, rows: list[Row]) -> list[str]:
    header = ["", *COLUMNS]
    body = [[row.label + (f" ({row.note})" if row.note else ""), *row.cells] for row in rows]
    widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]
    lines = [title]
    for line in [header, *body]:
        lines.append(
            "  ".join(
                cell.ljust(widths[i]) if i == 0 else cell.rjust(widths[i])
                for i, cell in enumerate(line)
            )
        )
    return lines


def text_report(results: BlockResults, *, title: str) -> str:
    page = results_page(results)
    hours = int(results.window.total_seconds() // 3600)
    lines = [
        f"{results.block_key}: {title}",
        f"{results.since:%Y-%m-%d %H:%M} to {results.until:%Y-%m-%d %H:%M} UTC, "
        f"conversions credited within {hours} h of an exposure",
        "",
        *_table("by variant", [page.totals, *page.arms]),
    ]
    if page.lifts:
        lines += ["", "lift"]
        lines += [
            f"  {lift.metric}, {lift.comparison} ({lift.rates}): {lift.verdict}"
            for lift in page.lifts
        ]
    if page.segments:
        lines += ["", *_table("by segment at exposure", page.segments)]
    if page.vias:
        lines += ["", "impressions by channel: " + ", ".join(f"{v} {n}" for v, n in page.vias)]
    return "\n".join(lines)
