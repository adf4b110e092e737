"""Logins and failed logins (Django's auth signals: the only hook the login view offers)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.signals import user_logged_in, user_login_failed
from django.dispatch import receiver

from audit.denials import audit_denial_record
from audit.services import audit_record


@receiver(user_logged_in, dispatch_uid="easymemory_audit_login")
def _logged_in(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    audit_record(
        principal=None,
        global_chain=True,
        actor=("user", str(user.pk)),
        action="auth.login",
        target_type="user",
        target_id=str(user.pk),
    )


@receiver(user_login_failed, dispatch_uid="easymemory_audit_login_failed")
def _login_failed(sender: Any, credentials: dict[str, Any], request: Any = None, **kwargs: Any) -> None:
    # Django has already masked the password; keep only the name that was tried.
    username = str(credentials.get("username", ""))[:150]
    # Aggregated per address and window: a password-guessing run is one event plus a count.
    audit_denial_record(
        principal=None,
        global_chain=True,
        actor=("anonymous", ""),
        action="auth.login",
        target_type="user",
        outcome="failed",
        detail={"username": username},
    )
