"""Writes on tenants, memberships, API keys and OAuth applications. Each one is audited."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone
from django.utils.text import slugify
from oauth2_provider.generators import generate_client_secret
from oauth2_provider.models import get_access_token_model

from accounts.keys import generate_key
from accounts.models import ApiKey, Application, Membership, Tenant
from accounts.principal import Principal
from accounts.roles import Role
from accounts.scoping import scoped
from accounts.selectors import api_key_forget
from core.errors import InvalidInput

# last_used_at is written at most this often per key, so the hot path stays read-only.
LAST_USED_RESOLUTION = timedelta(minutes=1)


@dataclass(frozen=True)
class CreatedKey:
    api_key: ApiKey
    secret: str


@dataclass(frozen=True)
class AppWithSecret:
    application: Application
    client_secret: str


def _audit(
    principal: Principal | None,
    tenant: Tenant | None,
    action: str,
    target_type: str,
    target_id: object,
    **detail: object,
) -> None:
    """Record in `tenant`'s chain, or in the tenant-less chain when `tenant` is None."""
    from audit.services import audit_record  # audit imports accounts

    if principal is None and tenant is not None:
        principal = Principal.system(tenant)
    audit_record(
        principal=principal,
        tenant=tenant,
        global_chain=tenant is None,
        action=action,
        target_type=target_type,
        target_id=str(target_id),
        detail=dict(detail),
    )


# --- tenants ---------------------------------------------------------------------------


@transaction.atomic
def tenant_create(*, name: str, slug: str | None = None, principal: Principal | None = None) -> Tenant:
    slug = slugify(slug or name)[:64]
    if not slug:
        raise InvalidInput("name", "tenant name must contain letters or digits")
    if Tenant.objects.filter(slug=slug).exists():
        raise InvalidInput("slug", f"a tenant with slug {slug!r} exists")
    tenant = Tenant.objects.create(name=name, slug=slug)
    # In the tenant-less chain when a superuser acts, so tenant management is one trail.
    _audit(principal, tenant if principal is None else None, "tenant.create", "tenant", tenant.pk, slug=slug)
    return tenant


@transaction.atomic
def tenant_delete(*, tenant: Tenant, principal: Principal) -> None:
    """Deletes the tenant and, by cascade, all its data. Its audit events stay (append-only)."""
    tenant_id, slug = tenant.pk, tenant.slug
    # Every tenant-owned row references the tenant with ON DELETE CASCADE in the model (memories
    # and their history, embeddings, entities, relations, jobs, uploads, keys, OAuth applications
    # and so their tokens and grants, invitations, memberships); audit events do not (append-only).
    _, removed = tenant.delete()
    api_key_forget()  # its keys are gone with it
    _audit(principal, None, "tenant.delete", "tenant", tenant_id, slug=slug, rows=dict(sorted(removed.items())))


@transaction.atomic
def tenant_rename(*, tenant: Tenant, name: str, principal: Principal) -> Tenant:
    """A new display name; the slug (used by tools and URLs) stays."""
    name = name.strip()
    if not name or len(name) > 200:
        raise InvalidInput("name", "a name of 1 to 200 characters is required")
    old = tenant.name
    tenant.name = name
    tenant.save(update_fields=["name"])
    api_key_forget()  # cached keys carry their tenant's row
    _audit(principal, tenant, "tenant.rename", "tenant", tenant.pk, old=old, new=name)
    return tenant


# --- memberships ---------------------------------------------------------------------


@transaction.atomic
def tenant_create_with_admin(
    *, name: str, slug: str | None, admin: User, principal: Principal | None = None
) -> Tenant:
    """A new tenant with `admin` as its first admin (the dashboard's superuser page)."""
    tenant = tenant_create(name=name, slug=slug, principal=principal)
    membership_set(tenant=tenant, user=admin, role=Role.ADMIN.value)
    return tenant


def membership_set(*, tenant: Tenant, user: User, role: str) -> Membership:
    membership, _ = Membership.objects.update_or_create(tenant=tenant, user=user, defaults={"role": Role(role).value})
    return membership


def _other_admins(membership: Membership) -> bool:
    return scoped(Membership, membership.tenant).filter(role=Role.ADMIN.value).exclude(pk=membership.pk).exists()


# What a tenant admin gets for any username, existing or not: accounts join by invitation.
MEMBER_ADD_REFUSED = "people join a tenant by accepting an invitation (POST /v1/admin/invitations)"


@transaction.atomic
def member_invite(*, principal: Principal, username: str, role: str) -> Membership:
    """Add an existing account to the principal's tenant by name: superusers (operators) only.

    A tenant admin gets the same refusal whether the name exists or not, so no tenant's
    admin learns which accounts exist on the server (or adds one without its consent).
    """
    if not principal.is_superuser:
        raise InvalidInput("username", MEMBER_ADD_REFUSED)
    user = get_user_model().objects.filter(username=username).first()
    if user is None:
        raise InvalidInput("username", "no user with this name (create the user first)")
    if scoped(Membership, principal.tenant).filter(user=user).exists():
        raise InvalidInput("username", "already a member of this tenant")
    membership = Membership.objects.create(tenant=principal.tenant, user=user, role=Role(role).value)
    _audit(principal, principal.tenant, "member.invite", "membership", membership.pk, user_id=user.pk, role=role)
    return membership


