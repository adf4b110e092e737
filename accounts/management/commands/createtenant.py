from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import IntegrityError

from accounts.services import tenant_create
from core.errors import InvalidInput


class Command(BaseCommand):
    help = "Create a tenant (a separate memory space)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name")
        parser.add_argument("--slug", default=None)

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            tenant = tenant_create(name=options["name"], slug=options["slug"])
        except (ValueError, InvalidInput, IntegrityError) as exc:
            raise CommandError(f"cannot create tenant: {exc}") from exc
        self.stdout.write(f"created tenant {tenant.slug} ({tenant.id})")
