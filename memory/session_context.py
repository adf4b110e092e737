"""Session context of search candidates: neighbours in their session, and the session prior.

Context (search(), `EASYMEMORY_SEARCH_CONTEXT_WEIGHT`): a memory next to one of the best fused
candidates in its session gets a share of that candidate's score.

Session prior (`EASYMEMORY_SEARCH_SESSION_WEIGHT`): a candidate turn gets a share of the evidence
for the rest of its session.

Evidence for a question often spans several turns of one conversation session; a turn that
ranks just outside the top k is more likely the right one when other turns of its session rank
well too. After fusion, each candidate that belongs to a session receives
`weight × (the summed fused scores of the `top` best *other* candidates of that session)`.
Only candidates that a list found are lifted (the prior orders them, it finds nothing new), and
the scores come from the fused lists alone: no embedding, and the sessions come with the
context's statement.
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

from core.db_routing import read_connection as connection
from memory.models import Memory
from memory.selectors import filtered_sql


def session_rows(
    base: QuerySet[Memory], ids: list[Any], near: list[Any]
) -> tuple[dict[Any, str], dict[Any, list[Any]]]:
    """For each of `ids` (within the filtered set) that belongs to a session: its session_id; and for
    each of `near` (a subset of `ids`): the memories stored just before and after it in that
    session, within the same filters (two index probes on memory_tenant_session per memory of
    `near`, none for the others). One statement.

    Raw SQL around the filtered set compiled once: the same statement built with ORM subqueries
    cost about as much CPU in Python to compile as the database took to run it."""
    if not ids:
        return {}, {}
    sql, params = filtered_sql(base)
    # Composed from the compiled queryset; every value is a parameter.
    query = f"""
        SELECT c.id, c.session_id,
            CASE WHEN c.id = ANY(%s) THEN
                (SELECT b.id FROM ({sql}) b WHERE b.session_id = c.session_id AND b.created_at < c.created_at
                 ORDER BY b.created_at DESC, b.id DESC LIMIT 1) END,
            CASE WHEN c.id = ANY(%s) THEN
                (SELECT a.id FROM ({sql}) a WHERE a.session_id = c.session_id AND a.created_at > c.created_at
                 ORDER BY a.created_at, a.id LIMIT 1) END
        FROM ({sql}) c
        WHERE c.id = ANY(%s) AND c.session_id <> ''
    """  # noqa: S608
    with connection.cursor() as cursor:
        # scoped: from a scoped() queryset's SQL
        cursor.execute(query, [list(near), *params, list(near), *params, *params, list(ids)])
        rows = cursor.fetchall()
    sessions = {mid: session for mid, session, _, _ in rows}
    wanted = set(near)
    neighbours = {mid: [n for n in (prev, nxt) if n is not None] for mid, _, prev, nxt in rows if mid in wanted}
    return sessions, neighbours


def session_gains(scores: dict[Any, float], sessions: dict[Any, str], weight: float, top: int) -> dict[Any, float]:
    """memory id → weight × the sum of the `top` best fused scores of the other candidates of its
    session (only the non-zero gains)."""
    members: dict[str, list[tuple[float, Any]]] = {}
    for memory_id, session in sessions.items():
        members.setdefault(session, []).append((scores[memory_id], memory_id))
    gains: dict[Any, float] = {}
    for ranked in members.values():
        if len(ranked) < 2:
            continue
        ranked.sort(key=lambda item: item[0], reverse=True)
        best = ranked[: top + 1]  # a member among the best is not its own evidence
        best_sum = sum(score for score, _ in best[:top])
        extra = best[top][0] if len(best) > top else 0.0
        for score, memory_id in ranked:
            in_best = any(memory_id == other for _, other in best[:top])
            gain = weight * (best_sum - score + extra if in_best else best_sum)
            if gain > 0:
                gains[memory_id] = gain
    return gains
