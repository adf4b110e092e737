from __future__ import annotations

import os
import sys
from typing import Any

import anyio
from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.cli_support import tenant_by_slug


class Command(BaseCommand):
    help = (
        "Serve MCP over stdio (for Claude Desktop and other clients that launch a command). Without --url the "
        "tools use the local database; with --url (or EASYMEMORY_URL) and an API key they go to that server."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--tenant", default=None, help="local mode: act in this tenant (default: default)")
        parser.add_argument(
            "--api-key", default=None, help="act as this API key (default: $EASYMEMORY_API_KEY); required with --url"
        )
        parser.add_argument(
            "--url", default=None, help="proxy to this EasyMemory server, e.g. http://host:8100 (or $EASYMEMORY_URL)"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        from mcp_server import stdio

        url = options["url"] or os.environ.get("EASYMEMORY_URL", "")
        api_key = options["api_key"] or os.environ.get("EASYMEMORY_API_KEY", "")
        if url:
            if not api_key:
                raise CommandError("--url needs --api-key (or EASYMEMORY_API_KEY)")
            if options["tenant"]:
                raise CommandError("--tenant applies to local mode only; the API key decides the tenant on a server")
            endpoint = url.rstrip("/")
            endpoint = endpoint if endpoint.endswith("/mcp") else endpoint + "/mcp"
            try:
                stdio.check_remote(endpoint, api_key)
            except stdio.RemoteUnusable as exc:
                raise CommandError(str(exc)) from exc
            self._log(f"EasyMemory MCP (stdio) proxying to {endpoint}")
            anyio.run(lambda: stdio.serve_proxy(url=endpoint, api_key=api_key))
            return
        if api_key and options["tenant"]:
            raise CommandError("give --tenant or --api-key, not both (the key decides the tenant)")
        if not api_key:
            tenant_by_slug(options["tenant"] or "default")  # fail now, not on the first call
        who = "API key" if api_key else f"tenant {options['tenant'] or 'default'}"
        self._log(f"EasyMemory MCP (stdio) on the local database as {who}")
        anyio.run(lambda: stdio.serve_local(tenant=options["tenant"], api_key=api_key or None))

    def _log(self, text: str) -> None:
        # stdout is the protocol channel: everything human goes to stderr.
        print(text, file=sys.stderr, flush=True)
