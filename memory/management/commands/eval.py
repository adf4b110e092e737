from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from config.progress import ProgressBar
from memory.evaluation import EvalFormatError, format_table, run_locomo


class Command(BaseCommand):
    help = "Evaluate retrieval quality: `eval locomo FILE [--k 5 10 20] [--level turn|session|both] [--json OUT]`."

    def add_arguments(self, parser: CommandParser) -> None:
        benchmarks = parser.add_subparsers(dest="benchmark", required=True)
        locomo = benchmarks.add_parser("locomo", help="recall@k on LoCoMo-format conversations")
        locomo.add_argument("file", type=Path)
        locomo.add_argument("--k", type=int, nargs="+", default=[5, 10, 20])
        locomo.add_argument(
            "--level",
            choices=["turn", "session", "both"],
            default="turn",
            help="turn: evidence turns found (default); session: evidence sessions with a turn in the top k",
        )
        locomo.add_argument("--json", type=Path, dest="json_out", help="write the figures to this file")
        locomo.add_argument("--keep-tenants", action="store_true", help="keep the evaluation tenants afterwards")

    def handle(self, *args: Any, **options: Any) -> None:
        ks = options["k"]
        if any(not 1 <= k <= 100 for k in ks):
            raise CommandError("--k values must be from 1 to 100")

        try:
            with ProgressBar(self.stderr, "eval locomo", unit="steps") as bar:

                def progress(line: str) -> None:
                    bar.write(self.stdout, line)

                report = run_locomo(
                    options["file"], ks=ks, progress=progress, keep_tenants=options["keep_tenants"], steps=bar
                )
        except EvalFormatError as exc:
            raise CommandError(str(exc)) from exc
        levels = ("turn", "session") if options["level"] == "both" else (options["level"],)
        self.stdout.write(format_table(report, levels))
        if options["json_out"]:
            options["json_out"].write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
            self.stdout.write(f"wrote {options['json_out']}")
