"""The production LLM clients against fake Ollama / OpenAI-compatible / Anthropic servers."""

from __future__ import annotations

import json

import pytest

from graph.providers import ExtractionError, ProviderConfig, TransientProviderError, make_extractor
from graph.providers.base import EXTRACTION_SCHEMA
from tests.graph.fakes import (
    MARCO,
    ZHANG,
    FakeLLMServer,
    Scripted,
    anthropic_text_reply,
    anthropic_tool_reply,
    ollama_reply,
    openai_reply,
)

TEXT = "Marco Rossi works at Acme Robotics since March 2021."


def extractor(provider: str, server: FakeLLMServer, **overrides: object):
    config = ProviderConfig(
        provider=provider,
        model="test-model",
        base_url=server.url + ("/v1" if provider == "openai" else ""),
        api_key="sk-test-key",
        timeout=2.0,
        max_retries=3,
        backoff=0.01,
        max_backoff=0.05,
    )
    for key, value in overrides.items():
        object.__setattr__(config, key, value)
    return make_extractor(config)


def assert_marco(extraction) -> None:
    names = {(e.name, e.type) for e in extraction.entities}
    assert ("Marco Rossi", "person") in names
    assert ("Acme Robotics", "organisation") in names
    [relation] = extraction.relations
    assert (relation.source, relation.predicate, relation.target) == ("Marco Rossi", "works_at", "Acme Robotics")
    assert relation.valid_at is not None and relation.valid_at.year == 2021 and relation.valid_at.month == 3


def test_it_asks_ollama_for_schema_structured_output(fake_llm: FakeLLMServer) -> None:
    fake_llm.queue(Scripted(body=ollama_reply(json.dumps(MARCO))))
    assert_marco(extractor("ollama", fake_llm).extract(TEXT))
    [request] = fake_llm.requests
    assert request.path == "/api/chat"
    assert request.body["format"] == EXTRACTION_SCHEMA
    assert request.body["stream"] is False
    assert request.body["model"] == "test-model"
    assert TEXT in request.body["messages"][-1]["content"]


def test_it_repairs_think_blocks_fences_and_trailing_commas_without_asking_again(fake_llm: FakeLLMServer) -> None:
    damaged = (
        "<think>\nThe user wants entities. Marco is a person {maybe}. Let me think...\n</think>\n"
        "Sure! Here is the JSON:\n```json\n" + json.dumps(MARCO, indent=1)[:-2] + ",\n}\n```\nHope this helps."
    )
    fake_llm.queue(Scripted(body=ollama_reply(damaged)))
    assert_marco(extractor("ollama", fake_llm).extract(TEXT))
    assert len(fake_llm.requests) == 1


def test_it_retries_once_with_the_error_when_the_reply_is_unusable(fake_llm: FakeLLMServer) -> None:
    fake_llm.queue(
        Scripted(body=openai_reply("Okay, let me reason about this. Marco works at Acme, so the answer is yes.")),
        Scripted(body=openai_reply(json.dumps(MARCO))),
    )
    assert_marco(extractor("openai", fake_llm).extract(TEXT))
    first, second = fake_llm.requests
    assert first.path == "/v1/chat/completions"
    assert first.headers["authorization"] == "Bearer sk-test-key"
    assert first.body["response_format"]["type"] == "json_schema"
    assert first.body["response_format"]["json_schema"]["schema"] == EXTRACTION_SCHEMA
    assert "could not be used" in second.body["messages"][-1]["content"]


def test_it_retries_a_reply_that_is_json_but_not_the_schema(fake_llm: FakeLLMServer) -> None:
    fake_llm.queue(
        Scripted(body=openai_reply(json.dumps({"entities": [{"name": "Marco"}], "relations": []}))),
        Scripted(body=openai_reply(json.dumps(MARCO))),
    )
    assert_marco(extractor("openai", fake_llm).extract(TEXT))
    assert "schema at entities/0" in fake_llm.requests[1].body["messages"][-1]["content"]


def test_it_fails_loudly_after_the_second_malformed_reply(fake_llm: FakeLLMServer) -> None:
    fake_llm.queue(
        Scripted(body=openai_reply('{"entities": [{"name": "Marco", "type": "person"')),
        Scripted(body=openai_reply("<think>I am still thinking and never close the tag")),
    )
    with pytest.raises(ExtractionError, match="malformed reply after one retry"):
        extractor("openai", fake_llm).extract(TEXT)
    assert len(fake_llm.requests) == 2


