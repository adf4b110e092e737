from __future__ import annotations

from datetime import datetime
from typing import Any

from accounts.principal import Principal
from graph.services import graph_extract_memories
from memory.models import Memory
from memory.services import MemoryInput, memory_create


def remember(who: Any, content: str, *, occurred_at: datetime | None = None, **extra: Any) -> Memory:
    """Store a memory (as a Persona or Principal) and run the graph enrichment step on it, as the worker would."""
    principal: Principal = getattr(who, "principal", who)
    memory = memory_create(
        principal=principal, data=MemoryInput(content=content, occurred_at=occurred_at, **extra)
    ).memory
    graph_extract_memories([str(memory.pk)])
    memory.refresh_from_db()
    return memory
