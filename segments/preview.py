"""Preview a candidate rule before saving: size now, a sample, and who would enter or leave."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.conf import settings
from django.urls import reverse
from django.utils import timezone

from personalize.models import Identity
from segments import selectors
from segments.models import Membership, Segment, SegmentKind
from segments.rules import RuleError, rule_from_json
from segments.services import validate_segment_rule

SAMPLE_SIZE = 20


@dataclass(frozen=True)
class PreviewMember:
    profile_id: int
    # The id people know the profile by: its user id, else an anonymous id.
    main_id: str
    admin_url: str


@dataclass(frozen=True)
class SegmentPreview:
    size: int
    sample: list[PreviewMember]
    # Compared with the saved segment's current members (None: nothing saved yet).
    saved_size: int | None
    entering: int
    leaving: int
    warnings: list[str]

    def as_json(self) -> dict[str, Any]:
        return {
            "size": self.size,
            "sample": [
                {"profile_id": m.profile_id, "main_id": m.main_id, "admin_url": m.admin_url}
                for m in self.sample
            ],
            "saved_size": self.saved_size,
            "entering": self.entering,
            "leaving": self.leaving,
            "warnings": self.warnings,
        }


def preview_segment(
    *, rule: Any, slug: str = "", now: datetime | None = None, sample_size: int = SAMPLE_SIZE
) -> SegmentPreview:
    """What saving ``rule`` (as segment ``slug``, if given) would give, without saving.

    Raises RuleError naming the field at fault. Nothing is written.
    """
    now = now or timezone.now()
    canonical = validate_segment_rule(slug=slug, rule=rule)
    saved = Segment.objects.filter(slug=slug).first() if slug else None
    if saved is not None and saved.kind == SegmentKind.STATIC:
        raise RuleError("rule", f"segment {slug!r} is static: its members come from a list")
    parsed = rule_from_json(canonical)
    rules = {d.slug: d.rule for d in selectors.active_segment_definitions()}
    if slug:
        rules[slug] = parsed
    member_ids = selectors.segment_member_ids(rule=parsed, segments=rules, now=now)
    if saved is not None:
        current = set(
            Membership.objects.filter(segment=saved, exited_at__isnull=True).values_list(
                "profile_id", flat=True
            )
        )
        saved_size: int | None = len(current)
    else:
        current, saved_size = set(), None
    warnings = []
    minimum = settings.P13N_SEGMENT_MIN_SIZE
    if len(member_ids) < minimum:
        warnings.append(
            f"{len(member_ids)} members is under the minimum of {minimum} worth acting on"
        )
    return SegmentPreview(
        size=len(member_ids),
        sample=sample_members(sorted(member_ids)[:sample_size]),
        saved_size=saved_size,
        entering=len(member_ids - current),
        leaving=len(current - member_ids),
        warnings=warnings,
    )


def sample_members(profile_ids: list[int]) -> list[PreviewMember]:
    """The profiles with their main id (user id first) and admin link, in one query."""
    main: dict[int, str] = {}
    for profile_id, kind, value in (
        Identity.objects.filter(profile_id__in=profile_ids)
        .order_by("profile_id", "-kind", "created_at", "pk")
        .values_list("profile_id", "kind", "value")
    ):
        # "user_id" sorts after "anonymous_id", so descending puts it first.
        main.setdefault(profile_id, f"{kind}={value}")
    return [
        PreviewMember(
            profile_id=pid,
            main_id=main.get(pid, ""),
            admin_url=reverse("admin:personalize_profile_change", args=[pid]),
        )
        for pid in profile_ids
    ]