def test_it_uses_a_forced_tool_call_with_anthropic(fake_llm: FakeLLMServer) -> None:
    fake_llm.queue(Scripted(body=anthropic_tool_reply(ZHANG)))
    extraction = extractor("anthropic", fake_llm).extract("张伟在阿里巴巴工作。")
    assert [(r.source, r.predicate, r.target) for r in extraction.relations] == [("张伟", "works_at", "阿里巴巴")]
    [request] = fake_llm.requests
    assert request.path == "/v1/messages"
    assert request.headers["x-api-key"] == "sk-test-key"
    assert request.headers["anthropic-version"] == "2023-06-01"
    assert request.body["tool_choice"] == {"type": "tool", "name": "record_extraction"}
    assert request.body["tools"][0]["input_schema"] == EXTRACTION_SCHEMA


def test_it_reads_anthropic_text_when_no_tool_is_called(fake_llm: FakeLLMServer) -> None:
    fake_llm.queue(Scripted(body=anthropic_text_reply("Here you go:\n" + json.dumps(MARCO))))
    assert_marco(extractor("anthropic", fake_llm).extract(TEXT))


def test_it_backs_off_on_429_and_5xx_then_succeeds(fake_llm: FakeLLMServer) -> None:
    fake_llm.queue(
        Scripted(429, {"error": {"type": "rate_limit_error", "message": "slow down"}}, {"Retry-After": "0"}),
        Scripted(503, {"error": "overloaded"}),
        Scripted(body=ollama_reply(json.dumps(MARCO))),
    )
    sleeps: list[float] = []
    client = extractor("ollama", fake_llm)
    client.sleep = sleeps.append
    assert_marco(client.extract(TEXT))
    assert len(fake_llm.requests) == 3
    assert len(sleeps) == 2 and all(0 < s <= 0.06 for s in sleeps)


def test_it_retries_timeouts_and_gives_up_after_the_limit(fake_llm: FakeLLMServer) -> None:
    fake_llm.queue(
        Scripted(body=ollama_reply(json.dumps(MARCO)), delay=0.6), Scripted(body=ollama_reply(json.dumps(MARCO)))
    )
    client = extractor("ollama", fake_llm, timeout=0.2)
    assert_marco(client.extract(TEXT))
    assert client.attempts == 2

    fake_llm.queue(*[Scripted(500, {"error": "boom"}) for _ in range(3)])
    failing = extractor("ollama", fake_llm, max_retries=2)
    with pytest.raises(TransientProviderError, match="HTTP 500"):
        failing.extract(TEXT)
    assert failing.attempts == 3  # the first try and two retries


def test_it_does_not_retry_a_configuration_error(fake_llm: FakeLLMServer) -> None:
    fake_llm.queue(Scripted(401, {"error": {"message": "Incorrect API key provided"}}))
    with pytest.raises(ExtractionError, match="HTTP 401"):
        extractor("openai", fake_llm).extract(TEXT)
    assert len(fake_llm.requests) == 1


def test_it_reports_an_unreachable_server_as_transient() -> None:
    config = ProviderConfig(provider="ollama", model="m", base_url="http://127.0.0.1:9", max_retries=1, backoff=0.01)
    with pytest.raises(TransientProviderError, match="cannot reach"):
        make_extractor(config).extract(TEXT)


def test_settings_pick_the_provider_and_refuse_a_missing_model() -> None:
    import subprocess
    import sys

    from django.test import override_settings

    from graph.providers.llm import AnthropicExtractor
    from graph.providers.registry import extractor_from_settings
    from tests.conftest import REPO

    with override_settings(
        EASYMEMORY_PROVIDER="anthropic", EASYMEMORY_MODEL="claude-x", EASYMEMORY_LLM_BASE_URL="http://127.0.0.1:1"
    ):
        chosen = extractor_from_settings()
    assert isinstance(chosen, AnthropicExtractor)
    assert (chosen.model, chosen.base_url) == ("claude-x", "http://127.0.0.1:1")
    check = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        cwd=REPO,
        env={
            "PATH": "/usr/bin:/bin",
            "DJANGO_SETTINGS_MODULE": "config.test_settings",
            "EASYMEMORY_PROVIDER": "ollama",
        },
        capture_output=True,
        text=True,
    )
    assert check.returncode != 0
    assert "EASYMEMORY_MODEL is required with EASYMEMORY_PROVIDER=ollama" in check.stderr


def test_api_keys_are_read_from_files(tmp_path) -> None:
    import subprocess
    import sys

    from tests.conftest import REPO

    secret = tmp_path / "key"
    secret.write_text("sk-from-file\n")
    env = {
        "PATH": "/usr/bin:/bin",
        "DJANGO_SETTINGS_MODULE": "config.test_settings",
        "EASYMEMORY_PROVIDER": "anthropic",
        "EASYMEMORY_MODEL": "claude-x",
        "ANTHROPIC_API_KEY_FILE": str(secret),
    }
    code = "import django; django.setup(); from django.conf import settings; print(settings.EASYMEMORY_LLM_API_KEY)"
    check = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True)
    assert check.stdout.strip() == "sk-from-file", check.stderr
