"""Who is acting: every credential resolves to a Principal (tenant, actor, role, scopes)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from accounts.roles import Role, scopes_for

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser

    from accounts.models import Tenant


@dataclass(frozen=True)
class Principal:
    tenant: Tenant
    actor_type: str  # "api_key" | "user" | "oauth_app" | "system"
    actor_id: str
    role: Role
    scopes: frozenset[str] = field(default_factory=frozenset)
    user: AbstractBaseUser | None = None

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
        user: AbstractBaseUser | None = None,
        scopes: frozenset[str] | None = None,
    ) -> Principal:
        granted = scopes_for(role)
        return cls(
            tenant=tenant,
            actor_type=actor_type,
            actor_id=actor_id,
            role=Role(role),
            scopes=granted if scopes is None else granted & scopes,
            user=user,
        )

    @classmethod
    def system(cls, tenant: Tenant) -> Principal:
        """Background work and CLI commands act with the tenant's full rights."""
        return cls.for_role(tenant, Role.ADMIN, actor_type="system", actor_id="system")

    def has_scope(self, scope: str) -> bool:
        return scope in self.scopes

    @property
    def actor(self) -> str:
        return f"{self.actor_type}:{self.actor_id}"
