"""How the graph adjusts search ranking (registered into memory's score-adjustment registry).

A memory whose every fact has been superseded (its relations closed by a newer fact, such as a
new employer, or ended, "left Acme") ranks lower for a question in the present tense: "where does
Marco work?" wants Siemens before Acme Robotics. It is never hidden, and a question about the
past ("where did Marco work before?", "in 2020", or `as_of`) is left alone.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from django.conf import settings
from django.utils import timezone

from accounts.principal import Principal
from accounts.scoping import scoped
from graph.models import Relation, RelationSource
from graph.selectors import relations_valid_at
from memory.selectors import MemoryFilters
from memory.timeparse import time_windows

# Words that put a question in the past (or ask about a change): then the old fact is what is wanted.
PAST = re.compile(
    r"\b(?:did|was|were|had|used\s{1,5}to|before|previous(?:ly)?|former(?:ly)?|earlier|ago|past|originally|once"
    r"|back\s{1,5}then|at\s{1,5}the\s{1,5}time|until|prior|first|old|history|change[ds]?|left|moved|joined)\b",
    re.IGNORECASE,
)


def asks_about_the_present(query: str, filters: MemoryFilters) -> bool:
    if filters.as_of is not None or PAST.search(query):
        return False
    return not time_windows(query, timezone.now())


def superseded_adjustment(
    principal: Principal, query: str, memory_ids: Sequence[Any], filters: MemoryFilters
) -> dict[Any, float]:
    """memory id → a penalty of EASYMEMORY_SEARCH_SUPERSEDED_WEIGHT for each memory that supports
    relations closed by another relation (superseded or ended) and none still valid.

    One indexed query (relation sources by memory) when none of the memories states a closed fact,
    the usual case; a second only for those that do."""
    weight = settings.EASYMEMORY_SEARCH_SUPERSEDED_WEIGHT
    if not weight or not memory_ids or filters.as_of is not None or PAST.search(query):
        return {}
    closed = scoped(RelationSource, principal.tenant).filter(
        memory_id__in=list(memory_ids), relation__invalidated_by__isnull=False, relation__expired_at__isnull=True
    )
    candidates = set(closed.values_list("memory_id", flat=True))
    if not candidates or not asks_about_the_present(query, filters):
        return {}
    still_valid = relations_valid_at(scoped(Relation, principal.tenant)).filter(sources__memory_id__in=candidates)
    stating_current = set(still_valid.values_list("sources__memory_id", flat=True))
    return {memory_id: -weight for memory_id in candidates - stating_current}
