"""Property-based fuzz of every JSON field of the REST API and every MCP tool argument
(issue 13, item 2): strings with NUL and lone surrogates, huge strings, structures nested
thousands of levels deep, non-finite and huge numbers, wrong types. Whatever comes in, the
answer is a 4xx (REST) or a tool error (MCP), never a 5xx or an internal error.

schemathesis (tests/accounts/test_schema_fuzz.py) explores the documented schema; this explores
what the schema does not describe. Bounded: a few dozen examples per endpoint, no deadline.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.request_context import RequestInfo
from mcp_server.registry import ToolError, autodiscover
from mcp_server.server import invoke_tool
from tests.conftest import Persona

pytestmark = [pytest.mark.django_db, pytest.mark.slow]

EXAMPLES = 25
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
    derandomize=True,  # the same examples every run: a failure here is reproducible
)

HOSTILE_CHARS = st.sampled_from(["\x00", "\ud800", "\udfff", "\ufffe", "\u202e", "'", '"', "\\", "%", "{", "中"])
hostile_text = st.one_of(
    st.text(alphabet=st.one_of(HOSTILE_CHARS, st.characters()), max_size=40),
    st.just("x" * 120_000),
    st.just("中" * 40_000),
    st.just("-" * 100_000),
    st.just(" ".join(f"w{i}" for i in range(300))),
)


def _deep(levels: int, kind: str) -> Any:
    value: Any = 1
    for _ in range(levels):
        value = {"a": value} if kind == "object" else [value]
    return value


def _deep_text(levels: int, kind: str) -> str:
    return ('{"a":' * levels + "1" + "}" * levels) if kind == "object" else ("[" * levels + "1" + "]" * levels)


# In a REST body a deep value travels as a placeholder that `encode` swaps for its JSON text
# (thousands of levels would overflow json.dumps and hypothesis's own printer); tool arguments
# are Python objects, as the MCP transport hands them over.
DEEP_MARK = "\u2063deep:{levels}:{kind}\u2063"
deep_rest = st.builds(
    lambda levels, kind: DEEP_MARK.format(levels=levels, kind=kind),
    st.sampled_from([17, 65, 900, 5_000]),
    st.sampled_from(["object", "array"]),
)
deep_mcp = st.builds(_deep, st.sampled_from([17, 65, 300]), st.sampled_from(["object", "array"]))
scalar = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    hostile_text,
)
def hostile_values(deep: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(scalar, deep, st.lists(scalar, max_size=5), st.dictionaries(hostile_text, scalar, max_size=4))


hostile = hostile_values(deep_rest)
hostile_mcp = hostile_values(deep_mcp)


def body_for(
    fields: dict[str, st.SearchStrategy[Any]], bad: st.SearchStrategy[Any] = hostile
) -> st.SearchStrategy[dict[str, Any]]:
    """Each field absent, plausible or hostile, plus now and then an unknown hostile key."""
    parts = {name: st.one_of(st.just(...), plausible, bad) for name, plausible in fields.items()}
    extra = st.dictionaries(hostile_text, bad, max_size=1)
    return st.builds(
        lambda values, more: {**{k: v for k, v in values.items() if v is not ...}, **more},
        st.fixed_dictionaries(parts),
        extra,
    )


TEXT = st.text(max_size=20)
WHEN = st.sampled_from(["2024-03-01T10:00:00Z", "2999-01-01T00:00:00Z", "yesterday"])
FILTERS = {
    "kind": st.sampled_from([["note"], "note,fact"]),
    "tags": st.lists(TEXT, max_size=3),
    "tags_all": st.lists(TEXT, max_size=3),
    "user_ref": TEXT,
    "agent_id": TEXT,
    "session_id": TEXT,
    "metadata": st.dictionaries(TEXT, TEXT, max_size=2),
    "occurred_after": WHEN,
    "occurred_before": WHEN,
    "created_after": WHEN,
    "created_before": WHEN,
    "include_expired": st.booleans(),
    "include_ephemeral": st.booleans(),
    "as_of": WHEN,
}
MEMORY = {
    "content": TEXT,
    "kind": st.sampled_from(["note", "fact", "message", "document"]),
    "metadata": st.dictionaries(TEXT, TEXT, max_size=2),
    "tags": st.lists(TEXT, max_size=3),
    "user_ref": TEXT,
    "agent_id": TEXT,
    "session_id": TEXT,
    "occurred_at": WHEN,
    "expires_at": WHEN,
    "importance": st.floats(min_value=0, max_value=1),
}
# (method, path, fields of the JSON body): every REST endpoint that reads a JSON body.
REST_BODIES: list[tuple[str, str, dict[str, st.SearchStrategy[Any]]]] = [
    ("POST", "/v1/memories", MEMORY),
    ("PATCH", "/v1/memories/{memory}", {k: v for k, v in MEMORY.items() if k not in ("user_ref", "agent_id", "session_id")}),  # noqa: E501
    ("POST", "/v1/search", {"query": TEXT, "k": st.integers(0, 200), "filters": st.fixed_dictionaries({}, optional=FILTERS), "weights": st.dictionaries(st.sampled_from(["vector", "fulltext", "graph"]), st.floats(0, 2), max_size=2)}),  # noqa: E501
    ("POST", "/v1/relations", {"source": st.one_of(TEXT, st.integers(0, 10)), "target": st.one_of(TEXT, st.integers(0, 10)), "predicate": TEXT, "fact": TEXT, "confidence": st.floats(0, 1), "valid_at": WHEN, "invalid_at": WHEN}),  # noqa: E501
    ("POST", "/v1/entities/merge", {"target": st.integers(0, 10), "sources": st.lists(st.integers(0, 10), max_size=3)}),
    ("POST", "/v1/index", {"path": TEXT, "pattern": TEXT, "recursive": st.booleans()}),
    ("POST", "/v1/admin/api-keys", {"name": TEXT, "role": st.sampled_from(["reader", "writer", "admin"]), "expires_at": WHEN}),  # noqa: E501
    ("POST", "/v1/admin/oauth-apps", {"name": TEXT, "role": st.sampled_from(["reader", "writer"])}),
    ("POST", "/v1/admin/members", {"username": TEXT, "role": st.sampled_from(["reader", "writer"])}),
    ("POST", "/v1/admin/tenants", {"name": TEXT, "slug": TEXT}),
]  # fmt: skip
# Query-string endpoints: every parameter as hostile text.
REST_QUERIES: list[tuple[str, list[str]]] = [
    ("/v1/memories", [*FILTERS, "cursor", "limit"]),
    ("/v1/entities", ["q", "type", "limit", "offset"]),
    ("/v1/entities/1/neighbors", ["depth", "as_of"]),
    ("/v1/graph/path", ["from", "to", "as_of", "max_depth"]),
    ("/v1/graph/export", ["format", "as_of"]),
    ("/v1/jobs", ["cursor", "limit"]),
    ("/v1/audit", ["action", "actor", "since", "until", "limit", "cursor"]),
]


def rest_client(persona: Persona) -> Any:
    client = persona.client()
    client.raise_request_exception = False
    return client


def encode(body: Any) -> bytes:
    # NaN/Infinity as JavaScript writes them; lone surrogates as \\u escapes, as JSON allows.
    text = json.dumps(body, allow_nan=True)
    for levels in (17, 65, 900, 5_000):
        for kind in ("object", "array"):
            mark = json.dumps(DEEP_MARK.format(levels=levels, kind=kind))
            text = text.replace(mark, _deep_text(levels, kind))
    return text.encode()


@pytest.mark.parametrize(("method", "path", "fields"), REST_BODIES, ids=[f"{m} {p}" for m, p, _ in REST_BODIES])
def test_no_rest_body_gets_a_server_error(
    admin: Persona, method: str, path: str, fields: dict[str, st.SearchStrategy[Any]]
) -> None:
    client = rest_client(admin)
    created = client.post("/v1/memories", data=encode({"content": "to patch"}), content_type="application/json")
    target = path.format(memory=created.json()["id"])

    @FUZZ
    @given(body=st.one_of(body_for(fields), hostile))
    def check(body: Any) -> None:
        response = client.generic(method, target, encode(body), content_type="application/json")
        assert response.status_code < 500, (body if len(repr(body)) < 500 else repr(body)[:500], response.content[:300])
        assert response["Content-Type"].startswith("application/json")

    check()


@pytest.mark.parametrize(("path", "names"), REST_QUERIES, ids=[p for p, _ in REST_QUERIES])
def test_no_query_string_gets_a_server_error(admin: Persona, path: str, names: list[str]) -> None:
    client = rest_client(admin)
    value = st.one_of(st.text(max_size=30), st.just("x" * 5_000), st.just(_deep_text(900, "object")))

    @FUZZ
    @given(params=st.dictionaries(st.sampled_from(names), value, max_size=4))
    def check(params: dict[str, str]) -> None:
        response = client.get(path, params)
        assert response.status_code < 500, (params, response.content[:300])

    check()


def _plausible(schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    kind = schema.get("type")
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    if kind == "string" or (isinstance(kind, list) and "string" in kind):
        return st.one_of(TEXT, WHEN) if schema.get("format") == "date-time" else TEXT
    if kind == "integer":
        return st.integers(-5, 200)
    if kind == "number":
        return st.floats(0, 1)
    if kind == "boolean":
        return st.booleans()
    if kind == "array":
        return st.lists(_plausible(schema.get("items", {})), max_size=3)
    if kind == "object" and "properties" in schema:
        return st.fixed_dictionaries({}, optional={k: _plausible(v) for k, v in schema["properties"].items()})
    return st.dictionaries(TEXT, TEXT, max_size=2)


TOOLS = sorted(autodiscover())


@pytest.mark.parametrize("name", TOOLS)
def test_no_mcp_tool_call_ends_in_an_internal_error(admin: Persona, name: str) -> None:
    spec = autodiscover()[name]
    properties = spec.input_schema.get("properties", {})
    fields = {key: _plausible(schema) for key, schema in properties.items()}
    if "id" in fields:
        fields["id"] = st.one_of(st.just(str(uuid.uuid4())), TEXT)

    @FUZZ
    @given(args=body_for(fields, hostile_mcp))
    def check(args: dict[str, Any]) -> None:
        try:
            result = invoke_tool(spec, admin.principal, args, RequestInfo(request_id="fuzz"))
        except ToolError as exc:
            str(exc).encode("utf-8")  # the refusal reaches the client as UTF-8
        else:
            json.dumps(result, default=str, allow_nan=False).encode("utf-8")

    check()
