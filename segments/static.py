"""Static segments: a fixed list of profiles, from a CSV upload or a frozen snapshot.

A static segment has no rule (``rule`` is ``{}``) and rules never recompute it:
the per-profile and batch paths skip it and never exit its members. Rules may
still refer to it (``in_segment(slug)``). The pure engine knows nothing of lists,
so they are resolved at its edge: the per-profile evaluator gets each static
segment as a constant rule (``LISTED`` always holds, ``NOT_LISTED`` never does),
and the SQL compiler gets the static segments' ids and reads their open
memberships (``compile_rule(static_segments=...)``).
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import IO, Any, cast

from django.db import transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone

from personalize.models import Identity, Profile
from segments.models import Membership, Segment, SegmentKind
from segments.rules import Rule, referenced_segments, rule_from_json
from segments.rules.tree import And, Or

# Constant rules standing for "on the list" and "not on the list".
LISTED: Rule = And(())
NOT_LISTED: Rule = Or(())

# Columns a CSV may name a profile by, in the order they are tried on each row.
ID_COLUMNS = ("user_id", "anonymous_id", "email_sha256")
_COLUMN_ALIASES = {"userid": "user_id", "anonymousid": "anonymous_id", "email_hash": "email_sha256"}
_SHA256 = re.compile(r"[0-9a-f]{64}")
# Unknown ids listed in the report (all of them are counted).
REPORTED_UNKNOWN = 100
ANNOUNCE_CHUNK = 1000


class StaticSegmentError(ValueError):
    """A static segment cannot be made as asked; ``field`` names the input at fault."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


# --- reads --------------------------------------------------------------------------------


def static_rules_for_profile(
    *, profile_id: int, segment_ids: Iterable[int] | None = None
) -> dict[str, Rule]:
    """Each static segment (the active ones, or ``segment_ids``) as a constant rule
    for this profile, in one query."""
    segments = Segment.objects.filter(kind=SegmentKind.STATIC)
    if segment_ids is None:
        segments = segments.filter(is_active=True)
    else:
        segments = segments.filter(pk__in=list(segment_ids))
    listed = Membership.objects.filter(
        segment=OuterRef("pk"), profile_id=profile_id, exited_at__isnull=True
    )
    return {
        slug: LISTED if is_listed else NOT_LISTED
        for slug, is_listed in segments.annotate(listed=Exists(listed)).values_list(
            "slug", "listed"
        )
    }


def dependent_segment_ids(slug: str) -> list[int]:
    """Active rule-based segments whose rule reaches ``slug``, directly or through others."""
    rules = {
        other: (pk, referenced_segments(rule_from_json(rule)))
        for pk, other, rule in Segment.objects.filter(
            is_active=True, kind=SegmentKind.DYNAMIC
        ).values_list("pk", "slug", "rule")
    }
    reaching: set[str] = set()
    frontier = {slug}
    while frontier:
        frontier = {
            other for other, (_, refs) in rules.items() if refs & frontier and other not in reaching
        }
        reaching |= frontier
    return sorted(rules[other][0] for other in reaching)


# --- CSV import -------------------------------------------------------------------------------


@dataclass
class ImportReport:
    """What a CSV import did: every row is counted somewhere, none silently dropped."""

    segment: str
    rows: int = 0
    matched: int = 0
    # Rows naming a profile already matched by an earlier row.
    duplicates: int = 0
    unknown: int = 0
    invalid: int = 0
    entered: int = 0
    exited: int = 0
    members: int = 0
    unknown_ids: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"{self.rows} rows: {self.matched} profiles matched, {self.duplicates} duplicates, "
            f"{self.unknown} unknown ids, {self.invalid} invalid rows; "
            f"{self.members} members ({self.entered} entered, {self.exited} left)"
        )


@dataclass(frozen=True)
class _Row:
    line: int
    column: str
    value: str


def email_sha256(email: str) -> str:
    """The hash a CSV names a profile by: SHA-256 of the trimmed, lower-cased email."""
    return hashlib.sha256(email.strip().lower().encode()).hexdigest()


def _read_rows(handle: IO[str], report: ImportReport) -> list[_Row]:
    reader = csv.DictReader(handle)
    if not reader.fieldnames:
        raise StaticSegmentError("file", "is empty; the first line names the columns")
    columns = {
        name: _COLUMN_ALIASES.get(name.strip().lower(), name.strip().lower())
        for name in reader.fieldnames
    }
    if not set(columns.values()) & set(ID_COLUMNS):
        raise StaticSegmentError(
            "file",
            f"needs a column named {', '.join(ID_COLUMNS)}; found {', '.join(reader.fieldnames)}",
        )
    rows: list[_Row] = []
    for line, raw in enumerate(reader, start=2):
        report.rows += 1
        values = {
            columns[key]: (value or "").strip()
            for key, value in raw.items()
            if key is not None and isinstance(value, str)
        }
        found = next(((c, values[c]) for c in ID_COLUMNS if values.get(c)), None)
        if found is None:
            report.invalid += 1
            report.errors.append(f"line {line}: no user_id, anonymous_id or email_sha256")
            continue
        column, value = found
        if column == "email_sha256":
            value = value.lower()
            if not _SHA256.fullmatch(value):
                report.invalid += 1
                report.errors.append(f"line {line}: email_sha256 is not 64 hex digits")
                continue
        rows.append(_Row(line=line, column=column, value=value))
    return rows


