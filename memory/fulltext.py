"""The full-text candidate list: OR semantics, BM25 inside the tenant and the filters.

Two plans, chosen by the size of the filtered set (like the vector list's):

- exact, up to `EASYMEMORY_FULLTEXT_EXACT_MAX_ROWS` rows: one statement reads every matching
  row, takes the document frequencies over them and ranks all of them;
- tiered, above it, once the tenant has a term-statistics snapshot (memory/term_stats.py):
  reading every matching row is what makes BM25 slow on a large tenant (a typical question
  matches a large share of its rows, and counting them alone is slow), so the IDFs come
  from the snapshot and the rows are fetched best tier first. A memory's tier is the summed IDF
  of the query terms it holds; "tier ≥ τ" is an OR of ANDs of term sets, which the GIN index
  answers inside the index, so only the rows that are read pay a heap visit. A binary search
  over the tiers finds the highest τ above which more than `RESCORE_FACTOR × limit` rows lie;
  every row above the tier before it and a sample of the boundary tier are scored with full
  BM25 (term frequencies and lengths). What this gives up: inside the boundary tier (rows holding
  the same query terms), the sample is the first rows found, not the shortest, and the
  snapshot's frequencies are scaled to the filtered set rather than counted in it.

The cost of the exact plan grows with the matching rows of this tenant only; the tiered plan
reads at most a few hundred rows per probe, whatever the tenant's size.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from itertools import combinations
from typing import Any

from django.conf import settings
from django.contrib.postgres.search import SearchQuery
from django.db.models import QuerySet
from django.db.models.sql import Query

from accounts.principal import Principal
from accounts.scoping import scoped
from core.db_routing import fetch_with_settings
from core.db_routing import read_connection as connection  # search reads: replica when configured
from memory.models import Memory
from memory.selectors import MemoryFilters, filtered_count, filtered_sql
from memory.term_stats import TermStats, is_stale, request_rebuild, term_stats_for_text
from memory.text import fulltext_input

_TOKEN = re.compile(r'-?"[^"]+"|\S+')
# BM25 constants (Robertson/Sparck Jones defaults, as in Lucene).
BM25_K1 = 1.2
BM25_B = 0.75
# Rows re-scored with real term frequencies (exact plan) or read per probe (tiered), × the depth.
RESCORE_FACTOR = 4
# Tiers are built from this many of the query's rarest terms (2^n − 1 term sets).
TIER_TERMS = 5
# A lexeme the snapshot has not seen yet is counted in the filtered set, up to this many rows.
UNCOUNTED_CAP = 1_000


@dataclass(frozen=True)
class ParsedQuery:
    words: list[str]
    phrases: list[str]
    excluded: list[str]


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


def _balanced(terms: list[SearchQuery], combine: Callable[[Any, Any], Any]) -> Any:
    """Combine terms pairwise, so the expression tree is log2(n) deep: a left-deep chain of a few
    hundred terms overflowed Python's recursion limit while the SQL was compiled."""
    while len(terms) > 1:
        paired = [combine(terms[i], terms[i + 1]) for i in range(0, len(terms) - 1, 2)]
        terms = paired + ([terms[-1]] if len(terms) % 2 else [])
    return terms[0] if terms else None


def query_words(parsed: ParsedQuery) -> list[str]:
    """The distinct OR-ed pieces of a query's words (CJK runs as character pairs), in order."""
    return list(dict.fromkeys(piece for word in parsed.words for piece in fulltext_input(word).split()))


def query_term_count(query: str) -> int:
    """How many distinct terms the full-text condition of `query` is built from."""
    parsed = parse_query(query)
    return len(query_words(parsed)) + len(set(parsed.phrases)) + len(set(parsed.excluded))


def fulltext_query(query: str) -> SearchQuery | None:
    """The match condition: any word (OR), every quoted phrase (AND), no excluded term (AND NOT)."""
    parsed = parse_query(query)
    if not parsed.words and not parsed.phrases:
        return None
    terms = [SearchQuery(piece, config="english", search_type="plain") for piece in query_words(parsed)]
    words = _balanced(terms, lambda a, b: a | b)
    constraints = fulltext_constraints(query)
    if words is None or constraints is None:
        return words or constraints
    return words & constraints


