"""The plain types a source produces and the job runner consumes: sources depend on these, never on
the runner or the services."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from memory.services import MemoryInput


@dataclass
class SourceItem:
    """One unit of a source (a message, an e-mail, a record, a document) and its memories."""

    key: str
    label: str
    inputs: list[MemoryInput] = field(default_factory=list)
    error: str = ""  # could not be read: counted failed
    skip: str = ""  # deliberately not imported (bot noise, file share, empty): counted skipped


class SourceError(Exception):
    """The source as a whole cannot be imported (corrupt archive, unreadable file)."""


def chunked(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    batch: list[Any] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch
