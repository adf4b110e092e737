"""Pagination that answers a malformed `?cursor=`, `?limit=` or `?offset=` with a 400 naming it.

DRF's classes fall back to the default page size for `limit=abc` or `limit=0`, cap a huge one
silently, answer a garbage cursor with 404, and pass a decodable cursor's position straight
to the ordering column (a position that is not a timestamp ended in a 500).
"""

from __future__ import annotations

from typing import Any

from django.utils.dateparse import parse_datetime
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.pagination import Cursor, CursorPagination, LimitOffsetPagination
from rest_framework.request import Request

from core.inputs import text_problem


def _bounded_int(
    request: Request, name: str, *, minimum: int, maximum: int | None, default: int | None
) -> int | None:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = None
    if value is None or value < minimum or (maximum is not None and value > maximum):
        bound = f"from {minimum} to {maximum}" if maximum is not None else f"of at least {minimum}"
        raise ValidationError({name: [f"must be an integer {bound}"]})
    return value


class StrictCursorPagination(CursorPagination):
    """Cursor pagination over `ordering`, whose first field is a timestamp (created_at)."""

    page_size_query_param = "limit"

    def get_page_size(self, request: Request) -> int | None:
        return _bounded_int(
            request, self.page_size_query_param, minimum=1, maximum=self.max_page_size, default=self.page_size
        )

    def decode_cursor(self, request: Request) -> Cursor | None:
        try:
            cursor = super().decode_cursor(request)
        except NotFound as exc:
            raise ValidationError({self.cursor_query_param: ["not a cursor returned by this list"]}) from exc
        if cursor is not None and cursor.position is not None:
            position = str(cursor.position)
            if text_problem(position) is not None or not _is_datetime(position):
                raise ValidationError({self.cursor_query_param: ["not a cursor returned by this list"]})
        return cursor


def _is_datetime(value: str) -> bool:
    try:
        return parse_datetime(value) is not None
    except ValueError:
        return False


class StrictLimitOffsetPagination(LimitOffsetPagination):
    def get_limit(self, request: Request) -> Any:
        return _bounded_int(
            request, self.limit_query_param, minimum=1, maximum=self.max_limit, default=self.default_limit
        )

    def get_offset(self, request: Request) -> int:
        offset = _bounded_int(request, self.offset_query_param, minimum=0, maximum=None, default=0)
        return 0 if offset is None else offset  # never None: the default is 0
