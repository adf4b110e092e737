"""Who may open a dashboard page: the session user, acting in the tenant chosen in the session.

Each view declares the scope it needs per HTTP method, as the REST views do; a
method without a declaration is refused, so a forgotten declaration fails closed.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, cast

from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed
from django.http.response import HttpResponseBase
from django.shortcuts import render

from accounts.authentication import principal_for_session
from accounts.principal import Principal
from accounts.requests import SignedInRequest
from accounts.selectors import membership_list_for

View = Callable[..., HttpResponseBase]


class DashboardRequest(SignedInRequest):
    """What a view behind `dashboard_view` receives: a signed-in user acting as `principal` in the
    tenant chosen in the session. The request object is Django's own; this names its type."""

    principal: Principal


def dashboard_view(**scopes: str) -> Callable[[View], View]:
    """`@dashboard_view(get="memory:read", post="memory:write")`: log-in, tenant and scope checks."""
    allowed = {method.upper(): scope for method, scope in scopes.items()}
    if "GET" in allowed:
        allowed.setdefault("HEAD", allowed["GET"])

    def decorate(view: View) -> View:
        @wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
            if not request.user.is_authenticated:
                return redirect_to_login(request.get_full_path())
            principal = principal_for_session(request)
            if principal is None:
                return render(request, "dashboard/no_tenant.html", status=403)
            scope = allowed.get(request.method or "GET")
            if scope is None:
                return HttpResponseNotAllowed(sorted(allowed))
            request = cast(DashboardRequest, request)
            request.principal = principal
            if not principal.has_scope(scope):
                return render(request, "dashboard/forbidden.html", page_context(request), status=403)
            return view(request, *args, **kwargs)

        return wrapper

    return decorate


def page_context(request: DashboardRequest, **extra: Any) -> dict[str, Any]:
    """What every page's frame needs: the principal, the user's tenants and what they may do."""
    principal = request.principal
    return {
        "principal": principal,
        "tenant": principal.tenant,
        "memberships": membership_list_for(request.user),
        "can_write": principal.has_scope("memory:write"),
        "is_admin": principal.has_scope("admin"),
        **extra,
    }


def page(request: DashboardRequest, template: str, status: int = 200, **context: Any) -> HttpResponse:
    return render(request, template, page_context(request, **context), status=status)
