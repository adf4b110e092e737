"""Hybrid search: the one function every door (REST, MCP, dashboard, CLI) calls.

Each candidate list is computed inside the tenant and the filters, in SQL,
never by filtering afterwards; the lists are fused by weighted reciprocal
rank fusion, memories next to strong hits in the same conversation session get
a share of their score (context), candidates whose session holds other strong
candidates get a share of theirs (session prior), recency and importance nudge the result by
a few per cent at most, and each hit carries the evidence for its rank.

The defaults (RRF k, list weights, context share) were chosen by measurement
on the LoCoMo dev file, the session prior's on conversations other than the dev
file's (`easymemory eval locomo`, see docs/retrieval.md).
"""

from __future__ import annotations

import contextvars
import math
import os
import re
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from typing import Any

from django.conf import settings
from django.db import connections, transaction
from django.db.models import QuerySet
from django.utils import timezone
from pgvector.django import CosineDistance

from accounts.principal import Principal
from accounts.scoping import scoped
from core.db_routing import fetch_with_settings, reads_from_replica
from core.db_routing import read_connection as connection
from core.errors import InvalidInput
from core.inputs import InputRefused, text_check
from core.metrics import timed_candidate_list
from memory import embeddings
from memory.adjustments import score_adjustments
from memory.diversity import mmr_order, stored_vectors
from memory.feedback import feedback_list
from memory.fulltext import fulltext_candidates, query_term_count
from memory.models import Memory, MemoryEmbedding
from memory.selectors import MemoryFilters, filtered_count, filtered_sql, filters_apply
from memory.session_context import session_gains, session_rows
from memory.timeparse import time_windows

MAX_K = 100
# The HNSW index of migration 0003 is an expression index on this many dimensions.
HNSW_DIMS = 384
# Exact vector scans up to this many rows fetch each embedding by key (see _exact_vector).
EXACT_LOOKUP_MAX_ROWS = 2_000
# Pseudo-relevance feedback draws its words from this many of the best fused hits.
FEEDBACK_HITS = 3


@dataclass
class Hit:
    memory: Memory
    score: float
    evidence: dict[str, dict[str, float]] = field(default_factory=dict)
    # False while the memory waits for its embedding: found by the other lists only, for now.
    embedded: bool = True


def validate_query(query: str, k: int) -> str:
    if not isinstance(query, str) or not query.strip():
        raise InvalidInput("query", "query must be a non-empty string")
    limit = settings.EASYMEMORY_MAX_QUERY_CHARS
    if len(query) > limit:
        raise InvalidInput("query", f"query is longer than {limit} characters")
    text_check("query", query)
    terms = settings.EASYMEMORY_MAX_QUERY_TERMS
    if query_term_count(query) > terms:
        raise InputRefused("query", f"query has more than {terms} distinct terms")
    if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= MAX_K:
        raise InvalidInput("k", f"k must be an integer from 1 to {MAX_K}")
    return query.strip()


CandidateFn = Callable[[Principal, QuerySet[Memory], str, int, MemoryFilters], list[tuple[Any, float]]]
# Candidate lists by name. Other apps (the graph) add theirs with `register_candidate_list`;
# each function gets the principal, the tenant- and filter-scoped queryset, the query, a depth and
# the filters themselves (for what is not a memory column, such as `as_of` for relations), and
# returns (memory id, raw score) best first.
CANDIDATE_LISTS: dict[str, CandidateFn] = {}
# Lists that rank by the query's embedding (through _query_vector): they run after the others, so
# the embedding overlaps with the others' SQL.
QUERY_VECTOR_LISTS: set[str] = set()


def register_candidate_list(name: str, fn: CandidateFn, *, needs_query_vector: bool = False) -> CandidateFn:
    CANDIDATE_LISTS[name] = timed_candidate_list(name, fn)  # per-list latency for /metrics
    if needs_query_vector:
        QUERY_VECTOR_LISTS.add(name)
    return fn


def resolve_weights(weights: dict[str, float] | None) -> dict[str, float]:
    """Weights for every registered list: settings, then the request's overrides."""
    resolved = {name: 1.0 for name in CANDIDATE_LISTS}
    resolved.update({name: float(v) for name, v in settings.EASYMEMORY_SEARCH_WEIGHTS.items() if name in resolved})
    for name, value in (weights or {}).items():
        if name not in CANDIDATE_LISTS:
            raise InvalidInput(f"weights.{name}", f"unknown list; use {', '.join(CANDIDATE_LISTS)}")
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
            raise InvalidInput(f"weights.{name}", "weights must be numbers ≥ 0")
        resolved[name] = float(value)
    if not any(resolved.values()):
        raise InvalidInput("weights", "at least one list needs a weight above 0")
    return resolved


