from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.cli_support import add_tenant_argument, system_principal
from core.errors import InvalidInput
from memory.search import memory_search_for


class Command(BaseCommand):
    help = "Search memories (hybrid: meaning and keywords)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("query")
        add_tenant_argument(parser)
        parser.add_argument("-k", type=int, default=10)

    def handle(self, *args: Any, **options: Any) -> None:
        principal = system_principal(options["tenant"])
        try:
            hits = memory_search_for(principal, options["query"], k=options["k"])
        except InvalidInput as exc:
            raise CommandError(str(exc)) from exc
        if not hits:
            self.stdout.write("no matches")
        for hit in hits:
            lists = ", ".join(f"{name}#{int(ev['rank'])}" for name, ev in hit.evidence.items() if "rank" in ev)
            if "context" in hit.evidence:
                lists += (", " if lists else "") + "context"
            text = hit.memory.content.replace("\n", " ")
            self.stdout.write(f"{hit.score:.4f}  {hit.memory.id}  [{lists}]  {text[:120]}")
