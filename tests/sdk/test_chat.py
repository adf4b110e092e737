"""`easymemory chat` end to end in a pseudo-terminal: a real server, a real worker, and a fake
OpenAI-compatible provider that streams its answers."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pexpect
import pytest

from tests.conftest import REPO
from tests.sdk.conftest import SdkServer, write_file
from tests.sdk.fake_chat import FakeChatServer

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.django_db]
TIMEOUT = 240  # the first search loads the embedding model; the machine is shared


@pytest.fixture(scope="module")
def fake_llm() -> Iterator[FakeChatServer]:
    server = FakeChatServer()
    yield server
    server.close()


def spawn_chat(sdk_server: SdkServer, fake: FakeChatServer, *args: str) -> pexpect.spawn:
    env = dict(sdk_server.env)
    env.update(
        EASYMEMORY_PROVIDER="openai", EASYMEMORY_MODEL="fake-chat", EASYMEMORY_LLM_BASE_URL=fake.url,
        EASYMEMORY_LLM_MAX_RETRIES="0", PYTHONUNBUFFERED="1",
    )  # fmt: skip
    child = pexpect.spawn(
        sys.executable, ["-m", "config.cli", "chat", *args], cwd=str(REPO), env=env, encoding="utf-8",
        timeout=TIMEOUT, dimensions=(50, 400),
    )  # fmt: skip
    child.expect("you> ")
    return child


def finish(child: pexpect.spawn) -> None:
    child.sendline("/quit")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0


def test_a_fact_told_in_one_chat_is_answered_from_memory_in_a_new_chat(
    sdk_server: SdkServer, fake_llm: FakeChatServer
) -> None:
    remote = ["--url", sdk_server.url, "--api-key", sdk_server.keys["chat"], "--user", "chat-erin"]
    first = spawn_chat(sdk_server, fake_llm, *remote)
    first.sendline("My sister Ilaria lives in Trieste")
    first.expect("memories used: none")
    first.expect("assistant> I don't know.")
    first.expect("you> ")
    finish(first)

    second = spawn_chat(sdk_server, fake_llm, *remote)
    second.sendline("Where does my sister live?")
    second.expect("memories used:")
    second.expect(r"\[1\] [^\r\n]*Trieste")
    second.expect(r"assistant> From memory: [^\r\n]*My sister Ilaria lives in Trieste")
    second.expect("you> ")
    finish(second)
    prompt = fake_llm.requests[-1]["body"]["messages"][0]["content"]
    assert "- My sister Ilaria lives in Trieste" in prompt

    stranger = spawn_chat(sdk_server, fake_llm, "--url", sdk_server.url, "--api-key", sdk_server.keys["chat"])
    stranger.sendline("/search Ilaria Trieste")
    stranger.expect("no memories match")  # another user_ref: not this user's memories
    stranger.expect("you> ")
    finish(stranger)


def test_the_chat_commands_remember_search_forget_and_add_files(
    sdk_server: SdkServer, fake_llm: FakeChatServer, tmp_path: Path
) -> None:
    notes = write_file(tmp_path, "boat.md", "# Boat\n\nThe sailing boat is moored at pontoon C in Portoferraio.\n")
    child = spawn_chat(
        sdk_server, fake_llm, "--url", sdk_server.url, "--api-key", sdk_server.keys["chat"], "--user", "chat-finn"
    )
    child.sendline("/remember Finn's bike lock code is 2718")
    child.expect(r"remembered \([0-9a-f]{8}\): Finn's bike lock code is 2718")
    child.expect("you> ")
    child.sendline("/search bike lock")
    child.expect(r"\[1\] Finn's bike lock code is 2718")
    child.expect("you> ")
    child.sendline("/memories")
    child.expect("Finn's bike lock code is 2718")
    child.expect("you> ")
    child.sendline(f"/add_file {notes}")
    child.expect(r"boat.md: done, \d+ memories created")
    child.expect("you> ")
    child.sendline("/forget bike lock code")
    child.expect(r"forgot \([0-9a-f]{8}\): Finn's bike lock code is 2718")
    child.expect("you> ")
    child.sendline("/search bike lock code 2718")
    child.expect("no memories match")
    child.expect("you> ")
    child.sendline("/frobnicate")
    child.expect("unknown command /frobnicate")
    child.expect("you> ")
    finish(child)


def test_the_chat_works_on_the_local_data_directory_without_an_llm(sdk_server: SdkServer) -> None:
    env = dict(sdk_server.env)
    env.update(EASYMEMORY_PROVIDER="offline", PYTHONUNBUFFERED="1")
    child = pexpect.spawn(
        sys.executable, ["-m", "config.cli", "chat", "--tenant", sdk_server.tenant_slug, "--user", "chat-gina"],
        cwd=str(REPO), env=env, encoding="utf-8", timeout=TIMEOUT, dimensions=(50, 400),
    )  # fmt: skip
    child.expect("you> ")
    child.sendline("/remember Gina's train leaves from platform 9")
    child.expect("remembered")
    child.expect("you> ")
    child.sendline("which platform does the train leave from?")
    child.expect(r"\[1\] Gina's train leaves from platform 9")
    child.expect(r"assistant> \(no LLM configured\) what I remember: Gina's train leaves from platform 9")
    child.expect("you> ")
    child.sendline("/forget Gina train platform")
    child.expect("forgot")
    child.expect("you> ")
    finish(child)
