from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from memory.serializers import StrictSerializer


@extend_schema_field(
    {
        "oneOf": [
            {"type": "integer", "description": "an entity id"},
            {
                "type": "object",
                "properties": {"name": {"type": "string"}, "type": {"type": "string"}},
                "required": ["name"],
            },
        ]
    }
)
class EntityRefField(serializers.Field):
    """An entity id, or {"name": ..., "type": ...} to find or create one by name."""

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, bool):
            raise serializers.ValidationError('give an entity id or {"name": ..., "type": ...}')
        if isinstance(data, int):
            return data
        if isinstance(data, str) and data.isdigit():
            return int(data)
        if isinstance(data, dict) and set(data) <= {"name", "type"} and isinstance(data.get("name"), str):
            if not data["name"].strip() or len(data["name"]) > 300:
                raise serializers.ValidationError("name must be 1-300 characters")
            return data
        raise serializers.ValidationError('give an entity id or {"name": ..., "type": ...}')

    def to_representation(self, value: Any) -> Any:
        return value


class RelationCreateSerializer(StrictSerializer):
    source = EntityRefField()  # type: ignore[assignment]  # DRF's Field.source
    target = EntityRefField()
    predicate = serializers.CharField(max_length=100)
    fact = serializers.CharField(max_length=2000, required=False, allow_blank=True, default="")
    confidence = serializers.FloatField(min_value=0.0, max_value=1.0, default=1.0)
    valid_at = serializers.DateTimeField(required=False, allow_null=True, default=None)
    invalid_at = serializers.DateTimeField(required=False, allow_null=True, default=None)


class EntityMergeSerializer(StrictSerializer):
    target = serializers.IntegerField()
    sources = serializers.ListField(child=serializers.IntegerField(), min_length=1, max_length=100)


class EntityListParams(StrictSerializer):
    q = serializers.CharField(max_length=300, required=False, allow_blank=True, default="")
    type = serializers.CharField(max_length=60, required=False, allow_blank=True, default="")
    limit = serializers.IntegerField(required=False, min_value=1, max_value=500)
    offset = serializers.IntegerField(required=False, min_value=0)


class NeighborParams(StrictSerializer):
    depth = serializers.IntegerField(required=False, default=1)
    as_of = serializers.DateTimeField(required=False, allow_null=True, default=None)


class PathParams(StrictSerializer):
    # "from" is a Python keyword: the field is declared below under its query-string name.
    to = serializers.IntegerField()
    as_of = serializers.DateTimeField(required=False, allow_null=True, default=None)
    max_depth = serializers.IntegerField(required=False, default=4)


PathParams._declared_fields["from"] = serializers.IntegerField()


class ExportParams(StrictSerializer):
    format = serializers.ChoiceField(choices=["json", "graphml"], default="json")
    as_of = serializers.DateTimeField(required=False, allow_null=True, default=None)
