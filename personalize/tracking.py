"""Segment-spec messages: parsing and validation, with no database access.

A message that fails gets a :class:`MessageError` naming the field; the API
reports it per index and keeps the good messages of the same batch.
"""

from __future__ import annotations

import functools
import ipaddress
import math
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, timedelta
from typing import Any

from django.utils.dateparse import parse_datetime

from personalize.codec import NUL_MESSAGE, decode_json, encode_json, has_nul, nul_path

MESSAGE_TYPES = ("track", "page", "screen", "identify", "group", "alias")
MAX_EVENT_BYTES = 32 * 1024
MAX_NAME_LENGTH = 255
# Amounts that can never be negative in a commerce event.
NON_NEGATIVE_PROPERTIES = ("price", "revenue", "quantity", "total", "value")
MAX_FUTURE = timedelta(days=1)
MAX_PAST = timedelta(days=365 * 5)


class MessageError(ValueError):
    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(f"{field_name}: {message}")
        self.field = field_name
        self.reason = message


@dataclass(frozen=True)
class Violation:
    """One way a message breaks its source's tracking plan (see personalize.plans)."""

    field: str
    reason: str
    rule: str = ""


# Fields Segment's client libraries always send; a message without them is
# counted as "missing" in the data-quality report (personalize.quality).
EXPECTED_FIELDS = ("messageId", "timestamp", "context")


# Not frozen: a frozen dataclass sets each field through object.__setattr__,
# which tripled the cost of building one, 500 times per batch on the request
# path. Treat instances as read-only all the same (plans use dataclasses.replace).
@dataclass(slots=True)
class TrackedMessage:
    type: str
    name: str
    message_id: str
    anonymous_id: str
    user_id: str
    properties: dict[str, Any] = field(default_factory=dict)
    traits: dict[str, Any] = field(default_factory=dict)
    context: dict[str, Any] = field(default_factory=dict)
    timestamp: datetime | None = None
    original_timestamp: datetime | None = None
    sent_at: datetime | None = None
    previous_id: str = ""
    # Tracking-plan violations of a message stored in flag mode.
    violations: tuple[Violation, ...] = ()
    # Which of EXPECTED_FIELDS the client did not send.
    absent_fields: tuple[str, ...] = ()


def _id(data: Mapping[str, Any], key: str) -> str:
    value = data.get(key)
    if value is None:
        return ""
    if type(value) is not str:  # the common case first: called four times a message
        if isinstance(value, int | float) and not isinstance(value, bool):
            value = str(value)  # Segment coerces numeric ids to strings
        elif not isinstance(value, str):
            raise MessageError(key, "must be a string")
    value = value.strip()
    if len(value) > MAX_NAME_LENGTH:
        raise MessageError(key, f"must be at most {MAX_NAME_LENGTH} characters")
    return value


def _object(data: Mapping[str, Any], key: str) -> dict[str, Any]:
    value = data.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise MessageError(key, "must be an object")
    return value


def _time(data: Mapping[str, Any], key: str) -> datetime | None:
    value = data.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise MessageError(key, "must be an ISO-8601 date-time string")
    try:
        # The C parser first: what clients send (RFC 3339 with an offset) it reads
        # in a fraction of Django's regular expression; the rest go the long way.
        fast = datetime.fromisoformat(value)
    except ValueError:
        fast = None
    if fast is not None and fast.tzinfo is not None:
        return _in_utc(key, fast)
    try:
        parsed = parse_datetime(value.replace("Z", "+00:00"))
    except ValueError:
        parsed = None
    if parsed is None:
        raise MessageError(key, f"{value[:40]!r} is not an ISO-8601 date-time")
    if parsed.tzinfo is None:
        raise MessageError(key, "must carry a time zone (Z or +00:00)")
    # In UTC: the same instant, and an offset with seconds (+05:30:15) would not
    # survive the inbox's JSON (RFC 3339 offsets have none).
    return _in_utc(key, parsed)


def _in_utc(key: str, value: datetime) -> datetime:
    try:
        return value.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00:00+14:00 is before year 1 in UTC
        raise MessageError(key, "is outside the range of dates") from None


_AMOUNT_KEYS = frozenset(NON_NEGATIVE_PROPERTIES)


def _check_amounts(properties: Mapping[str, Any]) -> None:
    # Only the amounts present (a set intersection in C), in the tuple's order.
    present = _AMOUNT_KEYS.intersection(properties)
    for key in NON_NEGATIVE_PROPERTIES if present else ():
        if key not in present:
            continue
        value = properties[key]
        if value is None:
            continue
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            raise MessageError(f"properties.{key}", "must be a number")
        if value < 0:
            raise MessageError(f"properties.{key}", "must not be negative")
    products = properties.get("products")
    if isinstance(products, list):
        for index, product in enumerate(products):
            if isinstance(product, dict):
                try:
                    _check_amounts({k: product.get(k) for k in ("price", "quantity")})
                except MessageError as exc:
                    raise MessageError(
                        f"properties.products[{index}].{exc.field.split('.')[-1]}", exc.reason
                    ) from None


def anonymize_ip(address: str) -> str:
    """The network, not the host: IPv4 keeps 3 bytes, IPv6 its first 48 bits."""
    # Kept per address (a batch's messages mostly carry the same one); only
    # address-sized strings, since context.ip is the client's to fill.
    if len(address) > MAX_IP_LENGTH:
        return ""
    return _anonymize_ip(address)


# The longest textual IPv6 address (with an embedded IPv4 and a zone) is about 60.
MAX_IP_LENGTH = 64


@functools.lru_cache(maxsize=4096)
def _anonymize_ip(address: str) -> str:
    try:
        ip = ipaddress.ip_address(address.strip())
    except ValueError:
        return ""
    prefix = 24 if ip.version == 4 else 48
    return str(ipaddress.ip_network(f"{ip}/{prefix}", strict=False).network_address)


