"""Cost of resolving a credential to a principal, per request: API key vs a member's OAuth token.

A member's MCP-client token resolves through its consent grant to the member's current
role in the chosen tenant (accounts/oauth.py), which takes more lookups than an API
key. This measures `principal_for_bearer` for both, in alternation, on a throw-away
embedded database (the same function REST, MCP and the websocket call per request).

python bench/oauth_token_resolve.py [-n 2000]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ["EASYMEMORY_DATA_DIR"] = tempfile.mkdtemp(prefix="easymemory-bench-oauth-")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.pop("DATABASE_URL", None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=2000, help="resolutions per credential")
    args = parser.parse_args()

    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.utils import timezone
    from oauth2_provider.models import get_access_token_model, set_token_value

    from accounts.authentication import principal_for_bearer
    from accounts.models import Application, Membership, Tenant
    from accounts.oauth_grants import consent_grant_approve
    from accounts.services import api_key_create
    from bench._server import percentile

    call_command("migrate", verbosity=0)
    tenant = Tenant.objects.create(slug="bench", name="Bench")
    user = get_user_model().objects.create_user(username="bench-member", password=os.urandom(16).hex())
    membership = Membership.objects.create(user=user, tenant=tenant, role="writer")
    key = api_key_create(tenant=tenant, name="bench", role="writer").secret
    app = Application.objects.create(
        name="bench client",
        client_type=Application.CLIENT_PUBLIC,
        authorization_grant_type=Application.GRANT_AUTHORIZATION_CODE,
        redirect_uris="http://127.0.0.1/callback",
    )
    resource = "http://127.0.0.1:8100/mcp"
    consent_grant_approve(
        membership=membership, application=app, scopes=["memory:read", "memory:write"], resource=resource
    )
    raw = os.urandom(24).hex()
    token = get_access_token_model()(
        user=user,
        application=app,
        scope="memory:read memory:write",
        expires=timezone.now() + timedelta(hours=1),
        resource=[resource],
    )
    set_token_value(token, raw)
    token.save()

    credentials = {"api key": (key, None), "oauth member token": (raw, resource)}
    timings: dict[str, list[float]] = {name: [] for name in credentials}
    for secret, audience in credentials.values():
        for _ in range(100):  # warm-up: connection, caches
            principal_for_bearer(secret, audience=audience)
    for i in range(args.n):
        for name in list(credentials)[:: 1 if i % 2 == 0 else -1]:
            secret, audience = credentials[name]
            started = time.perf_counter()
            principal_for_bearer(secret, audience=audience)
            timings[name].append((time.perf_counter() - started) * 1000)
    print(f"principal_for_bearer, {args.n} resolutions each, alternating, embedded PostgreSQL over a unix socket")
    for name, values in timings.items():
        print(f"  {name:18}  p50 {statistics.median(values):.3f} ms   p95 {percentile(values, 95):.3f} ms")
    print(f"  load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    try:
        main()
    finally:
        from django.db import connections

        from bench._server import _stop_postgres

        connections.close_all()
        _stop_postgres(Path(os.environ["EASYMEMORY_DATA_DIR"]))
