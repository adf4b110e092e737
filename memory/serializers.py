from __future__ import annotations

import json
from functools import cache
from typing import Any

from django.conf import settings
from rest_framework import serializers

from core.errors import InvalidInput
from core.inputs import InputRefused, json_check, json_problem, printable
from memory.models import Kind, Memory, MemoryHistory
from memory.search import MAX_K, Hit
from memory.selectors import MemoryFilters
from memory.services import MemoryInput


class StrictSerializer(serializers.Serializer):
    """Rejects keys it does not know, naming the first one, and values nested beyond
    EASYMEMORY_MAX_JSON_DEPTH or holding text the database cannot store (NUL, lone surrogates),
    naming their path. REST and MCP both validate through these serializers."""

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, dict):
            if self.parent is None:
                problem = json_problem(data, max_depth=settings.EASYMEMORY_MAX_JSON_DEPTH)
                if problem is not None:
                    raise serializers.ValidationError({problem[0] or "body": [problem[1]]})
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                raise serializers.ValidationError({printable(unknown[0]): ["unknown field"]})
        return super().to_internal_value(data)


class StrictCharField(serializers.CharField):
    """Text only: DRF's CharField would store the number 5 as "5"."""

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class MetadataField(serializers.DictField):
    """A JSON object within the metadata bounds (depth, size, storable text)."""

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        value = super().to_internal_value(data)
        try:
            json_check("", value)
        except InputRefused as exc:
            raise serializers.ValidationError(f"{exc.field}: {exc.message}" if exc.field else exc.message) from exc
        except InvalidInput as exc:  # over the size limit
            raise serializers.ValidationError(exc.message) from exc
        return value


class MemoryInputSerializer(StrictSerializer):
    content = StrictCharField(trim_whitespace=False, allow_blank=True)
    kind = serializers.ChoiceField(choices=Kind.values, default=Kind.NOTE.value)
    metadata = MetadataField(default=dict)
    tags = serializers.ListField(child=serializers.CharField(max_length=100), default=list, max_length=50)
    user_ref = serializers.CharField(max_length=200, allow_blank=True, default="")
    agent_id = serializers.CharField(max_length=200, allow_blank=True, default="")
    session_id = serializers.CharField(max_length=200, allow_blank=True, default="")
    occurred_at = serializers.DateTimeField(required=False, allow_null=True, default=None)
    expires_at = serializers.DateTimeField(required=False, allow_null=True, default=None)
    importance = serializers.FloatField(min_value=0.0, max_value=1.0, default=0.5)

    def to_input(self) -> MemoryInput:
        return MemoryInput(**self.validated_data)


class MemoryUpdateSerializer(StrictSerializer):
    content = StrictCharField(trim_whitespace=False, allow_blank=True, required=False)
    kind = serializers.ChoiceField(choices=Kind.values, required=False)
    metadata = MetadataField(required=False)
    tags = serializers.ListField(child=serializers.CharField(max_length=100), required=False, max_length=50)
    occurred_at = serializers.DateTimeField(required=False, allow_null=True)
    expires_at = serializers.DateTimeField(required=False, allow_null=True)
    importance = serializers.FloatField(min_value=0.0, max_value=1.0, required=False)


class MemorySerializer(serializers.ModelSerializer):
    class Meta:
        model = Memory
        fields = [
            "id",
            "kind",
            "content",
            "metadata",
            "tags",
            "user_ref",
            "agent_id",
            "session_id",
            "importance",
            "occurred_at",
            "created_at",
            "updated_at",
            "expires_at",
            "enrichment_state",
            "enrichment_error",
            "version",
        ]
        read_only_fields = fields


class MemoryHistorySerializer(serializers.ModelSerializer):
    class Meta:
        model = MemoryHistory
        fields = ["memory_id", "event", "version", "old_content", "new_content", "old_metadata", "new_metadata"]
        fields += ["actor", "created_at"]
        read_only_fields = fields


def _csv(value: Any) -> list[str]:
    if isinstance(value, list):
        return [str(v) for v in value]
    return [part.strip() for part in str(value).split(",") if part.strip()]


class CsvListField(serializers.ListField):
    """A list given as a JSON array or, in a query string, as comma-separated text."""

    def to_internal_value(self, data: Any) -> list[Any]:
        return super().to_internal_value(_csv(data))


