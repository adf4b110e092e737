"""The per-tenant hash chain: canonical form of an event, and verification.

hash = SHA-256(prev_hash + canonical JSON of the event's content). The chain
order is the link itself (each event names its predecessor's hash); `seq` is
only where the database keeps it, so a moved event shows up as a broken link
whose predecessor exists elsewhere, a removed one as a gap and a broken link
whose predecessor exists nowhere, an edited one as a hash that no longer
matches its content.

Truncating the newest events of a chain leaves a consistent shorter chain; the
JSONL sink (kept outside the database) is the witness for those.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC
from typing import Any

GENESIS = "0" * 64

# The fields the hash covers (everything but id, seq and the hashes themselves).
CHAINED_FIELDS = (
    "tenant_id",
    "created_at",
    "actor_type",
    "actor_id",
    "action",
    "target_type",
    "target_id",
    "outcome",
    "request_id",
    "client_addr",
    "user_agent",
    "detail",
)


def canonical_content(event: Any) -> dict[str, Any]:
    content: dict[str, Any] = {}
    for name in CHAINED_FIELDS:
        value = getattr(event, name)
        if name == "tenant_id":
            value = str(value) if value is not None else None
        elif name == "created_at":
            value = value.astimezone(UTC).isoformat(timespec="microseconds")
        content[name] = value
    return content


def canonical_json(content: dict[str, Any]) -> str:
    return json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def event_hash(prev_hash: str, event: Any) -> str:
    payload = prev_hash + canonical_json(canonical_content(event))
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


@dataclass
class Problem:
    kind: str  # "edited" | "removed" | "reordered"
    event_id: int | None
    seq: int | None
    message: str


@dataclass
class ChainReport:
    tenant_id: str | None
    events: int = 0
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def verify_events(events: Iterable[Any], tenant_id: str | None) -> ChainReport:
    """Check one chain, given its events in `seq` order."""
    report = ChainReport(tenant_id=tenant_id)
    rows = list(events)
    report.events = len(rows)
    known_hashes = {row.hash: row for row in rows}
    previous_hash = GENESIS
    expected_seq = 1
    for row in rows:
        gap = row.seq > expected_seq
        if gap:
            missing = f"{expected_seq}" if row.seq == expected_seq + 1 else f"{expected_seq}-{row.seq - 1}"
            report.problems.append(
                Problem(
                    "removed",
                    row.id,
                    row.seq,
                    f"seq {missing} missing: removed before event id {row.id} (seq {row.seq})",
                )
            )
        expected_seq = row.seq + 1
        if event_hash(row.prev_hash, row) != row.hash:
            report.problems.append(
                Problem(
                    "edited",
                    row.id,
                    row.seq,
                    f"event id {row.id} (seq {row.seq}) was edited: its content no longer matches its hash",
                )
            )
        if row.prev_hash != previous_hash:
            predecessor = known_hashes.get(row.prev_hash)
            if predecessor is not None:
                report.problems.append(
                    Problem(
                        "reordered",
                        row.id,
                        row.seq,
                        f"event id {row.id} (seq {row.seq}) is out of order: in the chain it follows "
                        f"event id {predecessor.id}, now at seq {predecessor.seq}",
                    )
                )
            elif not gap:
                report.problems.append(
                    Problem(
                        "removed", row.id, row.seq, f"the event before event id {row.id} (seq {row.seq}) was removed"
                    )
                )
        previous_hash = row.hash
    return report
