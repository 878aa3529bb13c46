from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from personalize.keys import api_key_create


class Command(BaseCommand):
    help = "Create a server secret key and print it (shown once; only its hash is stored)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name")

    def handle(self, *args: Any, **options: Any) -> None:
        name: str = options["name"].strip()
        if not name:
            raise CommandError("name: must not be empty")
        _, raw_key = api_key_create(name=name)
        self.stdout.write(raw_key)
