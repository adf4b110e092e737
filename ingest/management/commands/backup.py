from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from core.progress import ProgressBar
from ingest.backup import BackupError, backup_create


class Command(BaseCommand):
    help = "Back up the whole instance: the database (pg_dump) and the data directory's other files."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--out", required=True, help="the archive to write (a .tar file)")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            with ProgressBar(self.stderr, "backup", unit="items") as bar:
                manifest = backup_create(Path(options["out"]), progress=bar)
        except BackupError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(
            f"backup written to {options['out']}: database {manifest['database_bytes']} bytes, "
            f"{len(manifest['files'])} data file(s)"  # type: ignore[arg-type]
        )