# --- vector list ------------------------------------------------------------------------------


def _limit_torch_threads() -> None:
    # One short query gains nothing from several intra-op threads, and on a small machine they
    # compete with PostgreSQL and the web thread (docs/benchmarks.md, search latency). torch's setting is per process;
    # web processes only embed queries (the worker embeds documents in its own process).
    threads = settings.EASYMEMORY_SEARCH_EMBED_THREADS
    if threads and embeddings.backend() == "torch":  # an ONNX session takes its threads itself
        import torch

        torch.set_num_threads(threads)


# The query is embedded in a worker thread while the full-text list runs in the database: torch
# releases the GIL, so the two overlap. One thread only, so torch keeps one OpenMP team.
_embedder = ThreadPoolExecutor(max_workers=1, thread_name_prefix="query-embed", initializer=_limit_torch_threads)
_pending_vector: ContextVar[Future[list[float]] | None] = ContextVar("pending_query_vector", default=None)


def _query_vector(principal: Principal, query: str) -> list[float]:
    pending = _pending_vector.get()
    if pending is not None:
        return pending.result()
    return embeddings.embed_query(query, embeddings.model_name(), scope=str(principal.tenant_id))


@cache
def pgvector_version() -> tuple[int, ...]:
    """The server's pgvector version, read once per process (external servers may be older than 0.8)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
        row = cursor.fetchone()
    if row is None:
        return (0,)
    return tuple(int(part) for part in re.findall(r"\d+", str(row[0])))


def _estimated_rows(table: str) -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT GREATEST(reltuples, 0)::bigint FROM pg_class WHERE relname = %s", [table])
        row = cursor.fetchone()
    return int(row[0]) if row else 0


def _exact_vector(
    principal: Principal, base: QuerySet[Memory], model: str, vector: list[float], limit: int, filtered: int
) -> list[tuple[Any, float]]:
    """Distances from every memory of the filtered set (HNSW is not used: ordering by the plain
    column cannot use its expression index). Two join shapes, chosen by what we know rather than
    by the planner, whose estimates are wrong for a tenant newer than the table statistics:

    - the filtered set is most of a tenant of some size: a hash join over the tenant's embeddings
      (cheaper there than one lookup per row);
    - otherwise: each memory's embedding fetched by its (memory, model) key, a cost that follows
      the filtered set only (a small session inside a large tenant, or a new tenant where the
      planner's own choice, a nested loop comparing every memory with every embedding, is far
      slower).
    """
    tenant_rows = filtered_count(scoped(Memory, principal.tenant))
    if filtered > EXACT_LOOKUP_MAX_ROWS and filtered * 2 >= tenant_rows:
        nearest = _nearest_of_tenant(principal, base, model, vector, limit, tenant_rows - filtered)
        if len(nearest) >= min(limit, filtered):
            return nearest
        ranked = (
            _embeddings_of(principal, base, model)
            .annotate(distance=CosineDistance("embedding", vector))
            .order_by("distance", "memory_id")
        )
        with transaction.atomic(using=connection.alias), connection.cursor() as cursor:
            # Parallel workers only slowed this down on two cores.
            cursor.execute(
                "SELECT set_config('enable_nestloop', 'off', true),"
                " set_config('max_parallel_workers_per_gather', '0', true)"
            )
            return [(mid, 1.0 - float(d)) for mid, d in ranked.values_list("memory_id", "distance")[:limit]]
    return exact_by_lookup(base, model, vector, limit)


def exact_by_lookup(
    base: QuerySet[Memory], model: str, vector: list[float], limit: int, column: str = "embedding"
) -> list[tuple[Any, float]]:
    """Exact distances from the filtered set, each memory's vector fetched by its (memory, model)
    key: a cost that follows the filtered set only. `column` is a vector expression over
    memory_memoryembedding (a constant of the caller's, never input)."""
    sql, params = filtered_sql(base)
    # LIMIT 1 keeps the subquery a per-row lookup (the planner cannot turn it into a join).
    query = f"""
        SELECT m.id, e.vec <=> %s::vector AS distance
        FROM ({sql}) m
        CROSS JOIN LATERAL (
            SELECT {column} AS vec FROM memory_memoryembedding WHERE memory_id = m.id AND model = %s LIMIT 1
        ) e
        ORDER BY distance, m.id
        LIMIT %s
    """  # noqa: S608 - composed from the compiled queryset and a constant column; every value is a parameter
    with connection.cursor() as cursor:
        cursor.execute(query, [_vector_literal(vector), *params, model, limit])  # scoped: from scoped() SQL
        return [(mid, 1.0 - float(d)) for mid, d in cursor.fetchall()]


def _nearest_of_tenant(
    principal: Principal, base: QuerySet[Memory], model: str, vector: list[float], limit: int, excluded: int
) -> list[tuple[Any, float]]:
    """The exact nearest rows of a filtered set that is most of its tenant, found by ranking the
    tenant's embeddings alone and then dropping those outside the filters.

    The same rows, in the same order, as ranking the filtered set itself, whenever at least
    `limit` of the `limit + margin` nearest pass the filters (the caller checks, and otherwise
    ranks the filtered set). Ranking the embeddings alone avoids reading every memory row of the
    tenant to build a join (docs/benchmarks.md has the measurement); the filters are then checked
    by primary key for the few rows ranked."""
    margin = max(limit, min(excluded, limit * 9))
    ranked = scoped(MemoryEmbedding, principal.tenant).filter(model=model).values("memory_id", "embedding")
    ranked_sql, ranked_params = ranked.query.sql_with_params()
    base_sql, base_params = filtered_sql(base)
    # LIMIT 1 keeps the filter check a per-row lookup: the planner cannot turn it into a join
    # that reads the whole filtered set. Composed from compiled querysets; every value is a parameter.
    query = f"""
        SELECT n.memory_id, n.distance FROM (
            SELECT r.memory_id, r.embedding <=> %s::vector AS distance
            FROM ({ranked_sql}) r
            ORDER BY distance, r.memory_id
            LIMIT %s
        ) n
        CROSS JOIN LATERAL (SELECT 1 FROM ({base_sql}) m WHERE m.id = n.memory_id LIMIT 1) f
        ORDER BY n.distance, n.memory_id
        LIMIT %s
    """  # noqa: S608
    with connection.cursor() as cursor:
        # scoped: composed from the compiled SQL of scoped() querysets
        cursor.execute(query, [_vector_literal(vector), *ranked_params, limit + margin, *base_params, limit])
        return [(mid, 1.0 - float(d)) for mid, d in cursor.fetchall()]


def _embeddings_of(principal: Principal, base: QuerySet[Memory], model: str) -> QuerySet[MemoryEmbedding]:
    return scoped(MemoryEmbedding, principal.tenant).filter(model=model, memory_id__in=base.values("id"))


def _vector_literal(vector: list[float]) -> str:
    return "[" + ",".join(repr(float(x)) for x in vector) + "]"


def _hnsw_vector(
    principal: Principal, base: QuerySet[Memory], model: str, vector: list[float], limit: int
) -> list[tuple[Any, float]]:
    base_sql, base_params = filtered_sql(base)
    literal = _vector_literal(vector)
    # Same expression as the index (embedding::vector(384)), or the planner cannot use it; the
    # vector goes over the wire once (ORDER BY its output column).
    # relaxed_order may return neighbours slightly out of order: the outer query re-sorts.
    # Raw SQL around the filtered set's compiled SQL (the ORM's subquery form cost more to
    # compile than the index scan); every value is a parameter.
    query = f"""
        SELECT memory_id, distance FROM (
            SELECT e.memory_id, e.embedding::vector({HNSW_DIMS}) <=> %s::vector({HNSW_DIMS}) AS distance
            FROM memory_memoryembedding e
            WHERE e.tenant_id = %s AND e.model = %s AND e.dims = %s AND e.memory_id IN (SELECT b.id FROM ({base_sql}) b)
            ORDER BY distance
            LIMIT %s
        ) s ORDER BY distance, memory_id
    """  # noqa: S608
    params = [literal, principal.tenant.pk, model, HNSW_DIMS, *base_params]
    ef_search = str(max(40, min(limit * 2, 1000)))
    settings_ = [("hnsw.ef_search", ef_search)]
    if pgvector_version() >= (0, 8):
        settings_.append(("hnsw.iterative_scan", "relaxed_order"))
    # scoped: e.tenant_id, and the scoped() queryset's SQL
    nearest = fetch_with_settings(connection, settings_, query, [*params, limit])
    return [(mid, 1.0 - float(d)) for mid, d in nearest]


def vector_plan(filtered_rows: int, dims: int) -> str:
    """ "exact" or "hnsw" for a filtered set of this size.

    A small filtered set (a small tenant, or tight filters) is scanned exactly: through the
    tenant index that finds every nearest row, and faster than filtered HNSW, which misses some
    (docs/retrieval.md). Large sets use HNSW with iterative scans (pgvector ≥ 0.8);
    without iterative scans only when the set is most of the index, else HNSW would return
    too few rows.
    """
    if dims != HNSW_DIMS or filtered_rows <= settings.EASYMEMORY_EXACT_SCAN_MAX_ROWS:
        return "exact"
    if pgvector_version() >= (0, 8):
        return "hnsw"
    return "hnsw" if filtered_rows * 2 >= _estimated_rows(MemoryEmbedding._meta.db_table) else "exact"


def _vector_candidates(
    principal: Principal, base: QuerySet[Memory], query: str, limit: int, filters: MemoryFilters
) -> list[tuple[Any, float]]:
    vector = _query_vector(principal, query)
    model = embeddings.model_name()
    # Approximate is enough to pick the plan (memories still waiting for their embedding count too).
    filtered = filtered_count(base)
    plan = vector_plan(filtered, len(vector))
    if plan == "exact":
        return _exact_vector(principal, base, model, vector, limit, filtered)
    found = _hnsw_vector(principal, base, model, vector, limit)
    if len(found) < min(limit, filtered):
        # The graph walk ran out before finding enough rows that pass the filters: be exact.
        return _exact_vector(principal, base, model, vector, limit, filtered)
    return found


register_candidate_list("vector", _vector_candidates, needs_query_vector=True)
register_candidate_list("fulltext", fulltext_candidates)


# --- running the lists --------------------------------------------------------------------------


def list_depth(filtered_rows: int) -> int:
    """Candidates per list for a filtered set of this size (docs/retrieval.md has the recall and the
    cost of each depth measured). Deeper where both lists rank every row anyway (exact plans), where
    it costs only the fusion; shallower above, where HNSW's ef and the full-text probes grow with it."""
    exact = min(settings.EASYMEMORY_EXACT_SCAN_MAX_ROWS, settings.EASYMEMORY_FULLTEXT_EXACT_MAX_ROWS)
    if filtered_rows <= exact:
        return int(settings.EASYMEMORY_SEARCH_DEPTH_EXACT)
    return int(settings.EASYMEMORY_SEARCH_DEPTH)


def _candidate_lists(
    principal: Principal, base: QuerySet[Memory], query: str, depth: int, active: list[str], filters: MemoryFilters
) -> dict[str, list[tuple[Any, float]]]:
    """Each active list's candidates. The query is embedded on the embedding thread meanwhile.
    With a runner free and few searches in flight (see RUNNER_THREADS, _may_run_beside), the
    first list that needs no embedding (full text) runs here, and the other lists run on the
    runner at the same time: first those that need no embedding (the graph's, while the query is
    embedded), then those that do (vector, window).
    Otherwise every list runs here, the ones that need the embedding last."""
    late = [name for name in active if name in QUERY_VECTOR_LISTS]
    others = [name for name in active if name not in QUERY_VECTOR_LISTS]
    pending = None
    if late:
        scope = str(principal.tenant_id)  # the cache is per tenant (see embed_query)
        pending = _embedder.submit(embeddings.embed_query, query, embeddings.model_name(), scope=scope)
    token = _pending_vector.set(pending)
    in_flight = _in_flight.enter()
    try:
        beside = None
        here = others + late
        if late and others and _may_run_beside(in_flight) and _runner_slots.acquire(blocking=False):
            here, there = others[:1], others[1:] + late
            try:
                filtered_sql(base)  # compiled here, once, before two threads read it
                context = contextvars.copy_context()  # the replica choice and the pending embedding
                beside = _list_runner.submit(context.run, _run_beside, there, principal, base, query, depth, filters)
            except BaseException:
                _runner_slots.release()
                raise
        lists = {name: CANDIDATE_LISTS[name](principal, base, query, depth, filters) for name in here}
        if beside is not None:
            lists.update(beside.result())
    finally:
        _in_flight.leave()
        _pending_vector.reset(token)
    return {name: lists[name] for name in active}


def _may_run_beside(in_flight: int) -> bool:
    """Whether lists may run on a runner, over its own connection. Not while more searches run in
    this process than half its cores: the legs of one search then only compete with the others'
    for the CPU, and running them side by side costs throughput (docs/benchmarks.md). Not inside
    a caller's transaction: another connection would not see what that transaction wrote."""
    return (
        settings.EASYMEMORY_SEARCH_PARALLEL_LISTS
        and in_flight <= RUNNER_MAX_IN_FLIGHT
        and not connection.in_atomic_block
    )


class _InFlight:
    """How many searches are running their lists in this process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._count = 0

    def enter(self) -> int:
        with self._lock:
            self._count += 1
            return self._count

    def leave(self) -> None:
        with self._lock:
            self._count -= 1


_in_flight = _InFlight()
RUNNER_MAX_IN_FLIGHT = max(1, (os.cpu_count() or 2) // 2)


# On two cores the full-text list's SQL and the vector list's (with the query's embedding) take
# about as long each: with one beside the other a search waits for the longer, not the sum. A search only uses a runner
# that is free at that moment (else it runs every list itself), and each runner thread keeps a
# connection of its own outside the pool: a runner waiting for a pooled connection while the
# request threads hold them all, each waiting for its runner, would deadlock.
RUNNER_THREADS = 2
_runner_slots = threading.BoundedSemaphore(RUNNER_THREADS)
_list_runner = ThreadPoolExecutor(max_workers=RUNNER_THREADS, thread_name_prefix="search-lists")


def _run_beside(
    names: list[str], principal: Principal, base: QuerySet[Memory], query: str, depth: int, filters: MemoryFilters
) -> dict[str, list[tuple[Any, float]]]:
    try:
        _use_own_connections()
        return {name: CANDIDATE_LISTS[name](principal, base, query, depth, filters) for name in names}
    finally:
        _runner_slots.release()


def _use_own_connections() -> None:
    """This runner thread's connections: persistent and outside the pool (see RUNNER_THREADS),
    replaced when one has failed or no longer answers."""
    for wrapper in connections.all():
        if not getattr(wrapper, "_easymemory_own", False):
            options = {key: value for key, value in wrapper.settings_dict["OPTIONS"].items() if key != "pool"}
            wrapper.settings_dict = {**wrapper.settings_dict, "OPTIONS": options, "CONN_MAX_AGE": None}
            setattr(wrapper, "_easymemory_own", True)  # noqa: B010 - a marker on Django's per-thread object
            _runner_wrappers.append(wrapper)
        wrapper.close_if_unusable_or_obsolete()


_runner_wrappers: list[Any] = []


def close_runner_connections() -> None:
    """Close the runner threads' connections from any thread; each reconnects on its next search
    (its health check finds the connection closed). For a database about to be dropped."""
    for wrapper in list(_runner_wrappers):
        if wrapper.connection is not None:
            wrapper.connection.close()


# --- fusion -------------------------------------------------------------------------------------


def _adjustment(importance: float, when: datetime | None, now: datetime) -> tuple[float, float]:
    """Importance and recency factors, each within ±(its weight): nudges, never a vote."""
    importance_part = settings.EASYMEMORY_SEARCH_IMPORTANCE_WEIGHT * (2.0 * float(importance) - 1.0)
    recency_part = 0.0
    if when is not None and settings.EASYMEMORY_SEARCH_RECENCY_WEIGHT:
        age_days = max((now - when).total_seconds(), 0.0) / 86400.0
        half_life = settings.EASYMEMORY_SEARCH_RECENCY_HALF_LIFE_DAYS
        recency_part = settings.EASYMEMORY_SEARCH_RECENCY_WEIGHT * (0.5 ** (age_days / half_life))
    return importance_part, recency_part


@reads_from_replica  # search reads go to DATABASE_REPLICA_URL when set; writes stay on the primary
def search(
    principal: Principal,
    query: str,
    *,
    k: int = 10,
    filters: MemoryFilters | None = None,
    weights: dict[str, float] | None = None,
) -> list[Hit]:
    """The k best memories for `query` in the principal's tenant, within `filters`.

    Returns k hits whenever k memories match the filters and at least one list finds them.
    Each hit's evidence names the lists that found it with rank and raw score, the context
    share it got from session neighbours, the session prior's share, and the recency/importance
    adjustment.
    """
    query = validate_query(query, k)
    resolved = resolve_weights(weights)
    filters = filters or MemoryFilters()
    base = filters_apply(scoped(Memory, principal.tenant), filters)
    depth = max(list_depth(filtered_count(base)), k * 3)
    active = [name for name in CANDIDATE_LISTS if resolved.get(name, 0.0) > 0]
    lists = _candidate_lists(principal, base, query, depth, active, filters)

    rrf_k = settings.EASYMEMORY_RRF_K
    scores: dict[Any, float] = {}
    evidence: dict[Any, dict[str, dict[str, float]]] = {}
    for name, ranked in lists.items():
        for rank, (memory_id, raw) in enumerate(ranked, start=1):
            scores[memory_id] = scores.get(memory_id, 0.0) + resolved[name] / (rrf_k + rank)
            evidence.setdefault(memory_id, {})[name] = {"rank": rank, "score": round(raw, 6)}
    if not scores:
        return []
    feedback_weight = settings.EASYMEMORY_SEARCH_FEEDBACK_WEIGHT
    if feedback_weight > 0 and "fulltext" in lists:
        # Pseudo-relevance feedback (memory/feedback.py): words of the best hits, a second full-text query.
        best = sorted(scores, key=lambda mid: (-scores[mid], str(mid)))[:FEEDBACK_HITS]
        count = settings.EASYMEMORY_SEARCH_FEEDBACK_TERMS
        _, feedback = feedback_list(principal, base, query, best, depth, count)
        for rank, (memory_id, raw) in enumerate(feedback, start=1):
            scores[memory_id] = scores.get(memory_id, 0.0) + feedback_weight / (rrf_k + rank)
            evidence.setdefault(memory_id, {})["feedback"] = {"rank": rank, "score": round(raw, 6)}

    # Context: a turn of a conversation is often understood only with its neighbours (the question
    # before an answer); each memory next to one of the best 2k candidates gets a share of its
    # score. (2k rather than every candidate: same LoCoMo recall within ±0.01, a fifth of the lookups.)
    # Session prior: a candidate whose session holds other strong candidates gets a share of theirs.
    # Both from the fused scores, both from one statement (memory/session_context.py).
    share = settings.EASYMEMORY_SEARCH_CONTEXT_WEIGHT
    session_weight = settings.EASYMEMORY_SEARCH_SESSION_WEIGHT
    if share > 0 or session_weight > 0:
        fused = dict(scores)
        by_score = sorted(fused, key=lambda mid: (-fused[mid], str(mid)))
        near = by_score[: k * 2] if share > 0 else []
        sessions, neighbours = session_rows(base, by_score if session_weight > 0 else near, near)
        # From its stronger neighbour only: a weak memory between two hits is not lifted twice.
        gains: dict[Any, float] = {}
        for memory_id, adjacent in neighbours.items():
            for neighbour in adjacent:
                gains[neighbour] = max(gains.get(neighbour, 0.0), share * fused[memory_id])
        for neighbour, gain in gains.items():
            scores[neighbour] = scores.get(neighbour, 0.0) + gain
            evidence.setdefault(neighbour, {})["context"] = {"score": round(gain, 6)}
        if session_weight > 0:
            top_n = settings.EASYMEMORY_SEARCH_SESSION_TOP
            for memory_id, gain in session_gains(fused, sessions, session_weight, top_n).items():
                scores[memory_id] += gain
                evidence[memory_id]["session"] = {"score": round(gain, 6)}

    # Importance and recency change a score by at most ±(sum of their weights), a time expression
    # of the query lifts it by at most its weight: only memories within that margin of the k-th
    # score can still enter the top k, so only those are fetched.
    now = timezone.now()
    time_weight = settings.EASYMEMORY_SEARCH_TIME_WEIGHT
    windows = time_windows(query, now) if time_weight > 0 else []
    margin = settings.EASYMEMORY_SEARCH_IMPORTANCE_WEIGHT + settings.EASYMEMORY_SEARCH_RECENCY_WEIGHT
    ranked = sorted(scores, key=lambda mid: (-scores[mid], str(mid)))
    lift = time_weight if windows else 0.0
    cutoff = scores[ranked[min(k, len(ranked)) - 1]] * (1 - margin) / (1 + margin + lift)
    shortlist = [mid for mid in ranked if scores[mid] >= cutoff]
    mmr_lambda = settings.EASYMEMORY_SEARCH_MMR_LAMBDA
    if mmr_lambda < 1.0:
        shortlist = ranked[: max(len(shortlist), k * 3)]  # MMR picks from a deeper pool
    memories = _memories_of(principal, base, shortlist)
    # Penalties other apps register (the graph's for superseded facts), see memory/adjustments.py.
    registered = score_adjustments(principal, query, list(memories), filters)
    final: dict[Any, float] = {}
    for memory_id, memory in memories.items():
        when = memory.occurred_at or memory.created_at
        importance_part, recency_part = _adjustment(memory.importance, when, now)
        time_part = lift if lift and any(window.contains(when) for window in windows) else 0.0
        extra = registered.get(memory_id, {})
        final[memory_id] = scores[memory_id] * (1.0 + importance_part + recency_part + time_part + sum(extra.values()))
        if importance_part or recency_part or time_part or extra:
            evidence[memory_id]["adjustment"] = {
                "importance": round(importance_part, 4),
                "recency": round(recency_part, 4),
                **({"time": round(time_part, 4)} if time_part else {}),
                **{name: round(part, 4) for name, part in extra.items()},
            }
    top = sorted(final, key=lambda mid: (-final[mid], str(mid)))[:k]
    if mmr_lambda < 1.0:
        pool = sorted(final, key=lambda mid: (-final[mid], str(mid)))[: k * 3]
        vectors = stored_vectors(principal, embeddings.model_name(), pool)
        top = mmr_order(pool, final, vectors, mmr_lambda, k)
    hits = [
        Hit(memory=memories[mid], score=round(final[mid], 6), evidence=evidence[mid]) for mid in top if mid in memories
    ]
    _mark_unembedded(hits)
    return hits


# Every column a hit shows or adjusts by; the full-text vector is left out (nothing reads it).
_HIT_COLUMNS = tuple(f.attname for f in Memory._meta.concrete_fields if f.name != "search_vector")


def _memories_of(principal: Principal, base: QuerySet[Memory], ids: list[Any]) -> dict[Any, Memory]:
    """The memories of `ids` within the filtered set, by id, each with `has_embedding` (whether it
    has an embedding under the current model, see _mark_unembedded): one statement. Composed
    around the filtered set's compiled SQL: the same query through the ORM (defer, an Exists
    annotation, a list of ids) took longer to compile than the database took to answer it."""
    if not ids:
        return {}
    sql, params = filtered_sql(base)
    columns = ", ".join(f"m.{name}" for name in _HIT_COLUMNS)
    query = f"""
        SELECT {columns}, EXISTS (
            SELECT 1 FROM memory_memoryembedding e WHERE e.tenant_id = %s AND e.memory_id = m.id AND e.model = %s
        ) AS has_embedding
        FROM ({sql}) m
        WHERE m.id = ANY(%s)
    """  # noqa: S608 - composed from the compiled queryset; every value is a parameter
    args = [principal.tenant.pk, embeddings.model_name(), *params, list(ids)]
    rows = Memory.objects.raw(query, args)  # unscoped: raw() over the scoped() queryset SQL (and e.tenant_id)
    return {memory.pk: memory for memory in rows}


def _mark_unembedded(hits: list[Hit]) -> None:
    """Flag the hits that have no embedding under the current model yet (written a moment ago):
    the vector list cannot see them, so a caller learns why they rank on words alone. The rows
    were fetched with `has_embedding`."""
    for hit in hits:
        hit.embedded = "vector" in hit.evidence or bool(getattr(hit.memory, "has_embedding", True))


def memory_search_for(
    principal: Principal,
    query: str,
    *,
    k: int = 10,
    filters: MemoryFilters | None = None,
    weights: dict[str, float] | None = None,
) -> list[Hit]:
    """search() as every door (REST, MCP, dashboard, CLI) calls it: audited as `memory.search`,
    keeping of the query only what EASYMEMORY_AUDIT_QUERIES allows. Evaluation runs call
    search() itself and are not audited."""
    from audit.services import audit_record

    hits = search(principal, query, k=k, filters=filters, weights=weights)
    detail = {"hits": len(hits)}
    audit_record(principal=principal, action="memory.search", target_type="search", detail=detail, query=query)
    return hits
