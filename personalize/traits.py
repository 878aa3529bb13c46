"""Profile traits: last write wins per key by event time, whatever the arrival order.

Pure functions over a profile's ``traits`` and ``trait_times`` ({key: ISO time});
no database access. A key with no recorded time (set before times were kept, or
typed into the admin) loses to any timed write.

A group call's traits are kept under ``traits["group"]`` as
``{"id": <groupId>, **group traits}``, their times as ``"group.id"`` and
``"group.<key>"``. A newer call naming another group replaces the object; calls
for the same group combine key by key.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.utils.dateparse import parse_datetime

GROUP_KEY = "group"
EMAIL_KEY = "email"
EMAIL_HASH_KEY = "email_sha256"


@dataclass
class TraitState:
    traits: dict[str, Any] = field(default_factory=dict)
    times: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, traits: Mapping[str, Any] | None, times: Mapping[str, str] | None) -> TraitState:
        return cls(traits=dict(traits or {}), times=dict(times or {}))

    def time_of(self, key: str) -> datetime | None:
        raw = self.times.get(key)
        return parse_datetime(raw) if isinstance(raw, str) else None

    def newer_or_equal(self, key: str, at: datetime) -> bool:
        """Whether a write at ``at`` may set ``key`` (ties go to the later arrival)."""
        current = self.time_of(key)
        return current is None or at >= current


def email_hash(email: str) -> str:
    """SHA-256 of the trimmed, lower-cased address: the form ad platforms match on."""
    return hashlib.sha256(email.strip().lower().encode()).hexdigest()


def identify_traits(traits: Mapping[str, Any], *, hash_email: bool) -> dict[str, Any]:
    """An identify's traits, with ``email_sha256`` derived from ``email`` when asked."""
    result = dict(traits)
    email = result.get(EMAIL_KEY)
    if hash_email and isinstance(email, str) and email.strip() and EMAIL_HASH_KEY not in result:
        result[EMAIL_HASH_KEY] = email_hash(email)
    return result


def apply_identify(state: TraitState, traits: Mapping[str, Any], at: datetime) -> None:
    stamp = at.isoformat()
    for key, value in traits.items():
        if state.newer_or_equal(key, at):
            state.traits[key] = value
            state.times[key] = stamp


def apply_group(state: TraitState, group_id: str, traits: Mapping[str, Any], at: datetime) -> None:
    stamp = at.isoformat()
    current = state.traits.get(GROUP_KEY)
    same_group = isinstance(current, dict) and current.get("id") == group_id
    if not same_group:
        if not state.newer_or_equal(f"{GROUP_KEY}.id", at):
            return  # an older call about another group
        for key in [k for k in state.times if k.startswith(f"{GROUP_KEY}.")]:
            del state.times[key]
        state.traits[GROUP_KEY] = {"id": group_id}
        state.times[f"{GROUP_KEY}.id"] = stamp
    group: dict[str, Any] = dict(state.traits[GROUP_KEY])
    if state.newer_or_equal(f"{GROUP_KEY}.id", at):
        state.times[f"{GROUP_KEY}.id"] = stamp
    for key, value in traits.items():
        if key == "id":
            continue  # the group's id is its groupId
        time_key = f"{GROUP_KEY}.{key}"
        if state.newer_or_equal(time_key, at):
            group[key] = value
            state.times[time_key] = stamp
    state.traits[GROUP_KEY] = group


def merge_states(survivor: TraitState, merged: TraitState) -> TraitState:
    """Two profiles' traits combined key by key by time; on a tie, or with no
    times at all, the survivor's value stays."""
    result = TraitState.of(survivor.traits, survivor.times)
    for key, value in merged.traits.items():
        if key == GROUP_KEY and isinstance(value, dict):
            _merge_group(result, merged)
            continue
        theirs = merged.time_of(key)
        ours = result.time_of(key)
        if key not in result.traits or (theirs is not None and (ours is None or theirs > ours)):
            result.traits[key] = value
            if key in merged.times:
                result.times[key] = merged.times[key]
    return result


def _merge_group(result: TraitState, merged: TraitState) -> None:
    group = merged.traits[GROUP_KEY]
    at = merged.time_of(f"{GROUP_KEY}.id")
    ours = result.traits.get(GROUP_KEY)
    if ours is None:
        result.traits[GROUP_KEY] = dict(group)
        result.times.update(_group_times(merged.times))
        return
    if not isinstance(ours, dict):
        return  # an identify trait named "group": not ours to replace
    if ours.get("id") != group.get("id"):
        ours_at = result.time_of(f"{GROUP_KEY}.id")
        if at is not None and (ours_at is None or at > ours_at):
            for key in [k for k in result.times if k.startswith(f"{GROUP_KEY}.")]:
                del result.times[key]
            result.traits[GROUP_KEY] = dict(group)
            result.times.update(_group_times(merged.times))
        return
    combined = dict(ours)
    for key, value in group.items():
        time_key = f"{GROUP_KEY}.{key}"
        theirs = merged.time_of(time_key)
        mine = result.time_of(time_key)
        if key not in combined or (theirs is not None and (mine is None or theirs > mine)):
            combined[key] = value
            if time_key in merged.times:
                result.times[time_key] = merged.times[time_key]
    result.traits[GROUP_KEY] = combined


def _group_times(times: Mapping[str, str]) -> dict[str, str]:
    return {k: v for k, v in times.items() if k.startswith(f"{GROUP_KEY}.")}


def stitch_values(traits: Mapping[str, Any], keys: Iterable[str]) -> list[tuple[str, str]]:
    """The (trait, value) pairs of ``keys`` present in ``traits``, as id strings."""
    pairs = []
    for key in keys:
        value = traits.get(key)
        if isinstance(value, bool) or not isinstance(value, str | int):
            continue
        text = str(value).strip()
        if text:
            pairs.append((key, text))
    return pairs
