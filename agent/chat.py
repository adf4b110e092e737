"""The `easymemory chat` loop: recall before answering, show what was used, stream the answer,
store the exchange through the memory policy."""

from __future__ import annotations

from collections.abc import Callable
from typing import TextIO

from agent.backends import MemoryBackend, Recalled
from agent.llm import ChatClient, ChatMessage, ChatProviderError

SYSTEM = (
    "You are a helpful assistant with a long-term memory. Below are memories that may be relevant to the "
    "user's message, most relevant first. Use them when they help, say so when they do not answer the "
    "question, and never invent memories.\n\nMemories:\n{memories}"
)
HELP = (
    "commands: /remember TEXT  /forget ID|QUERY  /search QUERY  /add_file PATH  /memories  /help  /quit\n"
    "anything else is a message: I search your memories, answer, and remember the exchange."
)
MAX_HISTORY_TURNS = 10
PREVIEW = 100


def _preview(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= PREVIEW else flat[: PREVIEW - 1] + "…"


class ChatSession:
    def __init__(self, *, backend: MemoryBackend, llm: ChatClient | None, out: TextIO, k: int = 5) -> None:
        self.backend = backend
        self.llm = llm
        self.out = out
        self.k = k
        self.history: list[ChatMessage] = []

    def say(self, text: str = "") -> None:
        self.out.write(text + "\n")
        self.out.flush()

    def _list(self, rows: list[Recalled], empty: str) -> None:
        if not rows:
            self.say(empty)
        for index, row in enumerate(rows, 1):
            signals = f" [{', '.join(row.signals)}]" if row.signals else ""
            self.say(f"  [{index}] {_preview(row.content)}  ({row.id[:8]}{signals})")

    def handle(self, line: str) -> bool:
        """Handle one line of input; False when the user asked to quit."""
        text = line.strip()
        if not text:
            return True
        command, _, argument = text.partition(" ")
        argument = argument.strip()
        commands: dict[str, Callable[[str], bool]] = {
            "/quit": lambda _: False, "/exit": lambda _: False, "/help": self._help, "/remember": self._remember,
            "/forget": self._forget, "/search": self._search, "/add_file": self._add_file, "/memories": self._memories,
        }  # fmt: skip
        if command in commands:
            return commands[command](argument)
        if command.startswith("/"):
            self.say(f"unknown command {command}; /help lists them")
            return True
        self._turn(text)
        return True

    def _help(self, _: str) -> bool:
        self.say(HELP)
        return True

    def _remember(self, text: str) -> bool:
        if not text:
            self.say("usage: /remember TEXT")
            return True
        stored = self.backend.remember(text)
        self.say(f"remembered ({stored.id[:8]}): {_preview(stored.content)}")
        return True

    def _forget(self, target: str) -> bool:
        if not target:
            self.say("usage: /forget ID|QUERY")
            return True
        forgotten = self.backend.forget(target)
        self.say(f"forgot ({forgotten.id[:8]}): {_preview(forgotten.content)}" if forgotten else "nothing matched")
        return True

    def _search(self, query: str) -> bool:
        if not query:
            self.say("usage: /search QUERY")
            return True
        self._list(self.backend.recall(query, self.k), "no memories match")
        return True

    def _add_file(self, path: str) -> bool:
        if not path:
            self.say("usage: /add_file PATH")
            return True
        self.say(self.backend.add_file(path))
        return True

    def _memories(self, _: str) -> bool:
        self._list(self.backend.recent(20), "no memories yet")
        return True

    def _turn(self, text: str) -> None:
        recalled = self.backend.recall(text, self.k)
        if recalled:
            self.say("memories used:")
            self._list(recalled, "")
        else:
            self.say("memories used: none")
        self.out.write("assistant> ")
        self.out.flush()
        answer = self._answer(text, recalled)
        self.say()
        self.history += [ChatMessage("user", text), ChatMessage("assistant", answer)]
        self.history = self.history[-2 * MAX_HISTORY_TURNS :]
        self.backend.store_turns([("user", text), ("assistant", answer)])

    def _answer(self, text: str, recalled: list[Recalled]) -> str:
        if self.llm is None:
            # No LLM configured (provider "offline"): show what memory holds instead of inventing an answer.
            answer = "(no LLM configured) " + (
                "what I remember: " + " | ".join(r.content for r in recalled)
                if recalled
                else "I remember nothing on that."
            )
            self.out.write(answer)
            return answer
        memories = "\n".join(f"- {r.content}" for r in recalled) or "(none)"
        messages = [ChatMessage("system", SYSTEM.format(memories=memories)), *self.history, ChatMessage("user", text)]
        parts: list[str] = []
        try:
            for chunk in self.llm.stream(messages):
                parts.append(chunk)
                self.out.write(chunk)
                self.out.flush()
        except ChatProviderError as exc:
            self.out.write(f"\n[error: {exc}]")
        return "".join(parts)
