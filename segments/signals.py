"""Membership change events that other parts subscribe to (the live push, webhooks).

``memberships_changed`` is sent after the transaction that changed memberships
commits, with ``changes``: a list of :class:`SegmentsChanged`, one per profile.
The per-profile path sends one; a whole-segment recompute sends one list per
chunk, so receivers can do their I/O in bulk (one event loop, one query).
"""

from __future__ import annotations

from dataclasses import dataclass

from django.dispatch import Signal


@dataclass(frozen=True)
class SegmentsChanged:
    profile_id: int
    entered: list[str]
    exited: list[str]
    # Every segment the profile is in after the change.
    segments: list[str]


memberships_changed = Signal()