def fulltext_constraints(query: str) -> SearchQuery | None:
    """What a match needs beyond holding one of the words: every phrase, none of the exclusions."""
    parsed = parse_query(query)
    terms = [
        SearchQuery(fulltext_input(phrase), config="english", search_type="phrase")
        for phrase in dict.fromkeys(parsed.phrases)
    ]
    terms += [
        ~SearchQuery(fulltext_input(word), config="english", search_type="plain")
        for word in dict.fromkeys(parsed.excluded)
    ]
    return _balanced(terms, lambda a, b: a & b)


def fulltext_candidates(
    principal: Principal, base: QuerySet[Memory], query: str, limit: int, filters: MemoryFilters | None = None
) -> list[tuple[Any, float]]:
    """The search list "fulltext": (memory id, BM25 score), best first."""
    tsquery = fulltext_query(query)
    if tsquery is None:
        return []
    parsed = parse_query(query)
    scored_text = fulltext_input(" ".join(parsed.words + parsed.phrases))
    size = max(filtered_count(base), 1)
    base_rows = Rows.of(base)
    if size > settings.EASYMEMORY_FULLTEXT_EXACT_MAX_ROWS:
        lexemes, stats = term_stats_for_text(principal.tenant, scored_text)
        if stats is None or is_stale(stats.docs, filtered_count(scoped(Memory, principal.tenant))):
            request_rebuild(principal.tenant)
        if stats is not None and lexemes:
            constraints = fulltext_constraints(query)
            constrained = base_rows if constraints is None else base_rows.matching(constraints)
            return _tiered(base_rows.matching(tsquery), constrained, lexemes, stats, size, limit)
    return _exact(base_rows.matching(tsquery), scored_text, size, limit)


@dataclass(frozen=True)
class Rows:
    """A filtered set of memories as SQL selecting `id` and `search_vector`.

    The filtered set is compiled by the ORM once per search; a full-text condition is compiled on
    its own and wrapped around it (PostgreSQL flattens the subquery, so the condition still
    drives the GIN index). Filtering the queryset by the condition instead made the ORM resolve
    the query's whole OR tree again for every statement, at more CPU than the statement took."""

    sql: str
    params: tuple[Any, ...]

    @classmethod
    def of(cls, base: QuerySet[Memory]) -> Rows:
        sql, params = filtered_sql(base)
        return cls(f"SELECT b.id, b.search_vector FROM ({sql}) b", params)  # noqa: S608

    def matching(self, condition: SearchQuery) -> Rows:
        query = Query(Memory)
        compiler = query.get_compiler(connection=connection)
        condition_sql, condition_params = compiler.compile(condition.resolve_expression(query))
        sql = f"SELECT r.id, r.search_vector FROM ({self.sql}) r WHERE r.search_vector @@ ({condition_sql})"  # noqa: S608
        return Rows(sql, (*self.params, *condition_params))


def _idf(rows: int, df: int) -> float:
    return math.log(1 + (rows - df + 0.5) / (df + 0.5))


def _frequencies(rows: Rows, lexemes: list[str], stats: TermStats, size: int) -> dict[str, int]:
    """Each lexeme's document frequency in `rows` (the filtered set): the snapshot's, scaled from the
    tenant to the filtered set; lexemes new since the snapshot are counted (they are rare), and
    are 0 when no row holds them."""
    scale = size / max(stats.docs, 1)
    df = {lex: max(1, min(size, round(stats.df[lex] * scale))) for lex in lexemes if lex in stats.df}
    uncounted = [lex for lex in lexemes if lex not in df]
    if uncounted:
        sql, params = rows.sql, rows.params
        # One statement for all of them. Composed from the compiled queryset; every value is a parameter.
        query = f"""
            SELECT t.lexeme, (
                SELECT count(*) FROM (SELECT 1 FROM ({sql}) m WHERE m.search_vector @@ t.term::tsquery LIMIT %s) c
            )
            FROM unnest(%s::text[], %s::text[]) AS t(lexeme, term)
        """  # noqa: S608
        with connection.cursor() as cursor:
            # scoped: composed from the compiled SQL of a scoped() queryset
            cursor.execute(query, [*params, UNCOUNTED_CAP, uncounted, [tsquery_term(lex) for lex in uncounted]])
            df.update({lex: int(count) for lex, count in cursor.fetchall()})
    return df


def tsquery_term(lexeme: str) -> str:
    """A lexeme as a tsquery operand, quoted so that no character of it is read as an operator."""
    return "'" + lexeme.replace("\\", "\\\\").replace("'", "''") + "'"


