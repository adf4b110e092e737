"""What every extractor returns, the JSON schema LLMs must follow, and the
repair of replies that local models often get slightly wrong."""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import jsonschema
from django.utils.dateparse import parse_date, parse_datetime
from django.utils.timezone import is_naive, make_aware

MAX_NAME = 300
MAX_PREDICATE = 100

# Predicates that hold one value at a time for a given source: a new value closes the old one.
SINGLE_VALUED_PREDICATES = frozenset(
    {"lives_in", "works_at", "role", "married_to", "reports_to", "located_in", "ceo_of", "age", "status", "title"}
)

EXTRACTION_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "entities": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "name": {"type": "string", "minLength": 1, "maxLength": MAX_NAME},
                    "type": {"type": "string"},
                    "confidence": {"type": "number", "minimum": 0, "maximum": 1},
                    "aliases": {"type": "array", "items": {"type": "string"}},
                },
                "required": ["name", "type"],
            },
        },
        "relations": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "source": {"type": "string", "minLength": 1},
                    "target": {"type": "string", "minLength": 1},
                    "predicate": {"type": "string", "minLength": 1},
                    "fact": {"type": "string"},
                    "confidence": {"type": "number", "minimum": 0, "maximum": 1},
                    "valid_at": {"type": ["string", "null"]},
                    "invalid_at": {"type": ["string", "null"]},
                    "replaces_previous": {"type": "boolean"},
                    "ends": {"type": "array", "items": {"type": "string"}},
                },
                "required": ["source", "target", "predicate"],
            },
        },
    },
    "required": ["entities", "relations"],
}

SYSTEM_PROMPT = (
    "You extract a knowledge graph from one memory of a personal or team memory store. "
    "Return only a JSON object matching the schema: `entities` (name as written, type such as person, "
    "organisation, project, place, tool, concept, event; confidence 0-1; aliases) and `relations` "
    "(source and target entity names, predicate as a short snake_case verb phrase such as works_at, "
    "lives_in, works_on, knows, uses, likes, role; fact as one sentence; confidence; valid_at / invalid_at "
    "as ISO dates when the text says when the fact started or ended, else null; replaces_previous=true "
    "when the fact supersedes an earlier value of the same predicate, e.g. a move or a new job; "
    "ends = predicates the fact ends between the same two entities, e.g. [\"works_at\"] for "
    "`left`/`retired_from` a company). "
    "Write names in the language of the text. Do not explain. No markdown."
)


class ExtractionError(Exception):
    """The provider answered, but no valid extraction could be obtained (after repair and one retry)."""


class TransientProviderError(Exception):
    """Rate limits, server errors, timeouts: worth retrying later."""


@dataclass(frozen=True)
class ProviderConfig:
    provider: str = "offline"
    model: str = ""
    base_url: str = ""
    api_key: str = ""
    timeout: float = 60.0
    max_retries: int = 3
    backoff: float = 1.0  # seconds; doubled per attempt, plus jitter
    max_backoff: float = 30.0


@dataclass(frozen=True)
class ExtractedEntity:
    name: str
    type: str = "entity"
    confidence: float = 1.0
    aliases: tuple[str, ...] = ()
    text: str = ""  # the matched text in the memory


@dataclass(frozen=True)
class ExtractedRelation:
    source: str
    target: str
    predicate: str
    fact: str = ""
    confidence: float = 1.0
    valid_at: datetime | None = None
    invalid_at: datetime | None = None
    replaces_previous: bool = False
    # Predicates this fact ends between the same source and target: "Marco left Acme" (predicate
    # `left`) ends a current works_at(Marco, Acme) without naming a new employer.
    ends: tuple[str, ...] = ()


@dataclass
class Extraction:
    entities: list[ExtractedEntity] = field(default_factory=list)
    relations: list[ExtractedRelation] = field(default_factory=list)


class Extractor(Protocol):
    name: str
    model: str
    # True when extraction waits on the network: the caller releases its DB connection first.
    remote: bool

    def extract(self, text: str) -> Extraction: ...


def normalise_key(name: str) -> str:
    """NFKC, case-folded, whitespace-collapsed: two spellings with the same key are one entity."""
    return " ".join(unicodedata.normalize("NFKC", name).casefold().split())[:MAX_NAME]


def clean_name(name: str) -> str:
    return " ".join(unicodedata.normalize("NFKC", name).split())[:MAX_NAME]


_PREDICATE_JUNK = re.compile(r"[^\w]+", re.UNICODE)


def normalise_predicate(predicate: str) -> str:
    """'Works At' / 'works-at' / 'works at' → 'works_at'."""
    text = unicodedata.normalize("NFKC", predicate).casefold().strip()
    return _PREDICATE_JUNK.sub("_", text).strip("_")[:MAX_PREDICATE] or "related_to"


