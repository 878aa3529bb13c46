"""Which block a visitor sees in a slot: pure, deterministic, explainable.

Selection never evaluates segment rules: it reads the visitor's current
memberships (already computed by the workers) and the published blocks.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Candidate:
    id: int
    slot: str
    key: str
    priority: int
    is_default: bool
    segment_ids: frozenset[int]
    segment_names: tuple[str, ...] = ()


@dataclass(frozen=True)
class Choice:
    candidate: Candidate
    reason: str


def choose(candidates: Iterable[Candidate], segment_ids: frozenset[int]) -> Choice | None:
    """The highest-priority block the visitor qualifies for: untargeted blocks
    qualify everyone, targeted ones need one of their segments. Priority alone
    orders them (editors raise a targeted block above a general one); ties go
    to the key. With none, the slot's default."""
    ordered = sorted(candidates, key=lambda c: (-c.priority, c.key))
    default: Candidate | None = None
    for candidate in ordered:
        if candidate.is_default:
            default = default or candidate
            continue
        if not candidate.segment_ids:
            return Choice(candidate, "shown to everyone")
        matched = candidate.segment_ids & segment_ids
        if matched:
            names = ", ".join(sorted(candidate.segment_names)) or "targeted segments"
            return Choice(candidate, f"visitor is in {names}")
    if default is not None:
        return Choice(default, "default for the slot: no targeted block matched")
    return None
