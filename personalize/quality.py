"""Data quality: counters per source, hour and event name; the report; volume alerts.

What is counted (per source, hour of receipt, event name):

- ``received``: every message that reached ingestion, rejected ones included;
- ``stored``: new events written; ``duplicates``: messages dropped because their
  messageId was already stored (a client retry) or came twice in one batch;
- ``rejected``: messages quarantined (invalid, or blocked by the tracking plan);
- ``flagged``: events stored with tracking-plan violations (flag mode);
- ``late``: stored events that arrived out of order (an event of the same profile
  with a later timestamp was already stored by an earlier request) or that were
  received more than ``P13N_LATE_EVENT_SECONDS`` after their timestamp;
- missing fields, per field name: fields the tracking plan requires that a message
  lacked (``properties.sku``), and the fields Segment's clients always send
  (``messageId``, ``timestamp``, ``context``) when a message came without them.

Counters are written once per batch with one atomic upsert per table
(``INSERT ... ON CONFLICT DO UPDATE SET n = n + excluded.n``, on PostgreSQL and
SQLite alike), in key order so concurrent batches lock rows in the same order.
"""

from __future__ import annotations

import json
import logging
import re
import statistics
import urllib.error
import urllib.request
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.mail import send_mail
from django.db import DatabaseError, IntegrityError, connection, models, transaction
from django.db.models import Count, Max, Sum
from django.utils import timezone

from personalize.models import (
    Event,
    MissingFieldCount,
    QualityAlert,
    QualityCount,
    RejectedEvent,
    Source,
)
from personalize.tracking import EXPECTED_FIELDS, TrackedMessage

logger = logging.getLogger(__name__)

COUNTERS = ("received", "stored", "duplicates", "rejected", "flagged", "late")
UPSERT_CHUNK = 500

CounterKey = tuple[int, datetime, str]
MissingKey = tuple[int, datetime, str, str]


