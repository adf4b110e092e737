"""Django admin: the server-wide OAuth switch and members' consent grants (read-only)."""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest

from accounts.models import ConsentGrant, OAuthPolicy


@admin.register(OAuthPolicy)
class OAuthPolicyAdmin(admin.ModelAdmin):
    """The admin switch for dynamic client registration (EASYMEMORY_OAUTH_REGISTRATION=false overrides it)."""

    list_display = ["__str__", "registration_open", "updated_at"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return not OAuthPolicy.objects.exists()

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(ConsentGrant)
class ConsentGrantAdmin(admin.ModelAdmin):
    list_display = ["application", "user", "tenant", "scope", "created_at", "revoked_at"]
    list_filter = ["tenant"]
    readonly_fields = [f.name for f in ConsentGrant._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False
