"""The offline extractor: the documented English and Chinese patterns."""

from __future__ import annotations

import pytest

from graph.providers.offline import OfflineExtractor

extract = OfflineExtractor().extract


def triples(text: str) -> list[tuple[str, str, str]]:
    return [(r.source, r.predicate, r.target) for r in extract(text).relations]


def entities(text: str) -> set[tuple[str, str]]:
    return {(e.name, e.type) for e in extract(text).entities}


def test_it_finds_links_tags_mentions_emails_urls_and_names() -> None:
    found = entities(
        "Met @alice and Marco Rossi about [[Q3 Planning|the plan]] #roadmap; "
        "notes at https://example.com/q3?x=1#top, questions to bob@example.org."
    )
    assert found >= {
        ("@alice", "person"),
        ("Marco Rossi", "entity"),
        ("Q3 Planning", "concept"),
        ("roadmap", "topic"),
        ("https://example.com/q3?x=1#top", "url"),
        ("bob@example.org", "email"),
    }
    assert not any(name in {"top", "example.com"} for name, _ in found)  # no tags from a URL fragment


def test_it_ignores_sentence_starts_and_calendar_words() -> None:
    found = {
        name for name, _ in entities("Yesterday The Meeting with Bob Smith and Carol went fine. On Monday we ate.")
    }
    assert found == {"Bob Smith"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Marco Rossi works at Acme Robotics.", ("Marco Rossi", "works_at", "Acme Robotics")),
        ("Alice moved to Berlin last year.", ("Alice", "lives_in", "Berlin")),
        ("Alice lives in Milan.", ("Alice", "lives_in", "Milan")),
        ("@bob works on the search engine.", ("@bob", "works_on", "search engine")),
        ("Alice is the CTO of Acme.", ("Alice", "role", "Acme")),
        ("Carol reports to Dave Smith.", ("Carol", "reports_to", "Dave Smith")),
        ("Alice uses vim.", ("Alice", "uses", "vim")),
        ("Acme Robotics is headquartered in Turin.", ("Acme Robotics", "located_in", "Turin")),
        ("[[Marco Rossi]] founded [[Acme Robotics]].", ("Marco Rossi", "founded", "Acme Robotics")),
    ],
)
def test_it_reads_english_relation_patterns(text: str, expected: tuple[str, str, str]) -> None:
    assert expected in triples(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("我的同事张伟在阿里巴巴工作。", ("张伟", "works_at", "阿里巴巴")),
        ("张伟住在杭州。", ("张伟", "lives_in", "杭州")),
        ("王小明搬到了上海，他喜欢咖啡。", ("王小明", "lives_in", "上海")),
        ("李雷是腾讯的工程师。", ("李雷", "role", "腾讯")),
        ("韩梅梅负责搜索项目。", ("韩梅梅", "works_on", "搜索")),
        ("听说李雷和韩梅梅结婚了。", ("李雷", "married_to", "韩梅梅")),
    ],
)
def test_it_reads_chinese_relation_patterns(text: str, expected: tuple[str, str, str]) -> None:
    assert expected in triples(text)


def test_pronouns_are_not_entities() -> None:
    assert all(source != "他" for source, _, _ in triples("王小明搬到了上海，他喜欢咖啡。"))
    assert all(source != "He" for source, _, _ in triples("He lives in Milan."))


def test_it_reads_time_hints_in_both_languages() -> None:
    [english] = extract("Marco Rossi works at Acme Robotics since 2021-03 until 2024.").relations
    assert english.valid_at.year == 2021 and english.valid_at.month == 3
    assert english.invalid_at.year == 2024
    [chinese] = extract("张伟从2020年起住在杭州。").relations
    assert (chinese.source, chinese.target, chinese.valid_at.year) == ("张伟", "杭州", 2020)


def test_moves_and_single_valued_predicates_replace_the_previous_value() -> None:
    [moved] = extract("Alice moved to Berlin.").relations
    assert moved.replaces_previous
    [uses] = extract("Alice uses vim.").relations
    assert not uses.replaces_previous


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "Marco Rossi moved to Berlin in 2024 and joined Siemens.",
            [("Marco Rossi", "lives_in", "Berlin"), ("Marco Rossi", "works_at", "Siemens")],
        ),
        (
            "Yesterday Marco Rossi flew to Rome, then started working at Fiat.",
            [("Marco Rossi", "works_at", "Fiat")],
        ),
        (
            "Marco Rossi met Anna Bianchi and later joined Acme Robotics.",
            [("Marco Rossi", "knows", "Anna Bianchi"), ("Marco Rossi", "works_at", "Acme Robotics")],
        ),
        (
            "Alice was hired by Google and moved to Zurich.",
            [("Alice", "works_at", "Google"), ("Alice", "lives_in", "Zurich")],
        ),
        ("Marco Rossi took a new job at Siemens.", [("Marco Rossi", "works_at", "Siemens")]),
        ("Marco Rossi started at Siemens in March.", [("Marco Rossi", "works_at", "Siemens")]),
        ("Anna Bianchi got married to Marco Rossi.", [("Anna Bianchi", "married_to", "Marco Rossi")]),
        ("Alice became a teacher.", [("Alice", "status", "teacher")]),
        # The subject of the second clause is its own: nothing is carried over.
        (
            "Marco Rossi works at Acme and Anna Bianchi joined Siemens.",
            [("Marco Rossi", "works_at", "Acme"), ("Anna Bianchi", "works_at", "Siemens")],
        ),
        # A pronoun is never resolved, so "I" starts no relation, not even in the second clause.
        ("I moved to Berlin and joined Siemens.", []),
    ],
)
def test_it_reads_changes_of_state_and_coordinated_verbs(text: str, expected: list[tuple[str, str, str]]) -> None:
    assert triples(text) == expected
    assert all(r.replaces_previous for r in extract(text).relations if r.predicate in {"works_at", "lives_in"})


@pytest.mark.parametrize(
    ("text", "expected", "ends"),
    [
        ("Marco Rossi left Acme Robotics.", ("Marco Rossi", "left", "Acme Robotics"), {"works_at", "lives_in"}),
        ("Marco Rossi quit his job at Acme.", ("Marco Rossi", "left", "Acme"), {"works_at"}),
        ("Marco Rossi resigned from Acme.", ("Marco Rossi", "left", "Acme"), {"works_at"}),
        ("Marco Rossi was laid off by Acme.", ("Marco Rossi", "left", "Acme"), {"works_at"}),
        ("Marco Rossi retired from Siemens in 2030.", ("Marco Rossi", "retired_from", "Siemens"), {"works_at"}),
        ("Carol moved out of Paris.", ("Carol", "left", "Paris"), {"lives_in"}),
        ("Anna Bianchi divorced Marco Rossi.", ("Anna Bianchi", "divorced", "Marco Rossi"), {"married_to"}),
    ],
)
def test_leaving_ends_a_fact_without_naming_a_successor(
    text: str, expected: tuple[str, str, str], ends: set[str]
) -> None:
    [relation] = extract(text).relations
    assert (relation.source, relation.predicate, relation.target) == expected
    assert ends <= set(relation.ends)
    assert not relation.replaces_previous


def test_left_and_joined_in_one_sentence() -> None:
    relations = extract("Marco Rossi left Acme Robotics and joined Siemens.").relations
    assert [(r.predicate, r.target) for r in relations] == [("left", "Acme Robotics"), ("works_at", "Siemens")]
    assert "works_at" in relations[0].ends and relations[1].replaces_previous
