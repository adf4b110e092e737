"""The MCP server: lists the registered tools and runs a call as the caller.

One `Server` (the SDK's low-level server) serves every transport; what differs
is how the caller's Principal is found (`PrincipalSource`): the HTTP mount puts
the authenticated principal into the ASGI scope of each request, the stdio
command resolves its configured tenant or key on each call.

Tool code is synchronous Django code. It runs on a small dedicated thread pool,
never on the event loop: a plain worker thread reuses its thread-local
database connection (checked out of the process's pool) between calls.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import uuid
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any, TypeVar

import mcp_types as types
from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import close_old_connections
from django.http import Http404
from mcp.server import Server, ServerRequestContext
from rest_framework.exceptions import ValidationError

from accounts.principal import Principal
from core.errors import InvalidInput, first_error
from core.request_context import RequestInfo, reset_request_info, set_request_info
from mcp_server.registry import CALL_CHECKS, ToolError, ToolSpec, autodiscover, register_call_check, validate_arguments

logger = logging.getLogger(__name__)

T = TypeVar("T")
PrincipalSource = Callable[[ServerRequestContext[Any, Any]], Awaitable[Principal]]

SERVER_NAME = "easymemory"
INSTRUCTIONS = (
    "EasyMemory is the user's long-term memory, shared with their other assistants. Before answering anything "
    "that may depend on earlier conversations (preferences, people, projects, decisions), call memory_search. "
    "When you learn something durable, store it with memory_add as a short self-contained statement; correct "
    "outdated memories with memory_update rather than adding contradictions."
)

_executor: ThreadPoolExecutor | None = None


def _db_executor() -> ThreadPoolExecutor:
    global _executor
    if _executor is None:
        _executor = ThreadPoolExecutor(max_workers=settings.EASYMEMORY_MCP_THREADS, thread_name_prefix="mcp-db")
    return _executor


def _in_db_thread(fn: Callable[..., T], *args: Any) -> T:
    # What Django's request_started / request_finished do for a view: hand the
    # connection back to the pool (or drop it when broken).
    close_old_connections()
    try:
        return fn(*args)
    finally:
        close_old_connections()


async def run_db(fn: Callable[..., T], *args: Any) -> T:
    """Run synchronous Django code on the MCP thread pool."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_db_executor(), partial(_in_db_thread, fn, *args))


def request_info_for(ctx: ServerRequestContext[Any, Any]) -> RequestInfo:
    """Request id, client address and user agent of the HTTP request carrying this call (empty on stdio)."""
    request = ctx.request
    scope = getattr(request, "scope", None)
    if not isinstance(scope, dict):
        return RequestInfo(request_id=uuid.uuid4().hex, user_agent="mcp-stdio")
    return scope.get("easymemory.request_info") or RequestInfo(request_id=uuid.uuid4().hex)


@register_call_check
def rate_limit_call(principal: Principal, tool_name: str) -> None:
    """The shared per-credential limiter (accounts.ratelimit): one MCP tool call costs what one REST request does."""
    from accounts.ratelimit import rate_limit_check

    decision = rate_limit_check(principal)
    if not decision.allowed:
        raise ToolError(f"rate limited: retry in {max(1, math.ceil(decision.retry_after))} s")


def _error(message: str) -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(text=message)], is_error=True)


def _result(data: Any) -> types.CallToolResult:
    text = json.dumps(data, cls=DjangoJSONEncoder, ensure_ascii=False, separators=(",", ":"))
    structured = json.loads(text) if isinstance(data, dict) else None
    return types.CallToolResult(content=[types.TextContent(text=text)], structured_content=structured)


def invoke_tool(spec: ToolSpec, principal: Principal, arguments: dict[str, Any], info: RequestInfo) -> Any:
    """Run one tool call as `principal` (sync, on a DB thread). Raises ToolError for refusals."""
    token = set_request_info(info)
    try:
        # Per-call checks (the shared rate limiter) come first: a refused call costs nothing else.
        for check in CALL_CHECKS:
            check(principal, spec.name)
        if not principal.has_scope(spec.scope):
            raise ToolError(
                f"forbidden: {spec.name} needs the {spec.scope} scope, which this credential "
                f"(role {principal.role.value}) does not have"
            )
        validate_arguments(spec, arguments)
        try:
            return spec.handler(principal, arguments)
        except InvalidInput as exc:
            raise ToolError(f"invalid argument {exc.field}: {exc.message}") from exc
        except ValidationError as exc:
            field, message = first_error(exc.detail)
            raise ToolError(f"invalid argument {field or '(arguments)'}: {message}") from exc
        except Http404 as exc:
            raise ToolError(f"not found: no such {spec.subject} in this workspace") from exc
    finally:
        reset_request_info(token)


def build_server(principal_source: PrincipalSource) -> Server[Any]:
    tools = autodiscover()

    def describe(spec: ToolSpec) -> types.Tool:
        title = spec.title or spec.name.replace("_", " ").capitalize()
        return types.Tool(
            name=spec.name,
            title=title,
            description=spec.description,
            input_schema=spec.input_schema,
            output_schema=spec.output_schema,
            annotations=types.ToolAnnotations(
                title=title,
                read_only_hint=spec.read_only,
                destructive_hint=spec.destructive,
                idempotent_hint=bool(spec.idempotent),
                # Everything a tool touches is this server's own memory: a closed world.
                open_world_hint=False,
            ),
        )

    async def list_tools(
        ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        return types.ListToolsResult(tools=[describe(spec) for spec in tools.values()])

    async def call_tool(
        ctx: ServerRequestContext[Any, Any], params: types.CallToolRequestParams
    ) -> types.CallToolResult:
        spec = tools.get(params.name)
        if spec is None:
            return _error(f"unknown tool {params.name!r}; available: {', '.join(tools)}")
        try:
            principal = await principal_source(ctx)
            data = await run_db(invoke_tool, spec, principal, dict(params.arguments or {}), request_info_for(ctx))
        except ToolError as exc:
            return _error(str(exc))
        except Exception:
            # Never let a tool bug end the session: log it, tell the model something went wrong.
            info = request_info_for(ctx)
            logger.exception("MCP tool %s failed (request %s)", spec.name, info.request_id)
            return _error(f"internal error in {spec.name}; the server log has the details (request {info.request_id})")
        return _result(data)

    from mcp_server.surface import surface_handlers

    server: Server[Any] = Server(
        SERVER_NAME,
        version=_version(),
        instructions=INSTRUCTIONS,
        on_list_tools=list_tools,
        on_call_tool=call_tool,
        **surface_handlers(tools, principal_source, run_db, invoke_tool, request_info_for),
    )
    return server


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("easymemory")
    except PackageNotFoundError:
        return "0.1.0"
