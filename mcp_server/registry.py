"""The tool registry: every MCP tool, its JSON schema and the one scope it needs.

A tool is a thin edge: validate, look up through the access helpers, call one
service or selector, serialize. Tools are sync functions that receive the
caller's Principal and the (schema-checked) arguments and return JSON-able
data; the server runs them off the event loop and turns exceptions into MCP
tool errors. Every app adds tools from their own `mcp_tools` module (imported
by `autodiscover`) with `register_tool` or the `tool` decorator.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.utils.module_loading import autodiscover_modules
from jsonschema import Draft202012Validator

from accounts.principal import Principal
from core.inputs import json_problem, printable

ToolHandler = Callable[[Principal, dict[str, Any]], Any]


class ToolError(Exception):
    """A refusal the model should read (forbidden, not found, bad argument, rate limited)."""

    def __init__(self, message: str) -> None:
        super().__init__(printable(message))  # it may echo an argument: no lone surrogate may reach the wire


@dataclass(frozen=True)
class ToolSpec:
    name: str
    description: str
    input_schema: dict[str, Any]
    scope: str  # the one scope a caller needs, e.g. "memory:read"
    handler: ToolHandler
    read_only: bool = True
    destructive: bool = False
    subject: str = "memory"  # what "not found" refers to
    # Same arguments again change nothing more (MCP's idempotentHint); reads always are.
    idempotent: bool | None = None
    # JSON schema of the structured result (MCP outputSchema); clients validate results against it.
    output_schema: dict[str, Any] | None = None
    title: str | None = None
    validator: Draft202012Validator = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        Draft202012Validator.check_schema(self.input_schema)
        if self.output_schema is not None:
            Draft202012Validator.check_schema(self.output_schema)
        if self.idempotent is None:
            object.__setattr__(self, "idempotent", self.read_only)
        object.__setattr__(self, "validator", Draft202012Validator(self.input_schema))


TOOLS: dict[str, ToolSpec] = {}

# Output schema pieces shared by every app's tools.
TIME_OUT: dict[str, Any] = {"type": "string", "format": "date-time"}
NULLABLE_TIME_OUT: dict[str, Any] = {"type": ["string", "null"], "format": "date-time"}


def out_object(properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    """An output schema object (extra keys allowed, so adding a field never breaks a client)."""
    return {"type": "object", "properties": properties, "required": required}


def register_tool(spec: ToolSpec) -> ToolSpec:
    if spec.name in TOOLS and TOOLS[spec.name].handler is not spec.handler:
        raise ValueError(f"MCP tool {spec.name!r} is registered twice")
    TOOLS[spec.name] = spec
    return spec


def tool(
    name: str,
    *,
    scope: str,
    description: str,
    schema: dict[str, Any],
    read_only: bool = True,
    destructive: bool = False,
    subject: str = "memory",
    idempotent: bool | None = None,
    output_schema: dict[str, Any] | None = None,
    title: str | None = None,
) -> Callable[[ToolHandler], ToolHandler]:
    """Decorator form of `register_tool`."""

    def decorate(handler: ToolHandler) -> ToolHandler:
        register_tool(
            ToolSpec(
                name=name,
                description=description,
                input_schema=schema,
                scope=scope,
                handler=handler,
                read_only=read_only,
                destructive=destructive,
                subject=subject,
                idempotent=idempotent,
                output_schema=output_schema,
                title=title,
            )
        )
        return handler

    return decorate


_discovered = False


def autodiscover() -> dict[str, ToolSpec]:
    """Import every installed app's `mcp_tools` module once, in INSTALLED_APPS order, as the admin
    imports each app's `admin` module: an app adds tools by having that module, nothing here names it."""
    global _discovered
    if not _discovered:
        autodiscover_modules("mcp_tools")
        _discovered = True
    return TOOLS


# Checks run before every tool call, after authentication and before the scope
# check: the shared rate limiter registers itself here. A check refuses a call
# by raising ToolError (its message reaches the model, e.g. "rate limited: retry in 3 s").
CallCheck = Callable[[Principal, str], None]
CALL_CHECKS: list[CallCheck] = []


def register_call_check(check: CallCheck) -> CallCheck:
    if check not in CALL_CHECKS:
        CALL_CHECKS.append(check)
    return check


def validate_arguments(spec: ToolSpec, arguments: dict[str, Any]) -> None:
    """Check the arguments against the tool's schema; raise ToolError naming the first bad field.
    First, as the REST parser does for a body: nesting within EASYMEMORY_MAX_JSON_DEPTH and no text
    the database cannot store (NUL, lone surrogates), for every tool alike."""
    problem = json_problem(arguments, max_depth=settings.EASYMEMORY_MAX_JSON_DEPTH)
    if problem is not None:
        where, why = problem
        raise ToolError(f"invalid argument {where or '(arguments)'}: {why}")
    errors = sorted(spec.validator.iter_errors(arguments), key=lambda e: (len(e.absolute_path), str(e.absolute_path)))
    if not errors:
        return
    error = errors[0]
    where = ".".join(str(part) for part in error.absolute_path)
    if error.validator == "additionalProperties":
        unknown = sorted(set(error.instance) - set(error.schema.get("properties", {})))
        if unknown:
            where = f"{where}.{unknown[0]}" if where else unknown[0]
            raise ToolError(f"invalid argument {where}: unknown field")
    if error.validator == "required":
        missing = [name for name in error.validator_value if name not in error.instance]
        if missing:
            where = f"{where}.{missing[0]}" if where else missing[0]
            raise ToolError(f"invalid argument {where}: this field is required")
    message = error.message if len(error.message) <= 300 else error.message[:300] + "…"
    raise ToolError(f"invalid argument {where or '(arguments)'}: {message}")


def validated(serializer: Any) -> dict[str, Any]:
    """Tool arguments checked by the REST serializer, the one definition of valid input;
    its ValidationError becomes a tool error naming the field (see mcp_server.server)."""
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)
