"""POST /v1/chat/completions, the OpenAI-compatible memory proxy, on the real server with a fake
OpenAI-compatible provider behind it."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.sdk.conftest import SdkServer

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.django_db]
TIMEOUT = 180


def headers(server: SdkServer, persona: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {server.keys[persona]}"}


def ask(server: SdkServer, persona: str, question: str, **extra: object) -> httpx.Response:
    body = {"model": "fake-chat", "messages": [{"role": "user", "content": question}], **extra}
    return httpx.post(f"{server.url}/v1/chat/completions", json=body, headers=headers(server, persona), timeout=TIMEOUT)


@pytest.fixture(scope="module")
def nina_memory(sdk_server: SdkServer) -> str:
    created = httpx.post(
        f"{sdk_server.url}/v1/memories",
        json={"content": "Proxy fact: Nina's dog is called Rufus", "user_ref": "px-nina"},
        headers=headers(sdk_server, "proxy"), timeout=TIMEOUT,
    )  # fmt: skip
    assert created.status_code == 201
    return str(created.json()["id"])


def test_a_completion_gets_the_users_memories_and_the_exchange_is_stored(
    sdk_server: SdkServer, nina_memory: str
) -> None:
    answer = ask(sdk_server, "proxy", "What is my dog called?", user="px-nina", temperature=0.2)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["object"] == "chat.completion"
    assert "Rufus" in body["choices"][0]["message"]["content"]
    assert nina_memory in body["easymemory"]["memories"]
    sent = sdk_server.llm.requests[-1]["body"]["messages"]
    assert sent[0]["role"] == "system" and "- Proxy fact: Nina's dog is called Rufus" in sent[0]["content"]
    stored = httpx.get(
        f"{sdk_server.url}/v1/memories", params={"user_ref": "px-nina", "kind": "message"},
        headers=headers(sdk_server, "proxy"), timeout=TIMEOUT,
    ).json()["results"]  # fmt: skip
    assert {m["content"] for m in stored} >= {"What is my dog called?", body["choices"][0]["message"]["content"]}


def test_a_streamed_completion_arrives_as_openai_chunks(sdk_server: SdkServer, nina_memory: str) -> None:
    body = {"messages": [{"role": "user", "content": "Tell me the name of my dog"}], "user": "px-nina", "stream": True}
    pieces: list[str] = []
    with httpx.stream(
        "POST", f"{sdk_server.url}/v1/chat/completions", json=body, headers=headers(sdk_server, "proxy"),
        timeout=TIMEOUT,
    ) as response:  # fmt: skip
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in response.iter_lines() if line.startswith("data: ")]
    assert lines[-1] == "data: [DONE]"
    chunks = [json.loads(line[len("data: ") :]) for line in lines[:-1]]
    assert all(chunk["object"] == "chat.completion.chunk" for chunk in chunks)
    assert nina_memory in chunks[0]["easymemory"]["memories"]
    for chunk in chunks:
        pieces.append(chunk["choices"][0]["delta"].get("content", ""))
    assert "Rufus" in "".join(pieces) and len([p for p in pieces if p]) > 1  # it came in several pieces
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"


def test_the_proxy_refuses_bad_input_naming_the_field(sdk_server: SdkServer) -> None:
    url = f"{sdk_server.url}/v1/chat/completions"
    cases = [
        ({"messages": []}, "messages"),
        ({"messages": [{"role": "wizard", "content": "hi"}]}, "messages.0.role"),  # DRF's path for a list item
        ({"messages": [{"role": "system", "content": "only a system prompt"}]}, "messages"),
        ({"messages": [{"role": "user", "content": "x"}], "user": "u" * 201}, "user"),
    ]
    for body, field in cases:
        response = httpx.post(url, json=body, headers=headers(sdk_server, "proxy"), timeout=TIMEOUT)
        assert response.status_code == 400, (body, response.text)
        assert response.json()["field"] == field


def test_each_persona_gets_what_its_role_allows_from_the_proxy(sdk_server: SdkServer, nina_memory: str) -> None:
    assert ask(sdk_server, "reader", "What is my dog called?", user="px-nina").status_code == 403
    unauthenticated = httpx.post(
        f"{sdk_server.url}/v1/chat/completions", json={"messages": [{"role": "user", "content": "hi"}]}, timeout=60
    )
    assert unauthenticated.status_code == 401
    assert ask(sdk_server, "admin", "What is my dog called?", user="px-nina").status_code == 200
    # Another tenant asking about the same user_ref learns nothing of this tenant's memories.
    theirs = ask(sdk_server, "outsider", "What is my dog called?", user="px-nina")
    assert theirs.status_code == 200
    assert "Rufus" not in theirs.text and theirs.json()["easymemory"]["memories"] == []
