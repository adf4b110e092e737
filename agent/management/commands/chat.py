from __future__ import annotations

import logging
import os
import sys
import uuid
from dataclasses import replace
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from agent.backends import LocalBackend, MemoryBackend, RemoteBackend, Scope
from agent.chat import HELP, ChatSession
from agent.llm import ChatClient


class Command(BaseCommand):
    help = "Chat with an LLM that remembers: recalls your memories before answering and stores the exchange."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--url", default=os.environ.get("EASYMEMORY_URL", ""), help="a remote server")
        parser.add_argument(
            "--api-key", default=os.environ.get("EASYMEMORY_API_KEY", ""), help="its API key (or EASYMEMORY_API_KEY)"
        )
        parser.add_argument("--tenant", default="default", help="tenant slug, for the local data directory")
        parser.add_argument("--user", default=os.environ.get("USER", "me"), help="whose memories (user_ref)")
        parser.add_argument("--provider", choices=["ollama", "openai", "anthropic", "offline"], default=None)
        parser.add_argument("--model", default=None)
        parser.add_argument("--llm-url", default=None, help="the provider's base URL")
        parser.add_argument("-k", type=int, default=5, help="memories to recall per message")

    def handle(self, *args: Any, **options: Any) -> None:
        from graph.providers.registry import config_from_settings

        # The terminal is the conversation: per-request HTTP logs would break it up.
        logging.getLogger("httpx").setLevel(logging.WARNING)

        config = config_from_settings()
        overrides = {"provider": options["provider"], "model": options["model"], "base_url": options["llm_url"]}
        config = replace(config, **{k: v for k, v in overrides.items() if v is not None})
        try:
            llm = None if config.provider == "offline" else ChatClient(config)
        except ValueError as exc:
            raise CommandError(str(exc)) from exc

        scope = Scope(user_ref=options["user"], session_id=f"chat-{uuid.uuid4().hex[:12]}")
        backend: MemoryBackend
        if options["url"]:
            if not options["api_key"]:
                raise CommandError("--url needs --api-key (or EASYMEMORY_API_KEY)")
            backend = RemoteBackend(url=options["url"], api_key=options["api_key"], scope=scope)
            where = options["url"]
        else:
            backend = LocalBackend(tenant_slug=options["tenant"], scope=scope)
            where = f"local data, tenant {options['tenant']}"

        session = ChatSession(backend=backend, llm=llm, out=sys.stdout, k=options["k"])
        model = f"{config.provider}:{config.model}" if llm else "no LLM (offline)"
        session.say(f"easymemory chat: {where}, user {scope.user_ref}, {model}")
        session.say(HELP)
        while True:
            try:
                line = input("you> ")
            except (EOFError, KeyboardInterrupt):
                session.say()
                return
            try:
                if not session.handle(line):
                    return
            except CommandError as exc:  # e.g. /add_file on a missing file
                session.say(f"error: {exc}")
            except Exception as exc:  # noqa: BLE001 - one failed command must not end the chat
                session.say(f"error: {exc.__class__.__name__}: {exc}")
                sys.stdout.flush()
