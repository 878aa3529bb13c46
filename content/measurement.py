"""Measuring blocks: recording what the server showed, and judging variants.

Impressions and clicks are ordinary track events (``block_impression``,
``block_clicked``) with the properties ``block_id``, ``block_key``, ``slot``,
``variant`` ("" when the block has none), ``holdout`` (the visitor was held out
and saw the default instead) and ``via`` (``ssr``, ``api``, ``live``,
``component``). The front-end component sends them through the tracking API;
this module writes the ones the server itself delivers (page slots, the block
API), one INSERT per request.

Why the events table and not a table of our own: every impression, whatever
channel it came from, is then read by one query; erasure, retention and profile
merges already apply to events; a segment may read impressions (frequency caps).
Why not ``ingest_messages``: it resolves identities, rebuilds sessions and
updates ``last_seen_at`` for every call (a dozen queries), which a page view must
not pay, and impressions are the server's own record of what it sent, not the
visitor's activity. So the rows are bulk-inserted directly, with fresh message
ids, for a profile the request already knows. A visitor with no profile yet (no
event ever: a first visit, or a crawler) is not recorded by the server: reads
never create profiles, and a real browser's first paint is reported by the
component once seen.

The statistics (lift and its verdict) are pure functions at the end.
"""

from __future__ import annotations

import atexit
import logging
import math
import threading
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from scipy.stats import binomtest  # type: ignore[import-untyped]

from personalize.models import Event, Profile

logger = logging.getLogger(__name__)

IMPRESSION_EVENT = "block_impression"
CLICK_EVENT = "block_clicked"
VIAS = ("ssr", "api", "live", "component")
# The arm name of visitors held out of a block (they saw the slot's default).
HOLDOUT = "holdout"
_BUFFER = "_p13n_impressions"


@dataclass(frozen=True)
class MeasurementConfig:
    conversion_events: tuple[str, ...]
    revenue_property: str
    window: timedelta
    min_visitors: int


def measurement_config() -> MeasurementConfig:
    return MeasurementConfig(
        conversion_events=tuple(settings.MEASUREMENT_CONVERSION_EVENTS),
        revenue_property=settings.MEASUREMENT_REVENUE_PROPERTY,
        window=timedelta(hours=settings.MEASUREMENT_WINDOW_HOURS),
        min_visitors=settings.MEASUREMENT_MIN_VISITORS,
    )


# --- recording ------------------------------------------------------------------------


class ShownBlock(Protocol):
    """What recording needs of a rendered block (content.selectors.RenderedBlock)."""

    @property
    def id(self) -> int: ...
    @property
    def key(self) -> str: ...
    @property
    def slot(self) -> str: ...


@dataclass(frozen=True)
class Impression:
    block_id: int
    block_key: str
    slot: str
    variant: str
    holdout: bool
    via: str

    @classmethod
    def of(cls, block: ShownBlock, *, via: str) -> Impression:
        # Variants and holdouts may not exist on the block: absent means "" / False.
        return cls(
            block_id=block.id,
            block_key=block.key,
            slot=block.slot,
            variant=str(getattr(block, "variant", "") or ""),
            holdout=bool(getattr(block, "holdout", False)),
            via=via,
        )

    def properties(self) -> dict[str, Any]:
        return {
            "block_id": self.block_id,
            "block_key": self.block_key,
            "slot": self.slot,
            "variant": self.variant,
            "holdout": self.holdout,
            "via": self.via,
        }


def record_impressions(
    *,
    profile_id: int,
    impressions: Iterable[Impression],
    anonymous_id: str = "",
    user_id: str = "",
    path: str = "",
    now: datetime | None = None,
) -> int:
    """Store impressions the server delivered as ``block_impression`` events, in one
    INSERT, now. Returns how many were stored."""
    return record_impression_batches(
        batches=[
            {
                "profile_id": profile_id,
                "impressions": [item.properties() for item in impressions],
                "anonymous_id": anonymous_id,
                "user_id": user_id,
                "path": path,
                "now": (now or timezone.now()).isoformat(),
            }
        ]
    )


def _recording_enabled(request: HttpRequest) -> bool:
    # An editor's preview marks its request so that it never counts as an exposure.
    return settings.MEASUREMENT_RECORD_SERVER_IMPRESSIONS and not getattr(
        request, "p13n_preview", False
    )


def note_impressions(request: HttpRequest, blocks: Iterable[ShownBlock], *, via: str) -> None:
    """Remember blocks a page shows; ImpressionMiddleware writes them all at once."""
    if not _recording_enabled(request):
        return
    buffer: list[Impression] = getattr(request, _BUFFER, None) or []
    buffer.extend(Impression.of(block, via=via) for block in blocks)
    setattr(request, _BUFFER, buffer)


def _visitor_ids(request: HttpRequest) -> tuple[str, str]:
    visitor = getattr(request, "visitor", None)
    if visitor is None:
        return "", ""
    return visitor.anonymous_id or "", visitor.user_id or ""


