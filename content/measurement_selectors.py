"""Reads for block results: exposure, clicks and attributed conversions, per arm and segment.

The attribution model (docs/measurement.md):

- An *exposure* is a ``block_impression`` or ``block_clicked`` event of the block
  (matched by ``block_id``, or by ``block_key`` for events that carry no id). Its
  *arm* is ``holdout`` when the visitor was held out, else its ``variant`` ("" for
  a block without variants).
- A conversion (``MEASUREMENT_CONVERSION_EVENTS``) is credited to an arm when the
  visitor had an exposure in that arm within ``MEASUREMENT_WINDOW_HOURS`` before
  it (exposure time <= conversion time <= exposure time + window). Every block and
  arm seen in the window gets the whole conversion (no splitting): per-block
  figures are each honest, but they do not add up across blocks.
- Rates are per visitor (a profile), so a visitor who saw a block twenty times and
  bought twice counts once in the conversion rate: double counting is bounded.
  Revenue sums each credited conversion once per arm.
- A segment row counts the exposures made while the visitor was a member of the
  segment (Membership history: entered_at <= exposure < exited_at), and the
  conversions that follow those exposures. Visitors in several segments appear
  in each of their rows.

Every figure is an aggregate query (SQLite and PostgreSQL); Python only loops
over the resulting groups.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from django.db import connection
from django.db.models import (
    CharField,
    Count,
    DateTimeField,
    ExpressionWrapper,
    F,
    FloatField,
    Func,
    Q,
    QuerySet,
    Value,
)
from django.db.models.expressions import Case, When
from django.db.models.fields.json import KT
from django.db.models.functions import Coalesce, TruncDate
from django.utils import timezone

from content.measurement import (
    CLICK_EVENT,
    HOLDOUT,
    IMPRESSION_EVENT,
    Lift,
    MeasurementConfig,
    compare_arms,
    measurement_config,
)
from content.models import Block
from personalize.models import Event
from segments.models import Segment

_PROPERTY_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")


class JsonNumber(Func):
    """A numeric key of a JSON column, NULL when absent or not a number
    (a string "12" or a boolean never reaches a SUM)."""

    output_field = FloatField()

    def __init__(self, field: str, key: str) -> None:
        if not _PROPERTY_NAME.match(key):
            raise ValueError(f"{key!r} is not a property name (letters, digits, _)")
        self.key = key
        super().__init__(F(field))

    def as_sqlite(
        self, compiler: Any, connection: Any, **extra: Any
    ) -> tuple[str, tuple[Any, ...]]:
        column, params = compiler.compile(self.source_expressions[0])
        path = f'$."{self.key}"'
        sql = (
            f"CASE WHEN json_type({column}, %s) IN ('integer', 'real') "
            f"THEN json_extract({column}, %s) END"
        )
        return sql, (*params, path, *params, path)

    def as_postgresql(
        self, compiler: Any, connection: Any, **extra: Any
    ) -> tuple[str, tuple[Any, ...]]:
        column, params = compiler.compile(self.source_expressions[0])
        sql = (
            f"CASE WHEN jsonb_typeof({column} -> %s) = 'number' "
            f"THEN ({column} ->> %s)::double precision END"
        )
        return sql, (*params, self.key, *params, self.key)


def _arm() -> Case:
    return Case(
        When(properties__holdout=True, then=Value(HOLDOUT)),
        # Absent or JSON null (our component sends null): the block has no variants.
        When(Q(properties__variant__isnull=True) | Q(properties__variant=None), then=Value("")),
        default=KT("properties__variant"),
        output_field=CharField(),
    )


def block_exposures(*, block: Block, since: datetime, until: datetime) -> QuerySet[Event]:
    """The block's impression and click events in [since, until), each with its arm."""
    return (
        Event.objects.filter(
            type=Event.Type.TRACK,
            name__in=(IMPRESSION_EVENT, CLICK_EVENT),
            timestamp__gte=since,
            timestamp__lt=until,
        )
        .filter(Q(properties__block_id=block.pk) | Q(properties__block_key=block.key))
        .annotate(arm=_arm())
    )


def _in_segment_at_exposure() -> Q:
    """The exposure's profile was a member of the joined segment at the exposure's time
    (one Q, so that both conditions apply to the same membership row)."""
    return Q(profile__memberships__entered_at__lte=F("timestamp")) & (
        Q(profile__memberships__exited_at__isnull=True)
        | Q(profile__memberships__exited_at__gt=F("timestamp"))
    )


