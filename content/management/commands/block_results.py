"""Print block results: per variant, lift verdicts, per segment (the admin page in text)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from content.measurement_report import InvalidPeriod, parse_period, text_report
from content.measurement_selectors import block_results
from content.models import Block


class Command(BaseCommand):
    help = "Results of content blocks: exposure, clicks, conversions, lift and verdicts."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--block", help="A block's key; all published blocks when omitted.")
        parser.add_argument("--since", default="30d", help="How far back: 30d (default), 12h, 2w.")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            period = parse_period(options["since"])
        except InvalidPeriod as exc:
            raise CommandError(f"--since: {exc}") from None
        if options["block"]:
            blocks = list(Block.objects.filter(key=options["block"]))
            if not blocks:
                raise CommandError(f"--block: no block has the key {options['block']!r}")
        else:
            blocks = list(Block.objects.filter(status=Block.Status.PUBLISHED))
        now = timezone.now()
        reports = [
            text_report(
                block_results(block=block, since=now - period, until=now), title=block.title
            )
            for block in blocks
        ]
        self.stdout.write("\n\n".join(reports) if reports else "no published blocks")
