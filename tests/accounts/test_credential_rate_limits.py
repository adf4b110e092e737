"""Rate limits that fit machine clients: per API key and per OAuth application, set by a tenant
admin (admin API, dashboard), with headers that describe the bucket actually applied."""

from __future__ import annotations

from typing import Any

import pytest
from rest_framework.test import APIClient

from accounts.models import ApiKey, Application
from accounts.ratelimit import credential_limits, rate_limit_check
from audit.models import AuditEvent
from tests.accounts.test_oauth import bearer, create_app, token_for
from tests.conftest import Persona
from tests.dashboard.conftest import make_person

pytestmark = pytest.mark.django_db


@pytest.fixture(params=["redis", "database"])
def backend(request: Any, settings: Any) -> str:
    settings.EASYMEMORY_RATE_LIMIT_BACKEND = request.param
    return request.param


def key_id(persona: Persona) -> str:
    return persona.principal.actor_id


def test_the_defaults_let_one_client_sustain_twenty_requests_a_second(settings: Any, writer: Persona) -> None:
    per_min, burst = credential_limits(writer.principal)
    assert per_min / 60 >= 20 and burst >= 20
    response = writer.client().get("/v1/memories")
    assert response["X-RateLimit-Limit"] == str(burst)
    assert response["X-RateLimit-Refill-Per-Minute"] == str(per_min)
    assert int(response["X-RateLimit-Remaining"]) == burst - 1


def test_an_admin_gives_an_api_key_its_own_limit(backend: str, cast: dict[str, Persona]) -> None:
    writer = cast["writer"]
    url = f"/v1/admin/api-keys/{key_id(writer)}"
    body = {"rate_limit_per_min": 1, "rate_limit_burst": 2}
    assert APIClient().patch(url, body, format="json").status_code == 401
    for name in ("writer", "reader"):
        assert cast[name].client().patch(url, body, format="json").status_code == 403
    assert cast["outsider"].client().patch(url, body, format="json").status_code == 404
    response = cast["admin"].client().patch(url, body, format="json")
    assert response.status_code == 200
    assert (response.json()["rate_limit_per_min"], response.json()["rate_limit_burst"]) == (1, 2)
    codes = [writer.client().get("/v1/memories") for _ in range(3)]
    assert [r.status_code for r in codes] == [200, 200, 429]
    assert codes[0]["X-RateLimit-Limit"] == "2" and codes[0]["X-RateLimit-Refill-Per-Minute"] == "1"
    # The admin's own key keeps the default bucket.
    assert cast["admin"].client().get("/v1/memories")["X-RateLimit-Limit"] != "2"
    assert AuditEvent.objects.filter(tenant=writer.tenant, action="api_key.rate_limit").count() == 1
    # null restores the default.
    reset = cast["admin"].client().patch(url, {"rate_limit_per_min": None, "rate_limit_burst": None}, format="json")
    assert reset.status_code == 200 and reset.json()["rate_limit_burst"] is None


@pytest.mark.parametrize(
    "body,field",
    [
        ({"rate_limit_per_min": 0}, "rate_limit_per_min"),
        ({"rate_limit_burst": -1}, "rate_limit_burst"),
        ({"rate_limit_burst": "lots"}, "rate_limit_burst"),
        ({"rate_limit_per_min": 10**12}, "rate_limit_per_min"),
        ({"role": "admin"}, "rate_limit_per_min"),
        ({"rate_limit_burst": 5, "role": "admin"}, "role"),
    ],
)
def test_bad_limits_are_refused_naming_the_field(cast: dict[str, Persona], body: dict[str, Any], field: str) -> None:
    response = cast["admin"].client().patch(f"/v1/admin/api-keys/{key_id(cast['writer'])}", body, format="json")
    assert 400 <= response.status_code < 500 and field in response.content.decode()
    key = ApiKey.objects.get(pk=key_id(cast["writer"]))
    assert (key.rate_limit_per_min, key.rate_limit_burst, key.role) == (None, None, "writer")


def test_an_oauth_application_has_one_bucket_for_all_its_tokens(backend: str, cast: dict[str, Persona]) -> None:
    admin = cast["admin"]
    app = create_app(admin, "reader")
    created = admin.client().post(
        "/v1/admin/oauth-apps", {"name": "capped", "role": "reader", "rate_limit_burst": 2}, format="json"
    )
    assert created.status_code == 201 and created.json()["rate_limit_burst"] == 2
    assert cast["outsider"].client().patch(
        f"/v1/admin/oauth-apps/{app['id']}", {"rate_limit_burst": 1}, format="json"
    ).status_code == 404
    response = admin.client().patch(
        f"/v1/admin/oauth-apps/{app['id']}", {"rate_limit_per_min": 1, "rate_limit_burst": 3}, format="json"
    )
    assert response.status_code == 200
    first, second = (token_for(app).json()["access_token"] for _ in range(2))
    codes = [bearer(token).get("/v1/memories").status_code for token in (first, second, first, second)]
    assert codes == [200, 200, 200, 429]  # two tokens, one application, one bucket of 3


def test_an_admin_sets_the_limits_on_the_dashboard(tenant: Any, other_tenant: Any, writer: Persona) -> None:
    admin = make_person("rl-admin", tenant, "admin").client()
    url = f"/admin/api-keys/{key_id(writer)}/rate-limit/"
    assert make_person("rl-writer", tenant, "writer").client().post(url, {"rate_limit_burst": 5}).status_code == 403
    stranger = make_person("rl-stranger", other_tenant, "admin").client()
    assert stranger.post(url, {"rate_limit_burst": 5}).status_code == 404
    assert admin.post(url, {"rate_limit_per_min": "600", "rate_limit_burst": "50"}).status_code == 302
    key = ApiKey.objects.get(pk=key_id(writer))
    assert (key.rate_limit_per_min, key.rate_limit_burst) == (600, 50)
    page = admin.get("/admin/api-keys/").content.decode()
    assert 'value="600"' in page and 'value="50"' in page
    assert admin.post(url, {"rate_limit_per_min": "0"}, follow=True).status_code == 200
    assert ApiKey.objects.get(pk=key_id(writer)).rate_limit_per_min == 600  # refused, unchanged

    app = Application.objects.create(
        tenant=tenant, name="bot", role="reader", client_type="confidential",
        authorization_grant_type="client-credentials",
    )
    assert admin.post(f"/admin/oauth-apps/{app.pk}/rate-limit/", {"rate_limit_burst": "7"}).status_code == 302
    assert Application.objects.get(pk=app.pk).rate_limit_burst == 7
    assert stranger.post(f"/admin/oauth-apps/{app.pk}/rate-limit/", {"rate_limit_burst": "1"}).status_code == 404


def test_the_mcp_limiter_honours_the_credentials_own_limit(backend: str, writer: Persona) -> None:
    ApiKey.objects.filter(pk=key_id(writer)).update(rate_limit_per_min=1, rate_limit_burst=1)
    from accounts.authentication import principal_for_bearer

    principal = principal_for_bearer(writer.key)
    assert [rate_limit_check(principal).allowed for _ in range(2)] == [True, False]
