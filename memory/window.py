"""The search list "window": memories ranked by their window vector.

A memory's window vector embeds it together with the turns before it in its session
(EASYMEMORY_SEARCH_WINDOW_TURNS, stored beside its own vector by the embedding step). An answer
("I'm keen on counseling") often names what it answers only through the question before it
("what jobs are you thinking of?"); the window vector holds both. A memory without earlier turns
is ranked by its own vector, so every embedded memory has exactly one place in this list.

The plans follow the vector list's (memory/search.py): an exact scan for filtered sets up to
EASYMEMORY_EXACT_SCAN_MAX_ROWS rows, else the HNSW expression index of migration 0009, with an
exact scan when HNSW returns too few rows.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import QuerySet

from accounts.principal import Principal
from accounts.scoping import scoped
from core.db_routing import read_connection as connection
from memory import embeddings
from memory.models import Memory, MemoryEmbedding

# Private helpers of the vector list, shared within the app rather than copied.
from memory.search import (
    HNSW_DIMS,
    _query_vector,
    _vector_literal,
    exact_by_lookup,
    pgvector_version,
    vector_plan,
)
from memory.selectors import MemoryFilters, cached_count

# The expression of the HNSW index (migration 0009); queries must use it verbatim.
WINDOW_VECTOR = f"COALESCE(window_embedding, embedding)::vector({HNSW_DIMS})"


def _exact(base: QuerySet[Memory], model: str, vector: list[float], limit: int) -> list[tuple[Any, float]]:
    return exact_by_lookup(base, model, vector, limit, column="COALESCE(window_embedding, embedding)")


def _hnsw(
    principal: Principal, base: QuerySet[Memory], model: str, vector: list[float], limit: int
) -> list[tuple[Any, float]]:
    rows = scoped(MemoryEmbedding, principal.tenant).filter(
        model=model, dims=HNSW_DIMS, memory_id__in=base.values("id")
    )
    sql, params = rows.values("memory_id", "embedding", "window_embedding").query.sql_with_params()
    # Composed from the compiled queryset; every value is a parameter.
    query = f"""
        SELECT memory_id, distance FROM (
            SELECT f.memory_id, COALESCE(f.window_embedding, f.embedding)::vector({HNSW_DIMS})
                <=> %s::vector({HNSW_DIMS}) AS distance
            FROM ({sql}) f
            ORDER BY distance
            LIMIT %s
        ) s ORDER BY distance, memory_id
    """  # noqa: S608
    ef_search = str(max(40, min(limit * 2, 1000)))
    with transaction.atomic(using=connection.alias), connection.cursor() as cursor:
        if pgvector_version() >= (0, 8):
            cursor.execute(
                "SELECT set_config('hnsw.iterative_scan', 'relaxed_order', true),"
                " set_config('hnsw.ef_search', %s, true)",
                [ef_search],
            )
        else:
            cursor.execute("SELECT set_config('hnsw.ef_search', %s, true)", [ef_search])
        cursor.execute(query, [_vector_literal(vector), *params, limit])  # scoped: from a scoped() queryset's SQL
        return [(mid, 1.0 - float(d)) for mid, d in cursor.fetchall()]


def window_candidates(
    principal: Principal, base: QuerySet[Memory], query: str, limit: int, filters: MemoryFilters
) -> list[tuple[Any, float]]:
    """(memory id, cosine similarity of its window vector to the query), best first. Empty when
    window vectors are turned off (the list would repeat the vector list)."""
    if not settings.EASYMEMORY_SEARCH_WINDOW_TURNS:
        return []
    vector = _query_vector(principal, query)
    model = embeddings.model_name()
    filtered = cached_count(base.values("id"))
    if vector_plan(filtered, len(vector)) == "exact":
        return _exact(base, model, vector, limit)
    found = _hnsw(principal, base, model, vector, limit)
    if len(found) < min(limit, filtered):
        return _exact(base, model, vector, limit)
    return found
