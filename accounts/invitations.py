"""Invitations: how a person joins a tenant. Writes and the reads they need, each write audited.

An admin never adds an account by name: that would let one tenant's admin learn which
accounts exist on the server (and add them without consent). Instead the admin makes a
one-time link (optionally mailed); whoever opens it signs in to their own account, or
creates one, and accepts. Only the SHA-256 of the link's token is stored.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model, password_validation
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.utils import timezone

from accounts.models import Invitation, Membership
from accounts.principal import Principal
from accounts.roles import Role
from accounts.scoping import scoped
from accounts.services import _audit
from core.errors import InvalidInput

logger = logging.getLogger(__name__)

TOKEN_PREFIX = "emi_"  # noqa: S105 - a prefix, not a secret
DEFAULT_DAYS = 7
MAX_DAYS = 30


@dataclass(frozen=True)
class CreatedInvitation:
    invitation: Invitation
    token: str  # shown (or mailed) once, never stored


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def invitation_state(invitation: Invitation) -> str:
    if invitation.revoked_at is not None:
        return "revoked"
    if invitation.accepted_at is not None:
        return "accepted"
    if invitation.expires_at <= timezone.now():
        return "expired"
    return "pending"


# --- reads ------------------------------------------------------------------------------


def invitation_list_for(tenant: object) -> QuerySet[Invitation]:
    return scoped(Invitation, tenant).select_related("created_by", "accepted_by").order_by("-created_at")  # type: ignore[arg-type]


def invitation_for_token(token: str) -> Invitation | None:
    """The pending invitation this link's token opens, or None (unknown, used, revoked or expired alike)."""
    if not token.startswith(TOKEN_PREFIX) or len(token) > 100:
        return None
    by_hash = Invitation.objects.select_related("tenant")  # unscoped: the token itself names the tenant
    invitation = by_hash.filter(token_hash=_token_hash(token)).first()
    if invitation is None or not hmac.compare_digest(invitation.token_hash, _token_hash(token)):
        return None
    return invitation if invitation_state(invitation) == "pending" else None


# --- writes -----------------------------------------------------------------------------


@transaction.atomic
def invitation_create(
    *, principal: Principal, role: str, email: str = "", expires_in_days: int = DEFAULT_DAYS, link_base: str = ""
) -> CreatedInvitation:
    """An invitation to the principal's tenant. With `email` and a configured mail server, the
    link (`link_base` + token) is mailed after commit; it is returned either way to show once."""
    if role not in {r.value for r in Role}:
        raise InvalidInput("role", f"role must be one of {', '.join(r.value for r in Role)}")
    if not 1 <= expires_in_days <= MAX_DAYS:
        raise InvalidInput("expires_in_days", f"must be from 1 to {MAX_DAYS}")
    email = email.strip()
    if len(email) > 254 or (email and "@" not in email):
        raise InvalidInput("email", "not an e-mail address")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    user = principal.user if principal.user is not None and principal.user.pk else None
    invitation = Invitation.objects.create(
        tenant=principal.tenant,
        email=email,
        role=Role(role).value,
        token_hash=_token_hash(token),
        created_by=user,
        expires_at=timezone.now() + timedelta(days=expires_in_days),
    )
    # The address is personal data: the trail keeps only whether one was given.
    _audit(
        principal, principal.tenant, "invitation.create", "invitation", invitation.pk, role=role, by_email=bool(email)
    )
    if email and settings.EASYMEMORY_EMAIL_ENABLED and link_base:
        tenant_name, link = principal.tenant.name, f"{link_base}{token}/"
        transaction.on_commit(lambda: _mail_invitation(email, tenant_name, link, invitation.expires_at))
    return CreatedInvitation(invitation=invitation, token=token)


def _mail_invitation(email: str, tenant_name: str, link: str, expires_at: object) -> None:
    try:
        send_mail(
            subject=f"You are invited to {tenant_name} on EasyMemory",
            message=(
                f"Open this link to join {tenant_name}:\n\n{link}\n\n"
                f"It works once and expires {expires_at:%Y-%m-%d %H:%M} UTC.\n"
            ),
            from_email=None,
            recipient_list=[email],
        )
    except Exception:  # noqa: BLE001 - the admin still has the link on screen to pass on by hand
        logger.warning("could not mail an invitation; the link shown to the admin still works", exc_info=True)


@transaction.atomic
def invitation_revoke(*, principal: Principal, invitation: Invitation) -> Invitation:
    invitation = scoped(Invitation, principal.tenant).select_for_update().get(pk=invitation.pk)
    if invitation_state(invitation) != "pending":
        raise InvalidInput("invitation", f"this invitation is already {invitation_state(invitation)}")
    invitation.revoked_at = timezone.now()
    invitation.save(update_fields=["revoked_at"])
    _audit(principal, principal.tenant, "invitation.revoke", "invitation", invitation.pk)
    return invitation


@transaction.atomic
def invitation_accept(*, token: str, user: User) -> Membership:
    """`user` joins the invitation's tenant with its role; the link stops working.

    An existing member keeps the role they have (an invitation never demotes anyone).
    """
    found = invitation_for_token(token)
    if found is None:
        raise InvalidInput("invitation", "this invitation link is not valid (used, revoked or expired)")
    # Locked, then checked again: two people opening the same link at once, only one joins.
    invitation = Invitation.objects.select_for_update().get(pk=found.pk)  # unscoped: resolved from the token
    if invitation_state(invitation) != "pending":
        raise InvalidInput("invitation", "this invitation link is not valid (used, revoked or expired)")
    membership, created = Membership.objects.get_or_create(
        tenant=invitation.tenant, user=user, defaults={"role": invitation.role}
    )
    invitation.accepted_at = timezone.now()
    invitation.accepted_by = user
    invitation.save(update_fields=["accepted_at", "accepted_by"])
    _audit(
        Principal.for_role(invitation.tenant, membership.role, actor_type="user", actor_id=str(user.pk), user=user),
        invitation.tenant,
        "invitation.accept",
        "invitation",
        invitation.pk,
        user_id=user.pk,
        role=membership.role,
        joined=created,
    )
    return membership


@transaction.atomic
def account_create_from_invitation(*, token: str, username: str, password: str, email: str = "") -> User:
    """A new account that sets its own password, made member by accepting the invitation."""
    if invitation_for_token(token) is None:
        raise InvalidInput("invitation", "this invitation link is not valid (used, revoked or expired)")
    user = account_create(username=username, password=password, email=email)
    invitation_accept(token=token, user=user)
    return user


def account_create(
    *, username: str, password: str | None, email: str = "", principal: Principal | None = None
) -> User:
    """A new account. Without a password it cannot sign in until a reset link sets one."""
    model = get_user_model()
    username = username.strip()
    try:
        model._meta.get_field("username").run_validators(username)
    except ValidationError as exc:
        raise InvalidInput("username", " ".join(exc.messages)) from exc
    if not username or len(username) > 150:
        raise InvalidInput("username", "a username of 1 to 150 characters is required")
    candidate = model(username=username, email=email.strip()[:254])
    if password is not None:
        try:
            password_validation.validate_password(password, candidate)
        except ValidationError as exc:
            raise InvalidInput("password", " ".join(exc.messages)) from exc
        candidate.set_password(password)
    else:
        candidate.set_unusable_password()
    try:
        with transaction.atomic():
            candidate.save()
    except IntegrityError as exc:
        raise InvalidInput("username", "this username is taken; choose another") from exc
    _audit(principal, None, "account.create", "user", candidate.pk)
    return candidate
