from __future__ import annotations

import secrets

from django.conf import settings
from django.db import models
from django.utils import timezone


def new_write_key() -> str:
    return secrets.token_urlsafe(24)


class Source(models.Model):
    """Where events come from: a site, an app, a server. Authenticated by its write key."""

    name = models.CharField(max_length=100, unique=True)
    write_key = models.CharField(max_length=64, unique=True, default=new_write_key)
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return self.name


class RejectedEvent(models.Model):
    """A message that failed validation, kept with its reasons until fixed and replayed.

    Nothing a client sends is silently dropped: a batch's bad items land here
    while its good ones are stored.
    """

    class Status(models.TextChoices):
        QUARANTINED = "quarantined", "Quarantined"
        REPLAYED = "replayed", "Replayed"
        DISCARDED = "discarded", "Discarded"

    source = models.ForeignKey(Source, on_delete=models.CASCADE, related_name="rejected_events")
    payload = models.JSONField(
        help_text="The message as received, with the batch's context applied."
    )
    field = models.CharField(max_length=255)
    reason = models.TextField()
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.QUARANTINED)
    received_at = models.DateTimeField()
    replayed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-received_at", "-id"]
        indexes = [models.Index(fields=["source", "status"], name="rejected_source_status")]

    def __str__(self) -> str:
        return f"{self.field}: {self.reason}"


class ApiKey(models.Model):
    """A server secret key for server-side callers; only its SHA-256 is stored.

    Keys are 256 random bits, so a fast hash is enough: there is nothing to
    brute-force that a slow password hash would protect.
    """

    name = models.CharField(max_length=100)
    prefix = models.CharField(
        max_length=16, help_text="The key's first characters, to recognise it."
    )
    hashed_key = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(default=timezone.now)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked = models.BooleanField(default=False)

    class Meta:
        verbose_name = "server API key"

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"


class Profile(models.Model):
    """One person, stitched across the ids they were seen under."""

    class Consent(models.TextChoices):
        UNKNOWN = "unknown", "Not stated"
        GRANTED = "granted", "Granted"
        DENIED = "denied", "Denied"

    traits = models.JSONField(default=dict, blank=True)
    # From `consent_changed` events (our snippet's p13n.consent()); activations
    # must not reach a profile that denied it.
    consent = models.CharField(max_length=10, choices=Consent.choices, default=Consent.UNKNOWN)
    consent_updated_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    last_seen_at = models.DateTimeField(null=True, blank=True)
    # Kept from the derived sessions (personalize.sessions).
    session_count = models.PositiveIntegerField(default=0)
    time_on_site_seconds = models.FloatField(default=0)
    # Set when new events arrive and cleared by the worker that recomputes; a
    # conditional update on it coalesces bursts of events into one recompute.
    recompute_requested_at = models.DateTimeField(null=True, blank=True, db_index=True)
    # The earliest moment any segment's truth for this profile can change with
    # no new event (a window lapsing); the scheduled sweep recomputes then.
    next_evaluation_at = models.DateTimeField(null=True, blank=True, db_index=True)

    def __str__(self) -> str:
        return f"Profile {self.pk}"


class Identity(models.Model):
    class Kind(models.TextChoices):
        ANONYMOUS_ID = "anonymous_id", "Anonymous id"
        USER_ID = "user_id", "User id"

    profile = models.ForeignKey(Profile, on_delete=models.CASCADE, related_name="identities")
    kind = models.CharField(max_length=20, choices=Kind.choices)
    value = models.CharField(max_length=255)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["kind", "value"], name="identity_kind_value_unique"),
        ]
        verbose_name_plural = "identities"

    def __str__(self) -> str:
        return f"{self.kind}={self.value}"


class Event(models.Model):
    """A tracked call (track, page, identify...), stored as received after validation."""

    class Type(models.TextChoices):
        TRACK = "track"
        PAGE = "page"
        SCREEN = "screen"
        IDENTIFY = "identify"
        GROUP = "group"
        ALIAS = "alias"

    source = models.ForeignKey(Source, on_delete=models.PROTECT, related_name="events")
    profile = models.ForeignKey(Profile, on_delete=models.CASCADE, related_name="events")
    message_id = models.CharField(max_length=255)
    type = models.CharField(max_length=10, choices=Type.choices)
    # The name rules match on: the track event's name, or the call type for others.
    name = models.CharField(max_length=255)
    properties = models.JSONField(default=dict, blank=True)
    context = models.JSONField(default=dict, blank=True)
    anonymous_id = models.CharField(max_length=255, blank=True)
    user_id = models.CharField(max_length=255, blank=True)
    # timestamp is corrected for client clock skew; the raw values are kept beside it.
    timestamp = models.DateTimeField()
    original_timestamp = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    received_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["source", "message_id"], name="event_source_message_unique"
            ),
        ]
        indexes = [
            models.Index(fields=["profile", "name", "timestamp"], name="event_profile_name_ts"),
            models.Index(fields=["timestamp"], name="event_ts"),
        ]
        ordering = ["timestamp", "id"]

    def __str__(self) -> str:
        return f"{self.name} @ {self.timestamp:%Y-%m-%d %H:%M:%S}"


class Session(models.Model):
    """A visit: a run of a profile's events with no gap longer than the session timeout."""

    profile = models.ForeignKey(Profile, on_delete=models.CASCADE, related_name="sessions")
    started_at = models.DateTimeField()
    ended_at = models.DateTimeField()
    events = models.PositiveIntegerField(default=0)
    pages = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-started_at"]
        indexes = [models.Index(fields=["profile", "started_at"], name="session_profile_start")]

    def __str__(self) -> str:
        return f"Session of {self.profile} at {self.started_at:%Y-%m-%d %H:%M}"

    @property
    def duration_seconds(self) -> float:
        return (self.ended_at - self.started_at).total_seconds()


class ImportJob(models.Model):
    """A file uploaded in admin, imported by a worker in chunks (personalize.import_jobs).

    ``processed`` moves only in the same transaction as the chunk it counts, so
    a redelivered task resumes exactly after the last committed chunk.
    """

    class Kind(models.TextChoices):
        EVENTS = "events", "Events (one message per row)"
        PROFILES = "profiles", "Profiles (one person per row)"

    class Format(models.TextChoices):
        CSV = "csv", "CSV"
        JSONL = "jsonl", "JSON Lines"

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    file = models.FileField(upload_to="imports/%Y/%m/")
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.EVENTS)
    file_format = models.CharField("format", max_length=5, choices=Format.choices)
    source = models.ForeignKey(Source, on_delete=models.PROTECT, related_name="import_jobs")
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.QUEUED)
    total_rows = models.PositiveIntegerField(null=True, blank=True)
    processed = models.PositiveIntegerField(default=0)
    stored = models.PositiveIntegerField(default=0)
    duplicates = models.PositiveIntegerField(default=0)
    rejected = models.PositiveIntegerField(default=0)
    # The first rejected rows' reasons (all of them are in the quarantine).
    row_errors = models.JSONField(default=list, blank=True)
    error = models.TextField(blank=True, help_text="Why the import stopped, if it failed.")
    started_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"Import {self.pk} ({self.kind}, {self.file.name})"

    @property
    def finished(self) -> bool:
        return self.status in {self.Status.DONE, self.Status.FAILED}
