"""Bulk import of profiles and historical events from CRM or campaign-tool exports.

Rows go through the same validation, identity resolution and de-duplication as
the tracking API. A row without a messageId gets one derived from its content,
so importing the same file again changes nothing.
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.utils import timezone

from personalize.models import RejectedEvent, Source
from personalize.plans import plan_for
from personalize.quarantine import Rejection, quarantine
from personalize.services import ingest_messages
from personalize.tracking import MessageError, TrackedMessage, parse_message

CHUNK = 500
_ALIASES = {
    "user_id": "userId",
    "anonymous_id": "anonymousId",
    "message_id": "messageId",
    "event_name": "event",
}
_MESSAGE_FIELDS = {"type", "event", "userId", "anonymousId", "messageId", "timestamp", "name"}


@dataclass
class ImportResult:
    rows: int = 0
    stored: int = 0
    duplicates: int = 0
    rejected: int = 0
    errors: list[str] = field(default_factory=list)


def _csv_messages(path: Path) -> Iterator[dict[str, Any]]:
    with path.open(newline="", encoding="utf-8-sig") as handle:
        for row in csv.DictReader(handle):
            message: dict[str, Any] = {}
            extra: dict[str, Any] = {}
            for raw_key, value in row.items():
                if raw_key is None or value in (None, ""):
                    continue
                key = _ALIASES.get(raw_key.strip(), raw_key.strip())
                if key in _MESSAGE_FIELDS:
                    message[key] = value
                else:
                    extra[key] = _number_or_text(value)
            message.setdefault("type", "track")
            # A row of an identify export carries traits; any other row, properties.
            message["traits" if message["type"] == "identify" else "properties"] = extra
            yield message


def _number_or_text(value: str) -> Any:
    try:
        number = float(value)
    except ValueError:
        return value
    return int(number) if number.is_integer() and "." not in value else number


def _jsonl_messages(path: Path) -> Iterator[dict[str, Any]]:
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                yield json.loads(line)
            except ValueError:
                yield {"__invalid_json__": f"line {number} is not valid JSON"}


def _with_message_id(message: dict[str, Any]) -> dict[str, Any]:
    if message.get("messageId"):
        return message
    digest = hashlib.sha256(json.dumps(message, sort_keys=True, default=str).encode()).hexdigest()
    return {**message, "messageId": f"import-{digest[:32]}"}


def import_file(
    *,
    path: Path,
    source: Source,
    file_format: str,
    progress: Callable[[ImportResult], None] | None = None,
) -> ImportResult:
    messages: Iterable[dict[str, Any]] = (
        _csv_messages(path) if file_format == "csv" else _jsonl_messages(path)
    )
    result = ImportResult()
    batch: list[TrackedMessage] = []
    rejections: list[Rejection] = []
    plan = plan_for(source)

    def flush() -> None:
        now = timezone.now()
        # A row already quarantined by an earlier run of the same import is not kept twice.
        fresh = [
            r
            for r in rejections
            if not RejectedEvent.objects.filter(source=source, payload=r.payload).exists()
        ]
        if fresh:
            quarantine(source=source, rejections=fresh, received_at=now)
        if batch:
            stored = ingest_messages(source=source, messages=batch, received_at=now)
            result.stored += stored.stored
            result.duplicates += stored.duplicates
        batch.clear()
        rejections.clear()
        if progress is not None:
            progress(result)

    for raw in messages:
        result.rows += 1
        try:
            if "__invalid_json__" in raw:
                raise MessageError("message", raw["__invalid_json__"])
            batch.append(
                plan.apply(
                    parse_message(
                        _with_message_id(raw), message_type=None, received_at=timezone.now()
                    )
                )
            )
        except MessageError as exc:
            result.rejected += 1
            result.errors.append(f"row {result.rows}: {exc.field}: {exc.reason}")
            rejections.append(Rejection.of(raw, exc))
        if len(batch) + len(rejections) >= CHUNK:
            flush()
    flush()
    return result