class JsonObjectField(MetadataField):
    """A JSON object within the metadata bounds, or its text in a query string."""

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        if isinstance(data, str):
            try:
                data = json.loads(data)
            except json.JSONDecodeError as exc:
                raise serializers.ValidationError("must be a JSON object") from exc
            except RecursionError as exc:
                raise serializers.ValidationError("is nested too deeply") from exc
        return super().to_internal_value(data)


class FiltersSerializer(StrictSerializer):
    kind = CsvListField(child=serializers.ChoiceField(choices=Kind.values), required=False)
    tags = CsvListField(child=serializers.CharField(max_length=100), required=False)
    tags_all = CsvListField(child=serializers.CharField(max_length=100), required=False)
    user_ref = serializers.CharField(max_length=200, required=False, allow_blank=True)
    agent_id = serializers.CharField(max_length=200, required=False, allow_blank=True)
    session_id = serializers.CharField(max_length=200, required=False, allow_blank=True)
    metadata = JsonObjectField(required=False)
    occurred_after = serializers.DateTimeField(required=False)
    occurred_before = serializers.DateTimeField(required=False)
    created_after = serializers.DateTimeField(required=False)
    created_before = serializers.DateTimeField(required=False)
    include_expired = serializers.BooleanField(required=False, default=False)
    include_ephemeral = serializers.BooleanField(required=False, default=False)
    as_of = serializers.DateTimeField(required=False)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        for name in ("occurred", "created"):
            after, before = attrs.get(f"{name}_after"), attrs.get(f"{name}_before")
            if after is not None and before is not None and after >= before:
                raise serializers.ValidationError({f"{name}_before": [f"must be later than {name}_after"]})
        return attrs

    def to_filters(self) -> MemoryFilters:
        data = dict(self.validated_data)
        return MemoryFilters(
            kinds=data.pop("kind", []),
            tags_any=data.pop("tags", []),
            tags_all=data.pop("tags_all", []),
            **data,
        )


class SearchRequestSerializer(StrictSerializer):
    query = StrictCharField(trim_whitespace=False, allow_blank=True)
    k = serializers.IntegerField(default=10, min_value=1, max_value=MAX_K)
    filters = serializers.DictField(default=dict)
    weights = serializers.DictField(child=serializers.FloatField(), default=dict)

    def validate_filters(self, value: dict[str, Any]) -> MemoryFilters:
        nested = FiltersSerializer(data=value)
        nested.is_valid(raise_exception=True)
        return nested.to_filters()


class HitSerializer(serializers.Serializer):
    memory = MemorySerializer()
    score = serializers.FloatField()
    evidence = serializers.DictField()
    embedded = serializers.BooleanField(
        help_text="false while the memory waits for its embedding (seconds after it was written): "
        "it was found by full text or the graph, and meaning-based search will find it once embedded"
    )

    @classmethod
    def of(cls, hits: list[Hit]) -> list[dict[str, Any]]:
        # The same representation as serializing through this class, without building a
        # ModelSerializer's fields for every response (about a millisecond per search).
        memory = _memory_representation()
        return [
            {"memory": memory(h.memory), "score": h.score, "evidence": h.evidence, "embedded": h.embedded}
            for h in hits
        ]


@cache
def _memory_representation() -> Any:
    # A read-only serializer without per-call state: its bound fields can be shared across requests.
    return MemorySerializer().to_representation


# --- Shapes for the OpenAPI schema only (the SDKs are generated from it) ---


class MemoryCreatedSerializer(MemorySerializer):
    created = serializers.BooleanField(help_text="false when an identical memory already existed in the scope")
    skipped = serializers.CharField(required=False, help_text="why the memory policy stored nothing (id is null)")

    class Meta(MemorySerializer.Meta):
        fields = [*MemorySerializer.Meta.fields, "created", "skipped"]
        read_only_fields = fields


class MemoryListParams(serializers.Serializer):
    cursor = serializers.CharField(required=False, help_text="from the previous page's `next` link")
    limit = serializers.IntegerField(required=False, min_value=1, max_value=500, default=50)


class ForgetUserParams(serializers.Serializer):
    user_ref = serializers.CharField(max_length=200, help_text="the end user whose memories are all deleted")


class StatsSerializer(serializers.Serializer):
    memories = serializers.IntegerField()
    by_kind = serializers.DictField(child=serializers.IntegerField())
    enrichment = serializers.DictField(child=serializers.IntegerField())
    pending_embeddings = serializers.IntegerField()
    embedding_model = serializers.CharField()
    database_bytes = serializers.IntegerField()
    graph = serializers.DictField()
