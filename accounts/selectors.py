"""Reads on credentials and memberships."""

from __future__ import annotations

import threading
import time
from uuid import UUID

from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from accounts.keys import PREFIX_LENGTH, key_matches, looks_like_key
from accounts.models import ApiKey, Membership, Tenant
from accounts.scoping import scoped


class InvalidCredential(Exception):
    """The credential is malformed, unknown, revoked or expired."""


def api_key_resolve(secret: str, *, fresh: bool = False) -> ApiKey:
    """The active key for `secret`; the hash comparison is constant-time.

    The key's row is reused for EASYMEMORY_API_KEY_CACHE_SECONDS (see `_key_by_prefix`) unless
    `fresh`; the secret is still compared with its hash, and revocation and expiry still checked,
    every time."""
    if not looks_like_key(secret):
        raise InvalidCredential("malformed API key")
    api_key = _key_by_prefix(secret[:PREFIX_LENGTH], fresh=fresh)
    if api_key is None or not key_matches(secret, api_key.key_hash):
        raise InvalidCredential("unknown API key")
    if api_key.revoked_at is not None:
        raise InvalidCredential("API key revoked")
    if api_key.expires_at is not None and api_key.expires_at <= timezone.now():
        raise InvalidCredential("API key expired")
    return api_key


# prefix -> (key row with its tenant, monotonic time it may be used until). Per process: reading the
# key is a database round trip on every request otherwise. A change made through this process
# forgets the entry at once (`api_key_forget`); other processes see it once the entry runs out.
_KEY_CACHE_MAX = 10_000
_key_cache: dict[str, tuple[ApiKey, float]] = {}
_key_cache_lock = threading.Lock()


def _key_by_prefix(prefix: str, *, fresh: bool = False) -> ApiKey | None:
    ttl = float(settings.EASYMEMORY_API_KEY_CACHE_SECONDS)
    now = time.monotonic()
    if ttl > 0 and not fresh:
        with _key_cache_lock:
            cached = _key_cache.get(prefix)
        if cached is not None and cached[1] > now:
            return cached[0]
    # unscoped: the secret itself says which tenant it belongs to.
    candidates = ApiKey.objects.select_related("tenant")  # unscoped: see above
    api_key = candidates.filter(prefix=prefix).first()
    # Unknown prefixes are not kept: guessing stays a database lookup, limited per client address.
    if api_key is not None and ttl > 0:
        with _key_cache_lock:
            if len(_key_cache) >= _KEY_CACHE_MAX:
                _key_cache.clear()
            _key_cache[prefix] = (api_key, now + ttl)
    return api_key


def api_key_forget(prefix: str | None = None) -> None:
    """Drop one cached key (None: all of them), now and again when the current transaction
    commits, so a request in between cannot keep the row from before the change."""

    def forget() -> None:
        with _key_cache_lock:
            if prefix is None:
                _key_cache.clear()
            else:
                _key_cache.pop(prefix, None)

    forget()
    transaction.on_commit(forget)


def api_key_list_for(tenant: Tenant) -> QuerySet[ApiKey]:
    return scoped(ApiKey, tenant).order_by("-created_at")


def membership_list_for(user: User) -> QuerySet[Membership]:
    memberships = Membership.objects.filter(user=user)  # unscoped: a user's own memberships across tenants
    return memberships.select_related("tenant").order_by("tenant__name")


def membership_get_for(user: User, tenant_id: UUID | str) -> Membership | None:
    return membership_list_for(user).filter(tenant_id=tenant_id).first()
