from __future__ import annotations

import importlib
import json
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from django.db import connection
from django.test import override_settings

from accounts.principal import Principal
from memory import embeddings
from memory import search as search_module
from memory.models import Memory, MemoryEmbedding
from memory.search import register_candidate_list, search
from memory.selectors import MemoryFilters
from memory.services import MemoryInput, memory_create_many
from memory.text import content_hash
from tests.conftest import Persona, embed_pending
from tests.factories import TenantFactory

pytestmark = pytest.mark.django_db

HNSW_MIGRATION = importlib.import_module("memory.migrations.0003_embedding_hnsw_index")
FULLTEXT_ONLY = {"vector": 0.0, "window": 0.0}
VECTOR_ONLY = {"fulltext": 0.0, "window": 0.0}


def remember(principal: Principal, *texts: str, **fields: Any) -> list[Memory]:
    results = memory_create_many(principal=principal, items=[MemoryInput(content=t, **fields) for t in texts])
    return [result.memory for result in results]


def contents(hits: list[search_module.Hit]) -> list[str]:
    return [hit.memory.content for hit in hits]


# --- full-text list -------------------------------------------------------------------------------


def test_it_finds_a_natural_language_question_by_any_of_its_words(writer: Persona) -> None:
    remember(
        writer.principal,
        "Caroline went to an LGBTQ support group yesterday",
        "Melanie painted a sunrise over the lake",
        "The weather was cold all week",
    )
    hits = search(writer.principal, "When did Caroline go to the LGBTQ support group?", k=3, weights=FULLTEXT_ONLY)
    assert contents(hits)[0] == "Caroline went to an LGBTQ support group yesterday"
    assert "Melanie painted a sunrise over the lake" not in contents(hits)  # no shared word: not a candidate


def test_it_ranks_rare_words_of_the_tenant_above_common_ones(writer: Persona) -> None:
    common = [f"meeting notes about the budget, item {i}" for i in range(8)]
    remember(
        writer.principal, *common, "the zeppelin museum opens in spring", "budget meeting moved to the zeppelin hall"
    )
    hits = search(writer.principal, "budget zeppelin", k=3, weights=FULLTEXT_ONLY)
    # Both words match the last memory; "zeppelin" is rare in this tenant, so its IDF lifts the
    # two zeppelin memories above the eight budget notes.
    assert contents(hits)[:2] == ["budget meeting moved to the zeppelin hall", "the zeppelin museum opens in spring"]


def test_its_ranking_statistics_come_from_the_tenant_alone(writer: Persona, outsider: Persona) -> None:
    remember(writer.principal, "the zeppelin museum opens in spring", "budget meeting on Friday", "budget review")
    before = {
        h.memory.content: h.evidence["fulltext"]["score"] for h in search(writer.principal, "budget zeppelin", k=3)
    }
    remember(outsider.principal, *[f"zeppelin fact number {i}" for i in range(30)])
    after = {
        h.memory.content: h.evidence["fulltext"]["score"] for h in search(writer.principal, "budget zeppelin", k=3)
    }
    assert before == after


def test_it_honours_quoted_phrases_and_exclusions(writer: Persona) -> None:
    remember(
        writer.principal,
        "Alice drinks green tea every morning",
        "Alice likes tea that is green and coffee",
        "Bob drinks green tea and coffee",
    )
    phrase = contents(search(writer.principal, '"green tea"', k=5, weights=FULLTEXT_ONLY))
    assert sorted(phrase) == ["Alice drinks green tea every morning", "Bob drinks green tea and coffee"]
    excluded = contents(search(writer.principal, "tea -coffee", k=5, weights=FULLTEXT_ONLY))
    assert excluded == ["Alice drinks green tea every morning"]


def test_it_finds_chinese_memories_with_chinese_queries(writer: Persona) -> None:
    remember(
        writer.principal,
        "我喜欢在周末去公园散步",
        "北京是中国的首都，也是一座历史悠久的城市",
        "明天下午三点在会议室讨论项目预算",
        "The quarterly budget meeting is on Friday",
    )
    assert contents(search(writer.principal, "公园散步", k=1, weights=FULLTEXT_ONLY)) == ["我喜欢在周末去公园散步"]
    assert contents(search(writer.principal, "中国的首都是哪里", k=1, weights=FULLTEXT_ONLY)) == [
        "北京是中国的首都，也是一座历史悠久的城市"
    ]
    assert contents(search(writer.principal, "项目预算会议", k=1, weights=FULLTEXT_ONLY)) == [
        "明天下午三点在会议室讨论项目预算"
    ]


