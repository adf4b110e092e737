"""Accounts themselves: passwords, one-time reset links, signed-in sessions, and what only
superusers (the server's operators) may do to any account. Each write is audited in the
tenant-less chain, since an account is not owned by any one tenant."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.contrib.auth import get_user_model, password_validation
from django.contrib.auth.models import User
from django.contrib.auth.tokens import default_token_generator
from django.contrib.sessions.models import Session
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

from accounts.models import Membership, Tenant, UserSession
from accounts.principal import Principal
from accounts.roles import Role
from accounts.services import _audit
from core.errors import InvalidInput


def _audit_user(
    actor: User | Principal | None, action: str, user: User, **detail: object
) -> None:
    from audit.services import audit_record  # audit imports accounts

    who: tuple[str, str] | None = None
    if isinstance(actor, Principal):
        principal: Principal | None = actor
    else:
        principal = None
        who = ("user", str(actor.pk)) if actor is not None else ("system", "")
    audit_record(
        principal=principal,
        global_chain=True,
        actor=who,
        action=action,
        target_type="user",
        target_id=str(user.pk),
        detail=dict(detail),
    )


# --- sessions ------------------------------------------------------------------------------


@dataclass(frozen=True)
class SessionRow:
    session_key: str
    created_at: datetime
    expires_at: datetime
    client_addr: str
    user_agent: str


def user_session_record(*, user: User, session_key: str, client_addr: str, user_agent: str) -> None:
    """Remember a new sign-in's session (called on login), and forget this user's ended ones."""
    if not session_key:
        return
    with transaction.atomic():
        live = Session.objects.filter(expire_date__gt=timezone.now()).values("session_key")
        UserSession.objects.filter(user=user).exclude(session_key__in=live).delete()  # unscoped: the user's own
        UserSession.objects.update_or_create(
            session_key=session_key,
            defaults={"user": user, "client_addr": client_addr[:64], "user_agent": user_agent[:300]},
        )


def user_sessions_for(user: User) -> list[SessionRow]:
    """The user's signed-in sessions that have not ended, newest first."""
    rows = UserSession.objects.filter(user=user).order_by("-created_at")  # unscoped: the user's own sessions
    expiry = dict(
        Session.objects.filter(
            session_key__in=[row.session_key for row in rows], expire_date__gt=timezone.now()
        ).values_list("session_key", "expire_date")
    )
    return [
        SessionRow(row.session_key, row.created_at, expiry[row.session_key], row.client_addr, row.user_agent)
        for row in rows
        if row.session_key in expiry
    ]


@transaction.atomic
def user_sign_out_everywhere(
    *, user: User, keep_session_key: str | None = None, actor: User | Principal | None = None
) -> int:
    """End every signed-in session of `user` except `keep_session_key`; returns how many ended.

    Sessions are also bound to the password hash (Django checks it on each request), so a
    password change or reset ends the others too; this ends them without one.
    """
    tracked = UserSession.objects.filter(user=user)  # unscoped: one account's sessions
    if keep_session_key:
        tracked = tracked.exclude(session_key=keep_session_key)
    keys = list(tracked.values_list("session_key", flat=True))
    ended, _ = Session.objects.filter(session_key__in=keys).delete()
    tracked.delete()
    _audit_user(actor or user, "account.sign_out_everywhere", user, sessions=ended)
    return ended


# --- passwords -----------------------------------------------------------------------------


@transaction.atomic
def user_password_change(*, user: User, old_password: str, new_password: str) -> None:
    """The signed-in user's own change: the old password is required; other sessions end."""
    if not user.check_password(old_password):
        raise InvalidInput("old_password", "the current password is not correct")
    user_password_set(user=user, password=new_password, actor=user)


@transaction.atomic
def user_password_set(*, user: User, password: str, actor: User | Principal | None) -> None:
    try:
        password_validation.validate_password(password, user)
    except ValidationError as exc:
        raise InvalidInput("new_password", " ".join(exc.messages)) from exc
    user.set_password(password)
    user.save(update_fields=["password"])
    _audit_user(actor, "account.password_change", user)


def password_reset_link_create(*, principal: Principal, user: User) -> tuple[str, str]:
    """(uidb64, token) for a one-time set-password link, for superusers only.

    Tenant admins cannot issue one: a reset gives the whole account, which may belong to
    other tenants the admin must not reach (or learn of). The token is Django's: it stops
    working once the password changes (or the user signs in) and after PASSWORD_RESET_TIMEOUT.
    """
    if not principal.is_superuser:
        raise InvalidInput("user", "only the server's operators (superusers) issue reset links")
    _audit_user(principal, "account.reset_link", user)
    return urlsafe_base64_encode(force_bytes(user.pk)), default_token_generator.make_token(user)


# --- superusers: any account ---------------------------------------------------------------


def account_list() -> QuerySet[User]:
    """Every account with its memberships, for the superusers' page only (deliberately unscoped)."""
    return get_user_model().objects.prefetch_related("memberships__tenant").order_by("username")


def _require_superuser(principal: Principal) -> None:
    if not principal.is_superuser:
        raise InvalidInput("user", "only superusers manage accounts")


@transaction.atomic
def account_set_active(*, principal: Principal, user: User, active: bool) -> None:
    _require_superuser(principal)
    if not active and principal.user is not None and user.pk == principal.user.pk:
        raise InvalidInput("user", "you cannot deactivate your own account")
    user.is_active = active
    user.save(update_fields=["is_active"])
    if not active:
        user_sign_out_everywhere(user=user, actor=principal)
    _audit_user(principal, "account.activate" if active else "account.deactivate", user)


@transaction.atomic
def account_membership_set(*, principal: Principal, user: User, tenant: Tenant, role: str) -> Membership:
    """A superuser adds any account to any tenant (or changes its role there) directly."""
    _require_superuser(principal)
    if role not in {r.value for r in Role}:
        raise InvalidInput("role", f"role must be one of {', '.join(r.value for r in Role)}")
    membership, _ = Membership.objects.update_or_create(tenant=tenant, user=user, defaults={"role": role})
    _audit(principal, tenant, "member.add", "membership", membership.pk, user_id=user.pk, role=role)
    return membership