def parse_when(value: Any) -> datetime | None:
    """An ISO date or date-time (or a bare year) from a model's time hint; None when absent or unreadable."""
    if not value or not isinstance(value, str):
        return None
    value = value.strip()
    if re.fullmatch(r"\d{4}", value):
        value = f"{value}-01-01"
    elif re.fullmatch(r"\d{4}-\d{2}", value):
        value = f"{value}-01"
    try:
        moment = parse_datetime(value)
        if moment is None:
            day = parse_date(value)
            if day is None:
                return None
            moment = datetime(day.year, day.month, day.day, tzinfo=UTC)
    except ValueError:
        return None
    return make_aware(moment, UTC) if is_naive(moment) else moment


_THINK_OPEN = re.compile(r"<(think|thinking|reasoning)>", re.IGNORECASE)
_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.DOTALL | re.IGNORECASE)
_TRAILING_COMMA = re.compile(r",\s*([}\]])")


def strip_reasoning(reply: str) -> str:
    """`reply` without <think>…</think> (or thinking / reasoning) blocks. Done with find() rather
    than a lazy regex, which rescanned the rest of the reply from every unclosed opening tag."""
    folded = reply.lower()
    kept: list[str] = []
    position = search_from = 0
    unclosed: set[str] = set()  # a tag with no closing tag after one opening has none after later ones
    while (opening := _THINK_OPEN.search(reply, search_from)) is not None:
        tag = opening.group(1).lower()
        end = -1 if tag in unclosed else folded.find(f"</{tag}>", opening.end())
        if end == -1:  # kept as text; a block of another tag may start inside it
            unclosed.add(tag)
            search_from = opening.end()
            continue
        kept.append(reply[position : opening.start()])
        position = search_from = end + len(tag) + 3
    kept.append(reply[position:])
    return "".join(kept)


def _balanced_object(text: str) -> str | None:
    """The first complete top-level {...} in text, honouring strings."""
    start = text.find("{")
    while start != -1:
        depth = 0
        in_string = False
        escaped = False
        for index in range(start, len(text)):
            char = text[index]
            if in_string:
                if escaped:
                    escaped = False
                elif char == "\\":
                    escaped = True
                elif char == '"':
                    in_string = False
            elif char == '"':
                in_string = True
            elif char == "{":
                depth += 1
            elif char == "}":
                depth -= 1
                if depth == 0:
                    return text[start : index + 1]
        start = text.find("{", start + 1)
    return None


def repair_json(reply: str) -> Any:
    """Parse a model reply as JSON, repairing the usual damage: <think> blocks, reasoning
    text around the object, markdown fences, trailing commas. Raises ValueError if hopeless."""
    text = strip_reasoning(reply)
    # An unclosed <think> (reply cut short): drop everything up to the first brace after it.
    lowered = text.lower()
    if "<think>" in lowered and "</think>" not in lowered:
        text = text[lowered.index("<think>") + len("<think>") :]
    text = text.strip()
    candidates = [text]
    candidates += [match.strip() for match in _FENCE.findall(text)]
    obj = _balanced_object(text)
    if obj:
        candidates.append(obj)
    last_error: Exception | None = None
    for candidate in candidates:
        for attempt in (candidate, _TRAILING_COMMA.sub(r"\1", candidate)):
            try:
                return json.loads(attempt)
            except json.JSONDecodeError as exc:
                last_error = exc
    raise ValueError(f"reply is not JSON ({last_error})")


def validate_extraction(data: Any) -> Extraction:
    """Check a decoded reply against EXTRACTION_SCHEMA and build an Extraction. Raises ValueError."""
    if isinstance(data, dict) and "entities" in data and "relations" not in data:
        data = {**data, "relations": []}  # a graph with no relations is a valid answer
    try:
        jsonschema.validate(data, EXTRACTION_SCHEMA)
    except jsonschema.ValidationError as exc:
        where = "/".join(str(part) for part in exc.absolute_path) or "reply"
        raise ValueError(f"reply does not match the schema at {where}: {exc.message}") from exc
    entities = []
    for item in data["entities"]:
        name = clean_name(item["name"])
        if not name:
            continue
        entities.append(
            ExtractedEntity(
                name=name,
                type=normalise_predicate(item.get("type") or "entity")[:60],
                confidence=float(item.get("confidence", 1.0)),
                aliases=tuple(clean_name(a) for a in item.get("aliases", []) if clean_name(a)),
                text=name,
            )
        )
    relations = []
    for item in data["relations"]:
        source, target = clean_name(item["source"]), clean_name(item["target"])
        if not source or not target or normalise_key(source) == normalise_key(target):
            continue
        relations.append(
            ExtractedRelation(
                source=source,
                target=target,
                predicate=normalise_predicate(item["predicate"]),
                fact=str(item.get("fact") or "")[:2000],
                confidence=float(item.get("confidence", 1.0)),
                valid_at=parse_when(item.get("valid_at")),
                invalid_at=parse_when(item.get("invalid_at")),
                replaces_previous=bool(item.get("replaces_previous", False)),
                ends=tuple(normalise_predicate(p) for p in item.get("ends", []) if p.strip())[:10],
            )
        )
    return Extraction(entities=entities, relations=relations)


def parse_reply(reply: str | dict[str, Any]) -> Extraction:
    data = reply if isinstance(reply, dict) else repair_json(reply)
    return validate_extraction(data)
