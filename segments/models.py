from __future__ import annotations

from typing import Any

from django.db import models
from django.db.models import Q
from django.utils import timezone
from simple_history.models import HistoricalRecords

from personalize.models import Profile
from segments.rules import Rule, rule_from_json
from segments.rules.schema import criteria_from_json
from segments.rules.tree import ScoreDefinition


class Segment(models.Model):
    """A named group of profiles, defined by a rule over traits and behaviour."""

    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=100, unique=True)
    description = models.TextField(blank=True)
    # The validated JSON rule tree (segments.rules.schema); never edited raw in
    # code: services.segment_save validates it first.
    rule = models.JSONField()
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)
    # Every saved version, with who saved it (admin history and revert, audit log).
    history = HistoricalRecords()

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def parsed_rule(self) -> Rule:
        return rule_from_json(self.rule)


class Membership(models.Model):
    """A profile's stay in a segment: open while ``exited_at`` is null; history after."""

    profile = models.ForeignKey(Profile, on_delete=models.CASCADE, related_name="memberships")
    segment = models.ForeignKey(Segment, on_delete=models.CASCADE, related_name="memberships")
    entered_at = models.DateTimeField()
    exited_at = models.DateTimeField(null=True, blank=True)
    # Why: the explained conditions at entry and at exit.
    entry_reason: models.JSONField[Any, Any] = models.JSONField(default=list, blank=True)
    exit_reason: models.JSONField[Any, Any] = models.JSONField(default=list, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["profile", "segment"],
                condition=Q(exited_at__isnull=True),
                name="membership_one_open_per_segment",
            ),
        ]
        indexes = [models.Index(fields=["segment", "exited_at"], name="membership_segment_open")]
        ordering = ["-entered_at"]

    def __str__(self) -> str:
        return f"{self.profile} in {self.segment}"

    @property
    def is_current(self) -> bool:
        return self.exited_at is None


class Score(models.Model):
    """A weighted score: the sum of the points of its criteria that hold for a profile.

    Criteria are rules in the segment language; segments (and other scores) can
    compare a score with a threshold: ``score(engagement) >= 50``.
    """

    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=100, unique=True)
    description = models.TextField(blank=True)
    # [{"rule": RULE, "points": 10}, ...], validated by services.score_save.
    criteria = models.JSONField()
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def parsed_criteria(self) -> ScoreDefinition:
        return criteria_from_json(self.criteria)


class ProfileScore(models.Model):
    """A profile's value of a score, as of its last recompute."""

    profile = models.ForeignKey(Profile, on_delete=models.CASCADE, related_name="scores")
    score = models.ForeignKey(Score, on_delete=models.CASCADE, related_name="profile_scores")
    value = models.FloatField()
    # Which criteria held, with their points: shown on the profile.
    criteria: models.JSONField[Any, Any] = models.JSONField(default=list, blank=True)
    updated_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["profile", "score"], name="profile_score_unique"),
        ]
        ordering = ["score__name"]

    def __str__(self) -> str:
        return f"{self.score} = {self.value:g} for {self.profile}"
