"""Extension point for score adjustments of search hits beyond importance, recency and time.

Other apps register `fn(principal, query, memory_ids, filters) -> {memory id: part}`; search()
calls each once per query with the memories that can still reach the top k, and multiplies a
memory's score by (1 + the sum of its parts), as it does with importance and recency. Parts are
penalties in [-0.9, 0]: a rise could lift a memory that was left off the shortlist (search() fetches
only those within the margin its own adjustments allow). Each part shows in the hit's evidence
under the name it was registered with.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from accounts.principal import Principal
from memory.selectors import MemoryFilters

AdjustmentFn = Callable[[Principal, str, Sequence[Any], MemoryFilters], dict[Any, float]]
LOWEST = -0.9
_adjustments: dict[str, AdjustmentFn] = {}


def register_score_adjustment(name: str, fn: AdjustmentFn) -> AdjustmentFn:
    _adjustments[name] = fn
    return fn


def score_adjustments(
    principal: Principal, query: str, memory_ids: Sequence[Any], filters: MemoryFilters
) -> dict[Any, dict[str, float]]:
    """memory id → {adjustment name: part}, only for the memories an adjustment touched."""
    parts: dict[Any, dict[str, float]] = {}
    if not memory_ids:
        return parts
    for name, fn in _adjustments.items():
        for memory_id, value in fn(principal, query, memory_ids, filters).items():
            part = min(0.0, max(LOWEST, float(value)))
            if part:
                parts.setdefault(memory_id, {})[name] = part
    return parts
