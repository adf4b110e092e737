from __future__ import annotations

from rest_framework import serializers

from ingest.models import ImportRoot, IngestJob
from memory.serializers import StrictSerializer


class JobSerializer(serializers.ModelSerializer):
    class Meta:
        model = IngestJob
        fields = [
            "id", "kind", "status", "params", "total", "done", "skipped", "failed", "memories_created",
            "memories_deleted", "stats", "errors", "error", "created_at", "started_at", "finished_at",
        ]  # fmt: skip
        read_only_fields = fields


class IndexRequestSerializer(StrictSerializer):
    path = serializers.CharField(max_length=1000)
    pattern = serializers.CharField(max_length=200, default="*.md")
    recursive = serializers.BooleanField(default=True)


class ImportRootSerializer(serializers.ModelSerializer):
    class Meta:
        model = ImportRoot
        fields = ["id", "path", "created_by", "created_at"]
        read_only_fields = fields


class ImportRootCreateSerializer(StrictSerializer):
    path = serializers.CharField(max_length=1000, help_text="an absolute directory inside EASYMEMORY_IMPORT_ROOTS")