# --- fusion, evidence, adjustments ----------------------------------------------------------------


def test_each_hit_explains_which_lists_found_it(writer: Persona) -> None:
    remember(writer.principal, "Alice is allergic to peanuts", "Bob plays the cello on Sundays")
    embed_pending()
    hits = search(writer.principal, "peanut allergy of Alice", k=2)
    top = hits[0]
    assert top.memory.content == "Alice is allergic to peanuts"
    assert top.evidence["vector"]["rank"] == 1
    assert top.evidence["fulltext"]["rank"] == 1
    assert 0 < top.evidence["vector"]["score"] <= 1
    assert top.evidence["fulltext"]["score"] > 0
    assert top.score > hits[1].score


def test_weights_come_per_request_and_accept_registered_lists(writer: Persona) -> None:
    remember(writer.principal, "Alice is allergic to peanuts", "Bob plays the cello on Sundays")
    embed_pending()
    cello = Memory.objects.get(content__startswith="Bob")

    def always_cello(principal: Principal, base: Any, query: str, limit: int, filters: Any) -> list[tuple[Any, float]]:
        return [(mid, 1.0) for mid in base.filter(pk=cello.pk).values_list("id", flat=True)]

    register_candidate_list("test-list", always_cello)
    try:
        hits = search(writer.principal, "peanuts", k=2, weights={"test-list": 10.0})
        assert hits[0].memory == cello
        assert hits[0].evidence["test-list"] == {"rank": 1, "score": 1.0}
        only_vector = search(writer.principal, "peanuts", k=2, weights={"fulltext": 0, "window": 0, "test-list": 0})
        assert set(only_vector[0].evidence) - {"adjustment"} == {"vector"}
    finally:
        search_module.CANDIDATE_LISTS.pop("test-list")


def test_importance_and_recency_cannot_outvote_relevance(writer: Persona) -> None:
    strong = remember(writer.principal, "the spare house key is under the blue flower pot", importance=0.0)[0]
    Memory.objects.filter(pk=strong.pk).update(occurred_at=datetime(2001, 1, 1, tzinfo=UTC))
    remember(writer.principal, "a note about a key", importance=1.0, occurred_at=datetime.now(tz=UTC))
    hits = search(writer.principal, "where is the spare house key flower pot", k=2, weights=FULLTEXT_ONLY)
    assert hits[0].memory.pk == strong.pk
    assert abs(hits[1].evidence["adjustment"]["importance"]) <= 0.1


def test_a_memory_next_to_a_strong_hit_in_its_session_gets_context(writer: Persona) -> None:
    question, answer, other = remember(
        writer.principal,
        "Jon: What made you open the dance studio?",
        "Gina: Losing my banking job pushed me to do it.",
        "Gina: I bought new shoes.",
        session_id="chat-1",
    )
    hits = search(writer.principal, "why did Jon open the dance studio", k=3, weights=FULLTEXT_ONLY)
    assert hits[0].memory == question
    assert hits[1].memory == answer
    assert hits[1].evidence["context"]["score"] > 0
    assert "fulltext" not in hits[1].evidence  # found only as the neighbour of the question
    assert other not in [hit.memory for hit in hits]


def test_a_session_prior_lifts_a_turn_from_the_session_of_the_strong_hits(writer: Persona) -> None:
    studio, _, repairs = remember(
        writer.principal,
        "Gina: I opened a dance studio downtown last spring.",
        "Gina: It took a whole year of saving.",
        "Gina: The floor needed repairs after the winter storm flooded it.",
        session_id="chat-gina",
    )
    (oak,) = remember(writer.principal, "Jon: the floor is oak.", session_id="chat-jon")
    query = "the dance studio floor"
    with override_settings(EASYMEMORY_SEARCH_CONTEXT_WEIGHT=0.0, EASYMEMORY_SEARCH_SESSION_WEIGHT=0.0):
        plain = [hit.memory for hit in search(writer.principal, query, k=3, weights=FULLTEXT_ONLY)]
    assert plain == [studio, oak, repairs]  # the short turn of the other session wins on words alone
    with override_settings(EASYMEMORY_SEARCH_CONTEXT_WEIGHT=0.0, EASYMEMORY_SEARCH_SESSION_WEIGHT=0.5):
        hits = search(writer.principal, query, k=3, weights=FULLTEXT_ONLY)
    assert [hit.memory for hit in hits] == [studio, repairs, oak]
    assert hits[1].evidence["session"]["score"] > 0 and "fulltext" in hits[1].evidence
    assert "session" not in hits[2].evidence  # alone in its session: nothing to share


