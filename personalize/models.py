from __future__ import annotations

import secrets

from django.conf import settings
from django.db import models
from django.utils import timezone

from config.stamps import StampBumpingQuerySet
from personalize.plans import validate_tracking_plan

# Bumped by every write to sources: web processes keep our pages' write key.
SOURCES_STAMP = "personalize:sources"


def new_write_key() -> str:
    return secrets.token_urlsafe(24)


class SourceQuerySet(StampBumpingQuerySet["Source"]):
    bumps = (SOURCES_STAMP,)


class Source(models.Model):
    """Where events come from: a site, an app, a server. Authenticated by its write key."""

    name = models.CharField(max_length=100, unique=True)
    write_key = models.CharField(max_length=64, unique=True, default=new_write_key)
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now)

    class PlanMode(models.TextChoices):
        BLOCK = "block", "Block: quarantine violating events"
        FLAG = "flag", "Flag: store violating events with their violations"

    class Unplanned(models.TextChoices):
        ALLOW = "allow", "Allow"
        FLAG = "flag", "Flag"
        BLOCK = "block", "Block"

    tracking_plan = models.JSONField(
        default=dict,
        blank=True,
        validators=[validate_tracking_plan],
        help_text=(
            'JSON Schemas (Draft 2020-12): {"track": {"Event Name": schema of properties}, '
            '"identify": schema of traits, "page": schema, "screen": schema}. Empty: no plan.'
        ),
    )
    plan_mode = models.CharField(
        max_length=5,
        choices=PlanMode.choices,
        default=PlanMode.FLAG,
        help_text="What a schema violation does to an event.",
    )
    unplanned_events = models.CharField(
        max_length=5,
        choices=Unplanned.choices,
        default=Unplanned.ALLOW,
        help_text="What happens to track events the plan does not name (only with a plan).",
    )

    # Bulk writes (a key rotated with update()) bump the stamp too.
    objects = SourceQuerySet.as_manager()

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
    # The track event's name, or the call type; empty when the message had neither.
    event_name = models.CharField(max_length=255, blank=True)
    field = models.CharField(max_length=255)
    reason = models.TextField()
    # Every tracking-plan violation ({field, reason, rule}); field/reason hold the first.
    violations = models.JSONField(default=list, blank=True)
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
    # When each trait was last set, by event time ({key: ISO time}; a group
    # call's keys as "group.<key>"): a late, older identify never overwrites a
    # newer value (personalize.traits).
    trait_times = models.JSONField(default=dict, blank=True)
    # From `consent_changed` events (our snippet's p13n.consent()); activations
    # must not reach a profile that denied it.
    consent = models.CharField(max_length=10, choices=Consent.choices, default=Consent.UNKNOWN)
    consent_updated_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    last_seen_at = models.DateTimeField(null=True, blank=True)
    # Kept from the derived sessions (personalize.sessions).
    session_count = models.PositiveIntegerField(default=0)
    time_on_site_seconds = models.FloatField(default=0)
    page_count = models.PositiveIntegerField(default=0)
    # Set when new events arrive and cleared by the worker that recomputes; a
    # conditional update on it coalesces bursts of events into one recompute.
    recompute_requested_at = models.DateTimeField(null=True, blank=True, db_index=True)
    # The earliest moment any segment's truth for this profile can change with
    # no new event (a window lapsing); the scheduled sweep recomputes then.
    next_evaluation_at = models.DateTimeField(null=True, blank=True, db_index=True)

    def __str__(self) -> str:
        return f"Profile {self.pk}"

    @property
    def pages_per_session(self) -> float:
        return self.page_count / self.session_count if self.session_count else 0.0


class Identity(models.Model):
    class Kind(models.TextChoices):
        ANONYMOUS_ID = "anonymous_id", "Anonymous id"
        USER_ID = "user_id", "User id"
        # A configured identify trait (P13N_STITCH_TRAITS) used as an id; the
        # value is "<trait>:<value>", e.g. "email_sha256:5d41…".
        TRAIT = "trait", "Stitched trait"

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


class ProfileMerge(models.Model):
    """A merge of two profiles, or one the identity policy refused (docs/identity.md).

    ``profile`` is the surviving profile (for a refused merge: the profile that
    got the event). ``merged_profile_id`` is the merged-away profile's former id,
    or for a refused merge the profile kept apart (null when the refused ids
    were new).
    """

    class Trigger(models.TextChoices):
        IDENTIFY = "identify", "Ids seen together"
        ALIAS = "alias", "Alias call"
        TRAIT = "trait", "Stitched trait"

    class Status(models.TextChoices):
        MERGED = "merged", "Merged"
        REFUSED = "refused", "Refused by policy"

    profile = models.ForeignKey(Profile, on_delete=models.CASCADE, related_name="merges")
    merged_profile_id = models.PositiveBigIntegerField(null=True, blank=True)
    # [{"kind": ..., "value": ...}]: the ids the merged profile brought, or the
    # ids a refused merge would have joined.
    identities = models.JSONField(default=list, blank=True)
    events_moved = models.PositiveIntegerField(default=0)
    trigger = models.CharField(max_length=10, choices=Trigger.choices)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.MERGED)
    reason = models.TextField(blank=True)
    at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [models.Index(fields=["profile", "at"], name="merge_profile_at")]

    def __str__(self) -> str:
        return f"{self.get_status_display()} {self.merged_profile_id} into {self.profile_id}"


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
    # Tracking-plan violations of an event its source stores in flag mode.
    violations = models.JSONField(default=list, blank=True)

    class Meta:
        # No unique (source, message_id) here: on PostgreSQL the table is
        # partitioned by timestamp, where a unique constraint must include the
        # partition key. EventMessageId holds that uniqueness (docs/partitioning.md).
        indexes = [
            models.Index(fields=["profile", "name", "timestamp"], name="event_profile_name_ts"),
            models.Index(fields=["timestamp"], name="event_ts"),
        ]
        ordering = ["timestamp", "id"]

    def __str__(self) -> str:
        return f"{self.name} @ {self.timestamp:%Y-%m-%d %H:%M:%S}"


