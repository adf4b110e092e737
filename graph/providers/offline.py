"""The offline extractor: deterministic, no model, thousands of memories per second.

What it finds (documented in docs/graph.md):

- `[[wiki links]]` (type concept), `#tags` (topic), `@mentions` (person), e-mail addresses (email),
  URLs (url), capitalised multi-word names such as "Marco Rossi" or "Acme Robotics" (entity);
- relations from a fixed set of sentence patterns, in English ("X works at Y", "X lives in Y",
  "X moved to Y", "X works on Y", "X is the CTO of Y", ...) and Chinese ("X在Y工作", "X住在Y",
  "X搬到Y", "X负责Y", "X是Y的Z", ...), with "since 2021" / "until 2023" / "从2021年起" / "到2023年"
  read as the start and end of the fact's validity.

Names are only what the text spells: it never guesses that "he" is Marco. The LLM
providers do better on free prose; this one is a fast, predictable baseline.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass
from datetime import datetime

from graph.providers.base import (
    SINGLE_VALUED_PREDICATES,
    ExtractedEntity,
    ExtractedRelation,
    Extraction,
    clean_name,
    normalise_key,
    parse_when,
)

# Linear time on up to EASYMEMORY_MAX_CONTENT_BYTES of text: every repetition is bounded, and a token
# starts only where a run of its characters starts (tests/memory/test_regex_linear.py).
WIKI = re.compile(r"\[\[([^\[\]|#\n]{1,200})(?:[|#][^\[\]\n]{0,200})?\]\]")
TAG = re.compile(r"(?<![\w&#/])#([^\W\d_][\w/-]{0,60})")
AT_MENTION = re.compile(r"(?<![\w.@])@([A-Za-z0-9_][\w.-]{0,38}[\w]|[A-Za-z0-9_])")
EMAIL = re.compile(r"(?<![\w.+-])[\w.+-]{1,64}@[\w-]{1,63}(?:\.[\w-]{1,63}){0,8}\.[A-Za-z]{2,24}\b")
URL = re.compile(r"\bhttps?://[^\s<>\"'`]+")
URL_TRAILING = ".,;:!?)]}»”’"

# A capitalised word (Latin letters incl. accents), or an acronym such as "NASA" / "GmbH".
CAP = r"(?:[A-Z][\w'’&-]{0,40})"
CONNECT = r"(?:of|de|van|von|der|den|da|di|del|la|le|du|&)"
MULTI_NAME = re.compile(rf"(?<![\w'’&-]){CAP}(?:\s{{1,5}}(?:{CONNECT}\s{{1,5}})?{CAP}){{1,5}}")
# Words that are capitalised because they start a sentence or are calendar names, not names.
LEADING_STOP = frozenset(
    """a an the this that these those my our your his her their its in on at by for from to with of and or but
    if when while after before since until yesterday today tomorrow tonight last next every each some all
    monday tuesday wednesday thursday friday saturday sunday january february march april may june july
    august september october november december i we you he she they it dear hi hello thanks please note
    also then so is was are were be been has have had do does did will would can could should meeting""".split()
)

# Participants in English relation patterns: @handle, [[link]], or 1-5 capitalised words.
NAME = rf"(?:@[\w.-]{{1,64}}|\[\[[^\[\]]{{1,200}}\]\]|{CAP}(?:\s{{1,5}}(?:{CONNECT}\s{{1,5}})?{CAP}){{0,4}})"
# Lower-case objects ("uses vim", "works on the search engine"): up to three words.
PHRASE_WORD = r"[a-z][\w+#-]{0,40}(?:\.[\w+#-]{1,40}){0,4}"
PHRASE = rf"(?:(?:the|a|an|my|our|his|her|their)\s{{1,5}})?{PHRASE_WORD}(?:\s{{1,5}}{PHRASE_WORD}){{0,2}}?"
END = r"(?=\s{0,5}(?:[.,;:!?)\n]|$|\s(?:and|but|since|from|until|till|because|for|in|at|on|as|with|when|while)\b))"


@dataclass(frozen=True)
class Pattern:
    regex: re.Pattern[str]
    predicate: str
    source_type: str
    target_type: str
    replaces_previous: bool = False
    # Chinese patterns: the part after the subject, matched on its own (see zh_matches).
    middle: re.Pattern[str] | None = None


def _en(
    verbs: str,
    predicate: str,
    source_type: str,
    target_type: str,
    *,
    phrase: bool = False,
    replaces_previous: bool = False,
) -> Pattern:
    # A capitalised name ends by itself; a lower-case phrase needs a clause boundary after it.
    obj = rf"(?:(?P<o>{NAME})(?!\w)(?!\s+[A-Z])|(?P<p>{PHRASE}){END})" if phrase else rf"(?P<o>{NAME})(?!\w)"
    # A subject starts where a word starts: inside a run of capitals or name characters no attempt
    # begins at every position (which made these patterns quadratic on such runs).
    regex = re.compile(rf"(?<![\w'’&@.\[-])(?P<s>{NAME})\s{{1,5}}(?:{verbs})\s{{1,5}}{obj}")
    return Pattern(regex, predicate, source_type, target_type, replaces_previous=replaces_previous)


EN_PATTERNS: list[Pattern] = [
    _en(
        r"(?:works|worked|is working|has worked) (?:at|for)|is employed (?:at|by)", "works_at", "person", "organisation"
    ),
    _en(r"joined|has joined|started working (?:at|for)", "works_at", "person", "organisation", replaces_previous=True),
    _en(r"(?:lives|lived|is living|has lived|resides) in", "lives_in", "person", "place"),
    _en(r"(?:moved|relocated|has moved) to", "lives_in", "person", "place", replaces_previous=True),
    _en(r"(?:works|worked|is working) on|contributes to", "works_on", "person", "project", phrase=True),
    _en(r"(?:is|was|became) (?:the |a |an )?[A-Za-z -]{2,40}? (?:of|at)", "role", "person", "organisation"),
    _en(r"manages|leads|runs", "manages", "person", "project", phrase=True),
    _en(r"reports to", "reports_to", "person", "person"),
    _en(r"knows|met|has met", "knows", "person", "person"),
    _en(r"uses|is using|prefers|switched to", "uses", "person", "tool", phrase=True),
    _en(r"likes|loves|enjoys", "likes", "person", "concept", phrase=True),
    _en(r"is married to|married", "married_to", "person", "person"),
    _en(r"founded|co-founded|created", "founded", "person", "organisation"),
    _en(r"(?:is|was) (?:located|based|headquartered) in", "located_in", "organisation", "place"),
    _en(r"(?:is|was) born in", "born_in", "person", "place"),
    _en(r"(?:is|was) (?:a member of|part of)|belongs to", "member_of", "person", "organisation"),
]

CJK = r"\u3400-\u4dbf\u4e00-\u9fff"
ZH_SUBJECT_FIRST = rf"[{CJK}A-Za-z·]"
ZH_SUBJECT_REST = rf"[{CJK}A-Za-z0-9· ]"
ZH_SUBJECT_MAX = 20
ZH_SUBJECT = rf"(?P<s>{ZH_SUBJECT_FIRST}{ZH_SUBJECT_REST}{{0,{ZH_SUBJECT_MAX - 1}}})"
ZH_OBJECT = rf"(?P<o>[{CJK}A-Za-z0-9·]{{1,20}}?)"
ZH_OPEN_OBJECT = r"(?P<o>[^\s，。！？、；：,.!?;:了的和与及]{1,20})"


def _zh(middle: str, predicate: str, source_type: str, target_type: str, **kw: bool) -> Pattern:
    regex, middle_regex = re.compile(ZH_SUBJECT + middle), re.compile(middle)
    return Pattern(regex, predicate, source_type, target_type, middle=middle_regex, **kw)


_FIRST = re.compile(ZH_SUBJECT_FIRST)
_REST_RUN = re.compile(rf"{ZH_SUBJECT_REST}{{0,{ZH_SUBJECT_MAX - 1}}}")


def zh_matches(pattern: Pattern, text: str) -> list[tuple[str, str]]:
    """(subject, object) of each match of `pattern.regex` in `text`, as finditer finds them.

    Chinese has no word boundaries, so the subject may start at any character: run as one regex,
    every start tried up to 20 subject lengths, each followed by up to 20 object lengths (a
    sentence of 100k "在" took seconds per pattern). Here the part after the subject (the middle)
    is matched once per position, and each subject is found by looking back at most 20 characters
    from a middle: the leftmost start wins and, for it, the furthest middle (the regex's greedy
    subject), so the results are the regex's.
    """
    assert pattern.middle is not None
    lookahead = re.compile(f"(?=(?:{pattern.middle.pattern}))")
    anchors = [found.start() for found in lookahead.finditer(text) if found.start() > 0]
    results: list[tuple[str, str]] = []
    start = 0
    while True:
        nearest = bisect.bisect_right(anchors, start)
        if nearest == len(anchors):
            return results
        first_anchor = anchors[nearest]
        matched = False
        for subject_start in range(max(start, first_anchor - ZH_SUBJECT_MAX), first_anchor):
            if not _FIRST.match(text, subject_start):
                continue
            run = _REST_RUN.match(text, subject_start + 1)
            reach = run.end() if run else subject_start + 1
            furthest = bisect.bisect_right(anchors, reach) - 1
            if furthest >= 0 and anchors[furthest] > subject_start:
                middle = pattern.middle.match(text, anchors[furthest])
                assert middle is not None
                results.append((text[subject_start : anchors[furthest]], middle.group("o")))
                start, matched = middle.end(), True
                break
        if not matched:
            start = first_anchor


ZH_PATTERNS: list[Pattern] = [
    _zh(rf"在{ZH_OBJECT}(?:工作|上班|任职)", "works_at", "person", "organisation"),
    _zh(rf"(?:加入了|加入|入职了|入职){ZH_OPEN_OBJECT}", "works_at", "person", "organisation", replaces_previous=True),
    _zh(rf"(?:住在|居住在|生活在){ZH_OPEN_OBJECT}", "lives_in", "person", "place"),
    _zh(rf"(?:搬到了|搬到|搬去了|搬去){ZH_OPEN_OBJECT}", "lives_in", "person", "place", replaces_previous=True),
    _zh(rf"(?:负责|参与了|参与){ZH_OPEN_OBJECT}", "works_on", "person", "project"),
    _zh(rf"是{ZH_OBJECT}的(?:[{CJK}]{{1,8}})", "role", "person", "organisation"),
    _zh(rf"(?:喜欢|爱){ZH_OPEN_OBJECT}", "likes", "person", "concept"),
    _zh(rf"(?:使用|在用){ZH_OPEN_OBJECT}", "uses", "person", "tool"),
    _zh(rf"认识{ZH_OPEN_OBJECT}", "knows", "person", "person"),
    _zh(rf"向{ZH_OBJECT}汇报", "reports_to", "person", "person"),
    _zh(rf"(?:创立了|创办了|创建了|创立|创办){ZH_OPEN_OBJECT}", "founded", "person", "organisation"),
    _zh(rf"(?:和|与|跟){ZH_OBJECT}结婚", "married_to", "person", "person"),
]
ZH_ANCHORS = re.compile("在|加入|入职|住在|居住|生活在|搬|负责|参与|是|喜欢|爱|使用|在用|认识|向|创|结婚")
# Words before a Chinese name that are not part of it: "我的同事张伟" → "张伟".
ZH_PREFIXES = (
    "我们的", "你们的", "他们的", "我的", "你的", "他的", "她的", "听说", "据说", "现在", "目前", "已经", "最近",
    "去年", "今年", "明年", "后来", "同事", "朋友", "老板", "经理", "妻子", "丈夫", "哥哥", "姐姐", "弟弟", "妹妹",
    "因为", "所以", "但是", "而且", "然后", "其实",
)  # fmt: skip
ZH_BREAKERS = re.compile("听说|据说|觉得|认为|知道|告诉|说|而|但|和|跟|与")
ZH_SUFFIXES = ("已经", "现在", "目前", "一直", "也", "都", "还", "曾经", "正在", "将", "去年", "今年")

SINCE = re.compile(r"\b(?:since|from|starting)\s+(\d{4}(?:-\d{2}(?:-\d{2})?)?)\b", re.IGNORECASE)
UNTIL = re.compile(r"\b(?:until|till|to|through)\s+(\d{4}(?:-\d{2}(?:-\d{2})?)?)\b", re.IGNORECASE)
ZH_SINCE = re.compile(r"(?:从|自|自从)?(\d{4})年(?:(\d{1,2})月)?(?:起|开始|以来)")
ZH_SINCE_2 = re.compile(r"(?:从|自|自从)(\d{4})年")
ZH_UNTIL = re.compile(r"(?:到|直到|至)(\d{4})年")
SENTENCE = re.compile(r"[^.!?。！？\n]+[.!?。！？]?")


def _strip_leading_stop(words: list[str]) -> list[str]:
    while words and words[0].casefold().strip(".") in LEADING_STOP:
        words = words[1:]
    while words and words[-1].casefold() in {"of", "de", "van", "von", "der", "den", "da", "di", "del", "&", "and"}:
        words = words[:-1]
    return words


def _participant(raw: str) -> tuple[str, str | None]:
    """Normalise a matched participant; returns (name, forced type or None)."""
    raw = raw.strip()
    if raw.startswith("[[") and raw.endswith("]]"):
        return clean_name(raw[2:-2].split("|")[0]), None
    if raw.startswith("@"):
        return clean_name(raw.rstrip(".-")), "person"
    words = _strip_leading_stop(raw.split())
    return clean_name(" ".join(words)), None


ZH_TIME = re.compile(r"(?:从|自从|自)?\d{4}年(?:\d{1,2}月)?(?:起|开始|以来|后|底|初)?")
ZH_PRONOUNS = frozenset("我 你 他 她 它 我们 你们 他们 她们 大家 自己 这 那".split())


def _zh_subject(raw: str) -> str:
    parts = ZH_BREAKERS.split(ZH_TIME.sub("", raw))
    subject = parts[-1].strip()
    changed = True
    while changed and subject:
        changed = False
        for prefix in ZH_PREFIXES:
            if subject.startswith(prefix) and len(subject) > len(prefix):
                subject, changed = subject[len(prefix) :], True
        for suffix in ZH_SUFFIXES:
            if subject.endswith(suffix) and len(subject) > len(suffix):
                subject, changed = subject[: -len(suffix)], True
    subject = clean_name(subject)
    return "" if subject in ZH_PRONOUNS else subject


def _time_hints(sentence: str) -> tuple[datetime | None, datetime | None]:
    since = SINCE.search(sentence) or ZH_SINCE.search(sentence) or ZH_SINCE_2.search(sentence)
    until = UNTIL.search(sentence) or ZH_UNTIL.search(sentence)
    valid_at = parse_when(since.group(1)) if since else None
    if since is not None and since.re is ZH_SINCE and since.group(2):
        valid_at = parse_when(f"{since.group(1)}-{int(since.group(2)):02d}")
    invalid_at = parse_when(until.group(1)) if until else None
    if valid_at and invalid_at and invalid_at <= valid_at:
        invalid_at = None
    return valid_at, invalid_at


class OfflineExtractor:
    name = "offline"
    model = ""
    remote = False

    def extract(self, text: str) -> Extraction:
        entities: dict[str, ExtractedEntity] = {}

        def add(name: str, type_: str, matched: str) -> None:
            name = clean_name(name)
            if not name or len(name) < 2:
                return
            key = normalise_key(name)
            known = entities.get(key)
            if known is None or (known.type == "entity" and type_ != "entity"):
                entities[key] = ExtractedEntity(name=name, type=type_, confidence=0.9, text=matched[:300])

        for match in URL.finditer(text):
            url = match.group(0).rstrip(URL_TRAILING)
            add(url, "url", url)
        stripped = URL.sub(" ", text)  # a URL's path must not yield tags or names
        for match in EMAIL.finditer(stripped):
            add(match.group(0), "email", match.group(0))
        stripped = EMAIL.sub(" ", stripped)
        for match in WIKI.finditer(stripped):
            add(match.group(1), "concept", match.group(0))
        for match in TAG.finditer(stripped):
            add(match.group(1), "topic", match.group(0))
        for match in AT_MENTION.finditer(stripped):
            add("@" + match.group(1), "person", match.group(0))
        if any("A" <= c <= "Z" for c in stripped):
            for match in MULTI_NAME.finditer(WIKI.sub(" ", stripped)):
                words = _strip_leading_stop(match.group(0).split())
                if len(words) >= 2:
                    add(" ".join(words), "entity", match.group(0))

        relations: list[ExtractedRelation] = []
        has_cjk = re.search(f"[{CJK}]", stripped) is not None
        for sentence_match in SENTENCE.finditer(stripped):
            sentence = sentence_match.group(0).strip()
            if not sentence:
                continue
            candidates: list[tuple[Pattern, str, str]] = []
            if any("A" <= c <= "Z" for c in sentence) or "@" in sentence or "[[" in sentence:
                for pattern in EN_PATTERNS:
                    for m in pattern.regex.finditer(sentence):
                        candidates.append((pattern, m.group("s"), m.group("o") or m.group("p")))
            if has_cjk and ZH_ANCHORS.search(sentence):
                for pattern in ZH_PATTERNS:
                    candidates += [(pattern, subject, obj) for subject, obj in zh_matches(pattern, sentence)]
            if not candidates:
                continue
            valid_at, invalid_at = _time_hints(sentence)
            for pattern, raw_source, raw_target in candidates:
                is_zh = pattern in ZH_PATTERNS
                source, source_forced = (_zh_subject(raw_source), None) if is_zh else _participant(raw_source)
                target, target_forced = (clean_name(raw_target), None) if is_zh else _participant(raw_target)
                if is_zh:
                    target = re.sub(r"(?:项目|工作|了)$", "", target) or target
                if not source or not target or normalise_key(source) == normalise_key(target):
                    continue
                add(source, source_forced or pattern.source_type, raw_source)
                add(target, target_forced or pattern.target_type, raw_target)
                relations.append(
                    ExtractedRelation(
                        source=source,
                        target=target,
                        predicate=pattern.predicate,
                        fact=sentence[:2000],
                        confidence=0.8,
                        valid_at=valid_at,
                        invalid_at=invalid_at,
                        replaces_previous=pattern.replaces_previous or pattern.predicate in SINGLE_VALUED_PREDICATES,
                    )
                )
        return Extraction(entities=list(entities.values()), relations=relations)
