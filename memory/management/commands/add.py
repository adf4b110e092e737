from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.cli_support import add_tenant_argument, system_principal
from core.errors import InvalidInput
from memory.models import Kind
from memory.services import MemoryInput, memory_create


class Command(BaseCommand):
    help = "Remember a piece of text."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("text")
        add_tenant_argument(parser)
        parser.add_argument("--kind", choices=Kind.values, default=Kind.NOTE.value)
        parser.add_argument("--tag", action="append", default=[], dest="tags")
        parser.add_argument("--user-ref", default="")

    def handle(self, *args: Any, **options: Any) -> None:
        principal = system_principal(options["tenant"])
        data = MemoryInput(
            content=options["text"], kind=options["kind"], tags=options["tags"], user_ref=options["user_ref"]
        )
        try:
            result = memory_create(principal=principal, data=data)
        except InvalidInput as exc:
            raise CommandError(str(exc)) from exc
        if result.memory is None:
            self.stdout.write(f"not stored: {result.skipped}")
            return
        self.stdout.write(f"{result.memory.id}{'' if result.created else ' (already remembered)'}")
