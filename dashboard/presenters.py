"""Server-side rendering helpers: word diffs for history, and a small SVG bar chart."""

from __future__ import annotations

import difflib
import json
import re
from dataclasses import dataclass
from typing import Any

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe

from dashboard.selectors import DayCount

_WORDS = re.compile(r"\s+|[^\s]+")


def word_diff(old: str | None, new: str | None) -> SafeString:
    """`old` → `new` as HTML with <del>/<ins> around changed words; both sides escaped."""
    a = _WORDS.findall(old or "")
    b = _WORDS.findall(new or "")
    parts: list[SafeString] = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes():
        if op == "equal":
            parts.append(format_html("{}", "".join(a[i1:i2])))
            continue
        if i2 > i1:
            parts.append(format_html("<del>{}</del>", "".join(a[i1:i2])))
        if j2 > j1:
            parts.append(format_html("<ins>{}</ins>", "".join(b[j1:j2])))
    return mark_safe("".join(parts))  # noqa: S308 - every part went through format_html


def json_text(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, default=str) if value else ""


@dataclass(frozen=True)
class HistoryRow:
    entry: Any
    content_diff: SafeString
    metadata_changed: bool
    old_metadata: str
    new_metadata: str
    actor: str


def history_rows(history: Any, actor_labels: dict[str, str]) -> list[HistoryRow]:
    rows = []
    for entry in history:
        rows.append(
            HistoryRow(
                entry=entry,
                content_diff=word_diff(entry.old_content, entry.new_content),
                metadata_changed=(entry.old_metadata or {}) != (entry.new_metadata or {}),
                old_metadata=json_text(entry.old_metadata),
                new_metadata=json_text(entry.new_metadata),
                actor=actor_labels.get(entry.actor, entry.actor),
            )
        )
    return rows


def _xy(anchor: tuple[float, str], y: int) -> tuple[float, int, str]:
    return anchor[0], y, anchor[1]


def bar_chart(days: list[DayCount], *, width: int = 720, height: int = 160) -> SafeString:
    """Memories per day as an inline SVG (no script needed); each bar has a <title> tooltip."""
    if not days:
        return mark_safe("")  # noqa: S308 - constant
    top = max(day.count for day in days) or 1
    pad_left, pad_bottom, pad_top = 32, 20, 8
    plot_w, plot_h = width - pad_left, height - pad_bottom - pad_top
    slot = plot_w / len(days)
    bars = []
    for index, day in enumerate(days):
        bar_h = round(plot_h * day.count / top, 1)
        x = round(pad_left + index * slot + slot * 0.15, 1)
        y = round(pad_top + plot_h - bar_h, 1)
        bars.append((x, y, round(slot * 0.7, 1), max(bar_h, 0), f"{day.day:%a %d %b}: {day.count}"))
    rects = format_html_join(
        "",
        '<rect class="bar" x="{}" y="{}" width="{}" height="{}" rx="2"><title>{}</title></rect>',
        bars,
    )
    last = len(days) - 1

    def anchored(i: int) -> tuple[float, str]:
        # The last label ends at the chart's right edge instead of centring past it (it was cut off).
        centre = round(pad_left + i * slot + slot / 2, 1)
        return (float(width), "end") if i == last else (centre, "middle")

    labels = format_html_join(
        "",
        '<text class="tick" x="{}" y="{}" text-anchor="{}">{}</text>',
        (
            (*_xy(anchored(i), height - 5), f"{day.day:%d %b}")
            for i, day in enumerate(days)
            if (last - i) % 7 == 0
        ),
    )
    return format_html(
        '<svg class="chart" viewBox="0 0 {w} {h}" role="img" aria-label="Memories added per day">'
        '<line class="axis" x1="{pl}" y1="{base}" x2="{w}" y2="{base}"/>'
        '<text class="tick" x="{lx}" y="{ty}" text-anchor="end">{top}</text>'
        '<text class="tick" x="{lx}" y="{base}" text-anchor="end">0</text>'
        "{rects}{labels}</svg>",
        w=width,
        h=height,
        pl=pad_left,
        base=pad_top + plot_h,
        lx=pad_left - 6,
        ty=pad_top + 8,
        top=top,
        rects=rects,
        labels=labels,
    )


