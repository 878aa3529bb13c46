"""The per-profile recompute's reads and writes, in plain SQL (PostgreSQL and SQLite).

A recompute after one event runs a handful of small statements of fixed shape;
building and compiling them with the ORM cost more than running them (most of the
incremental path's time, docs/evaluation-paths.md). The statements are the same on
both databases; only the row lock (``FOR UPDATE``, which SQLite does without: it
locks the whole database on write) and value conversions differ, and those are
taken from Django's own backend (``connection.ops``, the fields' ``get_db_prep_save``).
Each statement's text is built once per database vendor and shape.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.db import connection
from django.utils.dateparse import parse_datetime

from personalize.models import Event, Profile
from segments.models import Membership, ProfileEvaluation, Segment
from segments.rules import EventRecord


def _table(model: Any) -> str:
    return str(connection.ops.quote_name(model._meta.db_table))


def _column(model: Any, field: str) -> str:
    return str(connection.ops.quote_name(model._meta.get_field(field).column))


def _json(value: Any) -> Any:
    """A JSON column as read by a plain cursor: text on both databases."""
    return json.loads(value) if isinstance(value, str | bytes) else value


def _moment(value: Any) -> datetime | None:
    """A datetime column: aware on PostgreSQL, naive UTC (or text) on SQLite."""
    if value is None:
        return None
    if isinstance(value, str):
        value = parse_datetime(value)
        assert value is not None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _db_moment(value: datetime | None) -> Any:
    return connection.ops.adapt_datetimefield_value(value)


def _db_json(model: Any, field: str, value: Any) -> Any:
    return model._meta.get_field(field).get_db_prep_save(value, connection)


def sql_placeholders(count: int) -> str:
    """``%s, %s, …``: the parameter markers of an IN list or a VALUES row."""
    return ", ".join(["%s"] * count)


@dataclass(frozen=True)
class OpenMembership:
    id: int
    segment_id: int
    slug: str
    kind: str
    segment_active: bool


@dataclass
class ProfileForRecompute:
    """A profile locked for its recompute: its incremental bookkeeping
    (``ProfileEvaluation``; defaults when it has none yet) and open memberships."""

    id: int
    traits: dict[str, Any]
    next_evaluation_at: datetime | None
    pending_events: list[str]
    pending_traits: bool
    pending_all: bool
    next_changes: dict[str, str]
    definitions_version: str
    memberships: list[OpenMembership]


@functools.cache
def _lock_profile_sql(vendor: str) -> str:
    p, e, m, s = Profile, ProfileEvaluation, Membership, Segment
    sql = (
        f"SELECT p.{_column(p, 'traits')}, p.{_column(p, 'next_evaluation_at')},"
        f" e.{_column(e, 'profile')}, e.{_column(e, 'pending_events')},"
        f" e.{_column(e, 'pending_traits')}, e.{_column(e, 'pending_all')},"
        f" e.{_column(e, 'next_changes')}, e.{_column(e, 'definitions_version')},"
        f" m.{_column(m, 'id')}, m.{_column(m, 'segment')}, s.{_column(s, 'slug')},"
        f" s.{_column(s, 'kind')}, s.{_column(s, 'is_active')}"
        f" FROM {_table(p)} p"
        f" LEFT JOIN {_table(e)} e ON e.{_column(e, 'profile')} = p.{_column(p, 'id')}"
        f" LEFT JOIN {_table(m)} m ON m.{_column(m, 'profile')} = p.{_column(p, 'id')}"
        f" AND m.{_column(m, 'exited_at')} IS NULL"
        f" LEFT JOIN {_table(s)} s ON s.{_column(s, 'id')} = m.{_column(m, 'segment')}"
        f" WHERE p.{_column(p, 'id')} = %s"
    )
    if connection.features.has_select_for_update_of:
        sql += " FOR UPDATE OF p"
    return sql


def lock_profile(profile_id: int) -> ProfileForRecompute | None:
    """The profile, its bookkeeping and its open memberships (with their segments'
    slug, kind and activity), in one statement that locks the profile's row until
    the transaction ends: the lock every writer of its memberships takes first, so
    the memberships read are the ones to change. None if the profile is gone."""
    sql = _lock_profile_sql(connection.vendor)
    with connection.cursor() as cursor:
        cursor.execute(sql, [profile_id])
        rows = cursor.fetchall()
    if not rows:
        return None
    traits, next_at, evaluated, events, traits_changed, everything, changes, version = rows[0][:8]
    return ProfileForRecompute(
        id=profile_id,
        traits=_json(traits) or {},
        next_evaluation_at=_moment(next_at),
        pending_events=(_json(events) or []) if evaluated is not None else [],
        pending_traits=bool(traits_changed),
        pending_all=bool(everything),
        next_changes=(_json(changes) or {}) if evaluated is not None else {},
        definitions_version=version or "",
        memberships=[
            OpenMembership(id=pk, segment_id=segment, slug=slug, kind=kind, segment_active=bool(on))
            for pk, segment, slug, kind, on in (row[8:] for row in rows)
            if pk is not None
        ],
    )


@functools.cache
def _events_sql(vendor: str, names: int, bounded: bool) -> str:
    ev = Event
    sql = (
        f"SELECT {_column(ev, 'id')}, {_column(ev, 'name')}, {_column(ev, 'timestamp')},"
        f" {_column(ev, 'properties')}, {_column(ev, 'context')} FROM {_table(ev)}"
        f" WHERE {_column(ev, 'profile')} = %s AND {_column(ev, 'name')} IN ({sql_placeholders(names)})"
    )
    if bounded:
        sql += f" AND {_column(ev, 'timestamp')} > %s"
    return sql


def events(
    *, profile_id: int, names: Iterable[str], since: datetime | None
) -> list[tuple[int, EventRecord]]:
    """(id, event) of the profile's events with these names, after ``since`` (None: all)."""
    names = sorted(names)
    if not names:
        return []
    sql = _events_sql(connection.vendor, len(names), since is not None)
    params: list[Any] = [profile_id, *names]
    if since is not None:
        params.append(_db_moment(since))
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    found = []
    for pk, name, timestamp, properties, context in rows:
        moment = _moment(timestamp)
        assert moment is not None
        found.append(
            (
                pk,
                EventRecord(
                    name=name,
                    timestamp=moment,
                    properties=_json(properties) or {},
                    context=_json(context) or {},
                ),
            )
        )
    return found


