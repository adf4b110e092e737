"""Types of the requests that views receive once authentication has run. Django hands every view
the same request class; these name what a view behind a login check can rely on, for the type
checker (no request is ever built from them)."""

from __future__ import annotations

from django.contrib.auth.models import User
from django.http import HttpRequest


class SignedInRequest(HttpRequest):
    """A request whose session user is signed in (a login check ran first)."""

    user: User
