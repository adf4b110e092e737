"""Hostile input gets a 4xx JSON naming the field and changes nothing, through every door
(issue 13, item 2 and the pagination/content items of 8)."""

from __future__ import annotations

import json
from io import StringIO
from typing import Any

import pytest
from django.core.management import CommandError, call_command

from core.request_context import RequestInfo
from mcp_server.registry import ToolError, autodiscover
from mcp_server.server import invoke_tool
from memory.models import Memory, MemoryHistory
from tests.conftest import Persona

pytestmark = pytest.mark.django_db

# 250 distinct terms in under 1,000 characters: the OR'ed full-text query of 231 terms or more
# overflowed Python's recursion limit while it was compiled.
MANY_TERMS = " ".join(f"t{i:02x}" for i in range(250))
# 300 Chinese characters make 299 distinct character pairs.
MANY_CJK = "".join(chr(0x4E00 + i) for i in range(300))
MANY_PHRASES = " ".join(f'"p{i:02x}"' for i in range(160))
MANY_EXCLUSIONS = "t01 " + " ".join(f"-x{i:02x}" for i in range(190))
DEEP = 5_000


def deep_object(levels: int) -> str:
    return '{"a":' * levels + "1" + "}" * levels


def client(persona: Persona) -> Any:
    api = persona.client()
    api.raise_request_exception = False  # a server error must show as a 500, not as a test error
    return api


def post(persona: Persona, path: str, payload: object) -> Any:
    return client(persona).post(path, data=json.dumps(payload), content_type="application/json")


def post_raw(persona: Persona, path: str, body: str) -> Any:
    return client(persona).generic("POST", path, body.encode(), content_type="application/json")


def assert_refused(response: Any, status: int, field: str) -> None:
    assert response.status_code == status, response.content[:300]
    body = response.json()
    assert body["error"]
    assert body["field"] == field or body["field"].startswith(field + "."), body


@pytest.mark.parametrize(
    ("metadata", "field"),
    [
        ({"a\x00": 1}, "metadata"),
        ({"a": "b\x00"}, "metadata.a"),
        ({"a": "\ud800"}, "metadata.a"),
        ({"\udfff": "x"}, "metadata"),
        ({"a": [1, {"b": "\x00"}]}, "metadata.a[1].b"),
    ],
)
def test_unstorable_text_in_metadata_is_a_400_on_create_and_update(
    writer: Persona, metadata: dict[str, Any], field: str
) -> None:
    assert_refused(post(writer, "/v1/memories", {"content": "fine", "metadata": metadata}), 400, field)
    assert not Memory.objects.exists()
    created = post(writer, "/v1/memories", {"content": "fine"}).json()
    patched = client(writer).patch(
        f"/v1/memories/{created['id']}", data=json.dumps({"metadata": metadata}), content_type="application/json"
    )
    assert_refused(patched, 400, field)
    assert Memory.objects.get(pk=created["id"]).metadata == {}
    assert MemoryHistory.objects.count() == 1


@pytest.mark.parametrize("value", ['"\\u0000"', '"\\ud800"', "NaN", deep_object(40)])
def test_unstorable_or_deep_metadata_filters_are_a_400(writer: Persona, value: str) -> None:
    listed = client(writer).get("/v1/memories", {"metadata": '{"a": ' + value + "}"})
    assert_refused(listed, 400, "metadata")
    searched = post_raw(writer, "/v1/search", '{"query": "x", "filters": {"metadata": {"a": ' + value + "}}}")
    assert_refused(searched, 400, "filters.metadata")


def test_metadata_nested_thousands_of_levels_deep_is_a_400(writer: Persona) -> None:
    response = post_raw(writer, "/v1/memories", '{"content": "x", "metadata": ' + deep_object(DEEP) + "}")
    assert_refused(response, 400, "body")
    response = post_raw(writer, "/v1/memories", '{"content": "x", "metadata": ' + deep_object(900) + "}")
    assert_refused(response, 400, "metadata")
    response = post_raw(writer, "/v1/memories", '{"content": "x", "metadata": ' + deep_object(17) + "}")
    assert_refused(response, 400, "metadata")
    assert not Memory.objects.exists()
    response = post_raw(writer, "/v1/memories", '{"content": "x", "metadata": ' + deep_object(15) + "}")
    assert response.status_code == 201


def test_metadata_over_its_size_limit_is_a_413(writer: Persona, settings: Any) -> None:
    settings.EASYMEMORY_MAX_METADATA_BYTES = 1_000
    response = post(writer, "/v1/memories", {"content": "x", "metadata": {"note": "y" * 2_000}})
    assert response.status_code in (400, 413)
    assert response.json()["field"] == "metadata"
    assert not Memory.objects.exists()


def test_non_finite_numbers_in_metadata_are_a_400(writer: Persona) -> None:
    assert_refused(post_raw(writer, "/v1/memories", '{"content": "x", "metadata": {"a": NaN}}'), 400, "metadata.a")
    assert_refused(post_raw(writer, "/v1/memories", '{"content": "x", "metadata": {"a": -Infinity}}'), 400, "metadata")
    assert not Memory.objects.exists()


def test_a_25_mb_body_is_the_documented_413_json(writer: Persona) -> None:
    body = json.dumps({"content": "x" * 25_000_000})
    response = post_raw(writer, "/v1/memories", body)
    assert_refused(response, 413, "body")
    assert not Memory.objects.exists()


