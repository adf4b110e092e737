"""Helpers shared by management commands: resolve --tenant to a principal."""

from __future__ import annotations

from django.core.management.base import CommandError, CommandParser

from accounts.models import Tenant
from accounts.principal import Principal


def add_tenant_argument(parser: CommandParser) -> None:
    parser.add_argument("--tenant", default="default", help="tenant slug (default: default)")


def tenant_by_slug(slug: str) -> Tenant:
    tenant = Tenant.objects.filter(slug=slug).first()
    if tenant is None:
        raise CommandError(f"no tenant with slug {slug!r} (create one with `easymemory createtenant`)")
    return tenant


def system_principal(slug: str) -> Principal:
    return Principal.system(tenant_by_slug(slug))
