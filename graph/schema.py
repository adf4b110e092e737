"""Response shapes of the graph API, for the OpenAPI schema only (the views build these dicts in
graph/selectors.py). They let the SDKs be generated with precise types."""

from __future__ import annotations

from rest_framework import serializers


class EntityRefSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    type = serializers.CharField()


class EntitySerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    type = serializers.CharField()
    aliases = serializers.ListField(child=serializers.CharField())
    summary = serializers.CharField()
    origin = serializers.CharField()
    mention_count = serializers.IntegerField()
    first_seen_at = serializers.DateTimeField(allow_null=True)
    last_seen_at = serializers.DateTimeField(allow_null=True)


class EntityPageSerializer(serializers.Serializer):
    count = serializers.IntegerField()
    next = serializers.CharField(allow_null=True)
    previous = serializers.CharField(allow_null=True)
    results = EntitySerializer(many=True)


class RelationSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    source = EntityRefSerializer()  # type: ignore[assignment]  # DRF's Field.source
    target = EntityRefSerializer()
    predicate = serializers.CharField()
    fact = serializers.CharField()
    confidence = serializers.FloatField()
    origin = serializers.CharField()
    valid_at = serializers.DateTimeField(allow_null=True)
    invalid_at = serializers.DateTimeField(allow_null=True)
    created_at = serializers.DateTimeField()
    expired_at = serializers.DateTimeField(allow_null=True, help_text="set when the relation was retired")
    invalidated_by = serializers.IntegerField(allow_null=True)
    current = serializers.BooleanField()
    memories = serializers.ListField(child=serializers.CharField(), help_text="ids of the memories it came from")


class EntityRelationsSerializer(serializers.Serializer):
    current = RelationSerializer(many=True)
    past = RelationSerializer(many=True)


class EntityMentionSerializer(serializers.Serializer):
    id = serializers.CharField(help_text="the memory id")
    matched = serializers.CharField()
    kind = serializers.CharField()
    content = serializers.CharField()
    created_at = serializers.DateTimeField()


class EntityDetailSerializer(EntitySerializer):
    relations = EntityRelationsSerializer()
    memories = EntityMentionSerializer(many=True)
    merges = serializers.ListField(child=serializers.DictField())


class SubgraphNodeSerializer(EntitySerializer):
    distance = serializers.IntegerField(allow_null=True)
    centrality = serializers.FloatField()


class SubgraphEdgeSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    source = serializers.IntegerField()  # type: ignore[assignment]  # DRF's Field.source
    target = serializers.IntegerField()
    predicate = serializers.CharField()
    fact = serializers.CharField()
    valid_at = serializers.DateTimeField(allow_null=True)
    invalid_at = serializers.DateTimeField(allow_null=True)


class NeighborsSerializer(serializers.Serializer):
    entity = serializers.IntegerField()
    depth = serializers.IntegerField()
    as_of = serializers.DateTimeField(allow_null=True)
    nodes = SubgraphNodeSerializer(many=True)
    edges = SubgraphEdgeSerializer(many=True)


class PathEdgeSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    source = serializers.IntegerField()  # type: ignore[assignment]  # DRF's Field.source
    target = serializers.IntegerField()
    predicate = serializers.CharField()
    fact = serializers.CharField()


class GraphPathSerializer(serializers.Serializer):
    # "from" is a Python keyword: declared below under its JSON name.
    to = serializers.IntegerField()
    path = EntitySerializer(many=True, allow_null=True, help_text="null when no path exists within max_depth")
    edges = PathEdgeSerializer(many=True)
    length = serializers.IntegerField(required=False)


GraphPathSerializer._declared_fields["from"] = serializers.IntegerField()


class GraphExportSerializer(serializers.Serializer):
    nodes = serializers.ListField(child=serializers.DictField())
    edges = serializers.ListField(child=serializers.DictField())
