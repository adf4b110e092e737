"""Every refused request (401, 403, 429) leaves an audit event, whichever view refused it."""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from accounts.principal import Principal
from audit.services import audit_record

DENIED = {401: "unauthenticated", 403: "forbidden", 429: "throttled"}


class DeniedRequestAuditMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        outcome = DENIED.get(response.status_code)
        if outcome is not None and not getattr(response, "easymemory_audited", False):
            # DRF puts the authenticated Principal on the Django request too; a 401 has none.
            user = getattr(request, "user", None)
            principal = user if isinstance(user, Principal) else None
            audit_record(
                principal=principal,
                global_chain=principal is None or principal.tenant is None,
                action="request.denied",
                target_type="http",
                target_id=f"{request.method} {request.path}"[:200],
                outcome=outcome,
            )
        return response
