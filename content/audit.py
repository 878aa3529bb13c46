"""The audit log: who changed which block, block variant or segment, when, and what changed.

Read from django-simple-history's records; each change is diffed against the
record before it with ``diff_against``.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import models
from django.db.models import OuterRef, Q, Subquery

from content.models import Block, BlockVariant
from segments.models import Segment

# What the audit log covers, by the name the admin filter uses.
AUDITED: dict[str, type[models.Model]] = {
    "block": Block,
    "variant": BlockVariant,
    "segment": Segment,
}
# Bookkeeping, not an editor's change.
IGNORED_FIELDS = ("updated_at",)
CHANGE_TYPES = {"+": "created", "~": "changed", "-": "deleted"}
MAX_VALUE_LENGTH = 300


@dataclass(frozen=True)
class FieldChange:
    field: str
    before: str
    after: str


@dataclass(frozen=True)
class AuditEntry:
    at: datetime
    user: str
    user_id: int | None
    object_type: str
    object_id: int
    object_label: str
    change: str
    changes: tuple[FieldChange, ...]
    history_id: int


@dataclass(frozen=True)
class AuditPage:
    entries: list[AuditEntry]
    has_more: bool


def audit_log(
    *,
    object_types: Collection[str],
    user_id: int | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    offset: int = 0,
    limit: int = 50,
) -> AuditPage:
    """The newest changes first, filtered by object type, user and time (``until`` exclusive)."""
    wanted = offset + limit + 1
    rows: list[tuple[str, Any]] = []
    for object_type in object_types:
        history = _history_queryset(AUDITED[object_type], user_id=user_id, since=since, until=until)
        rows.extend((object_type, record) for record in history[:wanted])
    rows.sort(key=lambda row: (row[1].history_date, row[1].history_id), reverse=True)
    page = rows[offset : offset + limit]
    previous = _previous_records(page)
    entries = [
        _entry(object_type, record, previous.get((object_type, record.prev_history_id)))
        for object_type, record in page
    ]
    return AuditPage(entries=entries, has_more=len(rows) > offset + limit)


def _history_queryset(
    model: type[models.Model],
    *,
    user_id: int | None,
    since: datetime | None,
    until: datetime | None,
) -> Any:
    history_model = model.history.model  # type: ignore[attr-defined]
    earlier = history_model.objects.filter(id=OuterRef("id")).filter(
        Q(history_date__lt=OuterRef("history_date"))
        | Q(history_date=OuterRef("history_date"), history_id__lt=OuterRef("history_id"))
    )
    records = history_model.objects.select_related("history_user").annotate(
        prev_history_id=Subquery(
            earlier.order_by("-history_date", "-history_id").values("history_id")[:1]
        )
    )
    if user_id is not None:
        records = records.filter(history_user_id=user_id)
    if since is not None:
        records = records.filter(history_date__gte=since)
    if until is not None:
        records = records.filter(history_date__lt=until)
    return records.order_by("-history_date", "-history_id")


def _previous_records(page: Iterable[tuple[str, Any]]) -> dict[tuple[str, int], Any]:
    """The record before each one on the page, in one query per object type."""
    wanted: dict[str, set[int]] = {}
    for object_type, record in page:
        if record.prev_history_id is not None:
            wanted.setdefault(object_type, set()).add(record.prev_history_id)
    found: dict[tuple[str, int], Any] = {}
    for object_type, ids in wanted.items():
        history_model = AUDITED[object_type].history.model  # type: ignore[attr-defined]
        for history_id, record in history_model.objects.in_bulk(ids).items():
            found[(object_type, history_id)] = record
    return found


def _entry(object_type: str, record: Any, previous: Any | None) -> AuditEntry:
    user = record.history_user
    changes: tuple[FieldChange, ...] = ()
    if previous is not None and record.history_type != "-":
        delta = record.diff_against(
            previous, excluded_fields=IGNORED_FIELDS, foreign_keys_are_objs=True
        )
        changes = tuple(
            FieldChange(
                field=change.field,
                before=_shown(change.old, own_field=object_type),
                after=_shown(change.new, own_field=object_type),
            )
            for change in delta.changes
        )
    return AuditEntry(
        at=record.history_date,
        user=user.get_username() if user is not None else "system",
        user_id=user.pk if user is not None else None,
        object_type=object_type,
        object_id=record.id,
        object_label=str(record.instance),
        change=CHANGE_TYPES.get(record.history_type, record.history_type),
        changes=changes,
        history_id=record.history_id,
    )


def _shown(value: Any, *, own_field: str) -> str:
    """A value as an editor reads it: m2m rows as the related names, JSON as JSON."""
    if isinstance(value, list) and all(isinstance(row, dict) for row in value):
        # Many-to-many rows ({"block": …, "segment": …}): name the other side.
        names = sorted(str(v) for row in value for k, v in row.items() if k != own_field)
        text = ", ".join(names) if names else "(none)"
    elif value is None or value == "":
        text = "(empty)"
    elif isinstance(value, dict | list):
        text = json.dumps(value, sort_keys=True, default=str)
    else:
        text = str(value)
    return text if len(text) <= MAX_VALUE_LENGTH else text[: MAX_VALUE_LENGTH - 1] + "…"
