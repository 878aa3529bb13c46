"""Bulk import of profiles and historical events from CRM or campaign-tool exports.

Rows go through the same validation, identity resolution and de-duplication as
the tracking API. A row without a messageId gets one derived from its content,
so importing the same file again changes nothing.

Two kinds of export:

- ``events``: one message per row. CSV columns ``type,user_id,event,timestamp,…``
  (``type`` defaults to ``track``; other columns become properties, or traits
  on ``identify`` rows); JSON Lines of Segment messages.
- ``profiles``: one person per row, as a CRM exports them: ``user_id`` and/or
  ``anonymous_id`` and trait columns (``email``, ``plan``, …). Each row becomes an
  ``identify`` call. JSON Lines may also carry a ``traits`` object.

The file is read in chunks (:func:`parse_chunks`); a caller stores each chunk
with :func:`store_chunk` inside its own transaction, together with its progress,
so an interrupted import resumes exactly where its last chunk committed.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any, Literal

from django.db import transaction
from django.utils import timezone

from personalize.codec import InvalidJson, decode_json, without_nul
from personalize.models import RejectedEvent, Source
from personalize.plans import CompiledPlan, plan_for
from personalize.quarantine import Rejection, quarantine
from personalize.services import ingest_messages
from personalize.tracking import MessageError, TrackedMessage, encode_message, parse_message

ImportKind = Literal["events", "profiles"]
FileFormat = Literal["csv", "jsonl"]
KINDS: tuple[ImportKind, ...] = ("events", "profiles")
FORMATS: tuple[FileFormat, ...] = ("csv", "jsonl")
CHUNK = 500
# Errors listed back to the operator; every rejected row is in the quarantine anyway.
MAX_LISTED_ERRORS = 20
_ALIASES = {
    "user_id": "userId",
    "userid": "userId",
    "anonymous_id": "anonymousId",
    "anonymousid": "anonymousId",
    "message_id": "messageId",
    "messageid": "messageId",
    "event_name": "event",
}
_MESSAGE_FIELDS = {"type", "event", "userId", "anonymousId", "messageId", "timestamp", "name"}
# What a profile row may carry besides traits.
_PROFILE_FIELDS = {"userId", "anonymousId", "messageId", "timestamp", "context"}
_INVALID_JSON = "__invalid_json__"


@dataclass
class ImportResult:
    rows: int = 0
    stored: int = 0
    duplicates: int = 0
    rejected: int = 0
    errors: list[str] = field(default_factory=list)

    def add(self, other: ImportResult) -> None:
        self.rows += other.rows
        self.stored += other.stored
        self.duplicates += other.duplicates
        self.rejected += other.rejected
        self.errors.extend(other.errors[: max(0, MAX_LISTED_ERRORS - len(self.errors))])


@dataclass(frozen=True)
class ParsedChunk:
    """A run of consecutive rows, validated: ``first_row`` rows of the file precede it."""

    first_row: int
    rows: int
    messages: list[TrackedMessage]
    rejections: list[Rejection]
    errors: list[str]


# --- reading ----------------------------------------------------------------------------


def detect_format(name: str, head: bytes = b"") -> FileFormat:
    """From the file name; failing that, JSON Lines if the content starts with ``{``."""
    suffix = Path(name).suffix.lower()
    if suffix in {".csv", ".tsv"}:
        return "csv"
    if suffix in {".jsonl", ".ndjson", ".json"}:
        return "jsonl"
    return "jsonl" if head.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"{") else "csv"


def _key(raw_key: str) -> str:
    key = raw_key.strip()
    return _ALIASES.get(key.lower(), key)


def _number_or_text(value: str) -> Any:
    text = value.strip()
    # Zip codes and phone numbers look like numbers but are not.
    if text.startswith("+") or (len(text) > 1 and text.startswith("0") and text[1] != "."):
        return value
    try:
        number = float(text)
    except ValueError:
        return value
    return int(number) if number.is_integer() and "." not in text else number


def _csv_records(handle: IO[str]) -> Iterator[dict[str, Any]]:
    for row in csv.DictReader(handle):
        yield {
            _key(raw_key): _number_or_text(value)
            for raw_key, value in row.items()
            if raw_key is not None and value not in (None, "")
        }


def _jsonl_records(handle: IO[str]) -> Iterator[dict[str, Any]]:
    number = 0
    for line in handle:
        if not line.strip():
            continue
        number += 1
        try:
            record = decode_json(line.encode())
        except InvalidJson:
            record = None
            reason = f"line {number} is not valid JSON"
        else:
            reason = f"line {number} is not a JSON object"
        if isinstance(record, dict):
            yield record
        else:
            yield {_INVALID_JSON: reason, "raw": line.rstrip("\r\n")}


def _event_message(record: dict[str, Any], file_format: FileFormat) -> dict[str, Any]:
    if file_format == "jsonl":
        return record  # already a Segment message
    message: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    for key, value in record.items():
        if key in _MESSAGE_FIELDS:
            message[key] = str(value)
        else:
            extra[key] = value
    message.setdefault("type", "track")
    # A row of an identify export carries traits; any other row, properties.
    message["traits" if message["type"] == "identify" else "properties"] = extra
    return message


def _profile_message(record: dict[str, Any]) -> dict[str, Any]:
    """One person's row of a CRM export as an ``identify`` call."""
    message: dict[str, Any] = {"type": "identify"}
    traits: dict[str, Any] = {}
    for raw_key, value in record.items():
        key = _key(raw_key)
        if key in _PROFILE_FIELDS:
            message[key] = value if key == "context" else str(value)
        elif key == "traits" and isinstance(value, dict):
            traits.update(value)
        elif key == "type" and value == "identify":
            continue
        else:
            traits[key] = value
    message["traits"] = traits
    return message


def read_records(
    handle: IO[str], *, file_format: FileFormat, kind: ImportKind
) -> Iterator[dict[str, Any]]:
    """The file's rows as Segment messages (not validated yet)."""
    records = _csv_records(handle) if file_format == "csv" else _jsonl_records(handle)
    for record in records:
        if _INVALID_JSON in record:
            yield record
        elif kind == "profiles":
            yield _profile_message(record)
        else:
            yield _event_message(record, file_format)


def count_records(handle: IO[str], *, file_format: FileFormat) -> int:
    """How many rows :func:`read_records` will yield (CSV fields may span lines)."""
    if file_format == "csv":
        return sum(1 for _ in csv.DictReader(handle))
    return sum(1 for line in handle if line.strip())


def text_stream(binary: IO[bytes]) -> IO[str]:
    """A binary upload as text: UTF-8 with or without a byte-order mark."""
    return io.TextIOWrapper(binary, encoding="utf-8-sig", newline="")


# --- validating and storing -------------------------------------------------------------


def _with_message_id(message: dict[str, Any]) -> dict[str, Any]:
    """The same row always gets the same id, so a re-run is de-duplicated."""
    if message.get("messageId"):
        return message
    digest = hashlib.sha256(json.dumps(message, sort_keys=True, default=str).encode()).hexdigest()
    return {**message, "messageId": f"import-{digest[:32]}"}


def parse_chunks(
    records: Iterable[dict[str, Any]],
    *,
    start_at: int = 0,
    chunk_size: int | None = None,
    now: Callable[[], datetime] = timezone.now,
    plan: CompiledPlan | None = None,
) -> Iterator[ParsedChunk]:
    """Validate rows in chunks, skipping the first ``start_at`` (already imported),
    against the source's tracking ``plan`` too, as the API does."""
    size = chunk_size or CHUNK
    first_row = start_at
    rows = 0
    messages: list[TrackedMessage] = []
    rejections: list[Rejection] = []
    errors: list[str] = []
    for number, record in enumerate(records, start=1):
        if number <= start_at:
            continue
        rows += 1
        try:
            if _INVALID_JSON in record:
                raise MessageError("message", record[_INVALID_JSON])
            message = _with_message_id(record)
            encode_message(message)  # a NUL is rejected naming its field
            parsed = parse_message(message, message_type=None, received_at=now())
            messages.append(plan.apply(parsed) if plan is not None else parsed)
        except MessageError as exc:
            payload = {"raw": record["raw"]} if _INVALID_JSON in record else message
            payload = without_nul(payload)
            rejections.append(Rejection(payload=payload, field=exc.field, reason=exc.reason))
            errors.append(f"row {number}: {exc.field}: {exc.reason}")
        if rows == size:
            yield ParsedChunk(first_row, rows, messages, rejections, errors)
            first_row, rows, messages, rejections, errors = number, 0, [], [], []
    if rows:
        yield ParsedChunk(first_row, rows, messages, rejections, errors)


def store_chunk(*, source: Source, chunk: ParsedChunk, received_at: datetime) -> ImportResult:
    """Ingest a chunk's good rows and quarantine its bad ones (each only once)."""
    # A row already quarantined by an earlier run of the same import is not kept twice.
    fresh = [
        r
        for r in chunk.rejections
        if not RejectedEvent.objects.filter(source=source, payload=r.payload).exists()
    ]
    if fresh:
        quarantine(source=source, rejections=fresh, received_at=received_at)
    stored = ingest_messages(source=source, messages=chunk.messages, received_at=received_at)
    return ImportResult(
        rows=chunk.rows,
        stored=stored.stored,
        duplicates=stored.duplicates,
        rejected=len(chunk.rejections),
        errors=chunk.errors,
    )


def import_file(
    *,
    path: Path,
    source: Source,
    file_format: FileFormat,
    kind: ImportKind = "events",
    progress: Callable[[ImportResult], None] | None = None,
) -> ImportResult:
    """Import a whole file (the management command); ``progress`` after each chunk."""
    result = ImportResult()
    with path.open("rb") as binary, text_stream(binary) as handle:
        records = read_records(handle, file_format=file_format, kind=kind)
        for chunk in parse_chunks(records, plan=plan_for(source)):
            with transaction.atomic():
                result.add(store_chunk(source=source, chunk=chunk, received_at=timezone.now()))
            if progress is not None:
                progress(result)
    return result
