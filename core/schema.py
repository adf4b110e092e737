"""OpenAPI helpers shared by the apps' views."""

from __future__ import annotations

from drf_spectacular.utils import inline_serializer
from rest_framework import serializers


def paginated(item: serializers.Serializer, name: str) -> serializers.Serializer:
    """The response body of a cursor-paginated list of `item`."""
    return inline_serializer(
        name=name,
        fields={
            "next": serializers.CharField(allow_null=True),
            "previous": serializers.CharField(allow_null=True),
            "results": item,
        },
    )
