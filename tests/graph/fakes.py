"""Fake LLM servers: real HTTP servers on 127.0.0.1 speaking the Ollama, OpenAI-compatible and
Anthropic protocols, replying from a script (payloads, malformed JSON, reasoning text,
<think> blocks, 429s, 5xx, slow replies)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Scripted:
    status: int = 200
    body: Any = None  # dict → JSON; str → raw text
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


@dataclass
class Seen:
    path: str
    headers: dict[str, str]
    body: Any


class FakeLLMServer:
    def __init__(self) -> None:
        self.script: list[Scripted] = []
        self.requests: list[Seen] = []
        self.on_request: Callable[[Seen], None] | None = None
        # Replies computed from the request, once the script is used up (a model that reads its prompt).
        self.responder: Callable[[Seen], Scripted] | None = None
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", 0))
                raw = self.rfile.read(length)
                seen = Seen(self.path, {k.lower(): v for k, v in self.headers.items()}, json.loads(raw or b"null"))
                with server._lock:
                    server.requests.append(seen)
                    if server.script:
                        step = server.script.pop(0)
                    elif server.responder is not None:
                        step = server.responder(seen)
                    else:
                        step = Scripted(500, {"error": "script exhausted"})
                if server.on_request:
                    server.on_request(seen)
                if step.delay:
                    time.sleep(step.delay)
                payload = step.body if isinstance(step.body, str) else json.dumps(step.body)
                data = payload.encode("utf-8")
                try:
                    self.send_response(step.status)
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(data)))
                    for key, value in step.headers.items():
                        self.send_header(key, value)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout test)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def queue(self, *steps: Scripted) -> None:
        self.script.extend(steps)

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


# --- realistic payloads -------------------------------------------------------------------


def ollama_reply(content: str) -> dict[str, Any]:
    return {
        "model": "qwen3:8b",
        "created_at": "2026-11-24T15:00:00.000000Z",
        "message": {"role": "assistant", "content": content},
        "done_reason": "stop",
        "done": True,
        "total_duration": 912345678,
        "eval_count": 120,
    }


def openai_reply(content: str | None) -> dict[str, Any]:
    return {
        "id": "chatcmpl-abc123",
        "object": "chat.completion",
        "created": 1795000000,
        "model": "gpt-4o-mini",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content, "refusal": None},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 300, "completion_tokens": 80, "total_tokens": 380},
    }


def anthropic_tool_reply(extraction: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": "msg_01ABC",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-5",
        "content": [
            {"type": "text", "text": "I'll record the entities."},
            {"type": "tool_use", "id": "toolu_01", "name": "record_extraction", "input": extraction},
        ],
        "stop_reason": "tool_use",
        "usage": {"input_tokens": 400, "output_tokens": 90},
    }


def anthropic_text_reply(text: str) -> dict[str, Any]:
    return {
        "id": "msg_02DEF",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-5",
        "content": [{"type": "text", "text": text}],
        "stop_reason": "end_turn",
        "usage": {"input_tokens": 400, "output_tokens": 90},
    }


MARCO = {
    "entities": [
        {"name": "Marco Rossi", "type": "person", "confidence": 0.95, "aliases": ["Marco"]},
        {"name": "Acme Robotics", "type": "organisation", "confidence": 0.9},
    ],
    "relations": [
        {
            "source": "Marco Rossi",
            "target": "Acme Robotics",
            "predicate": "works at",
            "fact": "Marco Rossi works at Acme Robotics.",
            "confidence": 0.9,
            "valid_at": "2021-03-01",
            "invalid_at": None,
            "replaces_previous": False,
        }
    ],
}

ZHANG = {
    "entities": [
        {"name": "张伟", "type": "person", "confidence": 0.9},
        {"name": "阿里巴巴", "type": "organisation", "confidence": 0.9},
    ],
    "relations": [{"source": "张伟", "target": "阿里巴巴", "predicate": "works_at", "fact": "张伟在阿里巴巴工作。"}],
}
