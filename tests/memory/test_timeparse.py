from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest

from memory.timeparse import time_windows

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def test_it_reads_a_full_date_as_that_day_and_the_days_after() -> None:
    (window,) = time_windows("What did Gina find on 1 February, 2023?", NOW)
    assert window.start == datetime(2023, 2, 1, tzinfo=UTC)
    assert window.contains(datetime(2023, 2, 1, 18, 0, tzinfo=UTC))
    assert window.contains(datetime(2023, 2, 8, tzinfo=UTC))  # talked about a week later
    assert not window.contains(datetime(2023, 1, 31, tzinfo=UTC))
    assert not window.contains(datetime(2023, 3, 1, tzinfo=UTC))
    (same,) = time_windows("the painting shown on October 13th, 2023", NOW)
    assert same.start == datetime(2023, 10, 13, tzinfo=UTC)


def test_a_month_and_year_is_read_once_not_again_as_a_bare_year() -> None:
    (window,) = time_windows("What setback did Melanie face in October 2023?", NOW)
    assert (window.start, window.end.date().isoformat()) == (datetime(2023, 10, 1, tzinfo=UTC), "2023-10-31")
    (year,) = time_windows("How often did she go to the beach in 2023?", NOW)
    assert year.contains(datetime(2023, 7, 4, tzinfo=UTC)) and not year.contains(datetime(2022, 7, 4, tzinfo=UTC))


def test_a_month_without_a_year_matches_that_month_of_any_year() -> None:
    (window,) = time_windows("When did Melanie go camping in June?", NOW)
    assert window.contains(datetime(2023, 6, 20, tzinfo=UTC))
    assert window.contains(datetime(2021, 6, 2, tzinfo=UTC))
    assert not window.contains(datetime(2023, 8, 20, tzinfo=UTC))


def test_relative_expressions_count_back_from_now() -> None:
    (weeks,) = time_windows("what did I cook two weeks ago", NOW)
    assert weeks.contains(datetime(2026, 11, 17, tzinfo=UTC))
    assert not weeks.contains(datetime(2026, 10, 1, tzinfo=UTC))
    (yesterday,) = time_windows("the call yesterday", NOW)
    assert yesterday.contains(datetime(2026, 11, 30, 15, 0, tzinfo=UTC))
    (last_month,) = time_windows("books I read last month", NOW)
    assert last_month.contains(datetime(2026, 11, 1, tzinfo=UTC))


@pytest.mark.parametrize(
    "query", ["May I ask about the garden?", "room 2023 is booked", "a march against the war", "no dates here"]
)
def test_words_that_only_look_like_dates_name_no_time(query: str) -> None:
    assert time_windows(query, NOW) == []


def test_an_impossible_day_is_ignored() -> None:
    assert time_windows("on 31 February, 2023", NOW) == []


@pytest.mark.parametrize(
    "text",
    [
        "1 " * 5_000,
        "may " * 2_500,
        "in " * 3_000 + "x",
        "31st January, " * 800,
        "two " * 2_500 + "weeks",
    ],
)
def test_it_takes_linear_time_on_hostile_queries(text: str) -> None:
    started = time.perf_counter()
    time_windows(text, NOW)
    assert time.perf_counter() - started < 1.0
