"""Helpers that drive the MCP authorization flow through Django's test client."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from django.test import Client

HOST = "127.0.0.1"
ORIGIN = f"http://{HOST}"
RESOURCE = f"{ORIGIN}/mcp"
REDIRECT = "http://127.0.0.1:9876/callback"


def browser(user: Any = None, host: str = HOST) -> Client:
    client = Client(HTTP_HOST=host)
    if user is not None:
        client.force_login(user)
    return client


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(64)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
    return verifier, challenge


def register(client: Client | None = None, *, address: str = "10.0.0.5", **metadata: Any) -> Any:
    body = {"client_name": "Test MCP client", "redirect_uris": [REDIRECT], **metadata}
    return (client or browser()).post(
        "/oauth/register", data=json.dumps(body), content_type="application/json", REMOTE_ADDR=address
    )


def authorize_url(client_id: str, challenge: str, **override: str) -> str:
    params = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": REDIRECT,
        "state": "st-123",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        "resource": RESOURCE,
    }
    params.update(override)
    return "/oauth/authorize?" + urlencode({k: v for k, v in params.items() if v is not None})


def consent_form(response: Any) -> dict[str, str]:
    """The hidden fields of the consent page, as the browser would post them back."""
    form = response.context["form"]
    return {name: value for name, value in form.initial.items() if value is not None}


def approve(client: Client, client_id: str, challenge: str, tenant: Any, allow: bool = True) -> dict[str, list[str]]:
    """GET the consent page, choose `tenant`, approve; the query of the redirect back to the client."""
    page = client.get(authorize_url(client_id, challenge))
    assert page.status_code == 200, page.content[:500]
    data = consent_form(page) | {"tenant": str(tenant.pk)}
    if allow:
        data["allow"] = "on"
    response = client.post("/oauth/authorize", data)
    assert response.status_code == 302, response.content[:500]
    location = response["Location"]
    assert location.startswith(REDIRECT), location
    return parse_qs(urlsplit(location).query)


def exchange(code: str, verifier: str, client_id: str, **extra: str) -> Any:
    data = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT,
        "client_id": client_id,
        "code_verifier": verifier,
        "resource": RESOURCE,
        **extra,
    }
    return browser().post("/oauth/token", data)


def refresh(refresh_token: str, client_id: str) -> Any:
    data = {"grant_type": "refresh_token", "refresh_token": refresh_token, "client_id": client_id}
    return browser().post("/oauth/token", data)


def connect(user: Any, tenant: Any) -> tuple[str, dict[str, Any]]:
    """Register a client, approve it in `tenant` as `user`, exchange the code: (client_id, tokens)."""
    client_id = register(address=f"10.1.{secrets.randbelow(250)}.{secrets.randbelow(250)}").json()["client_id"]
    verifier, challenge = pkce()
    query = approve(browser(user), client_id, challenge, tenant)
    response = exchange(query["code"][0], verifier, client_id)
    assert response.status_code == 200, response.content
    return client_id, response.json()


def api(token: str, host: str = HOST) -> Client:
    return Client(HTTP_HOST=host, HTTP_AUTHORIZATION=f"Bearer {token}")
