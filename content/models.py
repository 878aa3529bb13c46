from __future__ import annotations

from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone
from simple_history.models import HistoricalRecords

from content.catalog import CatalogChangingQuerySet
from content.selection import SLOT_NAME
from segments.models import Segment

# A slot's blocks are rendered on every page view; keep the list bounded.
MAX_SLOT_CAPACITY = 20


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
    holdout_percent = models.PositiveSmallIntegerField(
        default=0,
        validators=[MaxValueValidator(100)],
        help_text=(
            "Share of the visitors who qualify (0-100) who see the slot's default instead, "
            "recorded as holdout to measure the block against showing nothing special."
        ),
    )
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)
    # Every save and every targeting change, with who made it (admin history, audit log).
    history = HistoricalRecords(m2m_fields=[segments, excluded_segments])

    # Bulk writes bump the published catalog's version (content.catalog).
    objects = CatalogChangingQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["slot"], condition=Q(is_default=True), name="block_one_default_per_slot"
            ),
        ]
        ordering = ["slot", "-priority", "key"]

    def __str__(self) -> str:
        return f"{self.slot}: {self.title}"


class BlockVariant(models.Model):
    """One arm of a block's A/B test: its content replaces the block's for the
    visitors whose bucket falls in its share of the weights.

    Empty title, body or data keep the block's own, so a "control" variant is a
    variant with nothing filled in.
    """

    block = models.ForeignKey(Block, on_delete=models.CASCADE, related_name="variants")
    key = models.SlugField(max_length=50, help_text="Reported as `variant` in block events.")
    weight = models.PositiveIntegerField(
        default=1, help_text="Share of visitors, proportional to the others' (0 = never shown)."
    )
    title = models.CharField(max_length=200, blank=True, help_text="Empty: the block's title.")
    # Sanitized HTML, or a template when the block is one (content.services.block_variant_save).
    body = models.TextField(blank=True, help_text="Empty: the block's body.")
    data = models.JSONField(default=dict, blank=True, help_text="Empty: the block's data.")
    # Every save and delete, with who made it (admin history and revert, audit log);
    # kept after the variant or its block is deleted.
    history = HistoricalRecords()

    objects = CatalogChangingQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["block", "key"], name="block_variant_key_unique"),
        ]
        ordering = ["block", "key"]

    def __str__(self) -> str:
        try:
            block = self.block.key
        except Block.DoesNotExist:  # a historical version whose block was deleted since
            block = f"block #{self.block_id}"
        return f"{block} / {self.key}"


class Slot(models.Model):
    """Settings of a slot; a slot without a row shows one block."""

    name = models.CharField(
        max_length=50,
        unique=True,
        validators=[RegexValidator(SLOT_NAME, "a-z, 0-9, - and _ only")],
        help_text="As in <p13n-slot name=...>.",
    )
    capacity = models.PositiveSmallIntegerField(
        default=1,
        validators=[MinValueValidator(1), MaxValueValidator(MAX_SLOT_CAPACITY)],
        help_text="How many matching blocks the slot shows at most, in priority order.",
    )
    description = models.TextField(blank=True)

    objects = CatalogChangingQuerySet.as_manager()

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Item(models.Model):
    """Something a site sells or shows, learned from its events (not from any catalog table).

    The recommendations job upserts one row per ``product_id`` (or ``sku``) seen in
    the tracked events, with the name, category, price and links of the latest event
    that named it, and its popularity over the job's lookback window.
    """

    item_id = models.CharField(max_length=255, unique=True)
    name = models.CharField(max_length=255, blank=True)
    category = models.CharField(max_length=255, blank=True, db_index=True)
    price = models.FloatField(null=True, blank=True)
    url = models.CharField(max_length=2000, blank=True)
    image_url = models.CharField(max_length=2000, blank=True)
    # Weighted interactions (views, carts, purchases) in the last run's window;
    # 0 for items nobody touched in it, which are then never recommended as popular.
    popularity = models.FloatField(default=0)
    interactions = models.PositiveIntegerField(default=0)
    last_seen_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["item_id"]
        indexes = [
            models.Index(fields=["-popularity", "item_id"], name="item_popularity"),
            models.Index(fields=["category", "-popularity", "item_id"], name="item_category_pop"),
        ]

    def __str__(self) -> str:
        return self.name or self.item_id


class ItemSimilarity(models.Model):
    """One of an item's top-K neighbours by item-item cosine similarity, replaced every run."""

    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="neighbours")
    similar_item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="+")
    score = models.FloatField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["item", "similar_item"], name="item_similarity_unique"),
        ]
        ordering = ["item", "-score", "similar_item"]
        verbose_name_plural = "item similarities"

    def __str__(self) -> str:
        return f"{self.item_id} ~ {self.similar_item_id}: {self.score:.3f}"
