"""Pseudo-relevance feedback on the full-text list.

The best few fused hits are taken as relevant; their lexemes that the query lacks are weighted by
how many of those hits hold them × their IDF in the filtered set, the best few become a second
OR query through the full-text list, and that list is fused with a small weight. Lexemes held by
a single memory of the filtered set are left out (they find nothing but that memory).
"""

from __future__ import annotations

import math
from typing import Any

from django.db.models import QuerySet

from accounts.principal import Principal
from core.db_routing import read_connection as connection
from memory.fulltext import UNCOUNTED_CAP, fulltext_candidates
from memory.models import Memory
from memory.selectors import filtered_count, filtered_sql

# Candidate lexemes counted in the filtered set, at most (the most frequent among the hits first).
_CANDIDATE_LEXEMES = 40


def feedback_terms(base: QuerySet[Memory], ids: list[Any], query: str, size: int, count: int) -> list[str]:
    """Up to `count` lexemes of the memories `ids`, absent from `query`, best first."""
    if not ids or count <= 0:
        return []
    sql, params = filtered_sql(base)
    # Composed from the compiled queryset; every value is a parameter (lexemes are letters and digits
    # only, so quote_literal makes a plain tsquery operand of each). Document frequencies are
    # counted through the GIN index, each capped (a common word needs no exact count to rank last).
    statement = f"""
        WITH asked AS (SELECT to_tsvector('english', %s) AS words),
        held AS (
            SELECT v.lexeme, count(*) AS hits
            FROM ({sql}) c, unnest(c.search_vector) v, asked
            WHERE c.id = ANY(%s)
              AND NOT (asked.words @@ quote_literal(v.lexeme)::tsquery)
              AND length(v.lexeme) > 2 AND v.lexeme ~ '^[[:alnum:]]+$'
            GROUP BY v.lexeme
            ORDER BY hits DESC, v.lexeme
            LIMIT %s
        )
        SELECT h.lexeme, h.hits, (
            SELECT count(*) FROM (
                SELECT 1 FROM ({sql}) m WHERE m.search_vector @@ quote_literal(h.lexeme)::tsquery LIMIT %s
            ) d
        ) FROM held h
    """  # noqa: S608
    with connection.cursor() as cursor:
        # scoped: composed from the compiled SQL of a scoped() queryset
        cursor.execute(statement, [query, *params, list(ids), _CANDIDATE_LEXEMES, *params, UNCOUNTED_CAP])
        rows = cursor.fetchall()
    weighted = [
        (hits * math.log(1 + (size - df + 0.5) / (df + 0.5)), lexeme) for lexeme, hits, df in rows if int(df) > 1
    ]
    weighted.sort(key=lambda item: (-item[0], item[1]))
    return [lexeme for _, lexeme in weighted[:count]]


def feedback_query(terms: list[str]) -> str:
    """The lexemes as one query for the full-text list (which ORs its words)."""
    return " ".join(terms)


def feedback_list(
    principal: Principal, base: QuerySet[Memory], query: str, best: list[Any], depth: int, count: int
) -> tuple[list[str], list[tuple[Any, float]]]:
    """The feedback terms drawn from the memories `best`, and the full-text list of their query."""
    terms = feedback_terms(base, best, query, max(filtered_count(base), 1), count)
    if not terms:
        return [], []
    return terms, fulltext_candidates(principal, base, feedback_query(terms), depth)
