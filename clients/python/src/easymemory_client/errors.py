"""Errors raised by the client. Every error from the server carries its status, message and `field`."""

from __future__ import annotations

from typing import Any


class EasyMemoryError(Exception):
    """Base class of everything this client raises."""


class TransportError(EasyMemoryError):
    """The server could not be reached (after the configured retries)."""


class ApiError(EasyMemoryError):
    """The server answered with an error status.

    `field` names the offending input field when the server names one (validation errors),
    `errors` holds the server's full per-field detail when it sent one.
    """

    def __init__(
        self,
        status: int,
        message: str,
        *,
        field: str | None = None,
        errors: Any = None,
        body: Any = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(f"HTTP {status}: {message}" + (f" (field: {field})" if field else ""))
        self.status = status
        self.message = message
        self.field = field
        self.errors = errors
        self.body = body
        self.retry_after = retry_after


class BadRequest(ApiError):
    """400/413/415/422: the input was refused and nothing changed."""


class AuthenticationError(ApiError):
    """401: missing, unknown, expired or revoked credential."""


class PermissionDenied(ApiError):
    """403: the credential's role or scopes do not allow this."""


class NotFound(ApiError):
    """404: no such object in your tenant (foreign objects answer the same)."""


class RateLimited(ApiError):
    """429 after the retries ran out; `retry_after` says how long the server asked to wait."""


class ServerError(ApiError):
    """5xx after the retries ran out."""


class JobFailed(EasyMemoryError):
    """An import job ended with status `failed`."""

    def __init__(self, job: Any) -> None:
        super().__init__(f"job {job.id} failed: {job.error or 'no reason given'}")
        self.job = job


def error_for(status: int, body: Any, retry_after: float | None = None) -> ApiError:
    message, field, errors = f"HTTP {status}", None, None
    if isinstance(body, dict):
        message = str(body.get("error") or body.get("detail") or body.get("error_description") or message)
        field = body.get("field") if isinstance(body.get("field"), str) else None
        errors = body.get("errors")
    elif isinstance(body, str) and body:
        message = body[:300]
    cls: type[ApiError]
    if status == 401:
        cls = AuthenticationError
    elif status == 403:
        cls = PermissionDenied
    elif status == 404:
        cls = NotFound
    elif status == 429:
        cls = RateLimited
    elif status >= 500:
        cls = ServerError
    else:
        cls = BadRequest
    return cls(status, message, field=field, errors=errors, body=body, retry_after=retry_after)
