"""Which blocks a visitor sees in a slot: pure, deterministic, explainable.

Selection never evaluates segment rules: it reads the visitor's current
memberships (already computed by the workers) and the published blocks. A
block's variant and holdout come from hashes of the block's key and the
visitor's assignment unit (see ``content.selectors.assignment_unit``), so the
same visitor gets the same answer on every call, on every channel.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

# What a page may ask for, over the block API and the live socket alike.
SLOT_NAME = re.compile(r"^[a-z0-9_-]{1,50}$")
MAX_SLOTS = 20
HOLDOUT_BUCKETS = 100


def is_slot_name(name: object) -> bool:
    return isinstance(name, str) and SLOT_NAME.match(name) is not None


def bucket(text: str, size: int) -> int:
    """A stable number in ``[0, size)`` for ``text``: the first 8 bytes of its
    SHA-256, modulo ``size`` (the bias of a 64-bit modulo is negligible)."""
    digest = hashlib.sha256(text.encode()).digest()
    return int.from_bytes(digest[:8], "big") % size


def variant_bucket(block_key: str, unit: str, total_weight: int) -> int:
    return bucket(f"{block_key}:{unit}", total_weight)


def holdout_bucket(block_key: str, unit: str) -> int:
    # A different input from the variant's: who is held out says nothing about
    # which variant the others get.
    return bucket(f"holdout:{block_key}:{unit}", HOLDOUT_BUCKETS)


@dataclass(frozen=True)
class VariantOption:
    key: str
    weight: int


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
    variants: tuple[VariantOption, ...] = ()
    holdout_percent: int = 0

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

    def targeting_reason(self) -> str:
        if not self.segment_ids:
            return "shown to everyone"
        names = ", ".join(sorted(self.segment_names)) or "targeted segments"
        quantifier = "all of " if self.match_all and len(self.segment_ids) > 1 else ""
        return f"visitor is in {quantifier}{names}"


@dataclass(frozen=True)
class Choice:
    """One block of a slot for one visitor.

    ``candidate`` is the block the visitor qualified for (what events report);
    ``content`` is whose content is shown: the block itself, or for a holdout
    the slot's default (``None`` when there is none, or it already stands in
    for another held-out block of the slot).
    """

    candidate: Candidate
    content: Candidate | None
    reasons: tuple[str, ...]
    variant: str = ""
    holdout: bool = False

    @property
    def reason(self) -> str:
        return "; ".join(self.reasons)


def assign_variant(candidate: Candidate, unit: str) -> tuple[str, str | None]:
    """The variant key for ``unit`` ("" when the block has none) and why.

    Variants in key order split ``[0, total weight)`` in proportion to their
    weights; the unit's bucket falls in exactly one. Weight 0 owns no bucket.
    """
    if not candidate.variants:
        return "", None
    weighted = [v for v in sorted(candidate.variants, key=lambda v: v.key) if v.weight > 0]
    if not weighted:
        return "", "no variant has a weight above 0: the block's own content"
    total = sum(v.weight for v in weighted)
    position = variant_bucket(candidate.key, unit, total)
    upper = 0
    for option in weighted:  # the bucket is below the total: the last option at the latest
        upper += option.weight
        if position < upper:
            break
    return option.key, f"variant {option.key}: weight {option.weight} of {total}, bucket {position}"


def _holdout(candidate: Candidate, unit: str) -> tuple[bool, str | None]:
    if candidate.holdout_percent <= 0:
        return False, None
    position = holdout_bucket(candidate.key, unit)
    if position < candidate.holdout_percent:
        return True, f"holdout: bucket {position} of 100 is under {candidate.holdout_percent}%"
    return False, f"outside the {candidate.holdout_percent}% holdout: bucket {position} of 100"


def choose(
    candidates: Iterable[Candidate],
    segment_ids: frozenset[int],
    now: datetime | None = None,
    *,
    unit: str = "",
    capacity: int = 1,
) -> list[Choice]:
    """Up to ``capacity`` blocks on schedule that the visitor qualifies for, in order:
    untargeted blocks qualify everyone, targeted ones need any (or, with
    ``match_all``, all) of their segments, and an excluded segment disqualifies.
    Priority alone orders them (editors raise a targeted block above a general
    one); ties go to the key. With none, the slot's default.

    Each chosen block then gets its variant for ``unit``, unless the unit falls in
    the block's holdout: it sees the slot's default in that place instead.
    """
    ordered = sorted(candidates, key=lambda c: (-c.priority, c.key))
    default: Candidate | None = None
    matched: list[Candidate] = []
    for candidate in ordered:
        if now is not None and not candidate.on_schedule(now):
            continue
        if candidate.is_default:
            default = default or candidate
        elif candidate.targets(segment_ids):
            matched.append(candidate)
    if not matched:
        if default is None:
            return []
        variant, why = assign_variant(default, unit)
        reasons = ("default for the slot: no targeted block matched", *([why] if why else []))
        return [Choice(default, default, reasons, variant=variant)]
    choices: list[Choice] = []
    stand_in = default
    for candidate in matched[: max(1, capacity)]:
        held, holdout_reason = _holdout(candidate, unit)
        if held:
            shown = stand_in
            stand_in = None  # the default stands in once per slot, never twice
            instead = f"sees the default {shown.key} instead" if shown else "sees nothing instead"
            reasons = (candidate.targeting_reason(), f"{holdout_reason}, {instead}")
            choices.append(Choice(candidate, shown, reasons, holdout=True))
            continue
        variant, variant_reason = assign_variant(candidate, unit)
        reasons = tuple(
            r for r in (candidate.targeting_reason(), holdout_reason, variant_reason) if r
        )
        choices.append(Choice(candidate, candidate, reasons, variant=variant))
    return choices
