"""The DRF side of accounts.ratelimit: one bucket per credential, 429 with Retry-After."""

from __future__ import annotations

from typing import Any

from rest_framework.request import Request
from rest_framework.throttling import BaseThrottle

from accounts.principal import Principal
from accounts.ratelimit import Decision, rate_limit_check

DECISION_ATTR = "easymemory_rate_decision"


class CredentialRateThrottle(BaseThrottle):
    def allow_request(self, request: Request, view: Any) -> bool:
        principal = request.user
        if not isinstance(principal, Principal):
            return True  # unauthenticated requests never reach a protected view
        decision = rate_limit_check(principal)
        setattr(request._request, DECISION_ATTR, decision)
        self.decision = decision
        return decision.allowed

    def wait(self) -> float | None:
        decision: Decision | None = getattr(self, "decision", None)
        return decision.retry_after if decision else None


class RateLimitHeadersMiddleware:
    """Adds X-RateLimit-* (and Retry-After on 429) to responses of rate-limited requests."""

    def __init__(self, get_response: Any) -> None:
        self.get_response = get_response

    def __call__(self, request: Any) -> Any:
        response = self.get_response(request)
        decision: Decision | None = getattr(request, DECISION_ATTR, None)
        if decision is not None and decision.limit:
            for name, value in decision.headers().items():
                response[name] = value
        return response
