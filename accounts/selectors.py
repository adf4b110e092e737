"""Reads on credentials and memberships."""

from __future__ import annotations

from uuid import UUID

from django.contrib.auth.models import User
from django.db.models import QuerySet
from django.utils import timezone

from accounts.keys import PREFIX_LENGTH, key_matches, looks_like_key
from accounts.models import ApiKey, Membership, Tenant
from accounts.scoping import scoped


class InvalidCredential(Exception):
    """The credential is malformed, unknown, revoked or expired."""


def api_key_resolve(secret: str) -> ApiKey:
    """The active key for `secret`; the hash comparison is constant-time."""
    if not looks_like_key(secret):
        raise InvalidCredential("malformed API key")
    # unscoped: the secret itself says which tenant it belongs to.
    candidates = ApiKey.objects.select_related("tenant")  # unscoped: see above
    api_key = candidates.filter(prefix=secret[:PREFIX_LENGTH]).first()
    if api_key is None or not key_matches(secret, api_key.key_hash):
        raise InvalidCredential("unknown API key")
    if api_key.revoked_at is not None:
        raise InvalidCredential("API key revoked")
    if api_key.expires_at is not None and api_key.expires_at <= timezone.now():
        raise InvalidCredential("API key expired")
    return api_key


def api_key_list_for(tenant: Tenant) -> QuerySet[ApiKey]:
    return scoped(ApiKey, tenant).order_by("-created_at")


def membership_list_for(user: User) -> QuerySet[Membership]:
    memberships = Membership.objects.filter(user=user)  # unscoped: a user's own memberships across tenants
    return memberships.select_related("tenant").order_by("tenant__name")


def membership_get_for(user: User, tenant_id: UUID | str) -> Membership | None:
    return membership_list_for(user).filter(tenant_id=tenant_id).first()
