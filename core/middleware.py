from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from core.request_context import RequestInfo, reset_request_info, set_request_info


class RequestIdMiddleware:
    """Gives every request an id (kept from X-Request-ID when sane) for logs and the audit trail."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        given = request.META.get("HTTP_X_REQUEST_ID", "")
        request_id = given if given.isascii() and 0 < len(given) <= 64 else uuid.uuid4().hex
        token = set_request_info(
            RequestInfo(
                request_id=request_id,
                client_addr=request.META.get("REMOTE_ADDR", ""),
                user_agent=request.META.get("HTTP_USER_AGENT", ""),
            )
        )
        try:
            response = self.get_response(request)
        finally:
            reset_request_info(token)
        response["X-Request-ID"] = request_id
        return response


request_logger = logging.getLogger("easymemory.request")


def request_log(
    *, request_id: str, tenant: str, principal: str, route: str, method: str, status: int, seconds: float, client: str
) -> None:
    """One line per request: who, which route, how it ended, how long; never a body."""
    duration_ms = round(seconds * 1000, 2)
    request_logger.info(
        "%s %s %s %.1fms",
        method,
        route,
        status,
        duration_ms,
        extra={
            "request_id": request_id,
            "tenant": tenant,
            "principal": principal,
            "route": route,
            "method": method,
            "status": status,
            "duration_ms": duration_ms,
            "client": client,
        },
    )


def principal_labels(principal: object) -> tuple[str, str]:
    """(tenant slug, "actor_type:actor_id") of a Principal, or empty strings."""
    from accounts.principal import Principal

    if not isinstance(principal, Principal):
        # A dashboard page sees the signed-in Django user; its tenant is chosen per view.
        pk = getattr(principal, "pk", None)
        if getattr(principal, "is_authenticated", False) and pk is not None:
            return "", f"user:{pk}"
        return "", ""
    tenant = principal.tenant.slug if principal.tenant is not None else ""
    return tenant, principal.actor


class RequestObservationMiddleware:
    """Outermost: times every Django request for the metrics and writes its log line.

    The route is the URL pattern that matched (`v1/memories/<uuid:memory_id>`), never the raw
    path, so metric labels stay few and no identifier lands in a label.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        from core.metrics import pool_observe, request_observe

        started = time.perf_counter()
        response = self.get_response(request)
        seconds = time.perf_counter() - started
        match = getattr(request, "resolver_match", None)
        route = (match.route or match.view_name or "") if match is not None else "unmatched"
        method = request.method or ""
        tenant, principal = principal_labels(getattr(request, "user", None))
        request_observe(route=route, method=method, status=response.status_code, seconds=seconds)
        pool_observe()
        request_log(
            request_id=response.get("X-Request-ID", ""),
            tenant=tenant,
            principal=principal,
            route=route,
            method=method,
            status=response.status_code,
            seconds=seconds,
            client=request.META.get("REMOTE_ADDR", ""),
        )
        return response