def test_pseudo_relevance_feedback_finds_a_memory_through_words_of_the_best_hits(writer: Persona) -> None:
    studio, lesson = remember(
        writer.principal,
        "Gina opened a dance studio with choreography classes",
        "Saturday choreography workshop starts at ten",
    )
    remember(writer.principal, *[f"grocery list number {i}: bread, milk, eggs" for i in range(6)])
    query = "Gina's dance studio"
    off = search(writer.principal, query, k=5, weights=FULLTEXT_ONLY)
    assert [hit.memory for hit in off] == [studio]  # no word of the query in the workshop turn
    with override_settings(EASYMEMORY_SEARCH_FEEDBACK_WEIGHT=1.0):
        hits = search(writer.principal, query, k=5, weights=FULLTEXT_ONLY)
    assert [hit.memory for hit in hits] == [studio, lesson]
    assert hits[1].evidence["feedback"]["rank"] >= 1 and "fulltext" not in hits[1].evidence


def test_mmr_moves_a_near_duplicate_below_a_different_hit(writer: Persona) -> None:
    first, duplicate, other = remember(
        writer.principal,
        "The spare key is under the blue flower pot.",
        "The spare key is under the blue flower pot by the door.",
        "Anna next door keeps a copy for emergencies.",
    )
    embed_pending()
    plain = [hit.memory for hit in search(writer.principal, "where is the spare key", k=3)]
    assert plain == [first, duplicate, other]  # the words of the query are in the first two only
    with override_settings(EASYMEMORY_SEARCH_MMR_LAMBDA=0.3):
        diverse = [hit.memory for hit in search(writer.principal, "where is the spare key", k=3)]
    assert diverse == [first, other, duplicate]


# --- vector list under filters ----------------------------------------------------------------------

DIMS = 384


