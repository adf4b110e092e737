"""Time expressions in a search query ("in May 2023", "on 3 May, 2023", "last week", "two
months ago"), read without a model, as the interval they name.

Search uses the interval as a soft boost on a memory's `occurred_at`, never as a filter: a
conversation about an event usually happens on the day or in the days after it, so each interval
is widened a little forward (`FOLLOW_UP`). Every pattern has bounded repetition (linear time on
any input).
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

MONTHS = {name: number for number, name in enumerate(calendar.month_name) if name}
MONTHS.update({name[:3]: number for name, number in list(MONTHS.items())})
MONTHS = {name.lower(): number for name, number in MONTHS.items()}
MONTHS["sept"] = 9
_MONTH = r"(?P<month>" + "|".join(sorted(MONTHS, key=len, reverse=True)) + r")\.?"
_DAY = r"(?P<day>[0-3]?\d)(?:st|nd|rd|th)?"
_YEAR = r"(?P<year>(?:19|20)\d\d)"
NUMBER_WORDS = {
    "a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6,
    "seven": 7, "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12,
}  # fmt: skip
_COUNT = r"(?P<count>\d{1,3}|" + "|".join(NUMBER_WORDS) + r")"
_UNIT = r"(?P<unit>day|week|month|year)s?"

# Most specific first; each match consumes its text so "May 3, 2023" is not read again as "2023".
_PATTERNS = [
    ("day", re.compile(rf"\b{_DAY} {_MONTH},? {_YEAR}\b", re.I)),
    ("day", re.compile(rf"\b{_MONTH} {_DAY},? {_YEAR}\b", re.I)),
    ("month", re.compile(rf"\b{_MONTH},? (?:of )?{_YEAR}\b", re.I)),
    ("ago", re.compile(rf"\b{_COUNT} {_UNIT} ago\b", re.I)),
    ("last", re.compile(r"\b(?:last|past|previous) (?P<unit>week|weekend|month|year)\b", re.I)),
    ("yesterday", re.compile(r"\byesterday\b", re.I)),
    ("year", re.compile(rf"\b(?:in|during|since|of) {_YEAR}\b", re.I)),
    ("bare_month", re.compile(rf"\b(?:in|during|of|early|late|mid) {_MONTH}\b", re.I)),
]
# How long after an event people still talk about it as news.
FOLLOW_UP = timedelta(days=10)


@dataclass(frozen=True)
class TimeWindow:
    start: datetime
    end: datetime
    # A month named without a year matches that month of any year.
    month_only: int | None = None

    def contains(self, when: datetime) -> bool:
        if self.month_only is not None:
            shifted = when - FOLLOW_UP
            return self.month_only in (when.month, shifted.month)
        return self.start <= when <= self.end + FOLLOW_UP


def _month_end(year: int, month: int) -> datetime:
    return datetime(year, month, calendar.monthrange(year, month)[1], 23, 59, 59, tzinfo=UTC)


def time_windows(query: str, now: datetime) -> list[TimeWindow]:
    """Every time expression of the query as a window; [] when there is none."""
    windows: list[TimeWindow] = []
    text = query[:1000]
    for kind, pattern in _PATTERNS:
        for match in pattern.finditer(text):
            window = _window(kind, match, now)
            if window is not None:
                windows.append(window)
        text = pattern.sub(lambda m: " " * len(m.group(0)), text)
    return windows


def _window(kind: str, match: re.Match[str], now: datetime) -> TimeWindow | None:
    groups = match.groupdict()
    month = MONTHS.get((groups.get("month") or "").lower().rstrip("."))
    year = int(groups["year"]) if groups.get("year") else None
    if kind == "day" and month and year:
        day = int(groups["day"])
        if not 1 <= day <= calendar.monthrange(year, month)[1]:
            return None
        start = datetime(year, month, day, tzinfo=UTC)
        return TimeWindow(start=start, end=start + timedelta(days=1))
    if kind == "month" and month and year:
        return TimeWindow(start=datetime(year, month, 1, tzinfo=UTC), end=_month_end(year, month))
    if kind == "year" and year:
        return TimeWindow(start=datetime(year, 1, 1, tzinfo=UTC), end=_month_end(year, 12))
    if kind == "bare_month" and month:
        return TimeWindow(start=now, end=now, month_only=month)
    if kind == "yesterday":
        start = (now - timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
        return TimeWindow(start=start, end=start + timedelta(days=1))
    if kind in ("ago", "last"):
        unit = groups["unit"].lower()
        count = int(groups["count"]) if (groups.get("count") or "").isdigit() else NUMBER_WORDS.get(
            (groups.get("count") or "one").lower(), 1
        )
        span = {"day": 1, "week": 7, "weekend": 7, "month": 30, "year": 365}[unit]
        centre = now - timedelta(days=span * count)
        # "two weeks ago" is not to the day: half a unit either side.
        return TimeWindow(start=centre - timedelta(days=span / 2), end=min(now, centre + timedelta(days=span / 2)))
    return None
