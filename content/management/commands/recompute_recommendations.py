"""Rebuild recommendations now (beat also runs it every RECOMMENDATIONS_INTERVAL_SECONDS)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from content.recommendations import recompute_recommendations


class Command(BaseCommand):
    help = "Recompute item similarities and popularity from the tracked events (safe to re-run)."

    def handle(self, *args: Any, **options: Any) -> None:
        result = recompute_recommendations()
        self.stdout.write(
            f"recommendations: {result.items} items, {result.pairs} neighbour pairs "
            f"from {result.interactions} interactions of {result.profiles} profiles"
        )