def _credited_pairs(
    exposures: QuerySet[Event],
    *fields: str,
    since: datetime,
    until: datetime,
    config: MeasurementConfig,
    **dimensions: Any,
) -> QuerySet[Event, dict[str, Any]]:
    """Distinct (fields/dimensions..., conversion) pairs: each conversion of the period that
    came within the window after one of ``exposures`` of the same visitor. The join
    goes exposure -> profile -> the profile's conversion events, all in one filter()
    so that its conditions apply to the same conversion row."""
    conversion = "profile__events__"
    credited = Q(
        **{
            f"{conversion}type": Event.Type.TRACK,
            f"{conversion}name__in": config.conversion_events,
            f"{conversion}timestamp__lt": until,
        }
    ) & Q(**{f"{conversion}timestamp__gte": since})
    credited &= Q(**{f"{conversion}timestamp__gte": F("timestamp")}) & Q(
        **{
            f"{conversion}timestamp__lte": ExpressionWrapper(
                F("timestamp") + Value(config.window), output_field=DateTimeField()
            )
        }
    )
    return (
        exposures.filter(credited)
        .values(
            *fields,
            **dimensions,
            conversion_id=F(f"{conversion}id"),
            converter_id=F("profile_id"),
            revenue=JsonNumber(f"{conversion}properties", config.revenue_property),
        )
        .distinct()
        .order_by()
    )


