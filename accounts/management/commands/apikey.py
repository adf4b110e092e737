from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from accounts.cli_support import add_tenant_argument, tenant_by_slug
from accounts.models import ApiKey
from accounts.roles import Role
from accounts.scoping import scoped
from accounts.selectors import api_key_list_for
from accounts.services import api_key_create, api_key_revoke


class Command(BaseCommand):
    help = "Create, list or revoke API keys."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        create = sub.add_parser("create", help="create a key; the secret is printed once")
        add_tenant_argument(create)
        create.add_argument("--name", required=True)
        create.add_argument("--role", choices=[r.value for r in Role], default=Role.WRITER.value)
        create.add_argument("--expires-days", type=int, default=None)
        listing = sub.add_parser("list", help="list keys (prefixes only)")
        add_tenant_argument(listing)
        revoke = sub.add_parser("revoke", help="revoke a key by its prefix")
        add_tenant_argument(revoke)
        revoke.add_argument("prefix")

    def handle(self, *args: Any, **options: Any) -> None:
        tenant = tenant_by_slug(options["tenant"])
        action = options["action"]
        if action == "create":
            days = options["expires_days"]
            if days is not None and days <= 0:
                raise CommandError("--expires-days must be positive")
            expires = timezone.now() + timedelta(days=days) if days else None
            created = api_key_create(tenant=tenant, name=options["name"], role=options["role"], expires_at=expires)
            self.stdout.write(created.secret)
            self.stderr.write(f"key {created.api_key.prefix}… ({created.api_key.role}); the secret is shown once")
        elif action == "list":
            for key in api_key_list_for(tenant):
                state = "revoked" if key.revoked_at else "active"
                self.stdout.write(f"{key.prefix}…\t{key.name}\t{key.role}\t{state}\tlast used {key.last_used_at}")
        else:
            revoking = scoped(ApiKey, tenant).filter(prefix=options["prefix"].rstrip("…")).first()
            if revoking is None:
                raise CommandError(f"no key with prefix {options['prefix']!r} in tenant {tenant.slug}")
            api_key_revoke(api_key=revoking)
            self.stdout.write(f"revoked {revoking.prefix}…")