@pytest.mark.parametrize("query", [MANY_TERMS, MANY_CJK, MANY_PHRASES, MANY_EXCLUSIONS])
def test_a_search_with_hundreds_of_terms_answers(writer: Persona, query: str) -> None:
    post(writer, "/v1/memories", {"content": "t0a and 丁丂 and p01"})
    response = post(writer, "/v1/search", {"query": query})
    assert response.status_code == 200, response.content[:300]


def test_a_search_over_the_term_cap_is_a_400(writer: Persona, settings: Any) -> None:
    settings.EASYMEMORY_MAX_QUERY_TERMS = 100
    assert_refused(post(writer, "/v1/search", {"query": MANY_TERMS}), 400, "query")
    assert post(writer, "/v1/search", {"query": " ".join(["same"] * 200)}).status_code == 200  # deduplicated


@pytest.mark.parametrize("payload", [{"content": 5}, {"content": ["x"]}, {"content": {"a": 1}}, {"content": True}])
def test_non_string_content_is_a_400(writer: Persona, payload: dict[str, Any]) -> None:
    assert_refused(post(writer, "/v1/memories", payload), 400, "content")
    assert not Memory.objects.exists()
    assert_refused(post(writer, "/v1/search", {"query": 5}), 400, "query")


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"cursor": "garbage"}, "cursor"),
        ({"cursor": "cD1ub3QtYS1kYXRl"}, "cursor"),  # base64 of "p=not-a-date"
        ({"cursor": "cD0lMDA="}, "cursor"),  # base64 of "p=%00"
        ({"limit": "0"}, "limit"),
        ({"limit": "-1"}, "limit"),
        ({"limit": "501"}, "limit"),
        ({"limit": "ten"}, "limit"),
    ],
)
def test_bad_pagination_parameters_are_a_400(writer: Persona, params: dict[str, str], field: str) -> None:
    assert_refused(client(writer).get("/v1/memories", params), 400, field)
    assert_refused(client(writer).get("/v1/jobs", params), 400, field)


@pytest.mark.parametrize(("params", "field"), [({"limit": "0"}, "limit"), ({"offset": "-3"}, "offset")])
def test_bad_entity_list_paging_is_a_400(reader: Persona, params: dict[str, str], field: str) -> None:
    assert_refused(client(reader).get("/v1/entities", params), 400, field)


def test_a_cursor_from_the_list_still_pages(writer: Persona) -> None:
    post(writer, "/v1/memories", [{"content": f"page item {i}"} for i in range(5)])
    first = client(writer).get("/v1/memories", {"limit": "2"}).json()
    second = client(writer).get(first["next"])
    assert second.status_code == 200 and len(second.json()["results"]) == 2


# --- the same refusals through the other doors -----------------------------------------


def call(persona: Persona, name: str, args: dict[str, Any]) -> Any:
    return invoke_tool(autodiscover()[name], persona.principal, args, RequestInfo(request_id="t"))


@pytest.mark.parametrize(
    ("name", "args", "field"),
    [
        ("memory_add", {"content": "x", "metadata": {"a": "\x00"}}, "metadata"),
        ("memory_add", {"content": "x", "metadata": {"a": "\ud800"}}, "metadata"),
        ("memory_add", {"content": "x", "metadata": json.loads(deep_object(900))}, "metadata"),
        ("memory_search", {"query": "x", "filters": {"metadata": {"a": "\x00"}}}, "filters.metadata"),
        ("memory_search", {"query": "x\ud800"}, "query"),
    ],
)
def test_mcp_tools_refuse_the_same_input(writer: Persona, name: str, args: dict[str, Any], field: str) -> None:
    with pytest.raises(ToolError, match=f"invalid argument {field}"):
        call(writer, name, args)
    assert not Memory.objects.exists()


@pytest.mark.parametrize("query", [MANY_TERMS, MANY_CJK])
def test_mcp_search_with_hundreds_of_terms_answers(writer: Persona, query: str) -> None:
    assert "results" in call(writer, "memory_search", {"query": query})


@pytest.mark.parametrize("query", [MANY_TERMS, MANY_CJK])
def test_the_cli_search_with_hundreds_of_terms_answers(writer: Persona, query: str) -> None:
    out = StringIO()
    call_command("search", query, "--tenant", writer.tenant.slug, stdout=out)
    assert "no matches" in out.getvalue()


def test_the_cli_add_refuses_unstorable_text(writer: Persona) -> None:
    with pytest.raises(CommandError):
        call_command("add", "bad \ud800 text", "--tenant", writer.tenant.slug, stdout=StringIO(), stderr=StringIO())
    assert not Memory.objects.exists()


def dashboard_client(persona: Persona) -> Any:
    from django.test import Client

    from tests.factories import MembershipFactory

    user = MembershipFactory(tenant=persona.tenant, role=persona.role).user
    browser = Client(raise_request_exception=False)
    browser.force_login(user)
    return browser


@pytest.mark.parametrize("query", [MANY_TERMS, MANY_CJK])
def test_the_dashboard_search_with_hundreds_of_terms_answers(writer: Persona, query: str) -> None:
    response = dashboard_client(writer).get("/search/", {"q": query})
    assert response.status_code == 200


@pytest.mark.parametrize(
    "metadata", ['{"a": "\\u0000"}', '{"a": "\\ud800"}', deep_object(DEEP), deep_object(40), '{"a": NaN}']
)
def test_the_dashboard_form_refuses_unstorable_or_deep_metadata(writer: Persona, metadata: str) -> None:
    payload = {"content": "ok", "kind": "note", "importance": "0.5", "metadata": metadata}
    response = dashboard_client(writer).post("/memories/new/", payload)
    assert response.status_code == 200
    assert response.context["form"].errors.get("metadata") or response.context["form"].non_field_errors()
    assert not Memory.objects.exists()