def flush_impressions(request: HttpRequest, *, now: datetime | None = None) -> int:
    """Write what ``note_impressions`` collected for this request (once)."""
    from personalize.selectors import profile_id_for_request

    impressions: list[Impression] = getattr(request, _BUFFER, None) or []
    setattr(request, _BUFFER, [])
    if not impressions:
        return 0
    profile_id = profile_id_for_request(request)
    if profile_id is None:
        return 0
    anonymous_id, user_id = _visitor_ids(request)
    return _record_safely(
        profile_id=profile_id,
        impressions=impressions,
        anonymous_id=anonymous_id,
        user_id=user_id,
        path=request.path,
        now=now,
    )


def record_api_impressions(
    request: HttpRequest,
    *,
    profile_id: int | None,
    blocks: Mapping[str, Iterable[ShownBlock]],
    debug: bool,
) -> int:
    """The block API's answer, recorded as impressions: not for debug calls, and not
    when the caller says it reports impressions itself (``impressions=client``, as
    our component does when it polls), so nothing is counted twice."""
    if debug or profile_id is None or not _recording_enabled(request):
        return 0
    if request.GET.get("impressions") == "client":
        return 0
    anonymous_id = request.GET.get("anonymous_id", "").strip()
    user_id = request.GET.get("user_id", "").strip()
    if not (anonymous_id or user_id):
        anonymous_id, user_id = _visitor_ids(request)
    return _record_safely(
        profile_id=profile_id,
        impressions=[
            Impression.of(block, via="api") for chosen in blocks.values() for block in chosen
        ],
        anonymous_id=anonymous_id,
        user_id=user_id,
    )


class _ImpressionBuffer:
    """Impressions of this process's requests, handed to a worker together.

    A request only appends here; one task per ``MEASUREMENT_FLUSH_SECONDS`` (a
    timer covers a process that goes quiet) carries every request's impressions
    to the worker, which writes them in one INSERT. With 0 (the embedded default
    and tests) each request hands over its own at once. Measurement must never
    cost the visitor their page: a broker outage or a killed process loses at
    most one interval of impressions (logged), never a response.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._batches: list[dict[str, Any]] = []
        self._timer: threading.Timer | None = None

    def add(self, batch: dict[str, Any]) -> None:
        interval = float(settings.MEASUREMENT_FLUSH_SECONDS)
        if interval <= 0:
            self._send([batch])
            return
        with self._lock:
            self._batches.append(batch)
            if self._timer is None:
                self._timer = threading.Timer(interval, self.flush)
                self._timer.daemon = True
                self._timer.start()

    def flush(self) -> None:
        with self._lock:
            batches, self._batches = self._batches, []
            self._timer = None
        if batches:
            self._send(batches)

    @staticmethod
    def _send(batches: list[dict[str, Any]]) -> None:
        from content.tasks import record_impressions as record_impressions_task

        try:
            record_impressions_task.delay(batches=batches)
        except Exception:
            logger.exception("could not hand %d impression batches to a worker", len(batches))


_buffer = _ImpressionBuffer()
atexit.register(_buffer.flush)


def _record_safely(
    *, impressions: Iterable[Impression], now: datetime | None = None, **kwargs: Any
) -> int:
    # Plain dicts of the fields (dataclasses.asdict deep-copies each value: a tenth of
    # a block API request).
    items = [item.properties() for item in impressions]
    if items:
        _buffer.add({"impressions": items, "now": (now or timezone.now()).isoformat(), **kwargs})
    return len(items)


def record_impression_batches(*, batches: list[dict[str, Any]]) -> int:
    """The worker's side: many requests' impressions, one consent query, one ``COPY``
    (``personalize.bulk.insert_values``: no model instances, as ingestion stores events)."""
    from personalize.bulk import insert_values
    from personalize.services import EVENT_FIELDS, server_source
    from segments.definitions import ChangedInputs
    from segments.selectors import segment_inputs
    from segments.services import request_recompute

    profile_ids = {batch["profile_id"] for batch in batches}
    # A visitor who withdrew consent is not tracked, by the snippet or by us; a profile
    # erased (or merged away) since the request has no row left to point at.
    trackable = set(
        Profile.objects.filter(pk__in=profile_ids)
        .exclude(consent=Profile.Consent.DENIED)
        .values_list("pk", flat=True)
    )
    source_id = server_source().pk
    rows: list[tuple[Any, ...]] = []
    seen: set[int] = set()
    for batch in batches:
        profile_id = batch["profile_id"]
        if profile_id not in trackable:
            continue
        seen.add(profile_id)
        at = datetime.fromisoformat(batch["now"])
        context: dict[str, Any] = {"library": {"name": "p13n-server"}}
        if batch.get("path"):
            context["page"] = {"path": batch["path"]}
        anonymous_id, user_id = batch.get("anonymous_id", ""), batch.get("user_id", "")
        rows.extend(
            (
                source_id,
                profile_id,
                # Fresh ids no client can send again: no retry to de-duplicate, so these
                # skip the message-id table ingestion claims ids in (docs/partitioning.md).
                f"imp-{uuid.uuid4()}",
                Event.Type.TRACK.value,
                IMPRESSION_EVENT,
                Impression(**item).properties(),
                context,
                anonymous_id,
                user_id,
                at,
                None,  # original_timestamp: our own clock, nothing to correct
                None,  # sent_at
                at,
                [],
            )
            for item in batch["impressions"]
        )
    if not rows:
        return 0
    insert_values(Event, EVENT_FIELDS, rows)
    # A segment may count impressions (a frequency cap): it must see these too.
    if IMPRESSION_EVENT in segment_inputs().event_names:
        changed = ChangedInputs(event_names=frozenset({IMPRESSION_EVENT}))
        request_recompute(profile_ids=seen, inputs=dict.fromkeys(seen, changed))
    return len(rows)


class ImpressionMiddleware:
    """Writes a page's impressions after the view: one INSERT for all its slots,
    and only for pages that were served (status below 400)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if getattr(request, _BUFFER, None):
            if response.status_code < 400:
                flush_impressions(request)
            else:
                setattr(request, _BUFFER, [])
        return response


