"""GET /v1/audit: the tenant's audit trail for its admins, newest first, cursor-paginated."""

from __future__ import annotations

import base64
import binascii

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.principal import Principal
from audit.chain import CHAINED_FIELDS
from audit.models import AuditEvent
from audit.selectors import AuditFilters, audit_list_for
from core.errors import InvalidInput


class AuditQuerySerializer(serializers.Serializer):
    action = serializers.CharField(required=False, max_length=64, default="")
    actor_type = serializers.CharField(required=False, max_length=32, default="")
    actor_id = serializers.CharField(required=False, max_length=200, default="")
    outcome = serializers.CharField(required=False, max_length=16, default="")
    target_type = serializers.CharField(required=False, max_length=64, default="")
    target_id = serializers.CharField(required=False, max_length=200, default="")
    since = serializers.DateTimeField(required=False, default=None)
    until = serializers.DateTimeField(required=False, default=None)
    limit = serializers.IntegerField(required=False, min_value=1, max_value=500, default=100)
    cursor = serializers.CharField(required=False, max_length=64, default="")


class AuditEventSerializer(serializers.ModelSerializer):
    tenant_id = serializers.UUIDField(allow_null=True)

    class Meta:
        model = AuditEvent
        fields = ["id", "seq", *CHAINED_FIELDS, "prev_hash", "hash"]


class AuditPageSerializer(serializers.Serializer):
    results = AuditEventSerializer(many=True)
    next_cursor = serializers.CharField(allow_null=True)


def _decode_cursor(cursor: str) -> int | None:
    if not cursor:
        return None
    try:
        return int(base64.urlsafe_b64decode(cursor.encode("ascii")).decode("ascii"))
    except (ValueError, binascii.Error, UnicodeError) as exc:
        raise InvalidInput("cursor", "not a cursor from a previous page") from exc


def _encode_cursor(seq: int) -> str:
    return base64.urlsafe_b64encode(str(seq).encode("ascii")).decode("ascii")


class AuditListApi(APIView):
    required_scopes = {"GET": "admin"}

    @extend_schema(
        parameters=[AuditQuerySerializer],
        responses=AuditPageSerializer,
        description="Filters combine with AND; `action` may end in `.*` (e.g. `memory.*`).",
    )
    def get(self, request: Request) -> Response:
        principal = request.user
        assert isinstance(principal, Principal)
        query = AuditQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        data = query.validated_data
        limit = data.pop("limit")
        before = _decode_cursor(data.pop("cursor"))
        events = list(audit_list_for(principal.tenant, AuditFilters(**data), before_seq=before)[: limit + 1])
        more = len(events) > limit
        events = events[:limit]
        return Response(
            {
                "results": AuditEventSerializer(events, many=True).data,
                "next_cursor": _encode_cursor(events[-1].seq) if more and events else None,
            }
        )
