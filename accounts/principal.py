"""Who is acting: every credential resolves to a Principal (tenant, actor, role, scopes)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from accounts.roles import SUPERUSER_SCOPE, Role, scopes_for

if TYPE_CHECKING:
    from django.contrib.auth.models import User

    from accounts.models import Tenant


@dataclass(frozen=True)
class Principal:
    tenant: Tenant
    actor_type: str  # "api_key" | "user" | "oauth_app" | "admin_token" | "system"
    actor_id: str
    role: Role
    scopes: frozenset[str] = field(default_factory=frozenset)
    user: User | None = None
    # The credential's own rate limit (API key / OAuth application); None: the default.
    rate_per_min: int | None = None
    rate_burst: int | None = None

    # DRF treats request.user as authenticated through this attribute.
    is_authenticated = True
    is_anonymous = False

    @classmethod
    def for_role(
        cls,
        tenant: Tenant,
        role: str,
        *,
        actor_type: str,
        actor_id: str,
        user: User | None = None,
        scopes: frozenset[str] | None = None,
        rate_per_min: int | None = None,
        rate_burst: int | None = None,
    ) -> Principal:
        granted = scopes_for(role)
        return cls(
            tenant=tenant,
            actor_type=actor_type,
            actor_id=actor_id,
            role=Role(role),
            scopes=granted if scopes is None else granted & scopes,
            user=user,
            rate_per_min=rate_per_min,
            rate_burst=rate_burst,
        )

    @classmethod
    def superuser(
        cls,
        tenant: Tenant | None,
        *,
        actor_type: str,
        actor_id: str,
        user: User | None = None,
    ) -> Principal:
        """A Django superuser or the bootstrap admin token.

        With a tenant it is that tenant's admin plus SUPERUSER_SCOPE. Without one it
        holds SUPERUSER_SCOPE only, so HasRole stops it before any tenant-scoped view
        could touch `tenant` (None); only /v1/admin/tenants accepts it.
        """
        scopes = (scopes_for(Role.ADMIN) if tenant is not None else frozenset()) | {SUPERUSER_SCOPE}
        return cls(
            tenant=tenant,  # type: ignore[arg-type]  # None only with SUPERUSER_SCOPE alone, see above
            actor_type=actor_type,
            actor_id=actor_id,
            role=Role.ADMIN,
            scopes=frozenset(scopes),
            user=user,
        )

    @classmethod
    def system(cls, tenant: Tenant) -> Principal:
        """Background work and CLI commands act with the tenant's full rights."""
        return cls.for_role(tenant, Role.ADMIN, actor_type="system", actor_id="system")

    @property
    def is_superuser(self) -> bool:
        return SUPERUSER_SCOPE in self.scopes

    @property
    def tenant_id(self) -> object:
        return self.tenant.pk if self.tenant is not None else None

    def has_scope(self, scope: str) -> bool:
        return scope in self.scopes

    @property
    def actor(self) -> str:
        return f"{self.actor_type}:{self.actor_id}"
