"""The asynchronous client (same methods as EasyMemory, awaited)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from typing import Any, TypeVar, Unpack

import httpx

from easymemory_client import _ops as ops
from easymemory_client._core import (
    USER_AGENT,
    Call,
    Op,
    RetryPolicy,
    TokenState,
    next_params,
    raise_for,
    retry_after_seconds,
    token_request,
)
from easymemory_client.errors import JobFailed, TransportError
from easymemory_client.models import (
    Entity,
    EntityDetail,
    GraphPath,
    HistoryEntry,
    Job,
    Memory,
    Relation,
    SearchResult,
    SkippedMemory,
    Subgraph,
)

T = TypeVar("T")


class AsyncEasyMemory:
    """A client for one EasyMemory server and credential.

    Give `api_key`, or `client_id` and `client_secret` for OAuth2 client credentials (the token is
    fetched on first use, renewed before it expires, and once more if the server refuses it).
    """

    def __init__(
        self,
        base_url: str = "http://127.0.0.1:8100",
        *,
        api_key: str | None = None,
        client_id: str | None = None,
        client_secret: str | None = None,
        scope: str | None = None,
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        http_client: httpx.AsyncClient | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if not api_key and not (client_id and client_secret):
            raise ValueError("give api_key, or client_id and client_secret")
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.client_id, self.client_secret, self.scope = client_id, client_secret, scope
        self.retry = retry or RetryPolicy()
        self.token = TokenState()
        self._sleep = sleep
        self._own_http = http_client is None
        self.http = http_client or httpx.AsyncClient(
            base_url=self.base_url, timeout=timeout, headers={"User-Agent": USER_AGENT}
        )
        self.admin = AsyncAdmin(self)
        self._token_lock = asyncio.Lock()

    # --- plumbing --------------------------------------------------------------------------
    async def aclose(self) -> None:
        if self._own_http:
            await self.http.aclose()

    async def __aenter__(self) -> AsyncEasyMemory:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def _fetch_token(self) -> str:
        data = token_request(str(self.client_id), str(self.client_secret), self.scope)
        response = await self._send(Call("POST", "/oauth/token"), auth=False, form=data)
        raise_for(response)
        return self.token.store(response.json())

    async def _authorization(self) -> str:
        if self.api_key:
            return f"Bearer {self.api_key}"
        async with self._token_lock:  # one token fetch for many concurrent calls
            if not self.token.valid():
                await self._fetch_token()
        return f"Bearer {self.token.token}"

    async def _send(self, call: Call, *, auth: bool = True, form: dict[str, str] | None = None) -> httpx.Response:
        attempt = 0
        while True:
            headers = {"Authorization": await self._authorization()} if auth else {}
            try:
                request = self.http.build_request(
                    call.method,
                    self.base_url + call.path,
                    params=call.params,
                    json=call.json if call.files is None and form is None else None,
                    data=form,
                    files=call.files,
                    headers=headers,
                )
                response = await self.http.send(request, stream=call.stream)
            except httpx.TransportError as exc:
                if attempt >= self.retry.max_retries or not self.retry.should_retry_error(call.method, exc):
                    raise TransportError(f"{call.method} {call.path}: {exc!r}") from exc
                await self._sleep(self.retry.delay(attempt, None))
                attempt += 1
                continue
            if response.status_code == 401 and auth and not self.api_key and attempt == 0:
                # The token may have been revoked or expired early: fetch a new one, once.
                await response.aclose()
                self.token = TokenState(fetched=self.token.fetched)
                attempt += 1
                continue
            if attempt < self.retry.max_retries and self.retry.should_retry_status(call.method, response.status_code):
                wait = retry_after_seconds(response)
                await response.aclose()
                await self._sleep(self.retry.delay(attempt, wait))
                attempt += 1
                continue
            return response

    async def _run(self, op: Op[T]) -> T:
        response = await self._send(op.call)
        if response.status_code >= 400 and op.call.stream:
            await response.aread()
        raise_for(response)
        return op.parse(response)

    async def _pages(
        self, first: Callable[[dict[str, Any]], Op[tuple[list[T], str | None]]], params: dict[str, Any]
    ) -> AsyncIterator[T]:
        while True:
            items, next_url = await self._run(first(params))
            for item in items:
                yield item
            following = next_params(next_url)
            if following is None:
                return
            params = {**params, **following}

    # --- memories --------------------------------------------------------------------------
    async def add(self, content: str, **fields: Unpack[ops.MemoryInput]) -> Memory | SkippedMemory:
        """Store one memory. An identical memory in the same scope is returned (`created=False`).
        A `message` the memory policy does not keep comes back as SkippedMemory."""
        return await self._run(ops.add({**fields, "content": content}))

    async def add_many(self, items: list[ops.MemoryInput]) -> list[Memory | SkippedMemory]:
        """Store up to the server's batch limit of memories in one request (all or nothing)."""
        return await self._run(ops.add_many(items))

    async def get(self, memory_id: str) -> Memory:
        return await self._run(ops.get(memory_id))

    async def update(self, memory_id: str, **changes: Any) -> Memory:
        """Change content, kind, metadata, tags, occurred_at, expires_at or importance (a new version)."""
        return await self._run(ops.update(memory_id, changes))

    async def delete(self, memory_id: str) -> None:
        await self._run(ops.delete(memory_id))

    async def history(self, memory_id: str) -> list[HistoryEntry]:
        return await self._run(ops.history(memory_id))

    def list(self, *, page_size: int = 100, **filters: Unpack[ops.Filters]) -> AsyncIterator[Memory]:
        """Every memory matching the filters, newest first, fetched page by page as you iterate."""
        return self._pages(lambda p: ops.memory_page(filters, p), {"limit": page_size})

    async def forget_user(self, user_ref: str) -> int:
        """Delete every memory of one end user; returns how many were deleted."""
        return await self._run(ops.forget_user(user_ref))

    async def search(
        self,
        query: str,
        *,
        k: int = 10,
        filters: ops.Filters | None = None,
        weights: dict[str, float] | None = None,
        as_of: datetime | str | None = None,
    ) -> SearchResult:
        """Hybrid search (meaning, keywords, graph). `weights` tunes the fusion, e.g. {"vector": 2};
        `as_of` asks what was known at that moment."""
        return await self._run(ops.search(query, k=k, filters=filters, weights=weights, as_of=as_of))

    async def stats(self) -> dict[str, Any]:
        return await self._run(ops.stats())

    # --- graph -----------------------------------------------------------------------------
    def entities(self, q: str = "", *, type: str = "", page_size: int = 100) -> AsyncIterator[Entity]:
        return self._pages(ops.entity_page, {"q": q or None, "type": type or None, "limit": page_size})

    async def entity(self, entity_id: int) -> EntityDetail:
        return await self._run(ops.entity(entity_id))

    async def delete_entity(self, entity_id: int) -> None:
        await self._run(ops.entity_delete(entity_id))

    async def merge_entities(self, target: int, sources: list[int]) -> EntityDetail:
        return await self._run(ops.entity_merge(target, sources))

    async def neighbors(self, entity_id: int, *, depth: int = 1, as_of: datetime | str | None = None) -> Subgraph:
        return await self._run(ops.neighbors(entity_id, depth, as_of))

    async def path(
        self, source: int, target: int, *, max_depth: int = 4, as_of: datetime | str | None = None
    ) -> GraphPath:
        return await self._run(ops.path(source, target, max_depth, as_of))

    async def export_graph(self, *, as_of: datetime | str | None = None) -> Subgraph:
        return await self._run(ops.graph_export(as_of))

    async def export_graphml(self, *, as_of: datetime | str | None = None) -> str:
        return await self._run(ops.graph_export_graphml(as_of))

    async def add_relation(
        self,
        source: ops.EntityArg,
        target: ops.EntityArg,
        predicate: str,
        *,
        fact: str = "",
        confidence: float = 1.0,
        valid_at: datetime | str | None = None,
        invalid_at: datetime | str | None = None,
    ) -> Relation:
        """Add a relation; `source`/`target` are entity ids or names (found or created)."""
        op = ops.relation_add(
            source, target, predicate, fact=fact, confidence=confidence, valid_at=valid_at, invalid_at=invalid_at
        )
        return await self._run(op)

    async def relation(self, relation_id: int) -> Relation:
        return await self._run(ops.relation(relation_id))

    async def delete_relation(self, relation_id: int) -> None:
        await self._run(ops.relation_delete(relation_id))

    # --- imports, jobs, export ---------------------------------------------------------------
    async def upload_file(self, source: ops.Upload) -> Job:
        """Import a document (markdown, text, PDF, DOCX, ...): a path, or (name, bytes)."""
        return await self._run(ops.upload("file", source))

    async def import_json(self, source: ops.Upload) -> Job:
        """Import a JSON / JSONL export (EasyMemory's own or Mem0-style)."""
        return await self._run(ops.upload("json", source))

    async def import_slack(self, source: ops.Upload) -> Job:
        return await self._run(ops.upload("slack", source))

    async def import_mbox(self, source: ops.Upload) -> Job:
        return await self._run(ops.upload("mbox", source))

    async def index_directory(self, path: str, *, pattern: str = "*.md", recursive: bool = True) -> Job:
        """Index a directory on the server (allowed only below its EASYMEMORY_IMPORT_ROOTS)."""
        return await self._run(ops.index_directory(path, pattern, recursive))

    async def job(self, job_id: str) -> Job:
        return await self._run(ops.job(job_id))

    def jobs(self, *, page_size: int = 50) -> AsyncIterator[Job]:
        return self._pages(ops.job_page, {"limit": page_size})

    async def wait_for_job(
        self,
        job: Job | str,
        *,
        timeout: float = 600.0,
        poll: float = 0.5,
        on_progress: Callable[[Job], None] | None = None,
        raise_on_failure: bool = True,
    ) -> Job:
        """Poll a job until it is done or failed, calling `on_progress` with each new state."""
        job_id = job.id if isinstance(job, Job) else job
        deadline = time.monotonic() + timeout
        last: tuple[str, int, int, int] | None = None
        while True:
            current = await self.job(job_id)
            state = (current.status, current.done, current.skipped, current.failed)
            if on_progress is not None and state != last:
                on_progress(current)
            last = state
            if current.finished:
                if current.status == "failed" and raise_on_failure:
                    raise JobFailed(current)
                return current
            if time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} still {current.status} after {timeout}s")
            await self._sleep(poll)

    async def export(self) -> AsyncIterator[dict[str, Any]]:
        """The tenant's export as JSON objects, streamed: header, entity, relation and memory records
        (the JSONL that import_json reads)."""
        response = await self._send(ops.EXPORT)
        try:
            if response.status_code >= 400:
                await response.aread()
                raise_for(response)
            async for line in response.aiter_lines():
                if line.strip():
                    yield json.loads(line)
        finally:
            await response.aclose()

    # --- audit -----------------------------------------------------------------------------
    async def audit_events(self, *, page_size: int = 100, **filters: Any) -> AsyncIterator[dict[str, Any]]:
        """Audit events of the tenant (admin role), newest first; filters as in GET /v1/audit."""
        params: dict[str, Any] = {**filters, "limit": page_size}
        while True:
            page = await self._run(ops.audit(params))
            for event in page["results"]:
                yield event
            if not page.get("next_cursor"):
                return
            params["cursor"] = page["next_cursor"]


