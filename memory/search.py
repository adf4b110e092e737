"""Hybrid search: the one function every door (REST, MCP, dashboard, CLI) calls.

Each candidate list is computed inside the tenant and the filters, in SQL,
never by filtering afterwards; the lists are fused by weighted reciprocal
rank fusion, and each hit carries the evidence for its rank.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.contrib.postgres.search import SearchQuery, SearchRank
from django.db.models import F, QuerySet
from pgvector.django import CosineDistance

from accounts.principal import Principal
from accounts.scoping import scoped
from config.errors import InvalidInput
from memory import embeddings
from memory.models import Memory
from memory.selectors import MemoryFilters, apply_filters
from memory.text import fulltext_input

MAX_K = 100
_TOKEN = re.compile(r'-?"[^"]+"|\S+')


@dataclass(frozen=True)
class ParsedQuery:
    words: list[str]
    phrases: list[str]
    excluded: list[str]


@dataclass
class Hit:
    memory: Memory
    score: float
    evidence: dict[str, dict[str, float]] = field(default_factory=dict)


def parse_query(query: str) -> ParsedQuery:
    """Split a query into OR-ed words, required "quoted phrases" and -excluded terms."""
    words: list[str] = []
    phrases: list[str] = []
    excluded: list[str] = []
    for token in _TOKEN.findall(query):
        negative = token.startswith("-") and len(token) > 1
        body = token[1:] if negative else token
        if body.startswith('"') and body.endswith('"') and len(body) > 2:
            (excluded if negative else phrases).append(body.strip('"'))
        elif negative:
            excluded.append(body)
        else:
            words.append(token)
    return ParsedQuery(words=words, phrases=phrases, excluded=excluded)


def fulltext_query(query: str) -> SearchQuery | None:
    parsed = parse_query(query)
    combined: SearchQuery | None = None
    for word in parsed.words:
        for piece in fulltext_input(word).split():
            term = SearchQuery(piece, config="english", search_type="plain")
            combined = term if combined is None else combined | term
    for phrase in parsed.phrases:
        term = SearchQuery(fulltext_input(phrase), config="english", search_type="phrase")
        combined = term if combined is None else combined & term
    if combined is None:
        return None
    for word in parsed.excluded:
        combined = combined & ~SearchQuery(fulltext_input(word), config="english", search_type="plain")
    return combined


def validate_query(query: str, k: int) -> str:
    if not isinstance(query, str) or not query.strip():
        raise InvalidInput("query", "query must be a non-empty string")
    limit = settings.EASYMEMORY_MAX_QUERY_CHARS
    if len(query) > limit:
        raise InvalidInput("query", f"query is longer than {limit} characters")
    if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= MAX_K:
        raise InvalidInput("k", f"k must be an integer from 1 to {MAX_K}")
    return query.strip()


CandidateFn = Callable[[Principal, QuerySet[Memory], str, int], list[tuple[Any, float]]]
# Candidate lists by name. Other apps (the graph) add theirs with `register_candidate_list`;
# each function gets the principal, the tenant- and filter-scoped queryset, the query and a depth,
# and returns (memory id, raw score) best first.
CANDIDATE_LISTS: dict[str, CandidateFn] = {}


def register_candidate_list(name: str, fn: CandidateFn) -> CandidateFn:
    CANDIDATE_LISTS[name] = fn
    return fn


def resolve_weights(weights: dict[str, float] | None) -> dict[str, float]:
    resolved = dict(settings.EASYMEMORY_SEARCH_WEIGHTS)
    for name, value in (weights or {}).items():
        if name not in CANDIDATE_LISTS:
            raise InvalidInput(f"weights.{name}", f"unknown list; use {', '.join(CANDIDATE_LISTS)}")
        if not isinstance(value, int | float) or value < 0:
            raise InvalidInput(f"weights.{name}", "weights must be numbers ≥ 0")
        resolved[name] = float(value)
    return resolved


def _vector_candidates(principal: Principal, base: QuerySet[Memory], query: str, limit: int) -> list[tuple[Any, float]]:
    name = embeddings.model_name()
    vector = embeddings.embed_query(query, name)
    rows = (
        base.filter(embeddings__model=name)
        .annotate(distance=CosineDistance("embeddings__embedding", vector))
        .order_by("distance")
        .values_list("id", "distance")[:limit]
    )
    return [(memory_id, 1.0 - float(distance)) for memory_id, distance in rows]


def _fulltext_candidates(
    principal: Principal, base: QuerySet[Memory], query: str, limit: int
) -> list[tuple[Any, float]]:
    tsquery = fulltext_query(query)
    if tsquery is None:
        return []
    rows = (
        base.filter(search_vector=tsquery)
        .annotate(rank=SearchRank(F("search_vector"), tsquery, normalization=1))
        .order_by("-rank", "-created_at")
        .values_list("id", "rank")[:limit]
    )
    return [(memory_id, float(rank)) for memory_id, rank in rows]


register_candidate_list("vector", _vector_candidates)
register_candidate_list("fulltext", _fulltext_candidates)


def search(
    principal: Principal,
    query: str,
    *,
    k: int = 10,
    filters: MemoryFilters | None = None,
    weights: dict[str, float] | None = None,
) -> list[Hit]:
    query = validate_query(query, k)
    resolved = resolve_weights(weights)
    base = apply_filters(scoped(Memory, principal.tenant), filters or MemoryFilters())
    depth = max(50, k * 3)
    lists = {
        name: fn(principal, base, query, depth) for name, fn in CANDIDATE_LISTS.items() if resolved.get(name, 1.0) > 0
    }

    rrf_k = settings.EASYMEMORY_RRF_K
    scores: dict[Any, float] = {}
    evidence: dict[Any, dict[str, dict[str, float]]] = {}
    for name, ranked in lists.items():
        for rank, (memory_id, raw) in enumerate(ranked, start=1):
            scores[memory_id] = scores.get(memory_id, 0.0) + resolved.get(name, 1.0) / (rrf_k + rank)
            evidence.setdefault(memory_id, {})[name] = {"rank": rank, "score": round(raw, 6)}
    top = sorted(scores, key=lambda mid: scores[mid], reverse=True)[:k]
    memories = scoped(Memory, principal.tenant).in_bulk(top)
    return [
        Hit(memory=memories[mid], score=round(scores[mid], 6), evidence=evidence[mid]) for mid in top if mid in memories
    ]