def human_bytes(value: int) -> str:
    size = float(value)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if size < 1024 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{value} B"


def relation_timeline(relations: list[dict[str, Any]], *, entity_id: int, now: Any, width: int = 720) -> SafeString:
    """Relations of one entity as bars on a time axis: when each fact held (valid_at → invalid_at,
    or when it was learnt → retired when the world time is unknown). Open bars are still true."""
    if not relations:
        return mark_safe("")  # noqa: S308 - constant
    rows = []
    for rel in relations:
        start = rel["valid_at"] or rel["created_at"]
        end = rel["invalid_at"] or rel["expired_at"]
        other = rel["target"] if rel["source"]["id"] == entity_id else rel["source"]
        arrow = "→" if rel["source"]["id"] == entity_id else "←"
        rows.append((start, end, f"{arrow} {rel['predicate']} {other['name']}", rel["current"]))
    first = min(start for start, _, _, _ in rows)
    span = max((now - first).total_seconds(), 86400.0)
    label_w, row_h, pad = 220, 22, 6
    plot_w = width - label_w - pad
    height = row_h * len(rows) + 24

    def x(moment: Any) -> float:
        return round(label_w + plot_w * (moment - first).total_seconds() / span, 1)

    bars = []
    for index, (start, end, label, current) in enumerate(rows):
        y = index * row_h + 4
        x1 = x(start)
        x2 = x(end or now)
        tip = f"{label}: {start:%Y-%m-%d} – {f'{end:%Y-%m-%d}' if end else 'now'}"
        bars.append((y + 12, label[:38], x1, y + 3, max(x2 - x1, 3), "current" if current else "past", tip))
    body = format_html_join(
        "",
        '<text class="tl-label" x="0" y="{}">{}</text>'
        '<rect class="tl-bar {}" x="{}" y="{}" width="{}" height="12" rx="3"><title>{}</title></rect>',
        ((ly, label, kind, x1, by, w, tip) for ly, label, x1, by, w, kind, tip in bars),
    )
    axis_y = row_h * len(rows) + 8
    return format_html(
        '<svg class="timeline-chart" viewBox="0 0 {w} {h}" role="img" aria-label="Relations over time">{body}'
        '<line class="axis" x1="{lw}" y1="{ay}" x2="{w}" y2="{ay}"/>'
        '<text class="tick" x="{lw}" y="{ty}">{first}</text>'
        '<text class="tick" x="{w}" y="{ty}" text-anchor="end">now</text></svg>',
        w=width,
        h=height,
        body=body,
        lw=label_w,
        ay=axis_y,
        ty=axis_y + 12,
        first=f"{first:%Y-%m-%d}",
    )


@dataclass(frozen=True)
class Signal:
    name: str
    rank: int | None  # None for shares that are not a ranked list (context from session neighbours)
    score: float
    contribution: float
    share: int  # percent of the hit's fused score


@dataclass(frozen=True)
class Explanation:
    signals: list[Signal]
    adjustment: dict[str, float]  # importance / recency factors the search applied, if any


def explain(evidence: dict[str, Any], *, weights: dict[str, float], rrf_k: int) -> Explanation:
    """Each signal's part of a hit's fused score, as the search computed it: a ranked list adds
    weight / (k + rank); a share passed on by neighbours (no rank) adds its score."""
    parts: dict[str, tuple[int | None, float, float]] = {}
    adjustment: dict[str, float] = {}
    for name, ev in evidence.items():
        if not isinstance(ev, dict):
            continue
        if "rank" in ev:
            rank = int(ev["rank"])
            parts[name] = (rank, float(ev.get("score", 0.0)), weights.get(name, 1.0) / (rrf_k + rank))
        elif "score" in ev:
            parts[name] = (None, float(ev["score"]), float(ev["score"]))
        else:
            adjustment.update({key: float(value) for key, value in ev.items() if isinstance(value, int | float)})
    total = sum(part for _, _, part in parts.values()) or 1.0
    signals = [
        Signal(name=name, rank=rank, score=score, contribution=part, share=round(100 * part / total))
        for name, (rank, score, part) in parts.items()
    ]
    return Explanation(signals=sorted(signals, key=lambda s: -s.contribution), adjustment=adjustment)
