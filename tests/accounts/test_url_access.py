"""Every URL in config.urls, every method, every persona: 401 / 403 / 404 as the rules say.

The walk covers whatever is routed, so an endpoint added without access rules
fails here: a DRF view must declare `required_scopes` for each method it
implements, and any other view must either be in PUBLIC (with a reason) or
send an anonymous visitor to the login page / answer 401 or 403.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from typing import Any

import pytest
from django.conf import settings
from django.urls import URLPattern, URLResolver, get_resolver
from rest_framework.test import APIClient
from rest_framework.views import APIView

from accounts.models import ApiKey, Membership
from accounts.permissions import required_scope
from accounts.services import api_key_create, oauth_app_create
from graph.services import relation_add
from tests.conftest import Persona
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

# Reachable without credentials, each for a reason.
PUBLIC = {
    "healthz": "liveness probe, no data",
    "readyz": "readiness probe, no data",
    "schema": "the OpenAPI document",
    "api-docs": "Swagger UI for the schema",
    "oauth-token": "clients authenticate with their own id and secret",
    "oauth-revoke": "clients authenticate with their own id and secret",
    "oauth-introspect": "clients authenticate with their own id and secret",
    "oauth-register": "MCP clients register themselves (RFC 7591); limited per address, admin switch",
    "oauth-protected-resource": "RFC 9728 discovery metadata, no data",
    "oauth-protected-resource-mcp": "RFC 9728 discovery metadata for /mcp, no data",
    "oauth-authorization-server": "RFC 8414 discovery metadata, no data",
    "login": "the dashboard's login form",
    "logout": "ends the dashboard session (POST); nothing to protect",
    "invitation-accept": "whoever holds the one-time invitation link signs in or creates an account there",
    "password-reset": "whoever holds the one-time set-password link sets the password there",
    "password-reset-done": "a confirmation without data",
    "favicon": "the browser's icon",
    # Token or address allowlist, not API keys: loopback in single-user mode, nobody by default in team mode.
    "metrics": "Prometheus scrape; its own access rules are tested in tests/ops/test_metrics_and_logs.py",
}
# Django's admin site has its own staff login; it is walked, but as a whole.
PUBLIC_PREFIXES = ("django-admin/",)
PARAM = re.compile(r"<(?:(?P<converter>[^>:]+):)?(?P<name>[^>]+)>")


@dataclass
class Route:
    path: str  # with <converter:name> placeholders
    name: str
    callback: Any


def walk(patterns: list[Any], prefix: str = "") -> list[Route]:
    routes: list[Route] = []
    for entry in patterns:
        if isinstance(entry, URLResolver):
            routes += walk(entry.url_patterns, prefix + str(entry.pattern))
        elif isinstance(entry, URLPattern):
            routes.append(Route(prefix + str(entry.pattern), entry.name or "", entry.callback))
    return routes


def all_routes() -> list[Route]:
    return walk(get_resolver(settings.ROOT_URLCONF).url_patterns)


def drf_view(route: Route) -> type[APIView] | None:
    cls = getattr(route.callback, "cls", None)
    return cls if isinstance(cls, type) and issubclass(cls, APIView) else None


def methods_of(view: type[APIView]) -> list[str]:
    return [m.upper() for m in view.http_method_names if m not in {"options", "head"} and hasattr(view, m)]


@pytest.fixture
def acme_objects(cast: dict[str, Persona]) -> dict[str, str]:
    """One object of tenant acme per kind of path parameter, none a persona's own credential."""
    admin = cast["admin"]
    created = admin.client().post("/v1/memories", {"content": "a fact only acme may see"}, format="json")
    key = api_key_create(tenant=admin.tenant, name="walk-target", role="reader").api_key
    app = oauth_app_create(principal=admin.principal, name="walk-target", role="reader").application
    member = Membership.objects.create(tenant=admin.tenant, user=UserFactory(username="walker"), role="reader")
    return {
        "memory_id": created.json()["id"],
        "key_id": str(key.pk),
        "app_id": str(app.pk),
        "member_id": str(member.pk),
        "tenant_id": str(admin.tenant.pk),
        "user_id": str(member.user_id),
        "relation_id": str(relation_add(
            principal=admin.principal, source={"name": "Walk Source", "type": "thing"},
            target={"name": "Walk Target", "type": "thing"}, predicate="relates_to",
        ).pk),
    }  # fmt: skip


