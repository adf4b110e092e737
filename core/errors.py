"""Errors that name the problem, and the DRF handler that turns them into JSON.

Services raise InvalidInput / PayloadTooLarge, never HTTP types, so the REST
API, MCP tools and the CLI report the same problem the same way.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response


class InvalidInput(Exception):
    """Semantically invalid input (HTTP 422); `field` names what is wrong."""

    status_code: int = status.HTTP_422_UNPROCESSABLE_ENTITY

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class PayloadTooLarge(InvalidInput):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE


def error_body(field: str | None, message: str, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"error": message}
    if field:
        body["field"] = field
    body.update(extra)
    return body


def first_error(detail: Any, path: str = "") -> tuple[str, str]:
    """(field path, message) of the first error in a DRF ValidationError's detail."""
    if isinstance(detail, dict):
        for key, value in detail.items():
            sub = key if not path else f"{path}.{key}"
            if key == "non_field_errors":
                sub = path
            return first_error(value, sub)
    if isinstance(detail, list) and detail:
        if all(not isinstance(item, dict | list) for item in detail):
            return path, str(detail[0])
        for index, item in enumerate(detail):
            if item:
                return first_error(item, f"{path}[{index}]")
    return path, str(detail)


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, InvalidInput):
        return Response(error_body(exc.field, exc.message), status=exc.status_code)
    if isinstance(exc, Http404):
        return Response(error_body(None, "not found"), status=status.HTTP_404_NOT_FOUND)
    if isinstance(exc, RequestDataTooBig):
        # Django refuses a body over DATA_UPLOAD_MAX_MEMORY_SIZE before any parser sees it.
        limit = settings.EASYMEMORY_MAX_REQUEST_BYTES
        message = f"request body is over the {limit}-byte limit"
        return Response(error_body("body", message), status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE)
    from rest_framework.views import exception_handler as drf_exception_handler  # import cycle via settings

    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        field, message = first_error(exc.detail)
        response.data = error_body(field or None, message, errors=exc.detail)
        response.status_code = status.HTTP_400_BAD_REQUEST
    elif isinstance(exc, exceptions.ParseError):
        response.data = error_body("body", str(exc.detail))
    elif isinstance(response.data, dict) and "detail" in response.data:
        response.data = error_body(None, str(response.data["detail"]))
    return response