def with_ip(
    context: dict[str, Any], request_ip: str | None, *, keep_full_ip: bool
) -> dict[str, Any]:
    """Segment records the caller's IP in ``context.ip``; we keep it anonymized by default."""
    raw = context.get("ip") if isinstance(context.get("ip"), str) else request_ip
    if not raw:
        return context
    return {**context, "ip": raw if keep_full_ip else anonymize_ip(raw)}


def encode_message(raw: Any) -> bytes:
    """A message as compact JSON (its size is checked on this); MessageError naming
    the field if it holds a NUL, which PostgreSQL cannot store."""
    encoded = encode_json(raw)
    if has_nul(encoded):
        raise MessageError(nul_path(raw) or "message", NUL_MESSAGE)
    return encoded


def parse_message(
    raw: Any,
    *,
    message_type: str | None,
    received_at: datetime,
    defaults: Mapping[str, Any] | None = None,
    encoded_size: int | None = None,
    request_ip: str | None = None,
    keep_full_ip: bool = False,
) -> TrackedMessage:
    """Validate one message. ``message_type`` is fixed by single-call endpoints;
    in a batch each item names its own. ``defaults`` are a batch's top-level
    ``context`` and ``integrations``, applied to items that lack them."""
    if not isinstance(raw, dict):
        raise MessageError("message", "must be a JSON object")
    if encoded_size is not None and encoded_size > MAX_EVENT_BYTES:
        raise MessageError("message", f"is {encoded_size} bytes; the limit is {MAX_EVENT_BYTES}")
    data = {**(defaults or {}), **raw}
    kind = message_type or data.get("type")
    if kind not in MESSAGE_TYPES:
        raise MessageError("type", f"must be one of {', '.join(MESSAGE_TYPES)}")

    anonymous_id = _id(data, "anonymousId")
    user_id = _id(data, "userId")
    if not anonymous_id and not user_id:
        raise MessageError("userId", "userId or anonymousId is required")

    properties = _object(data, "properties")
    context = with_ip(_object(data, "context"), request_ip, keep_full_ip=keep_full_ip)
    traits = _object(data, "traits")
    if kind == "identify" and not traits:
        # Some clients send identify traits only in context.traits.
        context_traits = context.get("traits")
        traits = context_traits if isinstance(context_traits, dict) else {}

    previous_id = ""
    if kind == "track":
        name = _id(data, "event")
        if not name:
            raise MessageError("event", "is required for track")
    elif kind in {"page", "screen"}:
        name = kind
        page_name = data.get("name")
        if page_name is not None and not isinstance(page_name, str):
            raise MessageError("name", "must be a string")
        if page_name:
            properties = {"name": page_name, **properties}
    elif kind == "alias":
        name = kind
        previous_id = _id(data, "previousId")
        if not previous_id:
            raise MessageError("previousId", "is required for alias")
    elif kind == "group":
        name = kind
        group_id = _id(data, "groupId")
        if not group_id:
            raise MessageError("groupId", "is required for group")
        properties = {"groupId": group_id, **properties}
        if traits:
            # A group's traits describe the group (a company), not the person:
            # the profile keeps them apart, under traits["group"] (personalize.traits).
            properties["traits"] = traits
    else:
        name = kind
    _check_amounts(properties)

    original = _time(data, "timestamp")
    sent_at = _time(data, "sentAt")
    timestamp = original or received_at
    if original is not None and sent_at is not None:
        # Correct the client's clock as Segment does.
        try:
            timestamp = received_at - (sent_at - original)
        except OverflowError:
            raise MessageError("sentAt", "is too far from timestamp to correct the clock") from None
    if timestamp > received_at + MAX_FUTURE:
        raise MessageError("timestamp", "is more than a day in the future")
    if timestamp < received_at - MAX_PAST:
        raise MessageError("timestamp", "is more than five years in the past")

    sent_message_id = _id(data, "messageId")
    message_id = sent_message_id or str(uuid.uuid4())
    absent = {
        "messageId": not sent_message_id,
        "timestamp": original is None,
        "context": not data.get("context"),
    }
    return TrackedMessage(
        type=kind,
        name=name,
        message_id=message_id,
        anonymous_id=anonymous_id,
        user_id=user_id,
        properties=properties,
        traits=traits,
        context=context,
        timestamp=timestamp,
        original_timestamp=original,
        sent_at=sent_at,
        previous_id=previous_id,
        absent_fields=tuple(name for name in EXPECTED_FIELDS if absent[name]),
    )


# --- validated messages at rest (the ingest inbox, personalize.services) ----------------

_TIME_FIELDS = ("timestamp", "original_timestamp", "sent_at")


def encode_messages(messages: Sequence[TrackedMessage]) -> bytes:
    """Validated messages as JSON, for :func:`decode_messages` to restore exactly."""
    return encode_json(list(messages))


_MESSAGE_FIELDS = frozenset(f.name for f in fields(TrackedMessage))


def decode_messages(raw: bytes) -> list[TrackedMessage]:
    """The messages :func:`encode_messages` wrote. Fields a later version added
    take their defaults, fields it dropped are ignored: batches written by the
    previous release are still stored during a rolling deploy."""
    messages = []
    for stored in decode_json(raw):
        data = {k: v for k, v in stored.items() if k in _MESSAGE_FIELDS}
        for name in _TIME_FIELDS:
            if data.get(name) is not None:
                data[name] = datetime.fromisoformat(data[name])
        data["violations"] = tuple(Violation(**v) for v in data.get("violations", ()))
        data["absent_fields"] = tuple(data.get("absent_fields", ()))
        messages.append(TrackedMessage(**data))
    return messages
