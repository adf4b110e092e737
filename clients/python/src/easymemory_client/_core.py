"""What the sync and async clients share: request descriptions, auth, retry policy, error mapping."""

from __future__ import annotations

import email.utils
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, TypeVar
from urllib.parse import parse_qs, urlsplit

import httpx

from easymemory_client.errors import error_for

T = TypeVar("T")

IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
RETRY_STATUSES = frozenset({429, 502, 503, 504})
USER_AGENT = "easymemory-client-python/0.1.0"


@dataclass(frozen=True)
class Call:
    """One HTTP request to make, relative to the base URL."""

    method: str
    path: str
    params: dict[str, Any] | None = None
    json: Any = None
    files: dict[str, Any] | None = None
    stream: bool = False


@dataclass(frozen=True)
class Op(Generic[T]):
    """A request and how to read its answer."""

    call: Call
    parse: Callable[[httpx.Response], T]


@dataclass
class RetryPolicy:
    """Retries with exponential backoff and jitter.

    Connection failures and 429 (the request was refused before doing anything) are retried for every
    method; 502/503/504 and read timeouts only for idempotent methods, so a POST is never applied twice.
    A `Retry-After` header (seconds or HTTP date) is honoured, up to `max_wait`.
    """

    max_retries: int = 3
    backoff: float = 0.5
    max_backoff: float = 20.0
    max_wait: float = 60.0

    def delay(self, attempt: int, retry_after: float | None) -> float:
        delay = min(self.max_backoff, self.backoff * 2**attempt) + random.uniform(0, self.backoff)  # noqa: S311
        if retry_after is not None:
            delay = max(delay, retry_after)
        return min(delay, self.max_wait)

    def should_retry_status(self, method: str, status: int) -> bool:
        return status == 429 or (status in RETRY_STATUSES and method in IDEMPOTENT)

    def should_retry_error(self, method: str, exc: httpx.TransportError) -> bool:
        if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout):
            return True  # nothing reached the server
        return method in IDEMPOTENT


def retry_after_seconds(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def body_of(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return response.text


def raise_for(response: httpx.Response) -> None:
    if response.status_code >= 400:
        raise error_for(response.status_code, body_of(response), retry_after_seconds(response))


@dataclass
class TokenState:
    """An OAuth access token and when to fetch a new one."""

    token: str = ""
    expires_at: float = 0.0
    fetched: int = field(default=0)  # how many tokens were fetched (for observability)

    def valid(self, skew: float = 30.0) -> bool:
        return bool(self.token) and time.monotonic() < self.expires_at - skew

    def store(self, body: dict[str, Any]) -> str:
        self.token = str(body["access_token"])
        self.expires_at = time.monotonic() + float(body.get("expires_in") or 3600)
        self.fetched += 1
        return self.token


def token_request(client_id: str, client_secret: str, scope: str | None) -> dict[str, str]:
    data = {"grant_type": "client_credentials", "client_id": client_id, "client_secret": client_secret}
    if scope:
        data["scope"] = scope
    return data


def clean(params: dict[str, Any]) -> dict[str, Any]:
    """Query parameters without Nones; lists as comma-separated text, datetimes as ISO 8601."""
    out: dict[str, Any] = {}
    for key, value in params.items():
        if value is None:
            continue
        if isinstance(value, list | tuple):
            value = ",".join(str(v) for v in value)
        elif isinstance(value, datetime):
            value = value.isoformat()
        elif isinstance(value, bool):
            value = "true" if value else "false"
        elif isinstance(value, dict):
            import json

            value = json.dumps(value)
        out[key] = value
    return out


def jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value


def next_params(next_url: str | None) -> dict[str, str] | None:
    """The query of a `next` link (cursor or limit/offset), to request the next page at the same path."""
    if not next_url:
        return None
    query = parse_qs(urlsplit(next_url).query)
    return {key: values[-1] for key, values in query.items()}
