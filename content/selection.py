"""Which block a visitor sees in a slot: pure, deterministic, explainable.

Selection never evaluates segment rules: it reads the visitor's current
memberships (already computed by the workers) and the published blocks.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

# What a page may ask for, over the block API and the live socket alike.
SLOT_NAME = re.compile(r"^[a-z0-9_-]{1,50}$")
MAX_SLOTS = 20


def is_slot_name(name: object) -> bool:
    return isinstance(name, str) and SLOT_NAME.match(name) is not None


@dataclass(frozen=True)
class Candidate:
    id: int
    slot: str
    key: str
    priority: int
    is_default: bool
    segment_ids: frozenset[int]
    segment_names: tuple[str, ...] = ()
    match_all: bool = False
    excluded_ids: frozenset[int] = frozenset()
    starts_at: datetime | None = None
    ends_at: datetime | None = None

    def on_schedule(self, now: datetime) -> bool:
        return (self.starts_at is None or self.starts_at <= now) and (
            self.ends_at is None or now < self.ends_at
        )

    def targets(self, segment_ids: frozenset[int]) -> bool:
        if self.excluded_ids & segment_ids:
            return False
        if not self.segment_ids:
            return True
        if self.match_all:
            return self.segment_ids <= segment_ids
        return bool(self.segment_ids & segment_ids)


@dataclass(frozen=True)
class Choice:
    candidate: Candidate
    reason: str


def choose(
    candidates: Iterable[Candidate], segment_ids: frozenset[int], now: datetime | None = None
) -> Choice | None:
    """The highest-priority block on schedule that the visitor qualifies for:
    untargeted blocks qualify everyone, targeted ones need any (or, with
    ``match_all``, all) of their segments, and an excluded segment disqualifies.
    Priority alone orders them (editors raise a targeted block above a general
    one); ties go to the key. With none, the slot's default."""
    ordered = sorted(candidates, key=lambda c: (-c.priority, c.key))
    default: Candidate | None = None
    for candidate in ordered:
        if now is not None and not candidate.on_schedule(now):
            continue
        if candidate.is_default:
            default = default or candidate
            continue
        if not candidate.targets(segment_ids):
            continue
        if not candidate.segment_ids:
            return Choice(candidate, "shown to everyone")
        names = ", ".join(sorted(candidate.segment_names)) or "targeted segments"
        quantifier = "all of " if candidate.match_all and len(candidate.segment_ids) > 1 else ""
        return Choice(candidate, f"visitor is in {quantifier}{names}")
    if default is not None:
        return Choice(default, "default for the slot: no targeted block matched")
    return None
