from __future__ import annotations

from rest_framework import serializers

from accounts.models import ApiKey, Application, Membership, Tenant
from accounts.roles import ROLE_CHOICES

MAX_RATE_PER_MIN = 6_000_000  # 100,000 requests/s: beyond any one server
MAX_RATE_BURST = 1_000_000
RATE_FIELDS = ["rate_limit_per_min", "rate_limit_burst"]


class RateLimitSerializer(serializers.Serializer):
    """A credential's own rate limit; null (or absent on create) means the installation's default."""

    rate_limit_per_min = serializers.IntegerField(
        min_value=1, max_value=MAX_RATE_PER_MIN, required=False, allow_null=True, default=None,
        help_text="sustained requests per minute (bucket refill rate); null: EASYMEMORY_RATE_LIMIT_PER_MIN",
    )  # fmt: skip
    rate_limit_burst = serializers.IntegerField(
        min_value=1, max_value=MAX_RATE_BURST, required=False, allow_null=True, default=None,
        help_text="requests allowed at once (bucket capacity); null: EASYMEMORY_RATE_LIMIT_BURST",
    )  # fmt: skip


class ApiKeySerializer(serializers.ModelSerializer):
    class Meta:
        model = ApiKey
        fields = [
            "id", "name", "role", "prefix", "created_at", "last_used_at", "expires_at", "revoked_at", *RATE_FIELDS
        ]  # fmt: skip


class ApiKeyCreateSerializer(RateLimitSerializer):
    name = serializers.CharField(max_length=200)
    role = serializers.ChoiceField(choices=ROLE_CHOICES, default="writer")
    expires_at = serializers.DateTimeField(required=False, allow_null=True, default=None)


class ApiKeyCreatedSerializer(ApiKeySerializer):
    secret = serializers.CharField(help_text="shown once; only its hash is stored")

    class Meta(ApiKeySerializer.Meta):
        fields = [*ApiKeySerializer.Meta.fields, "secret"]


class OAuthAppSerializer(serializers.ModelSerializer):
    class Meta:
        model = Application
        fields = ["id", "name", "role", "client_id", "created", "updated", *RATE_FIELDS]


class OAuthAppCreateSerializer(RateLimitSerializer):
    name = serializers.CharField(max_length=255)
    role = serializers.ChoiceField(choices=ROLE_CHOICES, default="reader")


class OAuthAppWithSecretSerializer(OAuthAppSerializer):
    client_secret = serializers.CharField(help_text="shown once; only its hash is stored")

    class Meta(OAuthAppSerializer.Meta):
        fields = [*OAuthAppSerializer.Meta.fields, "client_secret"]


class MemberSerializer(serializers.ModelSerializer):
    username = serializers.CharField(source="user.username", read_only=True)

    class Meta:
        model = Membership
        fields = ["id", "username", "role", "created_at"]


class MemberInviteSerializer(serializers.Serializer):
    username = serializers.CharField(max_length=150)
    role = serializers.ChoiceField(choices=ROLE_CHOICES, default="reader")


class MemberRoleSerializer(serializers.Serializer):
    role = serializers.ChoiceField(choices=ROLE_CHOICES)


class TenantSerializer(serializers.ModelSerializer):
    class Meta:
        model = Tenant
        fields = ["id", "slug", "name", "created_at"]


class TenantCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    slug = serializers.SlugField(max_length=64, required=False, allow_blank=True, default="")


# --- invitations (issue 19) -------------------------------------------------------------


class InvitationSerializer(serializers.Serializer):
    id = serializers.UUIDField(read_only=True)
    email = serializers.CharField(read_only=True, help_text="empty for a link-only invitation")
    role = serializers.CharField(read_only=True)
    state = serializers.CharField(read_only=True)
    created_at = serializers.DateTimeField(read_only=True)
    expires_at = serializers.DateTimeField(read_only=True)
    accepted_at = serializers.DateTimeField(read_only=True, allow_null=True)
    revoked_at = serializers.DateTimeField(read_only=True, allow_null=True)


class InvitationCreateSerializer(serializers.Serializer):
    email = serializers.EmailField(required=False, allow_blank=True, default="")
    role = serializers.ChoiceField(choices=ROLE_CHOICES, default="reader")
    expires_in_days = serializers.IntegerField(min_value=1, max_value=30, default=7)


class InvitationCreatedSerializer(InvitationSerializer):
    url = serializers.CharField(help_text="the one-time link; shown once, only its hash is stored")