def tier_levels(terms: list[str], idf: dict[str, float]) -> list[tuple[float, str]]:
    """Distinct tier thresholds, highest first, each with its tsquery: an OR of the minimal term
    sets whose summed IDF reaches it (a set is minimal if dropping its rarest-weighted member
    falls below)."""
    subsets = [
        (subset, round(sum(idf[t] for t in subset), 9), min(idf[t] for t in subset))
        for n in range(1, len(terms) + 1)
        for subset in combinations(terms, n)
    ]
    levels = []
    for threshold in sorted({total for _, total, _ in subsets}, reverse=True):
        minimal = [
            subset for subset, total, least in subsets if total >= threshold and round(total - least, 9) < threshold
        ]
        clauses = ["(" + " & ".join(tsquery_term(t) for t in subset) + ")" for subset in minimal]
        levels.append((threshold, " | ".join(clauses)))
    return levels


@dataclass(frozen=True)
class Probe:
    found: int  # rows read, at most the probe's cap
    best: list[tuple[Any, float]]  # the best of them by BM25, (id, score)


@dataclass(frozen=True)
class Scoring:
    lexemes: list[str]
    idf: list[float]
    avgdl: float
    keep: int  # rows returned per probe


def _probe(rows: Rows, condition: str | None, cap: int, scoring: Scoring) -> Probe:
    """Up to `cap` rows of `rows` that satisfy the tier `condition` (None: all), scored by BM25
    in the database; returns how many were read and the best `scoring.keep` of them."""
    sql, params = rows.sql, rows.params
    where = "WHERE m.search_vector @@ %s::tsquery" if condition else ""
    # Composed from the compiled queryset; every value is a parameter. The subquery is flattened,
    # so the tier condition joins the GIN index scan and LIMIT stops the heap reads.
    query = f"""
        WITH q AS (SELECT * FROM unnest(%s::text[], %s::float8[]) AS q(lexeme, idf)),
        found AS (
            SELECT m.id, (
                SELECT sum(q.idf * u.tf * {BM25_K1 + 1}
                           / (u.tf + {BM25_K1} * (1 - {BM25_B} + {BM25_B} * length(m.search_vector) / %s)))
                FROM (SELECT v.lexeme, GREATEST(COALESCE(cardinality(v.positions), 1), 1) AS tf
                      FROM unnest(m.search_vector) v) u
                JOIN q USING (lexeme)
            ) AS score
            FROM ({sql}) m
            {where}
            LIMIT %s
        )
        SELECT id, score, count(*) OVER () FROM found ORDER BY score DESC, id LIMIT %s
    """  # noqa: S608
    args = [scoring.lexemes, scoring.idf, scoring.avgdl, *params, *([condition] if condition else []), cap]
    # With LIMIT the planner may pick a sequential scan that walks other tenants' rows first.
    # scoped: built from a scoped() queryset's SQL
    fetched = fetch_with_settings(connection, [("enable_seqscan", "off")], query, [*args, scoring.keep])
    return Probe(found=int(fetched[0][2]) if fetched else 0, best=[(mid, float(score)) for mid, score, _ in fetched])


def _tier_rows(
    levels: list[tuple[float, str]], probe: Callable[[int], Probe], complete: Callable[[int], bool]
) -> list[tuple[Any, float]]:
    """Rows of every tier above the first one holding more than the wanted count, plus that
    tier's sample. The boundary is found by galloping down from the top (it is usually among the
    first tiers, whose conditions are short), then bisecting."""
    last = len(levels) - 1
    if not complete(0):
        return probe(0).best
    low, step = 0, 1
    high = min(low + step, last)
    while complete(high) and high < last:
        low, step = high, step * 2
        high = min(low + step, last)
    if complete(high):  # even "any term" fits: every matching row is here
        return probe(high).best
    while high - low > 1:
        middle = (low + high) // 2
        if complete(middle):
            low = middle
        else:
            high = middle
    return probe(low).best + probe(high).best


