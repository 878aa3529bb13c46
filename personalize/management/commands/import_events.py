from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from personalize.imports import FORMATS, KINDS, ImportResult, detect_format, import_file
from personalize.models import Source


class Command(BaseCommand):
    help = (
        "Import profiles and historical events from a CSV or JSON Lines export "
        "(same validation, identity resolution and de-duplication as the API; safe to re-run)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("path", type=Path)
        parser.add_argument("--source", required=True, help="Source name (created if missing).")
        parser.add_argument(
            "--kind",
            choices=KINDS,
            default="events",
            help="events: one message per row (default); "
            "profiles: one person per row (user_id/anonymous_id and trait columns).",
        )
        parser.add_argument("--format", choices=FORMATS, help="Default: from the file name.")

    def handle(self, *args: Any, **options: Any) -> None:
        path: Path = options["path"]
        if not path.is_file():
            raise CommandError(f"path: {path} is not a file")
        with path.open("rb") as handle:
            file_format = options["format"] or detect_format(path.name, handle.read(64))
        source, _ = Source.objects.get_or_create(name=options["source"])

        def progress(result: ImportResult) -> None:
            self.stdout.write(
                f"\r{result.rows} rows: {result.stored} stored, {result.duplicates} already there, "
                f"{result.rejected} rejected",
                ending="",
            )
            self.stdout.flush()

        result = import_file(
            path=path,
            source=source,
            file_format=file_format,
            kind=options["kind"],
            progress=progress,
        )
        self.stdout.write("")
        for error in result.errors:
            self.stdout.write(f"  {error}")
        if result.rejected > len(result.errors):
            self.stdout.write(
                f"  … {result.rejected - len(result.errors)} more in the quarantine "
                "(admin: Rejected events)"
            )
