"""Print the data-quality report: volumes, rejects, duplicates, late events, missing fields."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from personalize import quality
from personalize.models import Source


class Command(BaseCommand):
    help = "Report per source and event name: volumes, rejects by reason, duplicates, late events and missing fields."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--source", help="Only this source (by name).")
        parser.add_argument("--since", default="24h", help="Period: 24h, 7d, 90m (default 24h).")
        parser.add_argument("--format", choices=("table", "json"), default="table")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            span = quality.parse_period(options["since"])
        except ValueError as exc:
            raise CommandError(f"--since: {exc}") from None
        name = options["source"]
        if name is not None and not Source.objects.filter(name=name).exists():
            raise CommandError(f"--source: no source named {name!r}")
        report = quality.quality_report(since=timezone.now() - span, source_name=name)
        if options["format"] == "json":
            self.stdout.write(json.dumps(report.as_json(), indent=2))
        else:
            self.stdout.write(quality.format_table(report))
