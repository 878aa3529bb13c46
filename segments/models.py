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


class SegmentKind(models.TextChoices):
    DYNAMIC = "dynamic", "Dynamic: members follow the rule"
    STATIC = "static", "Static: a fixed list (CSV import or frozen snapshot)"


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

    # A static segment's members are a fixed list (segments.static): rules never
    # recompute them, and its ``rule`` is empty ({}).
    kind = models.CharField(max_length=10, choices=SegmentKind.choices, default=SegmentKind.DYNAMIC)

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


# --- static segments, size history, webhooks (docs/segments-admin.md) -------------------
# Appended rather than merged into Segment's body so parallel edits of the class stay apart.


class SegmentSizeSnapshot(models.Model):
    """How many members a segment had at a moment, kept for size-over-time charts."""

    segment = models.ForeignKey(Segment, on_delete=models.CASCADE, related_name="size_snapshots")
    at = models.DateTimeField()
    members = models.PositiveIntegerField()

    class Meta:
        indexes = [models.Index(fields=["segment", "at"], name="segment_size_segment_at")]
        ordering = ["segment", "at"]

    def __str__(self) -> str:
        return f"{self.segment} at {self.at:%Y-%m-%d %H:%M}: {self.members}"


class Webhook(models.Model):
    """An endpoint told about membership changes (entered/exited), signed with ``secret``."""

    name = models.CharField(max_length=200)
    url = models.URLField(max_length=500)
    # HMAC-SHA256 of the raw body with this secret goes in X-P13N-Signature.
    secret = models.CharField(max_length=200)
    # Empty: every segment; otherwise only changes that enter or exit these.
    segments = models.ManyToManyField(Segment, blank=True, related_name="webhooks")
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


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


class WebhookDelivery(models.Model):
    """One POST of a batch of changes to a webhook: the outbox row and its last outcome."""

    class Status(models.TextChoices):
        PENDING = "pending"
        DELIVERED = "delivered"
        FAILED = "failed"

    webhook = models.ForeignKey(Webhook, on_delete=models.CASCADE, related_name="deliveries")
    payload: models.JSONField[Any, Any] = models.JSONField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    last_status_code = models.PositiveIntegerField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["status", "created_at"], name="webhook_delivery_status")]
        ordering = ["-created_at"]
        verbose_name_plural = "webhook deliveries"

    def __str__(self) -> str:
        return f"{self.webhook} #{self.pk} ({self.status})"


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
