"""Recompute every (or one) segment for all profiles with the batch SQL path."""

from __future__ import annotations

import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from segments.models import Segment
from segments.services import recompute_segment


class Command(BaseCommand):
    help = "Recompute segment memberships for all profiles (one set-based query per segment)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("slugs", nargs="*", help="Only these segments (default: all).")

    def handle(self, *args: Any, **options: Any) -> None:
        segments = Segment.objects.order_by("slug")
        if options["slugs"]:
            segments = segments.filter(slug__in=options["slugs"])
            missing = set(options["slugs"]) - set(segments.values_list("slug", flat=True))
            if missing:
                raise CommandError(f"unknown segments: {', '.join(sorted(missing))}")
        ids = list(segments.values_list("pk", flat=True))
        for index, segment_id in enumerate(ids, start=1):
            started = time.perf_counter()

            def chunk_done(done: int, total: int, index: int = index) -> None:
                # Large segments: a bar per segment, redrawn after every written chunk.
                self.stdout.write(f"\r  {index}/{len(ids)} {_bar(done, total)}", ending="")
                self.stdout.flush()

            result = recompute_segment(segment_id=segment_id, progress=chunk_done)
            self.stdout.write(
                f"\r[{_bar(index, len(ids))}] {index}/{len(ids)} {result.segment}: "
                f"{result.members} members (+{result.entered} -{result.exited}) "
                f"in {time.perf_counter() - started:.2f}s"
            )


def _bar(done: int, total: int, width: int = 30) -> str:
    filled = int(width * done / total) if total else width
    return f"{'#' * filled}{'.' * (width - filled)}"
