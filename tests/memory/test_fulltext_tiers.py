"""The full-text list's tiered plan (large filtered sets, term-statistics snapshot) against its
exact plan, and the snapshot's upkeep."""

from __future__ import annotations

import random
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connection
from django.test import override_settings

from accounts.principal import Principal
from accounts.scoping import scoped
from memory import dispatch, fulltext, term_stats
from memory.models import Memory, TermStat, TermStatsSnapshot
from memory.selectors import MemoryFilters, filters_apply
from memory.services import MemoryInput, memory_create_many, memory_forget_user
from memory.tasks import term_stats_rebuild_task
from memory.term_stats import term_stats_rebuild
from tests.conftest import Persona

pytestmark = pytest.mark.django_db

TIERED = override_settings(EASYMEMORY_FULLTEXT_EXACT_MAX_ROWS=0)
EXACT = override_settings(EASYMEMORY_FULLTEXT_EXACT_MAX_ROWS=10**9)
WORDS = [f"w{i:02d}" for i in range(40)]  # one lexeme each, no stemming


def zipf_corpus(principal: Principal, count: int, seed: int, **fields: Any) -> None:
    """`count` memories of six distinct words each, drawn with Zipf-like frequencies: every
    memory has the same length, so both plans' length normalisation agrees exactly."""
    rng = random.Random(seed)
    weights = [1 / (rank + 1) for rank in range(len(WORDS))]
    texts = set()
    while len(texts) < count:
        chosen: set[str] = set()
        while len(chosen) < 6:
            chosen.add(rng.choices(WORDS, weights)[0])
        texts.add(" ".join(sorted(chosen, key=lambda _: rng.random())))
    memory_create_many(principal=principal, items=[MemoryInput(content=t, **fields) for t in sorted(texts)])


def ranked(
    principal: Principal, query: str, limit: int, filters: MemoryFilters | None = None
) -> list[tuple[Any, float]]:
    base = filters_apply(scoped(Memory, principal.tenant), filters or MemoryFilters())
    return fulltext.fulltext_candidates(principal, base, query, limit)


def scores(pairs: list[tuple[Any, float]]) -> list[float]:
    return [round(score, 6) for _, score in pairs]


@pytest.fixture
def no_rebuild_requests(monkeypatch: Any) -> list[str]:
    requested: list[str] = []
    monkeypatch.setattr(fulltext, "request_rebuild", lambda tenant: requested.append(tenant.slug))
    return requested


@pytest.fixture
def tiered_calls(monkeypatch: Any) -> list[int]:
    """Counts the searches the tiered plan answered."""
    calls: list[int] = []
    real = fulltext._tiered
    monkeypatch.setattr(fulltext, "_tiered", lambda *a: calls.append(1) or real(*a))
    return calls


QUERIES = ["w00 w05 w17", "w03 w04", "w21 w30 w02 w11", "w00 w01 w02 w03 w04", "w39", "w12 w12 w33"]
LONG_QUERY = "w00 w01 w02 w03 w04 w05 w06 w07 w08"  # more terms than the tiers are built from


def test_the_tiered_plan_finds_the_exact_plans_top_rows(writer: Persona, no_rebuild_requests: list[str]) -> None:
    zipf_corpus(writer.principal, 400, seed=1)
    term_stats_rebuild(writer.tenant)
    probes: list[int] = []
    real_probe = fulltext._probe
    for query in QUERIES:
        for limit in (3, 10):
            with EXACT:
                exact = ranked(writer.principal, query, limit)
            with TIERED, pytest.MonkeyPatch.context() as patch:
                patch.setattr(fulltext, "_probe", lambda *a: probes.append(1) or real_probe(*a))
                tiered = ranked(writer.principal, query, limit)
            # Same scores in the same order; ids may differ only among rows tied at the cut-off.
            assert scores(tiered) == scores(exact), query
            above_cutoff = {mid for mid, s in exact if round(s, 6) > scores(exact)[-1]}
            assert above_cutoff <= {mid for mid, _ in tiered}, query
    assert len(probes) > len(QUERIES) * 2  # some queries needed more than one tier
    assert no_rebuild_requests == []  # the snapshot was fresh throughout


