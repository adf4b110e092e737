from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.cli_support import add_tenant_argument, system_principal
from accounts.scoping import scoped
from core.errors import InvalidInput
from ingest.models import ImportRoot
from ingest.roots import PathRefused, import_root_add, import_root_remove


class Command(BaseCommand):
    help = "List, add or remove a tenant's import roots (the operator may name any directory)."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        for name, text in (("list", "list the roots"), ("add", "add a root"), ("remove", "remove a root")):
            action = sub.add_parser(name, help=text)
            add_tenant_argument(action)
            if name != "list":
                action.add_argument("path")

    def handle(self, *args: Any, **options: Any) -> None:
        principal = system_principal(options["tenant"])
        roots = scoped(ImportRoot, principal.tenant)
        if options["action"] == "list":
            for root in roots.order_by("path"):
                self.stdout.write(root.path)
            return
        try:
            if options["action"] == "add":
                root = import_root_add(principal=principal, path=options["path"], operator=True)
                self.stdout.write(f"added {root.path}")
                return
            existing = roots.filter(path=str(Path(options["path"]).expanduser().resolve())).first()
            if existing is None:
                raise CommandError(f"{options['path']}: not an import root of this tenant")
            import_root_remove(principal=principal, root=existing)
            self.stdout.write(f"removed {existing.path}")
        except (PathRefused, InvalidInput) as exc:
            raise CommandError(str(exc)) from exc
