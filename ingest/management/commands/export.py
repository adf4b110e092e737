from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from accounts.cli_support import add_tenant_argument, system_principal
from audit.services import audit_record
from core.progress import ProgressBar
from ingest.portability import export_lines


class Command(BaseCommand):
    help = "Write the tenant's memories (with history and graph) as JSON Lines to stdout."

    def add_arguments(self, parser: CommandParser) -> None:
        add_tenant_argument(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        principal = system_principal(options["tenant"])
        audit_record(principal=principal, action="memory.export", target_type="tenant")
        with ProgressBar(self.stderr, "export", unit="memories") as bar:
            for line in export_lines(principal.tenant, progress=bar):
                self.stdout.write(line, ending="")
