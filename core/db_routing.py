"""Search reads on a streaming replica (DATABASE_REPLICA_URL); everything else on the primary.

Django routers choose a database per model, not per use, so the choice is made by where the
read happens: `search()` runs inside `replica_reads()`, and within it the ORM's reads and the raw
SQL that search runs through `read_connection` go to the replica alias. Writes made meanwhile
(audit, term statistics) still go to the primary (`db_for_write`). Without a replica configured
every read stays on "default" and nothing changes.

A replica lags its primary by its replay delay: a memory is searchable there once it is embedded
and replayed, which an asynchronous embedding already makes "shortly after the write".
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, TypeVar

from django.conf import settings
from django.db import connections

REPLICA = "replica"
_replica_reads: ContextVar[bool] = ContextVar("easymemory_replica_reads", default=False)


def read_alias() -> str:
    return REPLICA if _replica_reads.get() and REPLICA in settings.DATABASES else "default"


@contextmanager
def replica_reads() -> Iterator[None]:
    token = _replica_reads.set(True)
    try:
        yield
    finally:
        _replica_reads.reset(token)


F = TypeVar("F", bound=Callable[..., Any])


def reads_from_replica(fn: F) -> F:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with replica_reads():
            return fn(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


class _ReadConnection:
    """Stands where `django.db.connection` stood in read-only code: the connection of `read_alias()`."""

    def __getattr__(self, name: str) -> Any:
        return getattr(connections[read_alias()], name)


read_connection: Any = _ReadConnection()


class ReplicaRouter:
    def db_for_read(self, model: Any, **hints: Any) -> str | None:
        return REPLICA if _replica_reads.get() else None

    def db_for_write(self, model: Any, **hints: Any) -> str:
        return "default"

    def allow_relation(self, obj1: Any, obj2: Any, **hints: Any) -> bool:
        return True  # one database, two copies of it

    def allow_migrate(self, db: str, app_label: str, **hints: Any) -> bool:
        return db == "default"  # the replica follows the primary's schema by replication


def fetch_with_settings(
    connection: Any, settings_: Sequence[tuple[str, str]], sql: str, params: Sequence[Any]
) -> list[tuple[Any, ...]]:
    """The rows of `sql`, run with these planner settings for it alone, in one round trip.

    Outside a transaction the settings and the statement go in one simple-protocol message
    (Django's cursors bind parameters on the client), which PostgreSQL runs as one implicit
    transaction, so `set_config(…, true)` ends with it: no BEGIN, SET and COMMIT of their own.
    Inside a caller's transaction the settings are set, and put back once the rows are read."""
    names = [name for name, _ in settings_]
    assign = ", ".join("set_config(%s, %s, true)" for _ in settings_)
    values = [part for pair in settings_ for part in pair]
    with connection.cursor() as cursor:
        if not connection.in_atomic_block:
            cursor.execute(f"SELECT {assign}; {sql}", [*values, *params])  # scoped: as each caller marks it
            cursor.nextset()
            return list(cursor.fetchall())
        current = ", ".join("current_setting(%s, true)" for _ in names)
        cursor.execute(f"SELECT {current}", names)  # unscoped: reads settings, no table
        before = cursor.fetchone()
        cursor.execute(f"SELECT {assign}", values)  # unscoped: sets settings, no table
        try:
            cursor.execute(sql, params)  # scoped: as each caller marks it
            return list(cursor.fetchall())
        finally:
            restore = [part for name, old in zip(names, before, strict=True) for part in (name, old or "")]
            cursor.execute(f"SELECT {assign}", restore)  # unscoped: sets settings, no table
