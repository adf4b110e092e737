"""MCP resources and prompts beside the tools.

Resources (`memory://…`) are read-only views a client can attach as context:
a memory or an entity by id (templates), the newest memories, the entity index
and the statistics. Each read runs the matching tool (same scope check, rate
limit, validation, 404 for foreign ids, audit), so a resource can never show
more than the tool would.

Prompts are templates a person picks in their client ("recall what I know
about X"); they only phrase a request that the model then fulfils with the tools.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import mcp_types as types
from django.core.serializers.json import DjangoJSONEncoder
from mcp.server import ServerRequestContext
from mcp.shared.exceptions import MCPError
from mcp_types import INVALID_PARAMS

from accounts.principal import Principal
from core.request_context import RequestInfo
from mcp_server.registry import ToolError, ToolSpec

JSON = "application/json"
MAX_PROMPT_ARGUMENT = 1000

# Anchored, bounded patterns: a URI is matched in linear time whatever its length.
MEMORY_URI = re.compile(r"memory://memories/([0-9a-fA-F-]{36})")
ENTITY_URI = re.compile(r"memory://entities/([0-9]{1,18})")


@dataclass(frozen=True)
class FixedResource:
    uri: str
    name: str
    description: str
    tool: str
    arguments: dict[str, Any]


FIXED = [
    FixedResource(
        "memory://memories/recent",
        "Recent memories",
        "The 20 newest memories of this workspace, newest first (JSON).",
        "memory_list",
        {"limit": 20},
    ),
    FixedResource(
        "memory://entities",
        "Entities",
        "The people, organizations, places and projects the memory knows about (up to 50, JSON).",
        "entity_search",
        {"limit": 50},
    ),
    FixedResource(
        "memory://stats",
        "Memory statistics",
        "How many memories, by kind, how many still await their embedding, the model in use (JSON).",
        "memory_stats",
        {},
    ),
]
TEMPLATES = [
    types.ResourceTemplate(
        name="memory",
        title="A memory by id",
        uri_template="memory://memories/{id}",
        description="One memory in full (content, kind, tags, metadata, scope, timestamps, version), as JSON.",
        mime_type=JSON,
    ),
    types.ResourceTemplate(
        name="entity",
        title="An entity by id",
        uri_template="memory://entities/{id}",
        description="One entity: its names, relations (current and past) and the memories mentioning it, as JSON.",
        mime_type=JSON,
    ),
]


def resource_target(uri: str) -> tuple[str, dict[str, Any]]:
    """The tool and arguments that answer a resource URI; MCPError for anything else."""
    for fixed in FIXED:
        if uri == fixed.uri:
            return fixed.tool, dict(fixed.arguments)
    if len(uri) <= 100:
        if match := MEMORY_URI.fullmatch(uri):
            return "memory_get", {"id": match.group(1).lower()}
        if match := ENTITY_URI.fullmatch(uri):
            return "entity_get", {"id": int(match.group(1))}
    raise MCPError(INVALID_PARAMS, f"unknown resource {uri[:120]!r}; see resources/list and resources/templates/list")


@dataclass(frozen=True)
class PromptSpec:
    prompt: types.Prompt
    render: Callable[[dict[str, str]], str]


def _argument(name: str, description: str) -> types.PromptArgument:
    return types.PromptArgument(name=name, description=description, required=True)


PROMPTS = {
    spec.prompt.name: spec
    for spec in [
        PromptSpec(
            types.Prompt(
                name="recall",
                title="Recall what I know about…",
                description="Search the memory for a topic and summarize what is known, citing the memories.",
                arguments=[_argument("topic", "The person, project or question to recall.")],
            ),
            lambda a: (
                f"Recall what my memory holds about: {a['topic']}\n\n"
                "Call memory_search with that topic (and with one or two rephrasings if the first finds little). "
                "Summarize what the memories say, newest facts first; where memories disagree, say so and prefer "
                "the newer one. Cite each fact with its memory id. If nothing relevant is found, say so plainly "
                "instead of guessing."
            ),
        ),
        PromptSpec(
            types.Prompt(
                name="remember",
                title="Remember this",
                description="Store a fact in long-term memory, correcting an older version, not contradicting it.",
                arguments=[_argument("fact", "What to remember, in your own words.")],
            ),
            lambda a: (
                f"Remember this: {a['fact']}\n\n"
                "First call memory_search to see whether an older or contradicting memory exists. If one does, "
                "correct it with memory_update; otherwise store a short self-contained statement (who, what, when) "
                "with memory_add. Tell me what you stored or changed."
            ),
        ),
        PromptSpec(
            types.Prompt(
                name="entity_profile",
                title="Profile of a person, project or organization",
                description="What the knowledge graph knows about one entity and how it relates to others.",
                arguments=[_argument("name", "The name of the person, project, organization or place.")],
            ),
            lambda a: (
                f"Tell me what you know about {a['name']}.\n\n"
                "Call entity_search with the name, then entity_get and graph_neighbors for the best match. "
                "Describe who or what it is, its current relations (and past ones, with when they were true), and "
                "cite the memories that mention it. If several entities match, list them and ask which one I mean."
            ),
        ),
    ]
}


def prompt_render(name: str, arguments: dict[str, str] | None) -> types.GetPromptResult:
    spec = PROMPTS.get(name)
    if spec is None:
        raise MCPError(INVALID_PARAMS, f"unknown prompt {name[:100]!r}; available: {', '.join(PROMPTS)}")
    given = dict(arguments or {})
    values: dict[str, str] = {}
    for argument in spec.prompt.arguments or []:
        value = given.get(argument.name)
        if not isinstance(value, str) or not value.strip():
            raise MCPError(INVALID_PARAMS, f"invalid argument {argument.name}: this field is required")
        if len(value) > MAX_PROMPT_ARGUMENT:
            raise MCPError(
                INVALID_PARAMS, f"invalid argument {argument.name}: at most {MAX_PROMPT_ARGUMENT} characters"
            )
        values[argument.name] = " ".join(value.split())
    unknown = sorted(set(given) - set(values))
    if unknown:
        raise MCPError(INVALID_PARAMS, f"invalid argument {unknown[0][:100]}: unknown field")
    return types.GetPromptResult(
        description=spec.prompt.description,
        messages=[types.PromptMessage(role="user", content=types.TextContent(type="text", text=spec.render(values)))],
    )


Invoke = Callable[[ToolSpec, Principal, dict[str, Any], RequestInfo], Any]
RunDb = Callable[..., Awaitable[Any]]


def surface_handlers(
    tools: dict[str, ToolSpec],
    principal_source: Callable[[ServerRequestContext[Any, Any]], Awaitable[Principal]],
    run_db: RunDb,
    invoke: Invoke,
    request_info_for: Callable[[ServerRequestContext[Any, Any]], RequestInfo],
) -> dict[str, Any]:
    """The server's resource and prompt handlers (keyword arguments of mcp.server.Server)."""

    async def list_resources(
        ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams | None
    ) -> types.ListResourcesResult:
        principal = await principal_source(ctx)
        listed = [
            types.Resource(uri=f.uri, name=f.name, description=f.description, mime_type=JSON)
            for f in FIXED
            if f.tool in tools and principal.has_scope(tools[f.tool].scope)
        ]
        return types.ListResourcesResult(resources=listed)

    async def list_resource_templates(
        ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams | None
    ) -> types.ListResourceTemplatesResult:
        return types.ListResourceTemplatesResult(resource_templates=TEMPLATES)

    async def read_resource(
        ctx: ServerRequestContext[Any, Any], params: types.ReadResourceRequestParams
    ) -> types.ReadResourceResult:
        uri = str(params.uri)
        name, arguments = resource_target(uri)
        spec = tools.get(name)
        if spec is None:
            raise MCPError(INVALID_PARAMS, f"resource {uri!r} is not served here")
        principal = await principal_source(ctx)
        try:
            data = await run_db(invoke, spec, principal, arguments, request_info_for(ctx))
        except ToolError as exc:
            raise MCPError(INVALID_PARAMS, str(exc)) from exc
        text = json.dumps(data, cls=DjangoJSONEncoder, ensure_ascii=False, separators=(",", ":"))
        return types.ReadResourceResult(contents=[types.TextResourceContents(uri=uri, mime_type=JSON, text=text)])

    async def list_prompts(
        ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams | None
    ) -> types.ListPromptsResult:
        return types.ListPromptsResult(prompts=[spec.prompt for spec in PROMPTS.values()])

    async def get_prompt(
        ctx: ServerRequestContext[Any, Any], params: types.GetPromptRequestParams
    ) -> types.GetPromptResult:
        return prompt_render(params.name, params.arguments)

    return {
        "on_list_resources": list_resources,
        "on_list_resource_templates": list_resource_templates,
        "on_read_resource": read_resource,
        "on_list_prompts": list_prompts,
        "on_get_prompt": get_prompt,
    }
