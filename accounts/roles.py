"""Roles and the scopes they grant: the one place that maps one onto the other."""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    READER = "reader"
    WRITER = "writer"
    ADMIN = "admin"


ROLE_CHOICES = [(role.value, role.value) for role in Role]

# The scopes a credential can hold, with the text OAuth clients see.
OAUTH_SCOPES: dict[str, str] = {
    "memory:read": "Read and search memories",
    "memory:write": "Add, change and delete memories",
    "graph:read": "Read the knowledge graph",
    "graph:write": "Change the knowledge graph",
    "admin": "Manage the tenant's keys, applications, members and audit log",
}

SCOPES_BY_ROLE: dict[Role, frozenset[str]] = {
    Role.READER: frozenset({"memory:read", "graph:read"}),
    Role.WRITER: frozenset({"memory:read", "memory:write", "graph:read", "graph:write"}),
    Role.ADMIN: frozenset({"memory:read", "memory:write", "graph:read", "graph:write", "admin"}),
}

ALL_SCOPES = SCOPES_BY_ROLE[Role.ADMIN]

# Held only by Django superusers (session) and the bootstrap admin token, never by
# a tenant role, an API key or an OAuth application: it manages tenants themselves.
SUPERUSER_SCOPE = "tenants:manage"


def scopes_for(role: str) -> frozenset[str]:
    return SCOPES_BY_ROLE[Role(role)]