def hour_of(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


# --- counting -----------------------------------------------------------------------------


def _late_indexes(
    *,
    messages: Sequence[TrackedMessage],
    stored_indexes: Sequence[int],
    profile_ids: Sequence[int],
    received_at: datetime,
) -> set[int]:
    threshold = timedelta(seconds=settings.P13N_LATE_EVENT_SECONDS)
    late = {
        i
        for i in stored_indexes
        if messages[i].timestamp is not None and received_at - messages[i].timestamp > threshold  # type: ignore[operator]
    }
    on_time = [i for i in stored_indexes if i not in late]
    if not on_time:
        return late
    latest_before = dict(
        Event.objects.filter(
            profile_id__in={profile_ids[i] for i in on_time}, received_at__lt=received_at
        )
        .values("profile_id")
        .annotate(latest=Max("timestamp"))
        .values_list("profile_id", "latest")
    )
    # Reordered by less than this is not late: the clock correction of each batch
    # (receivedAt - (sentAt - timestamp)) shifts it by that batch's network delay,
    # so a client's consecutive batches overlap by milliseconds.
    reorder = timedelta(seconds=settings.P13N_LATE_EVENT_REORDER_SECONDS)
    for index in on_time:
        latest = latest_before.get(profile_ids[index])
        timestamp = messages[index].timestamp or received_at
        if latest is not None and timestamp < latest - reorder:
            late.add(index)
    return late


def record_ingest(
    *,
    source: Source,
    messages: Sequence[TrackedMessage],
    duplicate_indexes: Sequence[int],
    profile_ids: Sequence[int],
    received_at: datetime,
) -> None:
    """Count one ingested batch (called once by ``ingest_messages`` after it stores).

    ``profile_ids`` holds each message's profile, in batch order."""
    if not messages:
        return
    duplicates = set(duplicate_indexes)
    stored = [i for i in range(len(messages)) if i not in duplicates]
    late = _late_indexes(
        messages=messages, stored_indexes=stored, profile_ids=profile_ids, received_at=received_at
    )
    hour = hour_of(received_at)
    counts: dict[CounterKey, Counter[str]] = defaultdict(Counter)
    missing: Counter[MissingKey] = Counter()
    for index, message in enumerate(messages):
        key = (source.pk, hour, message.name)
        counts[key]["received"] += 1
        if index in duplicates:
            counts[key]["duplicates"] += 1
            continue
        counts[key]["stored"] += 1
        counts[key]["flagged"] += bool(message.violations)
        counts[key]["late"] += index in late
        for name in message.absent_fields:
            missing[(*key, name)] += 1
        for violation in message.violations:
            if violation.rule == "required":
                missing[(*key, violation.field)] += 1
    _save_counts(counts, missing)


def _save_counts(
    counts: Mapping[CounterKey, Counter[str]], missing: Mapping[MissingKey, int]
) -> None:
    # Counting must never fail an ingestion whose events are already stored: a
    # savepoint keeps a caller's transaction usable if the upsert fails.
    try:
        with transaction.atomic():
            _upsert_counts(counts)
            _upsert_missing(missing)
    except DatabaseError:
        logger.exception("data-quality counters not updated")


def record_rejections(
    *, source: Source, rows: Sequence[RejectedEvent], received_at: datetime
) -> None:
    """Count one batch's quarantined messages (called by ``quarantine``)."""
    if not rows:
        return
    hour = hour_of(received_at)
    counts: dict[CounterKey, Counter[str]] = defaultdict(Counter)
    missing: Counter[MissingKey] = Counter()
    for row in rows:
        key = (source.pk, hour, row.event_name)
        counts[key]["received"] += 1
        counts[key]["rejected"] += 1
        payload = row.payload if isinstance(row.payload, dict) else {}
        for name in EXPECTED_FIELDS:
            if not payload.get(name):
                missing[(*key, name)] += 1
        for violation in row.violations:
            if violation.get("rule") == "required":
                missing[(*key, violation["field"])] += 1
    _save_counts(counts, missing)


def _upsert(
    model: type[models.Model],
    key_fields: Sequence[str],
    sum_fields: Sequence[str],
    rows: list[tuple[Any, ...]],
) -> None:
    """``INSERT ... ON CONFLICT (key) DO UPDATE SET n = n + excluded.n`` in chunks."""
    if not rows:
        return
    meta = model._meta
    quote = connection.ops.quote_name
    table = quote(meta.db_table)
    key_columns = [_column(model, name) for name in key_fields]
    sum_columns = [_column(model, name) for name in sum_fields]
    columns = [quote(c) for c in (*key_columns, *sum_columns)]
    updates = ", ".join(f"{q} = {table}.{q} + excluded.{q}" for q in map(quote, sum_columns))
    placeholders = "(" + ", ".join(["%s"] * len(columns)) + ")"
    conflict = ", ".join(quote(c) for c in key_columns)
    rows.sort(key=lambda row: row[: len(key_fields)])
    with connection.cursor() as cursor:
        for start in range(0, len(rows), UPSERT_CHUNK):
            chunk = rows[start : start + UPSERT_CHUNK]
            sql = (
                f"INSERT INTO {table} ({', '.join(columns)}) "
                f"VALUES {', '.join([placeholders] * len(chunk))} "
                f"ON CONFLICT ({conflict}) DO UPDATE SET {updates}"
            )
            cursor.execute(sql, [value for row in chunk for value in row])


def _column(model: type[models.Model], name: str) -> str:
    model_field = model._meta.get_field(name)
    assert isinstance(model_field, models.Field)
    return str(model_field.column)


def _db_hour(hour: datetime) -> Any:
    return connection.ops.adapt_datetimefield_value(hour)


def _upsert_counts(counts: Mapping[CounterKey, Counter[str]]) -> None:
    rows = [
        (source_id, _db_hour(hour), name[:255], *(counter[c] for c in COUNTERS))
        for (source_id, hour, name), counter in counts.items()
    ]
    _upsert(QualityCount, ("source", "hour", "event_name"), COUNTERS, rows)


def _upsert_missing(missing: Mapping[MissingKey, int]) -> None:
    rows = [
        (source_id, _db_hour(hour), name[:255], field_name[:255], n)
        for (source_id, hour, name, field_name), n in missing.items()
    ]
    _upsert(MissingFieldCount, ("source", "hour", "event_name", "field"), ("count",), rows)


# --- the report ----------------------------------------------------------------------------

_DURATION = re.compile(r"^\s*(\d+)\s*([mhd])\s*$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days"}


def parse_period(text: str) -> timedelta:
    """``"24h"``, ``"7d"``, ``"90m"`` as a timedelta; ValueError names the expected form."""
    match = _DURATION.match(text)
    if match is None or int(match.group(1)) == 0:
        raise ValueError(f"{text!r} is not a period like 24h, 7d or 90m")
    return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


@dataclass
class RejectReason:
    field: str
    reason: str
    count: int


@dataclass
class EventQuality:
    source: str
    event_name: str
    received: int = 0
    stored: int = 0
    duplicates: int = 0
    rejected: int = 0
    flagged: int = 0
    late: int = 0
    missing: dict[str, int] = field(default_factory=dict)
    rejects_by_reason: list[RejectReason] = field(default_factory=list)

    @property
    def reject_rate(self) -> float:
        return self.rejected / self.received if self.received else 0.0


@dataclass
class AlertSummary:
    source: str
    kind: str
    opened_at: datetime
    resolved_at: datetime | None
    message: str


@dataclass
class QualityReport:
    since: datetime
    until: datetime
    rows: list[EventQuality]
    alerts: list[AlertSummary]

    def as_json(self) -> dict[str, Any]:
        def plain(value: Any) -> Any:
            return value.isoformat() if isinstance(value, datetime) else value

        return {
            "since": self.since.isoformat(),
            "until": self.until.isoformat(),
            "rows": [asdict(row) | {"reject_rate": round(row.reject_rate, 4)} for row in self.rows],
            "alerts": [{k: plain(v) for k, v in asdict(a).items()} for a in self.alerts],
        }


def quality_report(
    *,
    since: datetime,
    until: datetime | None = None,
    source_name: str | None = None,
    reasons_per_event: int = 10,
    alerts: int = 20,
) -> QualityReport:
    """Counts per source and event name for the hours from ``since`` (floored to the hour)."""
    until = until or timezone.now()
    start = hour_of(since)
    counts = QualityCount.objects.filter(hour__gte=start, hour__lt=until)
    missing = MissingFieldCount.objects.filter(hour__gte=start, hour__lt=until)
    rejects = RejectedEvent.objects.filter(received_at__gte=start, received_at__lt=until)
    recent_alerts = QualityAlert.objects.select_related("source")
    if source_name is not None:
        counts = counts.filter(source__name=source_name)
        missing = missing.filter(source__name=source_name)
        rejects = rejects.filter(source__name=source_name)
        recent_alerts = recent_alerts.filter(source__name=source_name)

    rows: dict[tuple[str, str], EventQuality] = {}
    for total in (
        counts.values("source__name", "event_name")
        .annotate(**{c: Sum(c) for c in COUNTERS})
        .order_by("source__name", "event_name")
    ):
        key = (total["source__name"], total["event_name"])
        row = rows[key] = EventQuality(source=key[0], event_name=key[1])
        for counter in COUNTERS:
            setattr(row, counter, total[counter] or 0)  # type: ignore[literal-required]
    for gap in (
        missing.values("source__name", "event_name", "field")
        .annotate(n=Sum("count"))
        .order_by("source__name", "event_name", "-n", "field")
    ):
        key = (gap["source__name"], gap["event_name"])
        row = rows.setdefault(key, EventQuality(source=key[0], event_name=key[1]))
        row.missing[gap["field"]] = gap["n"]
    for group in (
        rejects.values("source__name", "event_name", "field", "reason")
        .annotate(n=Count("id"))
        .order_by("source__name", "event_name", "-n", "field", "reason")
    ):
        key = (group["source__name"], group["event_name"])
        row = rows.setdefault(key, EventQuality(source=key[0], event_name=key[1]))
        if len(row.rejects_by_reason) < reasons_per_event:
            row.rejects_by_reason.append(
                RejectReason(field=group["field"], reason=group["reason"], count=group["n"])
            )
    return QualityReport(
        since=start,
        until=until,
        rows=[rows[key] for key in sorted(rows)],
        alerts=[
            AlertSummary(
                source=a.source.name,
                kind=a.get_kind_display(),
                opened_at=a.opened_at,
                resolved_at=a.resolved_at,
                message=a.message,
            )
            for a in recent_alerts[:alerts]
        ],
    )


def format_table(report: QualityReport) -> str:
    header = ("source", "event", "received", "stored", "dup", "rejected", "flagged", "late")
    lines = [[*header, "missing fields"]]
    for row in report.rows:
        lines.append(
            [
                row.source,
                row.event_name or "(none)",
                *(str(getattr(row, c)) for c in COUNTERS),
                ", ".join(f"{name}={n}" for name, n in row.missing.items()),
            ]
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    out = [f"Data quality {report.since:%Y-%m-%d %H:%M} to {report.until:%Y-%m-%d %H:%M} UTC"]
    for line in lines:
        out.append(
            "  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=False))
            + "  "
            + line[-1]
        )
    rejects = [(row, r) for row in report.rows for r in row.rejects_by_reason]
    if rejects:
        out.append("")
        out.append("Rejects by reason")
        for row, r in rejects:
            out.append(
                f"  {row.source} / {row.event_name or '(none)'}: {r.count} × {r.field}: {r.reason}"
            )
    if report.alerts:
        out.append("")
        out.append("Recent alerts")
        for a in report.alerts:
            state = f"resolved {a.resolved_at:%Y-%m-%d %H:%M}" if a.resolved_at else "open"
            out.append(f"  {a.opened_at:%Y-%m-%d %H:%M} {a.source} {a.kind} ({state}): {a.message}")
    return "\n".join(out)


# --- alerts --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Window:
    received: int
    rejected: int


@dataclass(frozen=True)
class Departure:
    """What the last window showed against the recent normal; ``held`` is None when
    the data cannot tell (too little volume or history) and open alerts stay as they are."""

    kind: str
    held: bool | None
    observed: float = 0.0
    expected: float = 0.0
    message: str = ""


def _volume_departures(source: str, current: Window, baseline: Sequence[Window]) -> list[Departure]:
    drop, spike = QualityAlert.Kind.VOLUME_DROP.value, QualityAlert.Kind.VOLUME_SPIKE.value
    volumes = [w.received for w in baseline]
    if sum(1 for v in volumes if v) < settings.P13N_QUALITY_MIN_BASELINE_WINDOWS:
        return [Departure(drop, None), Departure(spike, None)]
    mean = statistics.fmean(volumes)
    spread = settings.P13N_QUALITY_STDDEVS * statistics.pstdev(volumes)
    observed = current.received
    minimum = settings.P13N_QUALITY_MIN_VOLUME
    dropped = (
        mean >= minimum
        and observed < mean * settings.P13N_QUALITY_DROP_RATIO
        and observed < mean - spread
    )
    spiked = (
        observed >= minimum
        and observed > mean * settings.P13N_QUALITY_SPIKE_RATIO
        and observed > mean + spread
    )
    return [
        Departure(
            drop,
            dropped,
            observed,
            mean,
            f"{source}: {observed} events in the last window, against {mean:.0f} usually "
            f"(σ {statistics.pstdev(volumes):.0f}).",
        ),
        Departure(
            spike,
            spiked,
            observed,
            mean,
            f"{source}: {observed} events in the last window, against {mean:.0f} usually "
            f"(σ {statistics.pstdev(volumes):.0f}).",
        ),
    ]


def _reject_departure(source: str, current: Window, baseline: Sequence[Window]) -> Departure:
    kind = QualityAlert.Kind.REJECT_RATE.value
    if current.received < settings.P13N_QUALITY_MIN_VOLUME:
        return Departure(kind, None)
    received = sum(w.received for w in baseline)
    usual = sum(w.rejected for w in baseline) / received if received else 0.0
    rate = current.rejected / current.received
    return Departure(
        kind,
        rate - usual >= settings.P13N_QUALITY_REJECT_RATE_RISE,
        rate,
        usual,
        f"{source}: {rate:.1%} of {current.received} messages rejected in the last window, "
        f"against {usual:.1%} usually.",
    )


def _windows(
    *, window_start: datetime, window: timedelta, days: int
) -> tuple[dict[int, Window], dict[int, list[Window]]]:
    """Each source's last window and the same window on each of the previous ``days`` days."""
    starts = [window_start - timedelta(days=d) for d in range(days + 1)]
    sums: dict[tuple[int, int], list[int]] = defaultdict(lambda: [0, 0])
    for row in QualityCount.objects.filter(
        hour__gte=starts[-1], hour__lt=window_start + window
    ).values_list("source_id", "hour", "received", "rejected"):
        source_id, hour, received, rejected = row
        for day, start in enumerate(starts):
            if start <= hour < start + window:
                totals = sums[(source_id, day)]
                totals[0] += received
                totals[1] += rejected
    source_ids = {source_id for source_id, _ in sums}
    current = {s: Window(*sums.get((s, 0), [0, 0])) for s in source_ids}
    baseline = {
        s: [Window(*sums.get((s, d), [0, 0])) for d in range(1, days + 1)] for s in source_ids
    }
    return current, baseline


def evaluate_alerts(*, now: datetime | None = None) -> list[QualityAlert]:
    """Open an alert for each new departure and resolve the ones that recovered.

    Compares each enabled source's last complete window (``P13N_QUALITY_WINDOW_HOURS``)
    with the same window on each of the previous ``P13N_QUALITY_BASELINE_DAYS`` days.
    Returns the alerts opened now; a condition already open is not alerted again.
    """
    now = now or timezone.now()
    window = timedelta(hours=settings.P13N_QUALITY_WINDOW_HOURS)
    window_end = hour_of(now)
    window_start = window_end - window
    current, baseline = _windows(
        window_start=window_start, window=window, days=settings.P13N_QUALITY_BASELINE_DAYS
    )
    sources = {s.pk: s for s in Source.objects.filter(enabled=True, pk__in=list(current))}
    opened: list[QualityAlert] = []
    for source_id, source in sorted(sources.items()):
        departures = [
            *_volume_departures(source.name, current[source_id], baseline[source_id]),
            _reject_departure(source.name, current[source_id], baseline[source_id]),
        ]
        for departure in departures:
            if departure.held is None:
                continue
            still_open = QualityAlert.objects.filter(
                source=source, kind=departure.kind, resolved_at__isnull=True
            )
            if not departure.held:
                still_open.update(resolved_at=now)
                continue
            if still_open.exists():
                continue
            try:
                with transaction.atomic():
                    opened.append(
                        QualityAlert.objects.create(
                            source=source,
                            kind=departure.kind,
                            opened_at=now,
                            window_start=window_start,
                            window_end=window_end,
                            observed=departure.observed,
                            expected=departure.expected,
                            message=departure.message,
                        )
                    )
            except IntegrityError:
                # Another evaluation opened the same alert at the same moment.
                continue
    return opened


def alert_payload(alert: QualityAlert) -> dict[str, Any]:
    return {
        "source": alert.source.name,
        "kind": alert.kind,
        "message": alert.message,
        "observed": alert.observed,
        "expected": alert.expected,
        "window_start": alert.window_start.isoformat(),
        "window_end": alert.window_end.isoformat(),
        "opened_at": alert.opened_at.isoformat(),
    }


def notify_alert(*, alert_id: int, now: datetime | None = None) -> bool:
    """Send one alert by email and webhook, once: the alert is claimed before sending."""
    now = now or timezone.now()
    if not QualityAlert.objects.filter(pk=alert_id, notified_at__isnull=True).update(
        notified_at=now
    ):
        return False
    alert = QualityAlert.objects.select_related("source").get(pk=alert_id)
    errors = []
    recipients: list[str] = settings.P13N_QUALITY_ALERT_EMAILS
    if recipients:
        try:
            send_mail(
                subject=f"[p13n] {alert.get_kind_display()} on source {alert.source.name}",
                message=alert.message,
                from_email=None,
                recipient_list=recipients,
            )
        except OSError as exc:
            errors.append(f"email: {exc}")
    url: str = settings.P13N_QUALITY_ALERT_WEBHOOK_URL
    if url:
        request = urllib.request.Request(
            url,
            data=json.dumps(alert_payload(alert)).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(
                request, timeout=settings.P13N_QUALITY_WEBHOOK_TIMEOUT
            ) as response:
                response.read()
        except (urllib.error.URLError, OSError) as exc:
            errors.append(f"webhook: {exc}")
    if errors:
        logger.warning("quality alert %s: %s", alert_id, "; ".join(errors))
        QualityAlert.objects.filter(pk=alert_id).update(notification_errors="\n".join(errors))
    return True


def check_alerts(*, now: datetime | None = None) -> int:
    """The periodic job: evaluate, then notify each newly opened alert."""
    opened = evaluate_alerts(now=now)
    for alert in opened:
        notify_alert(alert_id=alert.pk, now=now)
    return len(opened)
