from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, ClassVar

from django.conf import settings
from django.db import models
from oauth2_provider.models import AbstractApplication

from accounts.roles import ROLE_CHOICES, Role


class Tenant(models.Model):
    """A memory space with its own members, keys and data. Nothing crosses tenants."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    slug = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=200)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.slug


class Membership(models.Model):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=ROLE_CHOICES, default=Role.READER.value)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "user"], name="membership_unique_tenant_user")]

    def __str__(self) -> str:
        return f"{self.user_id}@{self.tenant_id}:{self.role}"


class ApiKey(models.Model):
    """A tenant credential. The secret is shown once; only its SHA-256 is kept."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=200)
    role = models.CharField(max_length=16, choices=ROLE_CHOICES, default=Role.WRITER.value)
    prefix = models.CharField(max_length=16, unique=True)
    key_hash = models.CharField(max_length=64)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    # Per-credential rate limit (accounts/ratelimit.py); NULL: the installation's default.
    rate_limit_per_min = models.PositiveIntegerField(null=True, blank=True)
    rate_limit_burst = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["tenant", "created_at"], name="apikey_tenant_created")]

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.name})"


class Application(AbstractApplication):
    """django-oauth-toolkit's application.

    A client-credentials application belongs to one tenant with one role. A client
    that registered itself (RFC 7591, an MCP client) has no tenant: each member who
    approves it picks the tenant in a ConsentGrant, and its tokens act with that
    member's role there.
    """

    if TYPE_CHECKING:
        # The base class comes from an untyped package: its managers are named here so that the
        # type checker can type Tenant.oauth_applications. Nothing changes at run time.
        objects: ClassVar[models.Manager[Application]]
        _default_manager: ClassVar[models.Manager[Application]]

    tenant = models.ForeignKey(
        Tenant, null=True, blank=True, on_delete=models.CASCADE, related_name="oauth_applications"
    )
    role = models.CharField(max_length=16, choices=ROLE_CHOICES, default=Role.READER.value)
    # Per-application rate limit shared by all its tokens; NULL: the installation's default.
    rate_limit_per_min = models.PositiveIntegerField(null=True, blank=True)
    rate_limit_burst = models.PositiveIntegerField(null=True, blank=True)
    # The address a dynamic registration came from, for the per-address registration limit.
    registered_from = models.GenericIPAddressField(null=True, blank=True)

    class Meta(AbstractApplication.Meta):
        swappable = "OAUTH2_PROVIDER_APPLICATION_MODEL"
        indexes = [models.Index(fields=["registered_from", "created"], name="app_registered_from_created")]

    def get_allowed_schemes(self) -> list[str]:
        """http(s) plus the private-use schemes (RFC 8252 §7.1) this client registered
        (registration vetted them: accounts/oauth_grants.py)."""
        schemes = ["http", "https"]
        for uri in self.redirect_uris.split():
            scheme = uri.split(":", 1)[0].lower()
            if scheme not in schemes:
                schemes.append(scheme)
        return schemes


class ConsentGrant(models.Model):
    """A member's approval of an MCP client (authorization code flow) in one tenant.

    At most one live grant per (user, application): tokens carry only the user and
    the application, so the grant is what names their tenant. Approving the same
    client again replaces the grant and ends the old one's tokens. Revoking a grant
    deletes its tokens at once.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="consent_grants")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="consent_grants")
    application = models.ForeignKey(Application, on_delete=models.CASCADE, related_name="consent_grants")
    scope = models.TextField()
    resource = models.URLField(max_length=2000)
    created_at = models.DateTimeField(auto_now_add=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["tenant", "created_at"], name="consentgrant_tenant_created")]
        constraints = [
            models.UniqueConstraint(
                fields=["user", "application"],
                condition=models.Q(revoked_at__isnull=True),
                name="consentgrant_one_live_per_user_app",
            )
        ]

    def __str__(self) -> str:
        return f"{self.user_id}→{self.application_id}@{self.tenant_id}"


class OAuthPolicy(models.Model):
    """Server-wide switches an administrator can flip at run time (one row, pk=1)."""

    registration_open = models.BooleanField(
        default=True, help_text="Let MCP clients register themselves (RFC 7591 dynamic client registration)."
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "OAuth policy"
        verbose_name_plural = "OAuth policy"

    def __str__(self) -> str:
        return "OAuth policy"

    @classmethod
    def current(cls) -> OAuthPolicy:
        return cls.objects.get_or_create(pk=1)[0]


class Invitation(models.Model):
    """An offer to join one tenant with one role, accepted by whoever holds its one-time link.

    Only the SHA-256 of the link's token is kept; the link itself is shown (or mailed) once.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="invitations")
    email = models.EmailField(blank=True, default="")
    role = models.CharField(max_length=16, choices=ROLE_CHOICES, default=Role.READER.value)
    token_hash = models.CharField(max_length=64, unique=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    accepted_at = models.DateTimeField(null=True, blank=True)
    accepted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["tenant", "-created_at"], name="invitation_tenant_created")]

    def __str__(self) -> str:
        return f"invitation {self.id} to {self.tenant_id} as {self.role}"


class UserSession(models.Model):
    """A signed-in browser session of a user, so the user can list them and sign out everywhere.

    The session itself lives in Django's session store; this row names it and says where it came from.
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="tracked_sessions")
    session_key = models.CharField(max_length=40, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    client_addr = models.CharField(max_length=64, blank=True, default="")
    user_agent = models.CharField(max_length=300, blank=True, default="")

    class Meta:
        indexes = [models.Index(fields=["user", "-created_at"], name="usersession_user_created")]
