from __future__ import annotations

import uuid
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from config.request_context import RequestInfo, reset_request_info, set_request_info


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