def _bulk_memories(tenant: Any, count: int, rng: np.random.Generator, **fields: Any) -> list[Memory]:
    rows = [
        Memory(
            tenant=tenant,
            content=f"synthetic {tenant.slug} {i}",
            content_hash=content_hash(f"synthetic {tenant.slug} {i}"),
            search_vector=None,
            enrichment_state="done",
            **fields,
        )
        for i in range(count)
    ]
    Memory.objects.bulk_create(rows, batch_size=1000)
    vectors = rng.standard_normal((count, DIMS)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    MemoryEmbedding.objects.bulk_create(
        [
            MemoryEmbedding(tenant=tenant, memory=m, model=embeddings.model_name(), dims=DIMS, embedding=v)
            for m, v in zip(rows, vectors, strict=True)
        ],
        batch_size=1000,
    )
    return rows


def _exact_top(tenant: Any, query: str, k: int, **filters: Any) -> list[Any]:
    q = np.array(embeddings.embed_query(query), dtype=np.float32)
    rows = MemoryEmbedding.objects.filter(tenant=tenant, **{f"memory__{n}": v for n, v in filters.items()})
    pairs = [(mid, float(np.dot(np.array(vec), q))) for mid, vec in rows.values_list("memory_id", "embedding")]
    return [mid for mid, _ in sorted(pairs, key=lambda p: -p[1])[:k]]


@pytest.fixture
def skewed_tenants() -> dict[str, Any]:
    """1,500 vectors: a small tenant holding 1 % of them, a big one holding 97 %."""
    rng = np.random.default_rng(3)
    small, big, other = TenantFactory(slug="small"), TenantFactory(slug="big"), TenantFactory(slug="other")
    with connection.cursor() as cursor:
        # Building the HNSW index once is much faster than 1,500 inserts into it; DDL is
        # transactional, so the test's rollback restores the original index.
        cursor.execute("DROP INDEX memory_embedding_hnsw_384")
    _bulk_memories(small, 15, rng)
    _bulk_memories(big, 1455, rng)
    _bulk_memories(other, 30, rng)
    tagged = list(Memory.objects.filter(tenant=big).order_by("id").values_list("id", flat=True)[:15])
    Memory.objects.filter(pk__in=tagged).update(tags=["rare"])
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # flush deferred FK checks before the DDL
        cursor.execute(HNSW_MIGRATION.CREATE)
        cursor.execute("ANALYZE memory_memoryembedding")
        cursor.execute("ANALYZE memory_memory")
    return {"small": small, "big": big}


QUERY = "what did we decide about the holiday budget"


def test_a_tenant_holding_one_percent_of_the_rows_gets_its_exact_top_k(skewed_tenants: dict[str, Any]) -> None:
    small = skewed_tenants["small"]
    hits = search(Principal.system(small), QUERY, k=10, weights=VECTOR_ONLY)
    assert [hit.memory.pk for hit in hits] == _exact_top(small, QUERY, 10)


@override_settings(EASYMEMORY_EXACT_SCAN_MAX_ROWS=500)
def test_a_tenant_holding_most_rows_uses_hnsw_and_gets_k_hits(skewed_tenants: dict[str, Any], monkeypatch: Any) -> None:
    big = skewed_tenants["big"]
    plans: list[str] = []
    chosen = search_module.vector_plan
    monkeypatch.setattr(search_module, "vector_plan", lambda *a: plans.append(chosen(*a)) or plans[-1])
    with connection.cursor() as cursor:
        # On 1.5k rows the planner would rather sort; make it take the HNSW index as on a big table.
        cursor.execute("SET LOCAL enable_seqscan = off; SET LOCAL enable_sort = off")
    hits = search(Principal.system(big), QUERY, k=10, weights=VECTOR_ONLY)
    assert plans == ["hnsw"]
    assert len(hits) == 10
    assert {hit.memory.tenant_id for hit in hits} == {big.id}
    # Approximate, but close: most of the exact top 10 are there.
    assert len({hit.memory.pk for hit in hits} & set(_exact_top(big, QUERY, 10))) >= 7


@override_settings(EASYMEMORY_EXACT_SCAN_MAX_ROWS=500)
def test_a_tight_filter_inside_a_big_tenant_is_scanned_exactly(skewed_tenants: dict[str, Any]) -> None:
    big = skewed_tenants["big"]
    filters = MemoryFilters(tags_any=["rare"])
    hits = search(Principal.system(big), QUERY, k=10, filters=filters, weights=VECTOR_ONLY)
    assert [hit.memory.pk for hit in hits] == _exact_top(big, QUERY, 10, tags__overlap=["rare"])


@override_settings(EASYMEMORY_EXACT_SCAN_MAX_ROWS=0)
def test_without_iterative_scans_a_short_hnsw_answer_falls_back_to_exact(
    skewed_tenants: dict[str, Any], monkeypatch: Any
) -> None:
    # An external server with pgvector 0.7: filtered HNSW returns what survives the filter out of
    # ef_search neighbours; for a tenant holding 1 % of the rows that is about one row.
    search_module.pgvector_version.cache_clear()
    monkeypatch.setattr(search_module, "pgvector_version", lambda: (0, 7, 4))
    monkeypatch.setattr(search_module, "vector_plan", lambda *a: "hnsw")
    returned: list[int] = []
    hnsw = search_module._hnsw_vector
    monkeypatch.setattr(search_module, "_hnsw_vector", lambda *a: returned.append(len(r := hnsw(*a))) or r)
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off; SET LOCAL enable_sort = off")
    small = skewed_tenants["small"]
    hits = search(Principal.system(small), QUERY, k=10, weights=VECTOR_ONLY)
    assert returned and returned[0] < 10  # HNSW came up short ...
    assert [hit.memory.pk for hit in hits] == _exact_top(small, QUERY, 10)  # ... and the answer is still exact


def test_pgvector_version_is_read_from_the_server() -> None:
    search_module.pgvector_version.cache_clear()
    assert search_module.pgvector_version() >= (0, 8)


# --- filters through the API -----------------------------------------------------------------------


def post_search(persona: Persona, payload: dict[str, Any]) -> Any:
    return persona.client().post("/v1/search", data=json.dumps(payload), content_type="application/json")


def test_search_filters_narrow_the_candidates(writer: Persona) -> None:
    remember(writer.principal, "tea with Alice", tags=["drinks", "alice"], user_ref="alice", kind="fact",
             metadata={"source": "chat", "lang": "en"}, occurred_at=datetime(2024, 5, 1, tzinfo=UTC))  # fmt: skip
    remember(writer.principal, "tea with Bob", tags=["drinks"], user_ref="bob", kind="note",
             metadata={"source": "email"}, occurred_at=datetime(2023, 5, 1, tzinfo=UTC))  # fmt: skip
    embed_pending()

    def found(filters: dict[str, Any]) -> list[str]:
        response = post_search(writer, {"query": "tea", "k": 5, "filters": filters})
        assert response.status_code == 200, response.json()
        return sorted(hit["memory"]["content"] for hit in response.json()["results"])

    assert found({}) == ["tea with Alice", "tea with Bob"]
    assert found({"tags": ["alice", "nobody"]}) == ["tea with Alice"]
    assert found({"tags_all": ["drinks", "alice"]}) == ["tea with Alice"]
    assert found({"tags_all": ["drinks", "nobody"]}) == []
    assert found({"kind": ["note"]}) == ["tea with Bob"]
    assert found({"user_ref": "bob"}) == ["tea with Bob"]
    assert found({"metadata": {"source": "chat"}}) == ["tea with Alice"]
    assert found({"occurred_after": "2024-01-01T00:00:00Z"}) == ["tea with Alice"]
    assert found({"occurred_before": "2024-01-01T00:00:00Z"}) == ["tea with Bob"]
    tomorrow = (datetime.now(tz=UTC) + timedelta(days=1)).isoformat()
    assert found({"created_after": tomorrow}) == []


@pytest.mark.parametrize(
    ("payload", "status", "field"),
    [
        ({"query": ""}, 422, "query"),
        ({"query": "   "}, 422, "query"),
        ({"query": "x" * 1001}, 422, "query"),
        ({"query": "tea", "k": 0}, 400, "k"),
        ({"query": "tea", "k": 101}, 400, "k"),
        ({"query": "tea", "k": "ten"}, 400, "k"),
        ({"query": "tea", "filters": {"colour": "red"}}, 400, "filters.colour"),
        ({"query": "tea", "filters": {"occurred_after": "last tuesday"}}, 400, "filters.occurred_after"),
        ({"query": "tea", "filters": {"created_before": "2024-13-45"}}, 400, "filters.created_before"),
        (
            {"query": "tea", "filters": {"occurred_after": "2024-02-01T00:00:00Z", "occurred_before": "2024-01-01"}},
            400,
            "filters.occurred_before",
        ),
        ({"query": "tea", "filters": {"kind": ["poem"]}}, 400, "filters.kind.0"),
        ({"query": "tea", "weights": {"bogus": 1}}, 422, "weights.bogus"),
        ({"query": "tea", "weights": {"vector": -1}}, 422, "weights.vector"),
        ({"query": "tea", "weights": {"vector": 0, "fulltext": 0, "graph": 0, "window": 0}}, 422, "weights"),
        ({"query": "tea", "colour": "red"}, 400, "colour"),
    ],
)
def test_bad_search_input_names_the_field(reader: Persona, payload: dict[str, Any], status: int, field: str) -> None:
    response = post_search(reader, payload)
    assert response.status_code == status, response.json()
    assert response.json()["field"] == field


@override_settings(EASYMEMORY_MAX_QUERY_CHARS=10)
def test_the_query_length_limit_is_configurable(reader: Persona) -> None:
    assert post_search(reader, {"query": "x" * 10}).status_code == 200
    response = post_search(reader, {"query": "x" * 11})
    assert response.status_code == 422
    assert response.json()["field"] == "query"


def test_search_access_for_the_cast(cast: dict[str, Persona]) -> None:
    remember(cast["writer"].principal, "Alice likes green tea")
    embed_pending()
    from rest_framework.test import APIClient

    anonymous = APIClient().post("/v1/search", data=json.dumps({"query": "tea"}), content_type="application/json")
    assert anonymous.status_code == 401
    for name in ("reader", "writer", "admin"):
        response = post_search(cast[name], {"query": "green tea"})
        assert response.status_code == 200
        assert [hit["memory"]["content"] for hit in response.json()["results"]] == ["Alice likes green tea"]
    outsider = post_search(cast["outsider"], {"query": "green tea"})
    assert outsider.status_code == 200
    assert outsider.json()["results"] == []


def test_search_returns_k_hits_whenever_k_memories_match(writer: Persona) -> None:
    rng = random.Random(5)
    words = ["apple", "river", "piano", "garden", "rocket", "lemon", "castle", "violin"]
    texts = [" ".join(rng.sample(words, 3)) + f" entry {i}" for i in range(40)]
    remember(writer.principal, *texts)
    embed_pending()
    assert len(search(writer.principal, "something unrelated entirely", k=25)) == 25
    assert len(search(writer.principal, "apple", k=25, weights=VECTOR_ONLY)) == 25


def test_the_search_command_prints_ranked_hits_with_their_lists(writer: Persona) -> None:
    from io import StringIO

    from django.core.management import call_command

    remember(writer.principal, "Jon: What made you open the dance studio?", session_id="chat")
    remember(writer.principal, "Gina: Losing my job.", session_id="chat")
    out = StringIO()
    call_command("search", "dance studio", "--tenant", writer.tenant.slug, "-k", "2", stdout=out)
    lines = out.getvalue().splitlines()
    assert "fulltext#1" in lines[0] and "dance studio" in lines[0]
    assert "context" in lines[1] and "Losing my job" in lines[1]


def test_as_of_searches_the_memories_of_that_moment(writer: Persona) -> None:
    early = datetime(2019, 1, 1, tzinfo=UTC)
    [lisbon] = remember(writer.principal, "tea in Lisbon", occurred_at=early)
    Memory.objects.filter(pk=lisbon.pk).update(expires_at=datetime(2021, 1, 1, tzinfo=UTC))  # expired since
    remember(writer.principal, "tea in Porto", occurred_at=datetime(2022, 1, 1, tzinfo=UTC))
    remember(writer.principal, "tea in Faro")  # no occurred_at: counts from when it was stored (now)
    embed_pending()

    def found(filters: dict[str, Any]) -> list[str]:
        response = post_search(writer, {"query": "tea", "k": 10, "filters": filters})
        assert response.status_code == 200, response.json()
        return sorted(h["memory"]["content"] for h in response.json()["results"])

    assert found({}) == ["tea in Faro", "tea in Porto"]  # Lisbon expired in 2021
    assert found({"as_of": "2020-01-01T00:00:00Z"}) == ["tea in Lisbon"]  # not expired yet then
    assert found({"as_of": "2023-01-01T00:00:00Z"}) == ["tea in Porto"]
    listed = writer.client().get("/v1/memories?as_of=2020-01-01T00:00:00Z").json()["results"]
    assert [m["content"] for m in listed] == ["tea in Lisbon"]


def test_hits_are_represented_exactly_as_the_hit_serializer_would(writer: Persona) -> None:
    from memory.serializers import HitSerializer

    remember(writer.principal, "tea in Lisbon", tags=["travel"], metadata={"lang": "en"})
    hits = search(writer.principal, "tea", k=5, weights=FULLTEXT_ONLY)
    full = HitSerializer(
        [{"memory": h.memory, "score": h.score, "evidence": h.evidence, "embedded": h.embedded} for h in hits],
        many=True,
    )
    assert json.loads(json.dumps(HitSerializer.of(hits))) == json.loads(json.dumps(full.data))


def test_the_memory_tables_are_analyzed_after_one_percent_of_changes() -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT relname, reloptions FROM pg_class WHERE relname IN ('memory_memory', 'memory_memoryembedding')"
        )
        options = dict(cursor.fetchall())
    for table in ("memory_memory", "memory_memoryembedding"):
        assert "autovacuum_analyze_scale_factor=0.01" in options[table]


