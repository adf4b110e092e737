"""Tool behaviour that needs settings a shared live server cannot change, run in-process."""

from __future__ import annotations

from typing import Any

import pytest

from core.request_context import RequestInfo
from mcp_server.registry import ToolError, autodiscover, register_call_check
from mcp_server.server import invoke_tool
from memory.models import Memory
from tests.conftest import Persona


def call(persona: Persona, name: str, args: dict[str, Any]) -> Any:
    return invoke_tool(autodiscover()[name], persona.principal, args, RequestInfo(request_id="t"))


def test_it_reports_a_message_the_policy_declines(writer: Persona, settings: Any) -> None:
    settings.EASYMEMORY_MEMORY_POLICY = "off"
    out = call(writer, "memory_add", {"content": "we talked about lunch", "kind": "message"})
    assert out["created"] is False and out["memory"] is None and out["skipped"]
    assert not Memory.objects.exists()


def test_it_runs_the_per_call_checks_before_anything_else(reader: Persona, monkeypatch: Any) -> None:
    from mcp_server import registry

    seen: list[str] = []

    def refuse(principal: Any, tool_name: str) -> None:
        seen.append(tool_name)
        raise ToolError("rate limited: retry in 7 s")

    monkeypatch.setattr(registry, "CALL_CHECKS", list(registry.CALL_CHECKS))
    monkeypatch.setattr("mcp_server.server.CALL_CHECKS", registry.CALL_CHECKS)
    register_call_check(refuse)
    with pytest.raises(ToolError, match="rate limited"):
        call(reader, "memory_add", {"content": "x"})  # refused before the scope check would say forbidden
    assert seen == ["memory_add"]


def test_it_rate_limits_tool_calls_with_the_shared_limiter(writer: Persona, settings: Any) -> None:
    settings.EASYMEMORY_RATE_LIMIT_PER_MIN = 60
    settings.EASYMEMORY_RATE_LIMIT_BURST = 2
    call(writer, "memory_stats", {})
    call(writer, "memory_stats", {})
    with pytest.raises(ToolError, match=r"rate limited: retry in \d+ s"):
        call(writer, "memory_stats", {})
