"""Roles and the scopes they grant: the one place that maps one onto the other."""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    READER = "reader"
    WRITER = "writer"
    ADMIN = "admin"


ROLE_CHOICES = [(role.value, role.value) for role in Role]

SCOPES_BY_ROLE: dict[Role, frozenset[str]] = {
    Role.READER: frozenset({"memory:read", "graph:read"}),
    Role.WRITER: frozenset({"memory:read", "memory:write", "graph:read", "graph:write"}),
    Role.ADMIN: frozenset({"memory:read", "memory:write", "graph:read", "graph:write", "admin"}),
}

ALL_SCOPES = SCOPES_BY_ROLE[Role.ADMIN]


def scopes_for(role: str) -> frozenset[str]:
    return SCOPES_BY_ROLE[Role(role)]
