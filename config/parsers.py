"""JSON parser that refuses invalid UTF-8 and oversized bodies with errors that say so."""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

from config.errors import PayloadTooLarge


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
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise ParseError(f"malformed JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from exc
