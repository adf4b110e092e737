"""The JSONL copy of the audit trail, outside the database, with size-based rotation.

Several server processes append to one file: an exclusive flock on a side file
serialises append and rotation, so a line is never split and never lost
between a rename and an open.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
from pathlib import Path
from typing import Any

from django.conf import settings

logger = logging.getLogger(__name__)

FILE_NAME = "audit.log.jsonl"


def jsonl_path() -> Path:
    return Path(settings.EASYMEMORY_DATA_DIR) / FILE_NAME


def _rotate(path: Path, backups: int) -> None:
    # audit.log.jsonl.{n-1} → .n, …, audit.log.jsonl → .1; the oldest beyond `backups` is dropped.
    for index in range(backups - 1, 0, -1):
        older = path.with_name(f"{path.name}.{index}")
        if older.exists():
            older.replace(path.with_name(f"{path.name}.{index + 1}"))
    if backups > 0:
        path.replace(path.with_name(f"{path.name}.1"))
    else:
        path.unlink()


def jsonl_append(record: dict[str, Any]) -> None:
    path = jsonl_path()
    line = (json.dumps(record, sort_keys=True, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")
    max_bytes: int = settings.EASYMEMORY_AUDIT_LOG_MAX_BYTES
    try:
        with open(path.with_name(path.name + ".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                if path.exists() and path.stat().st_size + len(line) > max_bytes:
                    _rotate(path, settings.EASYMEMORY_AUDIT_LOG_BACKUPS)
                fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
                try:
                    os.write(fd, line)
                finally:
                    os.close(fd)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)
    except OSError:
        # The database row is the record of truth; a full disk must not fail the request.
        logger.exception("could not append to the audit JSONL sink %s", path)
