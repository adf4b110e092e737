"""Text preparation shared by writes and queries: hashing and full-text input.

PostgreSQL's parsers do not segment CJK text: a run of Chinese characters
becomes one token, so a query word inside it never matches. Before text
reaches to_tsvector we rewrite each CJK run as overlapping character bigrams
(plus the single characters of runs of length one), the usual n-gram approach
of search engines without a dictionary segmenter. Queries get the same
treatment, so a Chinese query matches the bigrams of a Chinese memory.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata

# CJK Unified Ideographs (+ext A), Hiragana, Katakana, Hangul syllables.
CJK_RUN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\u3040-\u30ff\uac00-\ud7af]+")


def normalise(text: str) -> str:
    return " ".join(unicodedata.normalize("NFKC", text).split())


def content_hash(text: str) -> str:
    return hashlib.sha256(normalise(text).encode("utf-8")).hexdigest()


def cjk_bigrams(run: str) -> list[str]:
    if len(run) == 1:
        return [run]
    return [run[i : i + 2] for i in range(len(run) - 1)]


def fulltext_input(text: str) -> str:
    """Text as it should reach to_tsvector / the query parser: CJK runs split into bigrams."""
    return CJK_RUN.sub(lambda m: " " + " ".join(cjk_bigrams(m.group(0))) + " ", text)


def contains_cjk(text: str) -> bool:
    return CJK_RUN.search(text) is not None