def _tiered(
    matched: Rows,
    constrained: Rows,
    lexemes: list[str],
    stats: TermStats,
    size: int,
    limit: int,
) -> list[tuple[Any, float]]:
    """`matched`: the rows matching the query; `constrained`: the filtered rows that hold its
    phrases and none of its exclusions (a tier condition supplies the words, so a probe does not
    make the index evaluate the whole OR of the query's words too)."""
    df = _frequencies(constrained, lexemes, stats, size)
    lexemes = [lex for lex in lexemes if df[lex] > 0]  # a term no row holds would only add empty tiers
    if not lexemes:
        return []
    idf = {lex: _idf(size, df[lex]) for lex in lexemes}
    terms = sorted(lexemes, key=lambda lex: (-idf[lex], lex))[:TIER_TERMS]
    levels = tier_levels(terms, idf)
    want = limit * RESCORE_FACTOR
    scoring = Scoring(lexemes=lexemes, idf=[idf[lex] for lex in lexemes], avgdl=max(stats.avgdl, 1.0), keep=limit)
    probes: dict[int, Probe] = {}

    def probe(index: int) -> Probe:
        if index not in probes:
            # The lowest tier (any term) is every matching row, rarer terms beyond TIER_TERMS included.
            if index == len(levels) - 1:
                probes[index] = _probe(matched, None, want + 1, scoring)
            else:
                probes[index] = _probe(constrained, levels[index][1], want + 1, scoring)
        return probes[index]

    def complete(index: int) -> bool:
        return probe(index).found <= want

    found = dict(_tier_rows(levels, probe, complete))
    ranked = sorted(found, key=lambda mid: (-found[mid], str(mid)))[:limit]
    return [(mid, found[mid]) for mid in ranked]


def _exact(matched: Rows, scored_text: str, size: int, limit: int) -> list[tuple[Any, float]]:
    """Every matching row, in one statement: test each against each query term, take document
    frequencies over them (every row holding a query term matches an OR query, so that is the
    document frequency within the filtered set) and `size` for the IDF. A first pass scores every
    row with term frequency 1 (memories are short; reading positions out of every matched tsvector
    costs several times more); the best `RESCORE_FACTOR × limit` are then re-scored with their real
    term frequencies, which gains recall on LoCoMo (docs/retrieval.md)."""
    matched_sql, matched_params = matched.sql, matched.params
    sql = f"""
        WITH terms AS MATERIALIZED (
            SELECT lexeme, quote_literal(lexeme)::tsquery AS q
            FROM (SELECT DISTINCT unnest(tsvector_to_array(to_tsvector('english', %s))) AS lexeme) t
        ),
        matched AS MATERIALIZED ({matched_sql}),
        occurrences AS MATERIALIZED (
            SELECT m.id, t.lexeme, length(m.search_vector) AS dl
            FROM matched m JOIN terms t ON m.search_vector @@ t.q
        ),
        sizes AS (
            SELECT GREATEST(%s, (SELECT count(*) FROM matched))::float8 AS n,
                   GREATEST((SELECT avg(length(search_vector)) FROM matched), 1)::float8 AS avgdl
        ),
        idf AS (
            SELECT o.lexeme, ln(1 + (s.n - count(*) + 0.5) / (count(*) + 0.5)) AS idf
            FROM occurrences o CROSS JOIN sizes s GROUP BY o.lexeme, s.n
        ),
        first_pass AS MATERIALIZED (
            SELECT o.id, sum(idf.idf * ({BM25_K1} + 1)
                             / (1 + {BM25_K1} * (1 - {BM25_B} + {BM25_B} * o.dl / s.avgdl))) AS score
            FROM occurrences o JOIN idf USING (lexeme) CROSS JOIN sizes s
            GROUP BY o.id
            ORDER BY score DESC, o.id
            LIMIT %s
        )
        SELECT f.id,
               sum(idf.idf * u.tf * ({BM25_K1} + 1)
                   / (u.tf + {BM25_K1} * (1 - {BM25_B} + {BM25_B} * length(m.search_vector) / s.avgdl))) AS score
        FROM first_pass f
        JOIN matched m ON m.id = f.id
        CROSS JOIN LATERAL (
            SELECT v.lexeme, GREATEST(COALESCE(cardinality(v.positions), 1), 1) AS tf FROM unnest(m.search_vector) v
        ) u
        JOIN idf ON idf.lexeme = u.lexeme
        CROSS JOIN sizes s
        GROUP BY f.id
        ORDER BY score DESC, f.id
        LIMIT %s
    """  # noqa: S608
    with connection.cursor() as cursor:
        # scoped: composed from the compiled SQL of a scoped() queryset
        cursor.execute(sql, [scored_text, *matched_params, size, limit * RESCORE_FACTOR, limit])
        return [(mid, float(score)) for mid, score in cursor.fetchall()]