def _sum_pairs(
    pairs: QuerySet[Event, dict[str, Any]], dimensions: tuple[str, ...]
) -> dict[tuple[Any, ...], dict[str, Any]]:
    """Per dimensions: conversions, converted visitors and revenue, counted over the
    distinct pairs (each conversion once per group, however many exposures led to it).
    The ORM cannot select FROM a subquery, so this outer level is SQL around the
    ORM's own SQL for the current database."""
    quote = connection.ops.quote_name
    inner, params = pairs.query.sql_with_params()
    columns = ", ".join(quote(name) for name in dimensions)
    select = f"{columns}, " if columns else ""
    group = f" GROUP BY {columns}" if columns else ""
    sql = (
        f"SELECT {select}COUNT(*), COUNT(DISTINCT {quote('converter_id')}), "
        f"SUM({quote('revenue')}) FROM ({inner}) pairs{group}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    width = len(dimensions)
    return {
        tuple(row[:width]): {
            "conversions": row[width] or 0,
            "converters": row[width + 1] or 0,
            "revenue": float(row[width + 2] or 0.0),
        }
        for row in rows
    }


NO_CONVERSIONS = {"conversions": 0, "converters": 0, "revenue": 0.0}


@dataclass(frozen=True)
class Metrics:
    visitors: int = 0
    impressions: int = 0
    clicks: int = 0
    clickers: int = 0
    converters: int = 0
    conversions: int = 0
    revenue: float = 0.0

    @property
    def ctr(self) -> float | None:
        """Clicks per impression."""
        return self.clicks / self.impressions if self.impressions else None

    @property
    def click_rate(self) -> float | None:
        """Visitors who clicked, per exposed visitor (what click lift compares)."""
        return self.clickers / self.visitors if self.visitors else None

    @property
    def conversion_rate(self) -> float | None:
        return self.converters / self.visitors if self.visitors else None

    @property
    def revenue_per_visitor(self) -> float | None:
        return self.revenue / self.visitors if self.visitors else None


@dataclass(frozen=True)
class ArmResult:
    arm: str
    metrics: Metrics


@dataclass(frozen=True)
class SegmentResult:
    segment_id: int
    segment_name: str
    arm: str
    metrics: Metrics


@dataclass(frozen=True)
class DailyPoint:
    day: date
    impressions: int
    conversions: int


@dataclass(frozen=True)
class BlockResults:
    block_id: int
    block_key: str
    since: datetime
    until: datetime
    window: timedelta
    total: Metrics
    arms: list[ArmResult]
    control: str | None
    lifts: list[Lift]
    segments: list[SegmentResult]
    daily: list[DailyPoint]
    impressions_by_via: dict[str, int] = field(default_factory=dict)


def _exposure_counts(exposures: QuerySet[Event], *group: str) -> list[dict[str, Any]]:
    return list(
        exposures.values(*group)
        .annotate(
            visitors=Count("profile_id", distinct=True),
            impressions=Count("id", filter=Q(name=IMPRESSION_EVENT)),
            clicks=Count("id", filter=Q(name=CLICK_EVENT)),
            clickers=Count("profile_id", filter=Q(name=CLICK_EVENT), distinct=True),
        )
        .order_by(*group)
    )


def _metrics(exposure: dict[str, Any], converted: dict[str, Any]) -> Metrics:
    return Metrics(
        visitors=exposure["visitors"],
        impressions=exposure["impressions"],
        clicks=exposure["clicks"],
        clickers=exposure["clickers"],
        converters=converted["converters"],
        conversions=converted["conversions"],
        revenue=converted["revenue"],
    )


def choose_control(arms: list[ArmResult]) -> str | None:
    """The holdout if there is one; else the plain block (""); else the arm most
    visitors saw (ties: the first by name)."""
    names = {result.arm for result in arms}
    if len(names) < 2:
        return None
    if HOLDOUT in names:
        return HOLDOUT
    if "" in names:
        return ""
    return sorted(arms, key=lambda result: (-result.metrics.visitors, result.arm))[0].arm


def lifts_against_control(
    arms: list[ArmResult], control: str | None, *, min_visitors: int
) -> list[Lift]:
    if control is None:
        return []
    base = next(result.metrics for result in arms if result.arm == control)
    lifts = []
    for result in arms:
        if result.arm == control:
            continue
        for metric, successes, control_successes in (
            ("conversion", result.metrics.converters, base.converters),
            ("click", result.metrics.clickers, base.clickers),
        ):
            lifts.append(
                compare_arms(
                    metric=metric,
                    arm=result.arm,
                    control=control,
                    successes=successes,
                    visitors=result.metrics.visitors,
                    control_successes=control_successes,
                    control_visitors=base.visitors,
                    min_visitors=min_visitors,
                )
            )
    return lifts


def _daily(
    exposures: QuerySet[Event], config: MeasurementConfig, since: datetime, until: datetime
) -> list[DailyPoint]:
    shown = dict(
        exposures.filter(name=IMPRESSION_EVENT)
        .annotate(day=TruncDate("timestamp"))
        .values("day")
        .annotate(n=Count("id"))
        .order_by()
        .values_list("day", "n")
    )
    converted = {
        _as_date(key[0]): counts["conversions"]
        for key, counts in _sum_pairs(
            _credited_pairs(
                exposures,
                since=since,
                until=until,
                config=config,
                day=TruncDate("profile__events__timestamp"),
            ),
            ("day",),
        ).items()
    }
    first = timezone.localdate(since)
    last = timezone.localdate(until - timedelta(microseconds=1))
    days = [first + timedelta(days=offset) for offset in range((last - first).days + 1)]
    return [DailyPoint(day, shown.get(day, 0), converted.get(day, 0)) for day in days]


def _as_date(value: date | str) -> date:
    # Raw cursors skip Django's converters: SQLite hands dates back as text.
    return value if isinstance(value, date) else date.fromisoformat(value)


def block_results(
    *,
    block: Block,
    since: datetime,
    until: datetime | None = None,
    config: MeasurementConfig | None = None,
) -> BlockResults:
    """Everything the results page shows for one block, in a handful of queries."""
    config = config or measurement_config()
    until = until or timezone.now()
    exposures = block_exposures(block=block, since=since, until=until)
    # Both exposures and conversions come from the period: an exposure before
    # ``since`` is not part of this report, so neither is what it led to.
    by_arm = _exposure_counts(exposures, "arm")
    in_segments = exposures.filter(_in_segment_at_exposure()).annotate(
        segment_id=F("profile__memberships__segment_id")
    )
    segment_rows = _exposure_counts(in_segments, "segment_id", "arm")

    def credited(queryset: QuerySet[Event], *fields: str) -> dict[tuple[Any, ...], dict[str, Any]]:
        pairs = _credited_pairs(queryset, *fields, since=since, until=until, config=config)
        return _sum_pairs(pairs, fields)

    converted_total = credited(exposures).get((), NO_CONVERSIONS)
    converted_by_arm = credited(exposures, "arm")
    converted_by_segment = credited(in_segments, "segment_id", "arm")

    total_exposure = exposures.aggregate(
        visitors=Count("profile_id", distinct=True),
        impressions=Count("id", filter=Q(name=IMPRESSION_EVENT)),
        clicks=Count("id", filter=Q(name=CLICK_EVENT)),
        clickers=Count("profile_id", filter=Q(name=CLICK_EVENT), distinct=True),
    )
    arms = [
        ArmResult(
            arm=row["arm"],
            metrics=_metrics(row, converted_by_arm.get((row["arm"],), NO_CONVERSIONS)),
        )
        for row in by_arm
    ]
    names = dict(
        Segment.objects.filter(id__in={row["segment_id"] for row in segment_rows}).values_list(
            "id", "name"
        )
    )
    segments = sorted(
        (
            SegmentResult(
                segment_id=row["segment_id"],
                segment_name=names.get(row["segment_id"], "?"),
                arm=row["arm"],
                metrics=_metrics(
                    row,
                    converted_by_segment.get((row["segment_id"], row["arm"]), NO_CONVERSIONS),
                ),
            )
            for row in segment_rows
        ),
        key=lambda result: (result.segment_name, result.arm),
    )
    by_via = dict(
        exposures.filter(name=IMPRESSION_EVENT)
        .annotate(
            via=Coalesce(KT("properties__via"), Value("unspecified"), output_field=CharField())
        )
        .values("via")
        .annotate(n=Count("id"))
        .values_list("via", "n")
    )
    control = choose_control(arms)
    return BlockResults(
        block_id=block.pk,
        block_key=block.key,
        since=since,
        until=until,
        window=config.window,
        total=_metrics(total_exposure, converted_total),
        arms=arms,
        control=control,
        lifts=lifts_against_control(arms, control, min_visitors=config.min_visitors),
        segments=segments,
        daily=_daily(exposures, config, since, until),
        impressions_by_via=by_via,
    )
