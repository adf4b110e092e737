"""Planner settings that apply to one search statement alone (core.db_routing.fetch_with_settings)."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection, transaction

from core.db_routing import fetch_with_settings


def _setting(name: str) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_setting(%s)", [name])
        return str(cursor.fetchone()[0])


@pytest.mark.django_db(transaction=True)
def test_outside_a_transaction_the_settings_end_with_the_statement(transactional_db: Any) -> None:
    assert not connection.in_atomic_block
    rows = fetch_with_settings(
        connection,
        [("enable_seqscan", "off"), ("work_mem", "8MB")],
        "SELECT current_setting('enable_seqscan'), current_setting('work_mem'), %s::int + 1",
        [41],
    )
    assert rows == [("off", "8MB", 42)]
    assert _setting("enable_seqscan") == "on"
    assert _setting("work_mem") != "8MB"


@pytest.mark.django_db
def test_inside_a_transaction_the_settings_are_put_back_afterwards() -> None:
    with transaction.atomic():
        before = _setting("work_mem")
        rows = fetch_with_settings(
            connection, [("enable_seqscan", "off"), ("work_mem", "8MB")], "SELECT current_setting('enable_seqscan')", []
        )
        assert rows == [("off",)]
        assert _setting("enable_seqscan") == "on"
        assert _setting("work_mem") == before
