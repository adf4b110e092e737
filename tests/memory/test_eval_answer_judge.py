"""The answer-and-judge step of `easymemory eval locomo`, end to end against a fake model server on
loopback speaking the OpenAI chat-completions and Ollama chat protocols."""

from __future__ import annotations

import json
import re
import socket
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.test import override_settings

from accounts.models import Tenant
from memory.answer_judge import endpoint_from_settings, parse_label
from tests.graph.fakes import FakeLLMServer, Scripted, Seen, ollama_reply, openai_reply
from tests.memory.test_eval import tiny_locomo

pytestmark = pytest.mark.django_db

# What the fake answer model says to each question of the tiny file (the violin answer is wrong).
ANSWERS = {
    "What is the name of Ben's kitten?": "Ben's kitten is called Pixel.",
    "What did Ana say about the violin?": "She said the moon is bright.",
    "When did Ben share a sailing boat photo?": "On 8 May 2023.",
}
# The memory that must be among those the answer model is given, as "[date] text".
EVIDENCE = {
    "What is the name of Ben's kitten?": "[8 May 2023] Ben: Great, I adopted a grey kitten called Pixel.",
    "When did Ben share a sailing boat photo?": "[8 May 2023] Ben: Look at this! [image: a photo of a sailing boat",
}


class FakeModels:
    """Answers from the canned table, judges by whether the gold answer is inside the generated one."""

    def __init__(self, server: FakeLLMServer, reply: type | object) -> None:
        self.answer_prompts: dict[str, str] = {}
        self.reply = reply
        server.responder = self.respond

    def respond(self, seen: Seen) -> Scripted:
        system, user = (m["content"] for m in seen.body["messages"])
        if system.startswith("You grade answers"):
            gold = re.search(r"Gold answer: (.*)\n", user).group(1)
            generated = re.search(r"Generated answer: (.*)\n", user).group(1)
            label = "CORRECT" if gold.lower() in generated.lower() else "WRONG"
            text = json.dumps({"reasoning": "compared the two", "label": label})
        else:
            question = re.search(r"Question: (.*)\n", user).group(1)
            self.answer_prompts[question] = user
            text = ANSWERS[question]
        return Scripted(body=self.reply(text))  # type: ignore[operator]


