"""Brute-force limits for the dashboard login and /django-admin/ (django-axes).

Failed attempts are counted per account name and per client address, in the
database (so every server process sees the same counts); either count reaching
EASYMEMORY_LOGIN_FAILURE_LIMIT locks further attempts for
EASYMEMORY_LOGIN_LOCKOUT_MINUTES. Names that match no account are counted the
same way and get the same answer, so the lockout reveals nothing about which
accounts exist.
"""

from __future__ import annotations

from typing import Any

from axes.backends import AxesStandaloneBackend
from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

LOCKED_MESSAGE = "Too many failed sign-in attempts. Try again in {minutes} minutes."


class LoginLimitBackend(AxesStandaloneBackend):
    """Axes' check, for logins that arrive over the network (they carry a request).

    authenticate() without a request comes from code on the server itself (test
    clients, management commands), which no remote attacker can drive.
    """

    def authenticate(
        self, request: Any, username: str | None = None, password: str | None = None, **kwargs: Any
    ) -> Any:
        if request is None:
            return None
        return super().authenticate(request, username=username, password=password, **kwargs)


def client_address(request: HttpRequest) -> str:
    # The same address the audit trail records (uvicorn resolves trusted proxy headers).
    return str(request.META.get("REMOTE_ADDR", ""))


def lockout_response(request: HttpRequest, original_response: Any = None, credentials: Any = None) -> HttpResponse:
    """One answer for every locked login, whether the name exists or not (HTTP 429)."""
    message = LOCKED_MESSAGE.format(minutes=settings.EASYMEMORY_LOGIN_LOCKOUT_MINUTES)
    retry_after = str(settings.EASYMEMORY_LOGIN_LOCKOUT_MINUTES * 60)
    if request.path.startswith("/django-admin/"):
        response = HttpResponse(message, status=429, content_type="text/plain; charset=utf-8")
    else:
        response = render(request, "dashboard/login_locked.html", {"message": message}, status=429)
    response["Retry-After"] = retry_after
    return response
