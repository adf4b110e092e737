"""Sign-ins, remembered per session so a person can list their sessions and end them all.

Django's login view offers no other hook than this signal; the receiver only calls a service.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.signals import user_logged_in
from django.dispatch import receiver

from accounts.user_services import user_session_record


@receiver(user_logged_in, dispatch_uid="easymemory_track_session")
def _track_session(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    session = getattr(request, "session", None)
    if session is None:
        return
    if session.session_key is None:
        session.save()  # a key exists only once the session is stored
    meta = getattr(request, "META", {})
    user_session_record(
        user=user,
        session_key=session.session_key or "",
        client_addr=str(meta.get("REMOTE_ADDR", "")),
        user_agent=str(meta.get("HTTP_USER_AGENT", "")),
    )
