"""Segment-compatible HTTP Tracking API (``/v1/track``, ``/v1/batch``, ...).

Plain Django views rather than DRF: the response codes and bodies must match
what Segment's client libraries expect to the letter (exactly 200 on success,
JSON ``{"code", "message"}`` errors).
"""

from __future__ import annotations

import base64
import binascii
import zlib
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, JsonResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from personalize.codec import (
    NUL_MESSAGE,
    InvalidJson,
    decode_json,
    encode_json,
    has_nul,
    nul_path,
)
from personalize.models import Source
from personalize.plans import PlanViolation, plan_for, violations_payload
from personalize.quarantine import Rejection, quarantine, rejection_payload
from personalize.selectors import source_by_write_key
from personalize.services import accept_messages, ingest_messages
from personalize.tracking import MessageError, TrackedMessage, encode_message, parse_message

MAX_REQUEST_BYTES = 500 * 1024
MAX_BATCH_ITEMS = 2500


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def _error(exc: ApiError) -> JsonResponse:
    response = JsonResponse({"code": exc.code, "message": exc.message}, status=exc.status)
    if exc.status == 429:
        response["Retry-After"] = "1"
    return response


def _body(request: HttpRequest) -> bytes:
    try:
        raw = request.body
    except RequestDataTooBig:
        raise ApiError(413, "too_large", f"request body over {MAX_REQUEST_BYTES} bytes") from None
    if len(raw) > MAX_REQUEST_BYTES:
        raise ApiError(413, "too_large", f"request body over {MAX_REQUEST_BYTES} bytes")
    if request.headers.get("Content-Encoding", "").lower() == "gzip":
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            raw = inflater.decompress(raw, MAX_REQUEST_BYTES + 1)
        except zlib.error:
            raise ApiError(
                400, "bad_gzip", "Content-Encoding is gzip but the body is not valid gzip"
            ) from None
        if len(raw) > MAX_REQUEST_BYTES or inflater.unconsumed_tail:
            raise ApiError(413, "too_large", f"decompressed body over {MAX_REQUEST_BYTES} bytes")
    return raw


def _payload(request: HttpRequest) -> dict[str, Any]:
    try:
        data = decode_json(_body(request))
    except InvalidJson:
        raise ApiError(400, "invalid_json", "the body is not valid JSON") from None
    if not isinstance(data, dict):
        raise ApiError(400, "invalid_json", "the body must be a JSON object")
    return data


def _source(request: HttpRequest, payload: dict[str, Any]) -> Source:
    write_key = ""
    header = request.headers.get("Authorization", "")
    if header.lower().startswith("basic "):
        try:
            decoded = base64.b64decode(header[6:].strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            raise ApiError(
                401, "unauthorized", "the Authorization header is not valid Basic auth"
            ) from None
        write_key = decoded.split(":", 1)[0]
    if not write_key:
        value = payload.get("writeKey")
        write_key = value if isinstance(value, str) else ""
    if not write_key:
        raise ApiError(
            401, "unauthorized", "a write key is required (Basic auth user name or writeKey)"
        )
    source = source_by_write_key(write_key)
    if source is None or not source.enabled:
        raise ApiError(401, "unauthorized", "unknown or disabled write key")
    return source


def _check_rate(source: Source, events: int, now: float) -> None:
    """A per-second budget of events per source, counted in the shared cache."""
    limit: int = settings.TRACKING_RATE_LIMIT
    if not limit:
        return
    key = f"tracking-rate:{source.pk}:{int(now)}"
    cache.add(key, 0, timeout=5)
    try:
        used = cache.incr(key, events)
    except ValueError:  # the key expired between add and incr: a fresh second
        cache.set(key, events, timeout=5)
        used = events
    if used > limit:
        raise ApiError(
            429, "rate_limited", f"over {limit} events per second for this source; retry later"
        )


def _ingest(request: HttpRequest, message_type: str | None) -> JsonResponse:
    received_at = timezone.now()
    try:
        payload = _payload(request)
        source = _source(request, payload)
        if message_type is None:
            items = payload.get("batch")
            if not isinstance(items, list):
                raise ApiError(400, "invalid_batch", "batch: must be a list of messages")
            if len(items) > MAX_BATCH_ITEMS:
                raise ApiError(400, "invalid_batch", f"batch: at most {MAX_BATCH_ITEMS} messages")
            defaults: dict[str, Any] = {
                k: payload[k] for k in ("context", "integrations") if k in payload
            }
            if "sentAt" in payload:
                defaults["sentAt"] = payload["sentAt"]
            if has_nul(encode_json(defaults)):
                raise ApiError(400, "invalid_batch", f"{nul_path(defaults)}: {NUL_MESSAGE}")
        else:
            items = [payload]
            defaults = {}
        _check_rate(source, len(items), received_at.timestamp())
    except ApiError as exc:
        return _error(exc)

    accepted: list[TrackedMessage] = []
    rejected: list[dict[str, Any]] = []
    rejections: list[Rejection] = []
    plan = plan_for(source)
    request_ip = request.META.get("REMOTE_ADDR")
    keep_full_ip = settings.P13N_KEEP_FULL_IP  # read once: settings are a lazy object
    for index, item in enumerate(items):
        try:
            encoded = encode_message(item)
            accepted.append(
                plan.apply(
                    parse_message(
                        item,
                        message_type=message_type,
                        received_at=received_at,
                        defaults=defaults,
                        encoded_size=len(encoded),
                        request_ip=request_ip,
                        keep_full_ip=keep_full_ip,
                    )
                )
            )
        except MessageError as exc:
            entry: dict[str, Any] = {"index": index, "field": exc.field, "message": exc.reason}
            if isinstance(exc, PlanViolation):
                entry["violations"] = violations_payload(exc.violations)
            rejected.append(entry)
            rejections.append(
                Rejection.of(
                    rejection_payload(item, message_type=message_type, defaults=defaults), exc
                )
            )

    if rejections:
        # Kept with their reasons for replay; never silently dropped.
        quarantine(source=source, rejections=rejections, received_at=received_at)
    if message_type is not None and rejected:
        only = rejected[0]
        return JsonResponse(
            {
                "code": "invalid_message",
                "message": f"{only['field']}: {only['message']}",
                "field": only["field"],
            },
            status=400,
        )
    if message_type is not None:
        ingest_messages(source=source, messages=accepted, received_at=received_at)
        return JsonResponse({"success": True}, status=200)
    body: dict[str, Any] = {"success": True, "accepted": len(accepted), "rejected": rejected}
    if settings.P13N_DEFER_INGEST and len(accepted) > settings.P13N_INLINE_BATCH_MAX:
        # A large batch (a server library, a forwarder) is committed to the inbox
        # and stored by a worker after the answer; duplicates are then dropped and
        # counted in the data-quality report. A browser's few events are stored
        # now, so that the next page or block request already sees them.
        accept_messages(source=source, messages=accepted, received_at=received_at)
    else:
        result = ingest_messages(source=source, messages=accepted, received_at=received_at)
        body.update(stored=result.stored, duplicates=result.duplicates)
    return JsonResponse(body, status=200)


def _endpoint(message_type: str | None) -> Any:
    @csrf_exempt
    @require_POST
    def view(request: HttpRequest) -> JsonResponse:
        return _ingest(request, message_type)

    view.__name__ = f"tracking_{message_type or 'batch'}"
    return view


track = _endpoint("track")
page = _endpoint("page")
screen = _endpoint("screen")
identify = _endpoint("identify")
group = _endpoint("group")
alias = _endpoint("alias")
batch = _endpoint(None)
