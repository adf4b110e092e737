"""Each view declares the scope it needs per HTTP method in `required_scopes`."""

from __future__ import annotations

from typing import Any

from rest_framework import permissions
from rest_framework.request import Request

from accounts.principal import Principal

READ_METHODS = {"GET", "HEAD", "OPTIONS"}


def required_scope(view: Any, method: str) -> str | None:
    scopes: dict[str, str] = getattr(view, "required_scopes", {})
    if method in scopes:
        return scopes[method]
    if method in READ_METHODS and "GET" in scopes:
        return scopes["GET"]
    return scopes.get("*")


class HasRole(permissions.BasePermission):
    """Deny unless the principal holds the scope the view declares for this method.

    A view with no declaration for a method is denied: forgetting the
    declaration must fail closed.
    """

    message = "your role does not allow this operation"

    def has_permission(self, request: Request, view: Any) -> bool:
        if getattr(view, "public", False):
            return True
        principal = request.user
        if not isinstance(principal, Principal):
            return False
        scope = required_scope(view, request.method or "GET")
        return scope is not None and principal.has_scope(scope)


def principal_of(request: Request) -> Principal:
    """The caller of a view that HasRole admitted."""
    principal = request.user
    assert isinstance(principal, Principal)  # guaranteed by HasRole
    return principal