def concrete(path: str, objects: dict[str, str]) -> tuple[str, bool]:
    """The URL with acme's objects filled in; True when it names an object."""
    names = [m.group("name") for m in PARAM.finditer(path)]
    url = PARAM.sub(lambda m: objects.get(m.group("name"), str(uuid.uuid4())), path)
    return "/" + url, bool(names)


def call(client: APIClient, method: str, url: str) -> Any:
    body = json.dumps({}) if method in {"POST", "PUT", "PATCH"} else None
    return client.generic(method, url, data=body or "", content_type="application/json")


def anonymous() -> APIClient:
    return APIClient()


def undeclared_methods(routes: list[Route]) -> list[str]:
    return [
        f"{route.path} {method} ({drf_view(route).__name__})"
        for route in routes
        if drf_view(route) and route.name not in PUBLIC
        for method in methods_of(drf_view(route))
        if required_scope(drf_view(route), method) is None
    ]


def walk_problems(routes: list[Route], cast: dict[str, Persona], acme_objects: dict[str, str]) -> tuple[int, list[str]]:
    """(methods walked, problems found) for `routes` with every persona."""
    problems: list[str] = []
    walked = 0
    # Readers and writers first, admins last (admins' DELETEs succeed and change the data).
    order = ["reader", "writer", "outsider", "admin"]
    # Only ids that cannot occur by chance (UUIDs, not small integers) are evidence of a leak.
    leak_markers = [v for v in acme_objects.values() if len(v) == 36]
    for route in routes:
        if route.name in PUBLIC or route.path.startswith(PUBLIC_PREFIXES):
            continue
        url, names_object = concrete(route.path, acme_objects)
        view = drf_view(route)
        if view is None:
            response = anonymous().get(url)
            login = response.status_code == 302 and response["Location"].startswith(settings.LOGIN_URL)
            if not (login or response.status_code in {401, 403}):
                problems.append(f"{url}: non-API view answers an anonymous GET with {response.status_code}")
            continue
        for method in sorted(methods_of(view), key=lambda m: m == "DELETE"):
            walked += 1
            scope = required_scope(view, method)
            status = call(anonymous(), method, url).status_code
            if status != 401:
                problems.append(f"{method} {url} without credentials: {status}, expected 401")
            for name in order:
                persona = cast[name]
                response = call(persona.client(), method, url)
                status = response.status_code
                allowed = scope is not None and persona.principal.has_scope(scope)
                if not allowed:
                    if status != 403:
                        problems.append(f"{method} {url} as {name} (no {scope}): {status}, expected 403")
                elif name == "outsider":
                    if names_object and status != 404:
                        problems.append(f"{method} {url} as outsider: {status}, expected 404 for acme's object")
                    # The outsider's own trail names the acme URLs it just tried: that is no leak.
                    body = response.streaming_content if response.streaming else [response.content]
                    shown = b"".join(body).decode()
                    if status < 300 and route.name != "audit-list" and any(v in shown for v in leak_markers):
                        problems.append(f"{method} {url} as outsider shows acme's objects")
                elif status in {401, 403} or status >= 500:
                    problems.append(f"{method} {url} as {name} (holds {scope}): {status}")
    return walked, problems


def test_every_drf_method_declares_its_scope() -> None:
    undeclared = undeclared_methods(all_routes())
    assert not undeclared, f"declare required_scopes for: {undeclared}"


def test_every_route_is_public_on_purpose_or_protected(cast: dict[str, Persona], acme_objects: dict[str, str]) -> None:
    walked, problems = walk_problems(all_routes(), cast, acme_objects)
    assert walked > 10
    assert not problems, "\n".join(problems)


def test_the_walk_catches_an_endpoint_added_without_access_rules(
    cast: dict[str, Persona], acme_objects: dict[str, str], settings
) -> None:
    settings.ROOT_URLCONF = "tests.accounts.unprotected_urls"
    routes = [route for route in all_routes() if route.path.startswith("careless/")]
    assert len(routes) == 3
    # A view without `required_scopes` is refused to everyone (fail closed) and named here.
    assert undeclared_methods(routes) == ["careless/undeclared GET (UndeclaredApi)"]
    _, problems = walk_problems(routes, cast, acme_objects)
    text = "\n".join(problems)
    assert "GET /careless/open without credentials: 200, expected 401" in text
    assert "/careless/page: non-API view answers an anonymous GET with 200" in text


def test_the_cast_is_what_the_walk_assumes(cast: dict[str, Persona]) -> None:
    assert ApiKey.objects.filter(tenant=cast["admin"].tenant).count() == 3
    assert not cast["admin"].principal.is_superuser