class EventMessageId(models.Model):
    """A (source, message id) stored once: what makes ingestion exactly-once.

    Ingestion inserts a batch's ids here first (ON CONFLICT DO NOTHING
    RETURNING) and stores only the events whose id it inserted, in the same
    transaction (personalize.deduplication). Not partitioned, so the uniqueness
    holds across every partition of the events table. ``timestamp`` is the
    event's time: retention purges the row a grace period after the event.
    """

    pk = models.CompositePrimaryKey("source", "message_id")
    # The primary key's leading column already indexes it.
    source = models.ForeignKey(Source, on_delete=models.CASCADE, related_name="+", db_index=False)
    message_id = models.CharField(max_length=255)
    timestamp = models.DateTimeField()

    class Meta:
        db_table = "personalize_event_message_id"
        indexes = [models.Index(fields=["timestamp"], name="event_message_id_ts")]

    def __str__(self) -> str:
        return f"{self.source_id}:{self.message_id}"


class PendingBatch(models.Model):
    """Messages the tracking API accepted and a worker has not yet stored as events.

    The production stack's ``/v1/batch`` answers 200 once a batch's messages are
    validated and the batch is committed here; the message-id claims
    (EventMessageId), identity resolution, the events, profiles and sessions
    follow in a worker (``personalize.services.store_pending_batches``), which
    deletes the row in the transaction that stores it. A batch is thus never
    lost nor stored twice; the scheduled sweep stores any whose task never ran.
    """

    # PROTECT, as events do: deleting a source must not drop what it sent.
    source = models.ForeignKey(Source, on_delete=models.PROTECT, related_name="+")
    received_at = models.DateTimeField()
    # The validated messages (personalize.tracking.encode_messages).
    messages = models.BinaryField()
    size = models.PositiveIntegerField(help_text="Messages in the batch.")
    # A batch whose storing failed this often is set aside (kept, shown in admin
    # with its error, stored again from there) so that it cannot block the inbox.
    # Database defaults: the tracking API inserts the row below the ORM (bulk.insert_bound).
    failed_attempts = models.PositiveSmallIntegerField(default=0, db_default=0)
    last_error = models.TextField(blank=True, default="", db_default="")

    class Meta:
        db_table = "personalize_pending_batch"
        verbose_name = "pending batch"
        verbose_name_plural = "pending batches (ingest inbox)"

    def __str__(self) -> str:
        return f"{self.size} messages from source {self.source_id} at {self.received_at}"


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


class QualityCount(models.Model):
    """Counters per source, hour of receipt and event name (personalize.quality).

    Updated once per batch with an atomic upsert; never one write per event.
    """

    source = models.ForeignKey(Source, on_delete=models.CASCADE, related_name="quality_counts")
    hour = models.DateTimeField()
    event_name = models.CharField(max_length=255)
    received = models.PositiveIntegerField(default=0)
    stored = models.PositiveIntegerField(default=0)
    duplicates = models.PositiveIntegerField(default=0)
    rejected = models.PositiveIntegerField(default=0)
    flagged = models.PositiveIntegerField(default=0)
    late = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["source", "hour", "event_name"], name="quality_count_unique"
            ),
        ]
        indexes = [models.Index(fields=["hour"], name="quality_count_hour")]

    def __str__(self) -> str:
        return f"{self.source_id} {self.hour:%Y-%m-%d %H}h {self.event_name}"


class MissingFieldCount(models.Model):
    """How many messages came without a field, per source, hour, event name and field."""

    source = models.ForeignKey(Source, on_delete=models.CASCADE, related_name="missing_counts")
    hour = models.DateTimeField()
    event_name = models.CharField(max_length=255)
    field = models.CharField(max_length=255)
    count = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["source", "hour", "event_name", "field"], name="missing_field_unique"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.event_name}.{self.field}: {self.count}"


class QualityAlert(models.Model):
    """A source's volume or reject rate departed from its recent normal.

    At most one open alert per source and kind: the condition is not alerted
    again until it recovers (``resolved_at`` set).
    """

    class Kind(models.TextChoices):
        VOLUME_DROP = "volume_drop", "Volume drop"
        VOLUME_SPIKE = "volume_spike", "Volume spike"
        REJECT_RATE = "reject_rate", "Reject rate rise"

    source = models.ForeignKey(Source, on_delete=models.CASCADE, related_name="quality_alerts")
    kind = models.CharField(max_length=20, choices=Kind.choices)
    opened_at = models.DateTimeField()
    resolved_at = models.DateTimeField(null=True, blank=True)
    window_start = models.DateTimeField()
    window_end = models.DateTimeField()
    observed = models.FloatField()
    expected = models.FloatField(help_text="The recent normal the window was compared with.")
    message = models.TextField()
    notified_at = models.DateTimeField(null=True, blank=True)
    notification_errors = models.TextField(blank=True)

    class Meta:
        ordering = ["-opened_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["source", "kind"],
                condition=models.Q(resolved_at__isnull=True),
                name="quality_alert_one_open",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} on {self.source_id} at {self.opened_at:%Y-%m-%d %H:%M}"


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