@pytest.fixture
def locomo_file(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.json"
    path.write_text(json.dumps(tiny_locomo()), encoding="utf-8")
    return path


@pytest.fixture
def fake_llm() -> FakeLLMServer:
    server = FakeLLMServer()
    yield server
    server.close()


@override_settings(EASYMEMORY_LLM_API_KEY="sk-test-judge-key", EASYMEMORY_LLM_BACKOFF=0.01)
def test_it_answers_judges_and_reports_accuracy_by_category(
    locomo_file: Path, tmp_path: Path, fake_llm: FakeLLMServer
) -> None:
    models = FakeModels(fake_llm, openai_reply)
    fake_llm.queue(Scripted(status=429, body={"error": "slow down"}, headers={"retry-after": "0"}))
    out, report_path = StringIO(), tmp_path / "report.json"
    tenants_before = set(Tenant.objects.values_list("slug", flat=True))
    call_command(
        "eval", "locomo", str(locomo_file), "--k", "3", "--json", str(report_path),
        "--answer-model", "small-answerer", "--judge-model", "big-judge", "--answer-k", "5",
        "--llm-provider", "openai", "--llm-url", fake_llm.url + "/v1",
        stdout=out,
    )  # fmt: skip
    answers = json.loads(report_path.read_text())["answers"]
    assert answers["questions"] == 3
    assert answers["accuracy"] == pytest.approx(2 / 3, abs=1e-4)
    assert answers["accuracy_by_category"] == {"1": 0.0, "2": 1.0, "4": 1.0}
    assert (answers["answer_model"], answers["judge_model"], answers["k"]) == (
        "openai:small-answerer", "openai:big-judge", 5,
    )  # fmt: skip
    assert answers["unparsed_judgements"] == 0
    # Real chat-completions requests: one answer and one judgement per question, after one retried 429.
    posted = [seen for seen in fake_llm.requests if seen.path == "/v1/chat/completions"]
    assert len(posted) == len(fake_llm.requests) == 1 + 3 * 2
    assert [seen.body["model"] for seen in posted[1:]] == ["small-answerer", "big-judge"] * 3
    assert all(seen.headers["authorization"] == "Bearer sk-test-judge-key" for seen in posted)
    assert all(seen.body["temperature"] == 0 for seen in posted)
    # The answer model was given the retrieved memories with their dates, at most --answer-k of them.
    for question, evidence in EVIDENCE.items():
        assert evidence in models.answer_prompts[question]
    assert all(prompt.count("\n- [") <= 5 for prompt in models.answer_prompts.values())
    judged = [s.body["messages"][1]["content"] for s in posted if s.body["model"] == "big-judge"]
    assert any("Gold answer: Pixel\nGenerated answer: Ben's kitten is called Pixel." in text for text in judged)
    text = out.getvalue()
    assert "LLM-judge accuracy" in text and "category 1 (multi-hop)" in text and "0.667" in text
    assert set(Tenant.objects.values_list("slug", flat=True)) == tenants_before


def test_it_speaks_ollama_and_judges_with_the_answer_model_by_default(
    locomo_file: Path, tmp_path: Path, fake_llm: FakeLLMServer
) -> None:
    FakeModels(fake_llm, ollama_reply)
    report_path = tmp_path / "report.json"
    call_command(
        "eval", "locomo", str(locomo_file), "--k", "3", "--json", str(report_path),
        "--answer-model", "qwen3:8b", "--llm-provider", "ollama", "--llm-url", fake_llm.url, stdout=StringIO(),
    )  # fmt: skip
    answers = json.loads(report_path.read_text())["answers"]
    assert answers["accuracy_by_category"] == {"1": 0.0, "2": 1.0, "4": 1.0}
    assert answers["judge_model"] == "ollama:qwen3:8b"
    assert {seen.path for seen in fake_llm.requests} == {"/api/chat"}
    assert all(seen.body["model"] == "qwen3:8b" and seen.body["stream"] is False for seen in fake_llm.requests)


def test_the_server_comes_from_the_provider_settings_unless_given() -> None:
    settings = {"EASYMEMORY_LLM_BASE_URL": "http://127.0.0.1:11434/", "EASYMEMORY_LLM_API_KEY": "k"}
    with override_settings(EASYMEMORY_PROVIDER="ollama", EASYMEMORY_MODEL="qwen3:8b", **settings):
        endpoint = endpoint_from_settings()
        assert (endpoint.provider, endpoint.base_url, endpoint.api_key) == ("ollama", "http://127.0.0.1:11434", "k")
        # Another provider than the configured one does not inherit its URL.
        assert endpoint_from_settings("openai").base_url == "https://api.openai.com/v1"
        assert endpoint_from_settings("openai", "http://127.0.0.1:8080/v1/").base_url == "http://127.0.0.1:8080/v1"


def test_a_judge_reply_is_read_from_json_or_plain_text() -> None:
    assert parse_label('{"reasoning": "same pet", "label": "CORRECT"}') == "CORRECT"
    assert parse_label('```json\n{"label": "wrong"}\n```') == "WRONG"
    assert parse_label("The answer names another city, so: WRONG") == "WRONG"
    assert parse_label("I cannot tell.") is None


def test_it_refuses_what_it_cannot_run(locomo_file: Path) -> None:
    with pytest.raises(CommandError, match="--judge-model needs --answer-model"):
        call_command("eval", "locomo", str(locomo_file), "--judge-model", "j", stdout=StringIO())
    with (
        override_settings(EASYMEMORY_PROVIDER="offline"),
        pytest.raises(CommandError, match="OpenAI-compatible or Ollama"),
    ):
        call_command("eval", "locomo", str(locomo_file), "--answer-model", "m", stdout=StringIO())
    with pytest.raises(CommandError, match="--answer-k"):
        call_command(
            "eval", "locomo", str(locomo_file), "--answer-model", "m", "--llm-provider", "openai", "--answer-k", "0",
            stdout=StringIO(),
        )  # fmt: skip


@override_settings(EASYMEMORY_LLM_MAX_RETRIES=0)
def test_an_unreachable_server_stops_the_run_with_a_clear_error_and_no_leftovers(locomo_file: Path) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    tenants_before = set(Tenant.objects.values_list("slug", flat=True))
    with pytest.raises(CommandError, match="cannot reach"):
        call_command(
            "eval", "locomo", str(locomo_file), "--k", "3", "--answer-model", "m",
            "--llm-provider", "openai", "--llm-url", f"http://127.0.0.1:{port}/v1", stdout=StringIO(),
        )  # fmt: skip
    assert set(Tenant.objects.values_list("slug", flat=True)) == tenants_before
