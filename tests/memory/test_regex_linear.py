"""Every regular expression applied to user text runs in linear time (issue 13, item 1).

Each pattern is found by walking the modules that hold patterns for user text (a new pattern
there is covered without editing this file) and fed adversarial inputs of the maximum content
size: runs of the characters and fragments its repetitions are built from. Python's `re`
backtracks, so a pattern with an unbounded repetition before a part that can fail was
quadratic on such runs (17 s for 10,000 "-" in the redaction rule, 23 s for 50 KB in the
e-mail rule). A pattern must finish each input in under a second.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from types import ModuleType

import pytest
from django.conf import settings

from dashboard import presenters
from graph import ranking as graph_ranking
from graph import selectors as graph_selectors
from graph.providers import base as provider_base
from graph.providers import offline
from ingest.sources import files, markdown, slack
from memory import answer_judge, fulltext, policy, redaction, text

pytestmark = pytest.mark.slow

MODULES: list[ModuleType] = [
    redaction,
    text,
    fulltext,
    policy,
    offline,
    provider_base,
    graph_selectors,
    graph_ranking,
    markdown,
    slack,
    files,
    presenters,
    answer_judge,  # the judge model's reply
]
# Runs of these make a backtracking matcher retry from every position.
UNITS = [
    "-", "a", "A", ".", " ", "@", "#", "0", "_", "中", "在", "\n", '"', "'", "<", "`",
    "a.", "a@", "@a.", "a@a.", "a-", "0 ", "0-", "A ", "Aa ", "A'", "A.", "Aa of ", "a #",
    "password", "token", "x=", 'password="', "Bearer ", "sk-", "eyJ-", "-----BEGIN A ",
    "[[", "[[a|", "<@A|", "<#A|", "<http:", "<!here|", "#a", "http://", "张伟在", "在谷歌", "1234年",
    "<think>", "```", ",  ",
    "and ", ", and ", "Aa and joined ", "A, left ", "Aa joined Bb and joined ",
    "[REDACTED ", "[REDACTED A", "redacted card ", "used to ", "back ",
]  # fmt: skip
LIMIT_SECONDS = 1.0


def user_text_patterns() -> Iterator[tuple[str, Callable[[str], object]]]:
    for module in MODULES:
        for name, value in sorted(vars(module).items()):
            if isinstance(value, re.Pattern) and isinstance(value.pattern, str):
                yield f"{module.__name__}.{name}", lambda s, p=value: sum(1 for _ in p.finditer(s))
    for pattern in offline.EN_PATTERNS:
        yield f"offline.EN.{pattern.predicate}", lambda s, p=pattern.regex: sum(1 for _ in p.finditer(s))
        assert pattern.continued is not None
        yield f"offline.EN.{pattern.predicate}.continued", lambda s, p=pattern.continued: sum(1 for _ in p.finditer(s))
    for pattern in offline.ZH_PATTERNS:
        yield f"offline.ZH.{pattern.predicate}", lambda s, p=pattern: offline.zh_matches(p, s)
    # Whole functions that hold a loop of their own over user text.
    yield "redaction.redact_secrets", redaction.redact_secrets
    yield "provider_base.strip_reasoning", provider_base.strip_reasoning
    yield "markdown.sections", markdown._sections
    yield "redaction.is_placeholder", redaction.is_placeholder


PATTERNS = list(user_text_patterns())


def adversarial(unit: str) -> str:
    size = settings.EASYMEMORY_MAX_CONTENT_BYTES  # characters: at least the bytes of the limit
    return (unit * (size // len(unit) + 1))[:size]


def test_it_covers_the_known_patterns() -> None:
    names = {name for name, _ in PATTERNS}
    for known in ("memory.redaction.KEY_VALUE", "graph.providers.offline.EMAIL", "ingest.sources.markdown.HEADING"):
        assert known in names


@pytest.mark.parametrize(("name", "run"), PATTERNS, ids=[name for name, _ in PATTERNS])
def test_the_pattern_is_linear_at_the_maximum_content_size(name: str, run: Callable[[str], object]) -> None:
    slow = []
    for unit in UNITS:
        value = adversarial(unit)
        started = time.perf_counter()
        run(value)
        took = time.perf_counter() - started
        if took > LIMIT_SECONDS:
            slow.append(f"{unit!r}: {took:.2f} s")
    assert not slow, f"{name} is not linear on runs of {', '.join(slow)}"


def test_the_rewritten_patterns_still_find_what_they_found() -> None:
    assert redaction.redact_secrets("db_password=hunter2 and api_key: 'abc123'")[0] == (
        "db_password=[REDACTED] and api_key: '[REDACTED]'"
    )
    assert redaction.redact_secrets("key sk-proj-" + "a" * 30)[0] == "key [REDACTED]"
    found = offline.OfflineExtractor().extract("Mail marco.rossi@example.co.uk. Marco Rossi works at Acme Robotics.")
    names = {entity.name for entity in found.entities}
    assert {"marco.rossi@example.co.uk", "Marco Rossi", "Acme Robotics"} <= names
    relations = [(r.source, r.predicate, r.target) for r in found.relations]
    assert relations == [("Marco Rossi", "works_at", "Acme Robotics")]
    zh = offline.OfflineExtractor().extract("我的同事张伟在谷歌工作。")
    assert [(r.source, r.predicate, r.target) for r in zh.relations] == [("张伟", "works_at", "谷歌")]
    assert markdown._sections("# Title ##\ntext")[1][0] == ["Title"]
    assert provider_base.strip_reasoning('<think>a</think>{"x": 1}<reasoning>open') == '{"x": 1}<reasoning>open'


def test_the_chinese_matcher_finds_what_the_regex_finds() -> None:
    import random

    rng = random.Random(13)
    alphabet = list("我的同事张伟在谷歌工作上班任职加入了入职住居生活搬到负责参与是喜欢爱使用认识向汇报创立和与跟结婚")
    alphabet += list(" ·aB1，。")
    for _ in range(300):
        sample = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 60)))
        for pattern in offline.ZH_PATTERNS:
            expected = [(m.group("s"), m.group("o")) for m in pattern.regex.finditer(sample)]
            assert offline.zh_matches(pattern, sample) == expected, (pattern.predicate, sample)
