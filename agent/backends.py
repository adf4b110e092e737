"""Where the chat agent's memories live: this machine's data directory (the services, in process)
or a remote server (the Python SDK). Both offer the same small set of operations."""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
AGENT_ID = "easymemory-chat"


@dataclass(frozen=True)
class Recalled:
    id: str
    content: str
    score: float = 0.0
    signals: tuple[str, ...] = ()


@dataclass(frozen=True)
class Scope:
    user_ref: str
    session_id: str


class MemoryBackend(Protocol):
    def recall(self, query: str, k: int) -> list[Recalled]: ...

    def remember(self, text: str) -> Recalled: ...

    def store_turns(self, turns: list[tuple[str, str]]) -> int: ...

    def forget(self, target: str) -> Recalled | None: ...

    def add_file(self, path: str) -> str: ...

    def recent(self, limit: int) -> list[Recalled]: ...


def _signals(evidence: dict[str, Any]) -> tuple[str, ...]:
    return tuple(name for name, detail in evidence.items() if isinstance(detail, dict))


class LocalBackend:
    """The tenant's memories in this machine's database, through the same services as the API."""

    def __init__(self, *, tenant_slug: str, scope: Scope) -> None:
        from accounts.cli_support import system_principal

        self.principal = system_principal(tenant_slug)
        self.scope = scope

    def _filters(self) -> Any:
        from memory.selectors import MemoryFilters

        return MemoryFilters(user_ref=self.scope.user_ref)

    def recall(self, query: str, k: int) -> list[Recalled]:
        from memory.search import search

        hits = search(self.principal, query, k=k, filters=self._filters(), weights={})
        return [Recalled(str(h.memory.id), h.memory.content, h.score, _signals(h.evidence)) for h in hits]

    def _create(self, items: list[Any]) -> list[Any]:
        from memory.services import memory_create_many

        return memory_create_many(principal=self.principal, items=items)

    def _input(self, text: str, kind: str, metadata: dict[str, Any]) -> Any:
        from memory.services import MemoryInput

        return MemoryInput(
            content=text, kind=kind, metadata=metadata, user_ref=self.scope.user_ref, agent_id=AGENT_ID,
            session_id=self.scope.session_id,
        )  # fmt: skip

    def remember(self, text: str) -> Recalled:
        result = self._create([self._input(text, "note", {"source": "chat /remember"})])[0]
        return Recalled(str(result.memory.id), result.memory.content)

    def store_turns(self, turns: list[tuple[str, str]]) -> int:
        results = self._create([self._input(text, "message", {"role": role}) for role, text in turns if text.strip()])
        return sum(1 for r in results if r.memory is not None)

    def forget(self, target: str) -> Recalled | None:
        from django.http import Http404

        from memory.selectors import memory_get_for
        from memory.services import memory_delete

        if UUID.fullmatch(target.strip()):
            try:
                memory = memory_get_for(self.principal, target.strip())
            except Http404:
                return None
            memory_delete(principal=self.principal, memory=memory)
            return Recalled(str(memory.id), memory.content)
        found = self.recall(target, 1)
        if not found:
            return None
        return self.forget(found[0].id)

    def add_file(self, path: str) -> str:
        from ingest import services
        from ingest.cli import read_source
        from ingest.models import JobKind

        name, data = read_source(path)
        job = services.job_create(
            principal=self.principal, kind=JobKind.FILE, params={"filename": name, "size": len(data)},
            upload=(name, data), enqueue=False,
        )  # fmt: skip
        finished = services.job_run(str(job.id))
        assert finished is not None
        return f"{name}: {finished.status}, {finished.memories_created} memories created"

    def recent(self, limit: int) -> list[Recalled]:
        from memory.selectors import memory_list_for

        rows = memory_list_for(self.principal, self._filters())[:limit]
        return [Recalled(str(m.id), m.content) for m in rows]


def _import_client() -> Any:
    try:
        import easymemory_client
    except ImportError:
        # From a source checkout the client sits beside the server; use it without installing it.
        source = Path(__file__).resolve().parent.parent / "clients" / "python" / "src"
        if not source.is_dir():
            raise
        sys.path.insert(0, str(source))
        import easymemory_client
    return easymemory_client


class RemoteBackend:
    """Memories on an EasyMemory server, through the Python SDK."""

    def __init__(self, *, url: str, api_key: str, scope: Scope, timeout: float = 120.0) -> None:
        sdk = _import_client()
        self.errors = sdk.EasyMemoryError
        self.client = sdk.EasyMemory(url, api_key=api_key, timeout=timeout)
        self.scope = scope

    def recall(self, query: str, k: int) -> list[Recalled]:
        hits = self.client.search(query, k=k, filters={"user_ref": self.scope.user_ref})
        return [Recalled(h.memory.id, h.memory.content, h.score, _signals(h.evidence)) for h in hits]

    def _fields(self) -> dict[str, str]:
        return {"user_ref": self.scope.user_ref, "agent_id": AGENT_ID, "session_id": self.scope.session_id}

    def remember(self, text: str) -> Recalled:
        memory = self.client.add(text, kind="note", metadata={"source": "chat /remember"}, **self._fields())
        return Recalled(memory.id, memory.content)

    def store_turns(self, turns: list[tuple[str, str]]) -> int:
        items = [
            {"content": text, "kind": "message", "metadata": {"role": role}, **self._fields()}
            for role, text in turns
            if text.strip()
        ]
        if not items:
            return 0
        return sum(1 for r in self.client.add_many(items) if getattr(r, "id", None))

    def forget(self, target: str) -> Recalled | None:
        if UUID.fullmatch(target.strip()):
            try:
                memory = self.client.get(target.strip())
            except self.errors:
                return None
            self.client.delete(memory.id)
            return Recalled(memory.id, memory.content)
        found = self.recall(target, 1)
        if not found:
            return None
        self.client.delete(found[0].id)
        return found[0]

    def add_file(self, path: str) -> str:
        job = self.client.wait_for_job(self.client.upload_file(path), timeout=600)
        return f"{Path(path).name}: {job.status}, {job.memories_created} memories created"

    def recent(self, limit: int) -> list[Recalled]:
        rows = []
        for memory in self.client.list(page_size=min(limit, 100), user_ref=self.scope.user_ref):
            rows.append(Recalled(memory.id, memory.content))
            if len(rows) >= limit:
                break
        return rows