def test_a_query_longer_than_the_tiers_gets_close_to_the_exact_top_rows(
    writer: Persona, no_rebuild_requests: list[str]
) -> None:
    # Terms beyond TIER_TERMS still count in the score, but rows of the boundary tier are a sample.
    zipf_corpus(writer.principal, 400, seed=1)
    term_stats_rebuild(writer.tenant)
    with EXACT:
        exact = ranked(writer.principal, LONG_QUERY, 10)
    with TIERED:
        tiered = ranked(writer.principal, LONG_QUERY, 10)
    assert len(tiered) == 10
    assert all(t <= e + 1e-6 for t, e in zip(scores(tiered), scores(exact), strict=True))
    assert len({mid for mid, _ in tiered} & {mid for mid, _ in exact}) >= 7


@TIERED
def test_tiered_results_stay_inside_the_tenant_and_the_filters(
    writer: Persona, outsider: Persona, no_rebuild_requests: list[str]
) -> None:
    zipf_corpus(writer.principal, 150, seed=2, tags=["a"])
    zipf_corpus(writer.principal, 150, seed=3, tags=["b"])
    zipf_corpus(outsider.principal, 300, seed=2)
    term_stats_rebuild(writer.tenant)
    term_stats_rebuild(outsider.tenant)
    own = set(scoped(Memory, writer.tenant).values_list("id", flat=True))
    tagged = set(scoped(Memory, writer.tenant).filter(tags=["b"]).values_list("id", flat=True))
    for query in QUERIES:
        assert {mid for mid, _ in ranked(writer.principal, query, 20)} <= own
        assert {mid for mid, _ in ranked(writer.principal, query, 20, MemoryFilters(tags_any=["b"]))} <= tagged


@TIERED
def test_tiered_plan_keeps_phrases_and_exclusions(writer: Persona, no_rebuild_requests: list[str]) -> None:
    zipf_corpus(writer.principal, 200, seed=4)
    memory_create_many(
        principal=writer.principal,
        items=[MemoryInput(content=t) for t in ("the zeppelin hall opens", "zeppelin hall tour", "hall of zeppelin")],
    )
    term_stats_rebuild(writer.tenant)
    contents = dict(scoped(Memory, writer.tenant).values_list("id", "content"))
    phrase = [contents[mid] for mid, _ in ranked(writer.principal, '"zeppelin hall"', 50)]
    assert sorted(phrase) == ["the zeppelin hall opens", "zeppelin hall tour"]
    phrase_and_word = [contents[mid] for mid, _ in ranked(writer.principal, 'tour "zeppelin hall"', 50)]
    assert phrase_and_word == ["zeppelin hall tour"]
    excluded = [contents[mid] for mid, _ in ranked(writer.principal, "zeppelin -tour", 50)]
    assert sorted(excluded) == ["hall of zeppelin", "the zeppelin hall opens"]


@TIERED
def test_words_new_since_the_snapshot_are_counted_and_unknown_words_find_nothing(
    writer: Persona, no_rebuild_requests: list[str]
) -> None:
    zipf_corpus(writer.principal, 200, seed=5)
    term_stats_rebuild(writer.tenant)
    memory_create_many(principal=writer.principal, items=[MemoryInput(content="w00 aardvark sighting")])
    contents = dict(scoped(Memory, writer.tenant).values_list("id", "content"))
    hits = ranked(writer.principal, "aardvark w00", 5)
    assert contents[hits[0][0]] == "w00 aardvark sighting"  # the rare new word ranks it first
    assert ranked(writer.principal, "quokka", 5) == []


@TIERED
def test_without_a_snapshot_the_exact_plan_answers_and_a_rebuild_is_queued(
    writer: Persona, no_rebuild_requests: list[str], tiered_calls: list[int]
) -> None:
    zipf_corpus(writer.principal, 100, seed=6)
    hits = ranked(writer.principal, "w00 w07", 5)
    assert tiered_calls == []
    with EXACT:
        assert hits == ranked(writer.principal, "w00 w07", 5)
    assert no_rebuild_requests == [writer.tenant.slug]


@TIERED
def test_a_snapshot_that_drifted_is_used_and_a_rebuild_is_queued(
    writer: Persona, no_rebuild_requests: list[str], tiered_calls: list[int]
) -> None:
    zipf_corpus(writer.principal, 100, seed=7)
    term_stats_rebuild(writer.tenant)
    zipf_corpus(writer.principal, 30, seed=8)  # +30 %: over the 10 % drift allowed
    assert ranked(writer.principal, "w00 w07", 5)
    assert tiered_calls == [1]  # the stale snapshot still answered
    assert no_rebuild_requests == [writer.tenant.slug]


