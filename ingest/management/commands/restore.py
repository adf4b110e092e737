from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from core.progress import ProgressBar
from ingest.backup import BackupError, backup_restore


class Command(BaseCommand):
    help = "Restore a backup made by `easymemory backup` (stop the server and worker first)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("archive")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            with ProgressBar(self.stderr, "restore", unit="items") as bar:
                result = backup_restore(Path(options["archive"]), progress=bar)
        except BackupError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"restored the database and {result['restored_files']} data file(s)")
