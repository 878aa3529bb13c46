from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from personalize.imports import ImportResult, import_file
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
            "--format", choices=["csv", "jsonl"], help="Default: from the file name."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        path: Path = options["path"]
        if not path.is_file():
            raise CommandError(f"path: {path} is not a file")
        file_format = options["format"] or ("csv" if path.suffix.lower() == ".csv" else "jsonl")
        source, _ = Source.objects.get_or_create(name=options["source"])

        def progress(result: ImportResult) -> None:
            self.stdout.write(
                f"\r{result.rows} rows: {result.stored} stored, {result.duplicates} already there, "
                f"{result.rejected} rejected",
                ending="",
            )
            self.stdout.flush()

        result = import_file(path=path, source=source, file_format=file_format, progress=progress)
        self.stdout.write("")
        for error in result.errors[:20]:
            self.stdout.write(f"  {error}")
        if len(result.errors) > 20:
            self.stdout.write(
                f"  … {len(result.errors) - 20} more in the quarantine (admin: Rejected events)"
            )
