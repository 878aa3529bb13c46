"""Load the demo shop: catalog, segments, blocks and the web source. Idempotent."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser
from django.db import transaction
from django.utils import timezone

from content.recommendations import recompute_recommendations
from content.services import block_save
from personalize.models import Source
from segments.services import segment_save
from shop.management.demo_data import BLOCKS, CATEGORIES, PRODUCTS, SEGMENTS
from shop.management.demo_history import load_demo_history
from shop.models import Category, Product


class Command(BaseCommand):
    help = "Create or update the demo catalog, segments and content blocks (safe to run again)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--no-history",
            dest="history",
            action="store_false",
            help="Skip the synthetic shoppers' events (and the recommendations built from them).",
        )

    @transaction.atomic
    def handle(self, *args: Any, **options: Any) -> None:
        categories = {}
        for slug, name in CATEGORIES:
            categories[slug], _ = Category.objects.update_or_create(
                slug=slug, defaults={"name": name}
            )
        for slug, name, category, price, color, description in PRODUCTS:
            Product.objects.update_or_create(
                slug=slug,
                defaults={
                    "name": name,
                    "category": categories[category],
                    "price": Decimal(price),
                    "color": color,
                    "description": description,
                },
            )
        for segment in SEGMENTS:
            segment_save(**segment)
        for block in BLOCKS:
            block_save(
                key=block["key"],
                slot=block["slot"],
                title=block["title"],
                body=block["body"],
                data=block.get("data"),
                segment_slugs=block.get("segments", ()),
                priority=block.get("priority", 0),
                is_default=block.get("is_default", False),
                is_template=block.get("is_template", False),
            )
        source, _ = Source.objects.get_or_create(name=settings.P13N_WEB_SOURCE)
        history = 0
        if options["history"]:
            # Past shoppers' behaviour, then a first run of the recommendations job on it,
            # so the homepage's recommendations block is personal from the first visit.
            now = timezone.now()
            history = load_demo_history(source=source, now=now)
            recompute_recommendations(now=now)
        self.stdout.write(
            f"demo data: {len(PRODUCTS)} products, {len(SEGMENTS)} segments, {len(BLOCKS)} blocks, "
            f"{history} past shopper events; web source write key {source.write_key}"
        )