# --- statistics -----------------------------------------------------------------------

CONFIDENCE = 0.95


@dataclass(frozen=True)
class Interval:
    low: float
    high: float


def wilson_interval(successes: int, trials: int, *, confidence: float = CONFIDENCE) -> Interval:
    """Wilson score interval of one proportion (scipy's)."""
    ci = binomtest(successes, trials).proportion_ci(confidence_level=confidence, method="wilson")
    return Interval(float(ci.low), float(ci.high))


def difference_interval(
    successes: int, trials: int, control_successes: int, control_trials: int
) -> Interval:
    """95% interval of ``p - p_control`` by Newcombe's hybrid score method (his
    method 10): built from the two Wilson intervals, it stays inside [-1, 1] and
    behaves with few successes, where the plain normal approximation does not."""
    p1 = successes / trials
    p2 = control_successes / control_trials
    w1 = wilson_interval(successes, trials)
    w2 = wilson_interval(control_successes, control_trials)
    difference = p1 - p2
    return Interval(
        difference - math.sqrt((p1 - w1.low) ** 2 + (w2.high - p2) ** 2),
        difference + math.sqrt((w1.high - p1) ** 2 + (p2 - w2.low) ** 2),
    )


@dataclass(frozen=True)
class Lift:
    metric: str  # "conversion" or "click"
    arm: str
    control: str
    arm_rate: float | None
    control_rate: float | None
    difference: float | None  # in proportion units (0.021 = +2.1 points)
    relative: float | None  # difference / control rate
    interval: Interval | None
    verdict: str

    @property
    def significant(self) -> bool:
        return self.interval is not None and (self.interval.low > 0 or self.interval.high < 0)


def arm_label(arm: str) -> str:
    if arm == HOLDOUT:
        return "the holdout"
    return f"variant {arm}" if arm else "the block"


def _points(value: float) -> str:
    # Rounded first, so that -0.04 points reads "+0.0", never "-0.0".
    rounded = round(value * 100, 1) + 0.0
    return f"{rounded:+.1f}"


def compare_arms(
    *,
    metric: str,
    arm: str,
    control: str,
    successes: int,
    visitors: int,
    control_successes: int,
    control_visitors: int,
    min_visitors: int,
) -> Lift:
    """The lift of ``arm`` over ``control`` for a per-visitor rate, with its interval
    and a verdict in plain words."""
    arm_rate = successes / visitors if visitors else None
    control_rate = control_successes / control_visitors if control_visitors else None
    smallest = min(visitors, control_visitors)
    if smallest < max(min_visitors, 1) or arm_rate is None or control_rate is None:
        short = arm_label(arm) if visitors <= control_visitors else arm_label(control)
        return Lift(
            metric=metric,
            arm=arm,
            control=control,
            arm_rate=arm_rate,
            control_rate=control_rate,
            difference=None,
            relative=None,
            interval=None,
            verdict=(
                f"not enough data yet: {short} has {smallest} visitors, "
                f"{max(min_visitors, 1)} are needed"
            ),
        )
    difference = arm_rate - control_rate
    interval = difference_interval(successes, visitors, control_successes, control_visitors)
    figures = (
        f"{_points(difference)} points "
        f"({CONFIDENCE:.0%} CI {_points(interval.low)} to {_points(interval.high)})"
    )
    better, worse = (
        ("converts better", "converts worse")
        if metric == "conversion"
        else ("gets more clicks", "gets fewer clicks")
    )
    if interval.low > 0:
        verdict = f"{arm_label(arm)} {better}: {figures}"
    elif interval.high < 0:
        verdict = f"{arm_label(arm)} {worse}: {figures}"
    else:
        verdict = f"not yet significant: {figures}"
    return Lift(
        metric=metric,
        arm=arm,
        control=control,
        arm_rate=arm_rate,
        control_rate=control_rate,
        difference=difference,
        relative=difference / control_rate if control_rate else None,
        interval=interval,
        verdict=verdict,
    )