def test_a_time_expression_in_the_query_lifts_memories_of_that_time(writer: Persona) -> None:
    may, march = datetime(2023, 5, 12, tzinfo=UTC), datetime(2023, 3, 12, tzinfo=UTC)
    (in_may,) = remember(writer.principal, "We went camping by the river with the kids", occurred_at=may)
    (in_march,) = remember(writer.principal, "We went camping by the lake with the kids", occurred_at=march)
    hits = search(writer.principal, "Where did we go camping in May 2023?", k=2, weights=FULLTEXT_ONLY)
    assert [hit.memory.id for hit in hits] == [in_may.id, in_march.id]  # boosted, not filtered
    assert hits[0].evidence["adjustment"]["time"] == 0.3
    assert "time" not in hits[1].evidence.get("adjustment", {})
    hits = search(writer.principal, "Where did we go camping in March 2023?", k=2, weights=FULLTEXT_ONLY)
    assert [hit.memory.id for hit in hits] == [in_march.id, in_may.id]
    with override_settings(EASYMEMORY_SEARCH_TIME_WEIGHT=0.0):
        hits = search(writer.principal, "Where did we go camping in March 2023?", k=2, weights=FULLTEXT_ONLY)
        assert all("time" not in hit.evidence.get("adjustment", {}) for hit in hits)
