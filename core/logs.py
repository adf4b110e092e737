"""Log formatting: plain text by default, one JSON object per line with EASYMEMORY_LOG_FORMAT=json.

The per-request line (logger `easymemory.request`) carries the request id, tenant, principal,
route, method, status and duration, and never a request or response body: memory content does
not reach the logs.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

# Fields that a log call may attach with `extra=` and that the JSON line carries.
REQUEST_FIELDS = ("request_id", "tenant", "principal", "route", "method", "status", "duration_ms", "client")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, tz=UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in REQUEST_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                line[name] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)