def _resolve(rows: list[_Row]) -> dict[tuple[str, str], int]:
    """(column, value) → profile id for every value that names a known profile."""
    found: dict[tuple[str, str], int] = {}
    for column, kind in (
        ("user_id", Identity.Kind.USER_ID),
        ("anonymous_id", Identity.Kind.ANONYMOUS_ID),
    ):
        values = sorted({row.value for row in rows if row.column == column})
        for start in range(0, len(values), 500):
            for value, profile_id in Identity.objects.filter(
                kind=kind, value__in=values[start : start + 500]
            ).values_list("value", "profile_id"):
                found[(column, value)] = profile_id
    hashes = {row.value for row in rows if row.column == "email_sha256"}
    if hashes:
        # Emails are kept as traits, not hashed in the database: hash each once here.
        for profile_id, email in (
            Profile.objects.filter(traits__has_key="email")
            .values_list("id", "traits__email")
            .iterator(chunk_size=2000)
        ):
            if isinstance(email, str) and (digest := email_sha256(email)) in hashes:
                found.setdefault(("email_sha256", digest), profile_id)
    return found


def static_segment_import(
    *,
    slug: str,
    name: str,
    handle: IO[str] | IO[bytes],
    source: str = "CSV upload",
    now: datetime | None = None,
) -> ImportReport:
    """Create the static segment ``slug`` (or replace its list) from a CSV of ids.

    Profiles listed enter, members no longer listed leave; unknown and invalid
    rows are counted and reported, never silently dropped.
    """
    now = now or timezone.now()
    text: IO[str] = (
        io.TextIOWrapper(cast(IO[bytes], handle), encoding="utf-8-sig")
        if _is_binary(handle)
        else cast(IO[str], handle)
    )
    report = ImportReport(segment=slug)
    try:
        rows = _read_rows(text, report)
    except UnicodeDecodeError:
        raise StaticSegmentError("file", "is not UTF-8 text") from None
    except csv.Error as exc:
        raise StaticSegmentError("file", f"is not valid CSV: {exc}") from None
    resolved = _resolve(rows)
    profile_ids: set[int] = set()
    for row in rows:
        profile_id = resolved.get((row.column, row.value))
        if profile_id is None:
            report.unknown += 1
            if len(report.unknown_ids) < REPORTED_UNKNOWN:
                report.unknown_ids.append(f"{row.column}={row.value}")
        elif profile_id in profile_ids:
            report.duplicates += 1
        else:
            report.matched += 1
            profile_ids.add(profile_id)
    reason = [{"text": f"listed in {source}", "held": True}]
    segment, entered, exited = _replace_list(
        slug=slug, name=name, profile_ids=profile_ids, reason=reason, now=now
    )
    report.entered, report.exited, report.members = len(entered), len(exited), len(profile_ids)
    return report


def _is_binary(handle: IO[Any]) -> bool:
    return isinstance(handle, io.BufferedIOBase | io.RawIOBase) or "b" in getattr(
        handle, "mode", ""
    )


def static_segment_freeze(
    *, source: Segment, slug: str, name: str, now: datetime | None = None
) -> Segment:
    """A static segment holding ``source``'s members now, kept as they are from then on."""
    now = now or timezone.now()
    members = set(
        Membership.objects.filter(segment=source, exited_at__isnull=True).values_list(
            "profile_id", flat=True
        )
    )
    reason = [{"text": f"in {source.name} when frozen at {now:%Y-%m-%d %H:%M}", "held": True}]
    segment, _, _ = _replace_list(
        slug=slug,
        name=name,
        profile_ids=members,
        reason=reason,
        now=now,
        description=f"Snapshot of {source.name} ({source.slug}) at {now:%Y-%m-%d %H:%M %Z}.",
        create_only=True,
    )
    return segment


def _replace_list(
    *,
    slug: str,
    name: str,
    profile_ids: set[int],
    reason: list[dict[str, Any]],
    now: datetime,
    description: str = "",
    create_only: bool = False,
) -> tuple[Segment, list[int], list[int]]:
    from segments.services import _announce_segment_changes, request_segment_recompute

    with transaction.atomic():
        segment = Segment.objects.select_for_update().filter(slug=slug).first()
        if segment is not None and (create_only or segment.kind != SegmentKind.STATIC):
            raise StaticSegmentError(
                "slug",
                f"a segment {slug!r} exists"
                + ("" if segment.kind == SegmentKind.STATIC else " and is rule-based"),
            )
        if segment is None:
            segment = Segment.objects.create(
                slug=slug,
                name=name,
                description=description,
                rule={},
                kind=SegmentKind.STATIC,
                created_at=now,
                updated_at=now,
            )
        else:
            Segment.objects.filter(pk=segment.pk).update(name=name, updated_at=now)
        current = set(
            Membership.objects.filter(segment=segment, exited_at__isnull=True).values_list(
                "profile_id", flat=True
            )
        )
        entered = sorted(profile_ids - current)
        exited = sorted(current - profile_ids)
        Membership.objects.bulk_create(
            (
                Membership(profile_id=pid, segment=segment, entered_at=now, entry_reason=reason)
                for pid in entered
            ),
            batch_size=1000,
        )
        for start in range(0, len(exited), 1000):
            Membership.objects.filter(
                segment=segment, exited_at__isnull=True, profile_id__in=exited[start : start + 1000]
            ).update(exited_at=now, exit_reason=[{"text": "no longer listed", "held": False}])
        for start in range(0, max(len(entered), len(exited)), ANNOUNCE_CHUNK):
            transaction.on_commit(
                partial(
                    _announce_segment_changes,
                    segment.slug,
                    entered=entered[start : start + ANNOUNCE_CHUNK],
                    exited=exited[start : start + ANNOUNCE_CHUNK],
                )
            )
        # Rule-based segments built on this list follow it.
        for dependent in dependent_segment_ids(slug):
            request_segment_recompute(segment_id=dependent)
    from segments.history import record_segment_sizes

    record_segment_sizes(segment_ids=[segment.pk], now=now)
    return segment, entered, exited
