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


class ProfileEvaluation(models.Model):
    """The incremental path's bookkeeping for one profile (docs/evaluation-paths.md).

    ``pending_*`` say why a recompute was requested, so that it re-evaluates only
    the segments and scores those inputs can change. They are written under the
    profile's row lock by ``services.request_recompute`` and cleared by the
    recompute that reads them; with ``Profile.recompute_requested_at`` they are
    the outbox the stale-request sweep works from when the broker was down.
    """

    profile = models.OneToOneField(
        Profile, primary_key=True, on_delete=models.CASCADE, related_name="evaluation"
    )
    # Names of the events that arrived (non-track calls by their type).
    pending_events: models.JSONField[Any, Any] = models.JSONField(default=list, blank=True)
    # Whether traits may have changed (identify and group calls).
    pending_traits = models.BooleanField(default=False)
    # The reason is unknown (a merge, a purge): every segment and score is re-evaluated.
    pending_all = models.BooleanField(default=False)
    # As of each one's last evaluation for this profile: the next moment a segment's or
    # score's truth can change with no new event ({"segment:<id>": ISO time, ...}); a
    # recompute that skips one keeps its entry, so next_evaluation_at stays the minimum.
    next_changes: models.JSONField[Any, Any] = models.JSONField(default=dict, blank=True)
    # segments.definitions.definitions_version() of the definitions those were computed
    # with; any other version means a full re-evaluation.
    definitions_version = models.CharField(max_length=64, blank=True)

    def __str__(self) -> str:
        return f"evaluation of {self.profile_id}"
