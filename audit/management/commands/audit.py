"""`easymemory audit verify` checks the hash chains; `easymemory audit export` writes JSONL."""

from __future__ import annotations

import json
import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.cli_support import tenant_by_slug
from audit.chain import canonical_content
from audit.selectors import audit_verify, chain_events, chain_ids


class Command(BaseCommand):
    help = "Verify the audit trail's hash chains, or export a chain as JSON lines."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="subcommand", required=True)
        verify = sub.add_parser("verify", help="check every chain (or one tenant's); exit 1 on tampering")
        verify.add_argument("--tenant", help="tenant slug (default: every chain, deleted tenants' included)")
        export = sub.add_parser("export", help="write a tenant's events as JSON lines, oldest first")
        export.add_argument("--tenant", required=True, help="tenant slug, or '-' for the tenant-less chain")
        export.add_argument("--output", "-o", help="file to write (default: stdout)")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["subcommand"] == "verify":
            self._verify(options.get("tenant"))
        else:
            self._export(options["tenant"], options.get("output"))

    def _verify(self, slug: str | None) -> None:
        ids = [tenant_by_slug(slug).pk] if slug else chain_ids()
        broken = 0
        for tenant_id in ids:
            report = audit_verify(tenant_id)
            label = f"tenant {tenant_id}" if tenant_id is not None else "tenant-less chain"
            if report.ok:
                self.stdout.write(f"ok      {label}: {report.events} events")
                continue
            broken += 1
            self.stdout.write(f"BROKEN  {label}: {report.events} events, {len(report.problems)} problem(s)")
            for problem in report.problems:
                self.stdout.write(f"  {problem.kind}: {problem.message}")
        if broken:
            raise CommandError(f"{broken} audit chain(s) failed verification")

    def _export(self, slug: str, output: str | None) -> None:
        tenant_id = None if slug == "-" else tenant_by_slug(slug).pk
        stream = open(output, "w", encoding="utf-8") if output else sys.stdout  # noqa: SIM115
        count = 0
        try:
            for event in chain_events(tenant_id):
                record = {"id": event.id, "seq": event.seq, **canonical_content(event)}
                record.update(prev_hash=event.prev_hash, hash=event.hash)
                stream.write(json.dumps(record, sort_keys=True, ensure_ascii=False) + "\n")
                count += 1
        finally:
            if output:
                stream.close()
        if output:
            self.stderr.write(f"exported {count} events to {output}")
