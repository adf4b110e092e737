"""JSON parser that refuses invalid UTF-8, oversized bodies, nesting beyond EASYMEMORY_MAX_JSON_DEPTH and
strings PostgreSQL cannot store (NUL, lone surrogates), with errors that say so and name the field."""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

from core.errors import PayloadTooLarge
from core.inputs import InputRefused, json_problem


class StrictJSONParser(JSONParser):
    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        limit = settings.EASYMEMORY_MAX_REQUEST_BYTES
        raw = stream.read(limit + 1) if stream is not None else b""
        if len(raw) > limit:
            raise PayloadTooLarge("body", f"request body is over the {limit}-byte limit")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ParseError(f"request body is not valid UTF-8 (byte {exc.start})") from exc
        if not text.strip():
            raise ParseError("request body is empty; send a JSON document")
        depth = settings.EASYMEMORY_MAX_JSON_DEPTH
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ParseError(f"malformed JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from exc
        except RecursionError as exc:  # the decoder recurses per level: thousands of levels end here
            raise ParseError(f"JSON is nested deeper than {depth} levels") from exc
        problem = json_problem(data, max_depth=depth)
        if problem is not None:
            where, why = problem
            raise InputRefused(where or "body", why)
        return data
