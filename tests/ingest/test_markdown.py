from __future__ import annotations

from ingest.sources.markdown import NotText, decode_text, parse_note, split_text

NOTE = """---
title: Garden plan
tags: [garden, "#spring"]
created: 2024-03-01
---
Intro line about the #allotment and [[Seed list]].

# Beds
Tomatoes go in bed one. See [[Watering|the watering note]] and [[Compost#Heat]].

## North bed
Kale and chard.

```python
# not a heading
print("x")
```
"""


def test_it_chunks_by_heading_with_a_trail_and_keeps_frontmatter_tags_and_links() -> None:
    note = parse_note(NOTE, "garden", cap=1500, overlap=100)
    assert note.title == "Garden plan"
    assert note.frontmatter == {"title": "Garden plan", "tags": ["garden", "#spring"], "created": "2024-03-01"}
    assert note.tags == ["garden", "spring", "allotment"]
    assert note.links == ["Seed list", "Watering", "Compost"]
    trails = [chunk.heading_trail for chunk in note.chunks]
    assert trails == [[], ["Beds"], ["Beds", "North bed"]]
    assert note.chunks[2].content.startswith("Garden plan > Beds > North bed\n\n")
    assert "# not a heading" in note.chunks[2].content  # a comment inside a code fence stays text


def test_long_sections_are_split_under_the_cap_with_overlap() -> None:
    words = " ".join(f"word{i}" for i in range(2000))
    note = parse_note(f"# Long\n{words}", "long", cap=500, overlap=100)
    assert len(note.chunks) > 5
    assert all(len(chunk.content) <= 500 for chunk in note.chunks)
    first, second = note.chunks[0].content, note.chunks[1].content
    tail = first.split()[-1]
    assert tail in second  # the next piece repeats the end of the previous one


def test_split_text_leaves_short_text_alone() -> None:
    assert split_text("short", 100, 10) == ["short"]


def test_alias_bombs_and_broken_frontmatter_are_reported_not_expanded() -> None:
    bomb = "---\na: &a [x, x, x]\nb: &b [*a, *a, *a]\nc: [*b, *b, *b]\n---\nBody text.\n"
    note = parse_note(bomb, "bomb", 1500, 100)
    assert note.frontmatter == {}
    assert "aliases" in note.frontmatter_error
    assert note.chunks[0].content.endswith("Body text.")
    broken = parse_note("---\n: : :\n  - [\n---\nStill indexed.\n", "broken", 1500, 100)
    assert broken.frontmatter_error.startswith("invalid YAML")
    assert "Still indexed." in broken.chunks[0].content


def test_binary_content_is_not_text() -> None:
    for raw in (b"\x89PNG\r\n\x1a\n\x00\x00\x00IHDR", b"\xff\xfe\xfa bad utf8"):
        try:
            decode_text(raw)
        except NotText:
            continue
        raise AssertionError(f"{raw!r} was accepted as text")
    assert decode_text("héllo".encode()) == "héllo"