@transaction.atomic
def member_set_role(*, principal: Principal, membership: Membership, role: str) -> Membership:
    membership = scoped(Membership, principal.tenant).select_for_update().get(pk=membership.pk)
    if membership.role == Role.ADMIN and role != Role.ADMIN and not _other_admins(membership):
        raise InvalidInput("role", "the tenant's last admin cannot be demoted")
    old = membership.role
    membership.role = Role(role).value
    membership.save(update_fields=["role"])
    _audit(principal, principal.tenant, "member.role_change", "membership", membership.pk, old=old, new=role)
    return membership


@transaction.atomic
def member_remove(*, principal: Principal, membership: Membership) -> None:
    membership = scoped(Membership, principal.tenant).select_for_update().get(pk=membership.pk)
    if membership.role == Role.ADMIN and not _other_admins(membership):
        raise InvalidInput("membership", "the tenant's last admin cannot be removed")
    membership_id, user_id = membership.pk, membership.user_id
    membership.delete()
    _audit(principal, principal.tenant, "member.remove", "membership", membership_id, user_id=user_id)


# --- API keys --------------------------------------------------------------------------


@transaction.atomic
def api_key_create(
    *,
    tenant: Tenant,
    name: str,
    role: str = Role.WRITER.value,
    created_by: User | None = None,
    expires_at: datetime | None = None,
    principal: Principal | None = None,
    rate_limit_per_min: int | None = None,
    rate_limit_burst: int | None = None,
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
        rate_limit_per_min=rate_limit_per_min,
        rate_limit_burst=rate_limit_burst,
    )
    _audit(principal, tenant, "api_key.create", "api_key", api_key.pk, role=api_key.role)
    return CreatedKey(api_key=api_key, secret=secret)


@transaction.atomic
def credential_rate_limit_set(
    *, principal: Principal, credential: ApiKey | Application, per_min: int | None, burst: int | None
) -> ApiKey | Application:
    """Give an API key or OAuth application its own rate limit (None: the installation's default).

    Takes effect with the credential's next request: the principal is resolved per request.
    """
    credential.rate_limit_per_min = per_min
    credential.rate_limit_burst = burst
    credential.save(update_fields=["rate_limit_per_min", "rate_limit_burst"])
    if isinstance(credential, ApiKey):
        api_key_forget(credential.prefix)
    what = "api_key" if isinstance(credential, ApiKey) else "oauth_app"
    _audit(principal, principal.tenant, f"{what}.rate_limit", what, credential.pk, per_min=per_min, burst=burst)
    return credential


@transaction.atomic
def api_key_revoke(*, api_key: ApiKey, principal: Principal | None = None) -> ApiKey:
    if api_key.revoked_at is None:
        api_key.revoked_at = timezone.now()
        api_key.save(update_fields=["revoked_at"])
        api_key_forget(api_key.prefix)
        _audit(principal, api_key.tenant, "api_key.revoke", "api_key", api_key.pk)
    return api_key


def api_key_touch(*, api_key: ApiKey) -> None:
    now = timezone.now()
    if api_key.last_used_at is None or now - api_key.last_used_at > LAST_USED_RESOLUTION:
        ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=now)  # unscoped: key resolved from its secret
        api_key.last_used_at = now  # the row may be a cached one (accounts.selectors): touched once per resolution


# --- OAuth applications ----------------------------------------------------------------


@transaction.atomic
def oauth_app_create(
    *,
    principal: Principal,
    name: str,
    role: str,
    rate_limit_per_min: int | None = None,
    rate_limit_burst: int | None = None,
) -> AppWithSecret:
    """A client-credentials application of the principal's tenant; the secret is returned once."""
    secret = generate_client_secret()
    app = Application(
        tenant=principal.tenant,
        name=name,
        role=Role(role).value,
        client_type=Application.CLIENT_CONFIDENTIAL,
        authorization_grant_type=Application.GRANT_CLIENT_CREDENTIALS,
        client_secret=secret,  # hashed by DOT on save
        user=principal.user if principal.user is not None and principal.user.pk else None,
        rate_limit_per_min=rate_limit_per_min,
        rate_limit_burst=rate_limit_burst,
    )
    app.save()
    _audit(principal, principal.tenant, "oauth_app.create", "oauth_app", app.pk, role=app.role)
    return AppWithSecret(application=app, client_secret=secret)


@transaction.atomic
def oauth_app_rotate_secret(*, principal: Principal, application: Application) -> AppWithSecret:
    """A new secret; the old one and every token issued under it stop working at once."""
    secret = generate_client_secret()
    application.client_secret = secret
    application.save()
    revoked, _ = get_access_token_model().objects.filter(application=application).delete()
    _audit(principal, principal.tenant, "oauth_app.rotate_secret", "oauth_app", application.pk, tokens_revoked=revoked)
    return AppWithSecret(application=application, client_secret=secret)


@transaction.atomic
def oauth_app_delete(*, principal: Principal, application: Application) -> None:
    app_id = application.pk
    application.delete()  # cascades to its tokens
    _audit(principal, principal.tenant, "oauth_app.delete", "oauth_app", app_id)
