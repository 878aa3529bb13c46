from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from personalize.models import Source


class Command(BaseCommand):
    help = "Create a tracking source and print its write key (for Segment/RudderStack clients)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name")

    def handle(self, *args: Any, **options: Any) -> None:
        name: str = options["name"].strip()
        if not name:
            raise CommandError("name: must not be empty")
        if Source.objects.filter(name=name).exists():
            raise CommandError(f"name: a source called {name!r} exists already")
        source = Source.objects.create(name=name)
        self.stdout.write(source.write_key)
