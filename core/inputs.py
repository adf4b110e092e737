"""Bounds on free-form input that every door shares: text without NUL or lone surrogates,
JSON values (metadata, filters, tool arguments) of bounded depth and size.

PostgreSQL stores neither a NUL character nor a lone UTF-16 surrogate (the first is refused
by text and jsonb, the second cannot be encoded as UTF-8), so such input is refused before it
reaches the database, with the path of the offending field. The walk is iterative: a value
nested thousands of levels deep costs one pass and never a RecursionError.
"""

from __future__ import annotations

import json
import math
from typing import Any

from django.conf import settings

from core.errors import InvalidInput, PayloadTooLarge


class InputRefused(InvalidInput):
    """Input that can never be stored (HTTP 400): `field` is the path of the offending value."""

    status_code = 400


def text_problem(value: str) -> str | None:
    """Why `value` cannot be stored as text, or None."""
    if "\x00" in value:
        return "must not contain NUL characters"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        return f"must not contain a lone surrogate (U+{ord(value[exc.start]):04X})"
    return None


def printable(value: str) -> str:
    """`value` safe to echo in an error: lone surrogates replaced."""
    return value.encode("utf-8", "replace").decode("utf-8")


def text_check(field: str, value: str) -> None:
    problem = text_problem(value)
    if problem is not None:
        raise InputRefused(field, problem)


def _join(path: str, part: object) -> str:
    if isinstance(part, int):
        return f"{path}[{part}]"
    return f"{path}.{part}" if path else str(part)


def json_problem(value: Any, *, max_depth: int) -> tuple[str, str] | None:
    """(relative path, why) for the first value in `value` that cannot be stored as JSON text,
    or None. Depth counts containers: {} is 1, {"a": {}} is 2."""
    stack: list[tuple[Any, str, int]] = [(value, "", 0)]
    while stack:
        item, path, depth = stack.pop()
        if isinstance(item, dict | list):
            depth += 1
            if depth > max_depth:
                return path, f"is nested deeper than {max_depth} levels"
            if isinstance(item, dict):
                for key, child in item.items():
                    if not isinstance(key, str):
                        return path, "object keys must be strings"
                    problem = text_problem(key)
                    if problem is not None:  # the path names the object: the key cannot be echoed
                        return path, f"has a key that {problem}"
                    stack.append((child, _join(path, key), depth))
            else:
                stack.extend((child, _join(path, index), depth) for index, child in enumerate(item))
        elif isinstance(item, str):
            problem = text_problem(item)
            if problem is not None:
                return path, problem
        elif isinstance(item, float) and not math.isfinite(item):
            return path, "numbers must be finite (no NaN or Infinity)"
        elif item is not None and not isinstance(item, bool | int | float):
            return path, f"{type(item).__name__} is not a JSON value"
    return None


def json_check(field: str, value: Any, *, max_depth: int | None = None, max_bytes: int | None = None) -> None:
    """Refuse a JSON value (metadata, a metadata filter) that the database cannot hold or that is
    beyond the configured bounds; the error names the path below `field`."""
    depth = settings.EASYMEMORY_MAX_METADATA_DEPTH if max_depth is None else max_depth
    problem = json_problem(value, max_depth=depth)
    if problem is not None:
        where, why = problem
        raise InputRefused(_join(field, where) if where else field, why)
    limit = settings.EASYMEMORY_MAX_METADATA_BYTES if max_bytes is None else max_bytes
    # Safe to serialise now: the depth is bounded.
    size = len(json.dumps(value, ensure_ascii=False).encode("utf-8"))
    if size > limit:
        raise PayloadTooLarge(field, f"is {size} bytes as JSON, over the {limit}-byte limit")