def open_memberships_insert(
    *, profile_id: int, reasons: Mapping[int, list[dict[str, Any]]], now: datetime
) -> None:
    """Open a membership in each segment of ``reasons`` (segment id → entry reason)."""
    if not reasons:
        return
    m = Membership
    columns = ", ".join(
        _column(m, name)
        for name in ("profile", "segment", "entered_at", "entry_reason", "exit_reason")
    )
    rows = ", ".join(f"({sql_placeholders(5)})" for _ in reasons)
    params: list[Any] = []
    empty = _db_json(m, "exit_reason", [])
    for segment_id, reason in reasons.items():
        params += [profile_id, segment_id, _db_moment(now), _db_json(m, "entry_reason", reason)]
        params.append(empty)
    with connection.cursor() as cursor:
        cursor.execute(f"INSERT INTO {_table(m)} ({columns}) VALUES {rows}", params)


def close_memberships(
    *, reasons: Sequence[tuple[int, list[dict[str, Any]]]], now: datetime
) -> None:
    """Close these memberships ((membership id, exit reason) each) at ``now``."""
    if not reasons:
        return
    m = Membership
    sql = (
        f"UPDATE {_table(m)} SET {_column(m, 'exited_at')} = %s, {_column(m, 'exit_reason')} = %s"
        f" WHERE {_column(m, 'id')} = %s"
    )
    with connection.cursor() as cursor:
        cursor.executemany(
            sql,
            [
                (_db_moment(now), _db_json(m, "exit_reason", reason), membership_id)
                for membership_id, reason in reasons
            ],
        )


@functools.cache
def _record_evaluation_sql(vendor: str) -> tuple[str, str]:
    p, e = Profile, ProfileEvaluation
    profile_update = (
        f"UPDATE {_table(p)} SET {_column(p, 'recompute_requested_at')} = NULL,"
        f" {_column(p, 'next_evaluation_at')} = %s WHERE {_column(p, 'id')} = %s"
    )
    written = ["pending_events", "pending_traits", "pending_all", "next_changes"]
    columns = [_column(e, "profile"), *(_column(e, name) for name in written)]
    columns.append(_column(e, "definitions_version"))
    updates = ", ".join(f"{column} = excluded.{column}" for column in columns[1:])
    upsert = (
        f"INSERT INTO {_table(e)} ({', '.join(columns)}) VALUES ({sql_placeholders(6)})"
        f" ON CONFLICT ({columns[0]}) DO UPDATE SET {updates}"
    )
    return profile_update, upsert


def record_evaluation(
    *,
    profile_id: int,
    next_evaluation_at: datetime | None,
    next_changes: Mapping[str, str],
    definitions_version: str,
) -> None:
    """What a recompute leaves: the request answered (nothing pending) and the next
    moment each segment or score can change by time alone, their minimum on the
    profile for the sweep."""
    profile_update, upsert = _record_evaluation_sql(connection.vendor)
    e = ProfileEvaluation
    profile_params = [_db_moment(next_evaluation_at), profile_id]
    upsert_params = [
        profile_id,
        _db_json(e, "pending_events", []),
        False,
        False,
        _db_json(e, "next_changes", dict(next_changes)),
        definitions_version,
    ]
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # One round trip: the profile's update rides along as a data-modifying CTE.
            cursor.execute(
                f"WITH profile_done AS ({profile_update}) {upsert}", profile_params + upsert_params
            )
        else:
            cursor.execute(profile_update, profile_params)
            cursor.execute(upsert, upsert_params)
