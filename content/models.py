from __future__ import annotations

from django.db import models
from django.db.models import Q
from django.utils import timezone
from simple_history.models import HistoricalRecords

from segments.models import Segment


class Block(models.Model):
    """A piece of content for one slot of a page, shown to the segments it targets."""

    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        PUBLISHED = "published", "Published"

    slot = models.SlugField(
        max_length=50, db_index=True, help_text="Where it goes, e.g. hero, promo, recs."
    )
    key = models.SlugField(max_length=100, unique=True)
    title = models.CharField(max_length=200)
    # Sanitized HTML (content.services.block_save cleans it with nh3).
    body = models.TextField(blank=True)
    is_template = models.BooleanField(
        default=False,
        help_text=(
            "Render the body as a Jinja2 template in a sandbox, with the visitor's "
            "`traits` and `segments` (e.g. Hello {{ traits.first_name|default('there') }})."
        ),
    )
    data = models.JSONField(default=dict, blank=True, help_text="Structured data for front-ends.")
    segments = models.ManyToManyField(
        Segment,
        blank=True,
        related_name="blocks",
        help_text="Shown to visitors in any of these segments; none means everyone.",
    )
    match_all = models.BooleanField(
        default=False,
        help_text="Require every one of the segments above, not just any of them.",
    )
    excluded_segments = models.ManyToManyField(
        Segment,
        blank=True,
        related_name="excluded_from_blocks",
        help_text="Never shown to visitors in any of these segments.",
    )
    starts_at = models.DateTimeField(null=True, blank=True, help_text="Shown from this moment on.")
    ends_at = models.DateTimeField(null=True, blank=True, help_text="Shown until this moment.")
    priority = models.IntegerField(default=0, help_text="Higher wins when several blocks match.")
    is_default = models.BooleanField(
        default=False, help_text="Shown when no targeted block matches; one per slot."
    )
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.DRAFT)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)
    # Every save and every targeting change, with who made it (admin history, audit log).
    history = HistoricalRecords(m2m_fields=[segments, excluded_segments])

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["slot"], condition=Q(is_default=True), name="block_one_default_per_slot"
            ),
        ]
        ordering = ["slot", "-priority", "key"]

    def __str__(self) -> str:
        return f"{self.slot}: {self.title}"
