"""Markdown (Obsidian-style) notes: frontmatter, heading-based chunks, tags and [[links]].

A chunk is the text under one heading (with the heading trail above it);
sections longer than the cap are split at paragraph, line or sentence
boundaries with an overlap. Each chunk's content starts with the note title
and heading trail, so a chunk found on its own still says where it is from,
and equal paragraphs in two notes stay two memories.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import yaml

FRONTMATTER = re.compile(r"\A---[ \t]*\r?\n(.*?)\r?\n(?:---|\.\.\.)[ \t]*(?:\r?\n|\Z)", re.DOTALL)
# The title's trailing spaces and closing #s are stripped in Python: "(.+?)[ \t#]*$" was quadratic
# on a long line of " #" pairs.
HEADING = re.compile(r"^(#{1,6})[ \t]+(.+)$")
FENCE = re.compile(r"^(```|~~~)")
INLINE_TAG = re.compile(r"(?<![\w/&#\[])#([A-Za-z][\w/\-]{0,98})")
WIKILINK = re.compile(r"\[\[([^\[\]|#^]{1,500})(?:#[^\[\]|]{0,500})?(?:\|[^\[\]]{0,500})?\]\]")
MAX_FRONTMATTER_CHARS = 20_000
MAX_METADATA_JSON = 16_000
MAX_TAGS = 50
MAX_LINKS = 200


class NotText(ValueError):
    """The file is not readable text (binary content or invalid UTF-8)."""


@dataclass
class Chunk:
    content: str
    heading_trail: list[str]
    index: int


@dataclass
class ParsedNote:
    title: str
    frontmatter: dict[str, Any]
    tags: list[str]
    links: list[str]
    chunks: list[Chunk] = field(default_factory=list)
    frontmatter_error: str = ""


class _NoAliasLoader(yaml.SafeLoader):
    """SafeLoader without anchors/aliases: an alias bomb in frontmatter cannot expand."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            raise yaml.YAMLError("YAML aliases are not allowed in frontmatter")
        return super().compose_node(parent, index)


def decode_text(raw: bytes) -> str:
    if b"\x00" in raw[:8192] or b"\x00" in raw:
        raise NotText("binary content (NUL bytes), not a text file")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise NotText(f"not valid UTF-8 (byte {exc.start})") from exc
    controls = sum(1 for ch in text[:4096] if ord(ch) < 32 and ch not in "\t\n\r\f")
    if controls > 8:
        raise NotText("binary content (control characters), not a text file")
    return text


def _jsonable(value: Any) -> Any:
    def default(obj: Any) -> str:
        return obj.isoformat() if isinstance(obj, datetime | date) else str(obj)

    return json.loads(json.dumps(value, default=default))


def parse_frontmatter(text: str) -> tuple[dict[str, Any], str, str]:
    """(frontmatter, body, error). Broken frontmatter is reported, and the body still indexed."""
    match = FRONTMATTER.match(text)
    if match is None:
        return {}, text, ""
    body = text[match.end() :]
    raw = match.group(1)
    if len(raw) > MAX_FRONTMATTER_CHARS:
        return {}, body, "frontmatter too large; ignored"
    try:
        data = yaml.load(raw, Loader=_NoAliasLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        return {}, body, f"invalid YAML frontmatter: {str(exc).splitlines()[0]}"
    if data is None:
        return {}, body, ""
    if not isinstance(data, dict):
        return {}, body, "frontmatter is not a mapping; ignored"
    data = _jsonable({str(k): v for k, v in data.items()})
    if len(json.dumps(data)) > MAX_METADATA_JSON:
        return {}, body, "frontmatter too large; ignored"
    return data, body, ""


def _frontmatter_tags(frontmatter: dict[str, Any]) -> list[str]:
    raw = frontmatter.get("tags", frontmatter.get("tag", []))
    if isinstance(raw, str):
        raw = re.split(r"[,\s]+", raw)
    if not isinstance(raw, list):
        return []
    return [str(t).strip().lstrip("#") for t in raw if str(t).strip().lstrip("#")]


def _sections(body: str) -> list[tuple[list[str], str]]:
    """(heading trail, text) per heading; headings inside code fences are text."""
    sections: list[tuple[list[str], list[str]]] = [([], [])]
    trail: list[tuple[int, str]] = []
    in_fence = False
    for line in body.splitlines():
        if FENCE.match(line.strip()):
            in_fence = not in_fence
        heading = None if in_fence else HEADING.match(line)
        if heading is None:
            sections[-1][1].append(line)
            continue
        raw = heading.group(2)
        level, title = len(heading.group(1)), (raw.rstrip(" \t#") or raw[:1]).strip()
        trail = [(lvl, t) for lvl, t in trail if lvl < level] + [(level, title)]
        sections.append(([t for _, t in trail], []))
    return [(heads, "\n".join(lines).strip()) for heads, lines in sections]


def split_text(text: str, cap: int, overlap: int) -> list[str]:
    """Pieces of at most `cap` characters, cut at the best boundary, each starting with
    up to `overlap` characters of the end of the previous piece."""
    if len(text) <= cap:
        return [text]
    pieces: list[str] = []
    start = 0
    while start < len(text):
        end = min(len(text), start + cap)
        if end < len(text):
            window = text[start:end]
            cut = -1
            for sep in ("\n\n", "\n", ". ", " "):
                cut = window.rfind(sep, cap // 2)
                if cut != -1:
                    end = start + cut + len(sep)
                    break
        pieces.append(text[start:end].strip())
        if end >= len(text):
            break
        start = max(end - overlap, start + 1)
        if overlap:  # begin the overlap at a word boundary
            space = text.find(" ", start, end)
            if space != -1:
                start = space + 1
    return [p for p in pieces if p]


def parse_note(text: str, default_title: str, cap: int, overlap: int) -> ParsedNote:
    frontmatter, body, error = parse_frontmatter(text)
    title = str(frontmatter.get("title") or default_title).strip() or default_title
    tags: list[str] = []
    for tag in _frontmatter_tags(frontmatter) + INLINE_TAG.findall(body):
        tag = tag[:100]
        if tag not in tags:
            tags.append(tag)
    links: list[str] = []
    for target in WIKILINK.findall(body):
        target = target.strip()
        if target and target not in links:
            links.append(target)
    note = ParsedNote(
        title=title, frontmatter=frontmatter, tags=tags[:MAX_TAGS], links=links[:MAX_LINKS], frontmatter_error=error
    )
    header_room = 300
    index = 0
    for trail, section in _sections(body):
        if not section:
            continue
        prefix = " > ".join([title, *trail])[:header_room]
        for piece in split_text(section, max(100, cap - len(prefix) - 2), overlap):
            note.chunks.append(Chunk(content=f"{prefix}\n\n{piece}", heading_trail=trail, index=index))
            index += 1
    return note
