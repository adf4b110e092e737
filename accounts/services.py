"""Writes on tenants, memberships and API keys."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone
from django.utils.text import slugify

from accounts.keys import generate_key
from accounts.models import ApiKey, Membership, Tenant
from accounts.roles import Role
from accounts.scoping import scoped
from config.errors import InvalidInput

# last_used_at is written at most this often per key, so the hot path stays read-only.
LAST_USED_RESOLUTION = timedelta(minutes=1)


@dataclass(frozen=True)
class CreatedKey:
    api_key: ApiKey
    secret: str


def tenant_create(*, name: str, slug: str | None = None) -> Tenant:
    slug = slugify(slug or name)[:64]
    if not slug:
        raise ValueError("tenant name must contain letters or digits")
    return Tenant.objects.create(name=name, slug=slug)


@transaction.atomic
def tenant_create_with_admin(*, name: str, slug: str | None, admin: AbstractBaseUser) -> Tenant:
    """A new tenant with `admin` as its first admin; a taken slug is refused, naming the field."""
    candidate = slugify(slug or name)[:64]
    if not candidate:
        raise InvalidInput("name", "the name must contain letters or digits")
    if Tenant.objects.filter(slug=candidate).exists():
        raise InvalidInput("slug", f"a tenant with the slug {candidate!r} exists")
    tenant = tenant_create(name=name, slug=candidate)
    membership_set(tenant=tenant, user=admin, role=Role.ADMIN.value)
    return tenant


def membership_set(*, tenant: Tenant, user: AbstractBaseUser, role: str) -> Membership:
    membership, _ = Membership.objects.update_or_create(tenant=tenant, user=user, defaults={"role": Role(role).value})
    return membership


@transaction.atomic
def api_key_create(
    *,
    tenant: Tenant,
    name: str,
    role: str = Role.WRITER.value,
    created_by: AbstractBaseUser | None = None,
    expires_at: datetime | None = None,
) -> CreatedKey:
    secret, prefix, key_hash = generate_key()
    api_key = ApiKey.objects.create(
        tenant=tenant,
        name=name,
        role=Role(role).value,
        prefix=prefix,
        key_hash=key_hash,
        created_by=created_by,
        expires_at=expires_at,
    )
    return CreatedKey(api_key=api_key, secret=secret)


def api_key_revoke(*, api_key: ApiKey) -> ApiKey:
    if api_key.revoked_at is None:
        api_key.revoked_at = timezone.now()
        api_key.save(update_fields=["revoked_at"])
    return api_key


def api_key_touch(*, api_key: ApiKey) -> None:
    now = timezone.now()
    if api_key.last_used_at is None or now - api_key.last_used_at > LAST_USED_RESOLUTION:
        ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=now)  # unscoped: key resolved from its secret


def _would_leave_no_admin(membership: Membership) -> bool:
    others = scoped(Membership, membership.tenant).filter(role=Role.ADMIN.value).exclude(pk=membership.pk)
    return membership.role == Role.ADMIN.value and not others.exists()


@transaction.atomic
def membership_change_role(*, membership: Membership, role: str) -> Membership:
    """Change a member's role; a tenant always keeps at least one admin."""
    new_role = Role(role).value
    # Lock the tenant's admin rows so two concurrent demotions cannot both pass the check.
    list(scoped(Membership, membership.tenant).select_for_update().filter(role=Role.ADMIN.value))
    if new_role != Role.ADMIN.value and _would_leave_no_admin(membership):
        raise InvalidInput("role", "a tenant needs at least one admin")
    membership.role = new_role
    membership.save(update_fields=["role"])
    return membership


@transaction.atomic
def membership_remove(*, membership: Membership) -> None:
    list(scoped(Membership, membership.tenant).select_for_update().filter(role=Role.ADMIN.value))
    if _would_leave_no_admin(membership):
        raise InvalidInput("membership", "a tenant needs at least one admin")
    membership.delete()