class AsyncAdmin:
    """The admin API (/v1/admin/…): API keys, OAuth apps, members; tenants for a superuser."""

    def __init__(self, client: AsyncEasyMemory) -> None:
        self._c = client

    async def _do(self, method: str, path: str, body: Any = None) -> Any:
        return await self._c._run(ops.admin(method, path, body))

    async def api_keys(self) -> list[dict[str, Any]]:
        return await self._do("GET", "api-keys")

    async def create_api_key(
        self,
        name: str,
        *,
        role: str = "writer",
        expires_at: datetime | str | None = None,
        rate_limit_per_min: int | None = None,
        rate_limit_burst: int | None = None,
    ) -> dict[str, Any]:
        """The answer holds `secret`, shown this once. A rate limit left as None is the server's default."""
        return await self._c._run(ops.api_key_create(name, role, expires_at, rate_limit_per_min, rate_limit_burst))

    async def api_key(self, key_id: str) -> dict[str, Any]:
        return await self._do("GET", f"api-keys/{key_id}")

    async def revoke_api_key(self, key_id: str) -> dict[str, Any]:
        return await self._do("DELETE", f"api-keys/{key_id}")

    async def oauth_apps(self) -> list[dict[str, Any]]:
        return await self._do("GET", "oauth-apps")

    async def create_oauth_app(self, name: str, *, role: str = "reader") -> dict[str, Any]:
        """The answer holds `client_id` and `client_secret` (shown this once)."""
        return await self._do("POST", "oauth-apps", {"name": name, "role": role})

    async def oauth_app(self, app_id: str) -> dict[str, Any]:
        return await self._do("GET", f"oauth-apps/{app_id}")

    async def delete_oauth_app(self, app_id: str) -> None:
        await self._do("DELETE", f"oauth-apps/{app_id}")

    async def rotate_oauth_secret(self, app_id: str) -> dict[str, Any]:
        return await self._do("POST", f"oauth-apps/{app_id}/rotate-secret")

    async def members(self) -> list[dict[str, Any]]:
        return await self._do("GET", "members")

    async def add_member(self, username: str, *, role: str = "reader") -> dict[str, Any]:
        return await self._do("POST", "members", {"username": username, "role": role})

    async def member(self, member_id: str) -> dict[str, Any]:
        return await self._do("GET", f"members/{member_id}")

    async def set_member_role(self, member_id: str, role: str) -> dict[str, Any]:
        return await self._do("PATCH", f"members/{member_id}", {"role": role})

    async def remove_member(self, member_id: str) -> None:
        await self._do("DELETE", f"members/{member_id}")

    async def tenants(self) -> list[dict[str, Any]]:
        return await self._do("GET", "tenants")

    async def create_tenant(self, name: str, *, slug: str = "") -> dict[str, Any]:
        return await self._do("POST", "tenants", {"name": name, "slug": slug})

    async def tenant(self, tenant_id: str) -> dict[str, Any]:
        return await self._do("GET", f"tenants/{tenant_id}")

    async def delete_tenant(self, tenant_id: str) -> None:
        await self._do("DELETE", f"tenants/{tenant_id}")


__all__ = ["AsyncAdmin", "AsyncEasyMemory"]
