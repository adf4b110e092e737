"""Every refused request (401, 403, 429) leaves an audit trace, whichever view refused it,
and requests without a valid credential are rate-limited per client address.

Denials are aggregated per client and window (audit/denials.py), so a flood of them
neither queues on the audit chain's lock nor grows the chain by one event each. A
client address that keeps failing authentication gets 429 once its anonymous bucket
(EASYMEMORY_ANON_RATE_LIMIT_*) is spent; for the OAuth endpoints, which verify a
client secret per request, an address with a spent bucket is refused before the view runs.
"""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse, JsonResponse

from accounts.principal import Principal
from accounts.ratelimit import Decision, rate_limit_check_address
from audit.denials import audit_denial_record
from core.request_context import RequestInfo, reset_request_info, set_request_info

DENIED = {401: "unauthenticated", 403: "forbidden", 429: "throttled"}
# Endpoints that check a client secret themselves (brute-force targets outside DRF).
SECRET_CHECKING_PREFIXES = ("/oauth/token", "/oauth/revoke", "/oauth/introspect")


def too_many_unauthenticated(decision: Decision) -> HttpResponse:
    response = JsonResponse(
        {"error": "too many requests without a valid credential from this address; retry later"}, status=429
    )
    for name, value in decision.headers().items():
        response[name] = value
    return response


class DeniedRequestAuditMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        addr = request.META.get("REMOTE_ADDR", "")
        if request.method == "POST" and request.path.startswith(SECRET_CHECKING_PREFIXES):
            decision = rate_limit_check_address(addr, take=False)
            if not decision.allowed:
                return self._audited(request, too_many_unauthenticated(decision))
        response = self.get_response(request)
        if response.status_code == 401:
            # Charged after the fact: only failures cost the address anything.
            decision = rate_limit_check_address(addr)
            if not decision.allowed:
                response = too_many_unauthenticated(decision)
        return self._audited(request, response)

    def _audited(self, request: HttpRequest, response: HttpResponse) -> HttpResponse:
        outcome = DENIED.get(response.status_code)
        if outcome is not None and not getattr(response, "easymemory_audited", False):
            # DRF puts the authenticated Principal on the Django request too; a 401 has none.
            user = getattr(request, "user", None)
            principal = user if isinstance(user, Principal) else None
            audit_denial_record(
                principal=principal,
                global_chain=principal is None or principal.tenant is None,
                action="request.denied",
                target_type="http",
                target_id=f"{request.method} {request.path}"[:200],
                outcome=outcome,
            )
        return response


def unauthenticated_request_refused(info: RequestInfo, target: str) -> Decision:
    """For doors outside Django's middleware (MCP, websocket): charge the address bucket of a
    request that failed authentication and record the denial. Not allowed: answer 429."""
    token = set_request_info(info)
    try:
        decision = rate_limit_check_address(info.client_addr)
        audit_denial_record(
            principal=None,
            global_chain=True,
            action="request.denied",
            target_type="http",
            target_id=target[:200],
            outcome="unauthenticated" if decision.allowed else "throttled",
        )
    finally:
        reset_request_info(token)
    return decision