def test_the_rebuild_counts_each_lexeme_of_the_tenant(writer: Persona, outsider: Persona) -> None:
    memory_create_many(
        principal=writer.principal,
        items=[MemoryInput(content=t) for t in ("zeppelin hall", "zeppelin museum", "garden party")],
    )
    memory_create_many(principal=outsider.principal, items=[MemoryInput(content="zeppelin zeppelin")])
    assert term_stats_rebuild_task(str(writer.tenant.pk)) == 3  # what the worker runs
    df = dict(scoped(TermStat, writer.tenant).values_list("lexeme", "df"))
    assert df == {"zeppelin": 2, "hall": 1, "museum": 1, "garden": 1, "parti": 1}
    snapshot = TermStatsSnapshot.objects.get(tenant=writer.tenant)
    assert snapshot.docs == 3 and snapshot.avgdl == 2.0
    memory_create_many(principal=writer.principal, items=[MemoryInput(content="zeppelin")])
    term_stats_rebuild(writer.tenant)  # rebuilt from scratch, not added to
    assert scoped(TermStat, writer.tenant).get(lexeme="zeppelin").df == 3


def test_rebuild_requests_are_sent_at_most_once_a_minute(writer: Persona, monkeypatch: Any) -> None:
    sent: list[str] = []
    monkeypatch.setattr(dispatch, "term_stats_rebuild_enqueue", lambda tenant_id: sent.append(tenant_id))
    monkeypatch.setattr(term_stats, "_requested", {})
    term_stats.request_rebuild(writer.tenant)
    term_stats.request_rebuild(writer.tenant)
    assert sent == [str(writer.tenant.pk)]


def test_tier_levels_are_or_of_minimal_term_sets() -> None:
    levels = fulltext.tier_levels(["a", "b", "c"], {"a": 3.0, "b": 2.0, "c": 1.0})
    assert [threshold for threshold, _ in levels] == [6.0, 5.0, 4.0, 3.0, 2.0, 1.0]
    assert dict(levels)[3.0] == "('a') | ('b' & 'c')"
    assert dict(levels)[6.0] == "('a' & 'b' & 'c')"


def test_lexemes_are_quoted_as_tsquery_operands() -> None:
    lexeme = "o'neil\\&|!"
    with connection.cursor() as cursor:
        cursor.execute("SELECT array_to_tsvector(ARRAY[%s]) @@ %s::tsquery", [lexeme, fulltext.tsquery_term(lexeme)])
        assert cursor.fetchone()[0] is True


@TIERED
def test_reconcile_rebuilds_missing_and_drifted_statistics_only(writer: Persona) -> None:
    zipf_corpus(writer.principal, 50, seed=9)
    out = StringIO()
    call_command("reconcile", stdout=out)
    assert "rebuilt full-text statistics of 1 tenants" in out.getvalue()
    assert TermStatsSnapshot.objects.get(tenant=writer.tenant).docs == 50
    assert term_stats.term_stats_refresh() == []  # fresh: nothing to do
    zipf_corpus(writer.principal, 10, seed=10)
    assert term_stats.term_stats_refresh() == [writer.tenant]


@TIERED
def test_forgetting_a_user_drops_the_snapshot_so_their_words_do_not_linger(
    writer: Persona, no_rebuild_requests: list[str]
) -> None:
    zipf_corpus(writer.principal, 50, seed=11)
    memory_create_many(principal=writer.principal, items=[MemoryInput(content="zanzibar trip", user_ref="dana")])
    term_stats_rebuild(writer.tenant)
    assert scoped(TermStat, writer.tenant).filter(lexeme="zanzibar").exists()
    assert memory_forget_user(principal=writer.principal, user_ref="dana") == 1
    assert not scoped(TermStat, writer.tenant).exists()
    assert not TermStatsSnapshot.objects.filter(tenant=writer.tenant).exists()
    assert ranked(writer.principal, "w00 zanzibar", 5)  # the exact plan answers meanwhile ...
    assert no_rebuild_requests == [writer.tenant.slug]  # ... and a rebuild is on its way
