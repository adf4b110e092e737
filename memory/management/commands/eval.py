from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from core.progress import ProgressBar
from memory.answer_judge import PROVIDERS, AnswerJudge, ChatModel, JudgeError, endpoint_from_settings
from memory.evaluation import EvalFormatError, format_answers, format_table, run_locomo


class Command(BaseCommand):
    help = (
        "Evaluate retrieval quality: `eval locomo FILE [--k 5 10 20] [--level turn|session|both] [--json OUT]"
        " [--answer-model M [--judge-model J]]`."
    )

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
        judged = locomo.add_argument_group("answer and judge (optional; needs a model server)")
        judged.add_argument("--answer-model", help="answer each question from the top memories with this model")
        judged.add_argument("--judge-model", help="label each answer CORRECT/WRONG with this model (default: the same)")
        judged.add_argument("--answer-k", type=int, default=10, help="memories given to the answer model (default 10)")
        judged.add_argument(
            "--llm-provider", choices=list(PROVIDERS), help="openai (any OpenAI-compatible server) or ollama; "
            "default EASYMEMORY_PROVIDER"
        )  # fmt: skip
        judged.add_argument("--llm-url", help="the server's base URL (default EASYMEMORY_LLM_BASE_URL)")

    def _answering(self, options: dict[str, Any]) -> AnswerJudge | None:
        answer_model, judge_model = options["answer_model"], options["judge_model"]
        if not answer_model:
            if judge_model:
                raise CommandError("--judge-model needs --answer-model (there is nothing to judge without answers)")
            return None
        if not 1 <= options["answer_k"] <= 100:
            raise CommandError("--answer-k must be from 1 to 100")
        try:
            endpoint = endpoint_from_settings(options["llm_provider"], options["llm_url"])
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        answerer = ChatModel(endpoint, answer_model)
        judge = ChatModel(endpoint, judge_model or answer_model)
        return AnswerJudge(answerer=answerer, judge=judge, k=options["answer_k"])

    def handle(self, *args: Any, **options: Any) -> None:
        ks = options["k"]
        if any(not 1 <= k <= 100 for k in ks):
            raise CommandError("--k values must be from 1 to 100")

        answering = self._answering(options)
        try:
            with ProgressBar(self.stderr, "eval locomo", unit="steps") as bar:

                def progress(line: str) -> None:
                    bar.write(self.stdout, line)

                report = run_locomo(
                    options["file"],
                    ks=ks,
                    progress=progress,
                    keep_tenants=options["keep_tenants"],
                    answering=answering,
                    steps=bar,
                )
        except (EvalFormatError, JudgeError) as exc:
            raise CommandError(str(exc)) from exc
        levels = ("turn", "session") if options["level"] == "both" else (options["level"],)
        self.stdout.write(format_table(report, levels) + format_answers(report))
        if options["json_out"]:
            options["json_out"].write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
            self.stdout.write(f"wrote {options['json_out']}")
