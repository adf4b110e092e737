"""Per-request facts (id, client address, user agent) for the audit trail, in a contextvar."""

from __future__ import annotations

from contextvars import ContextVar, Token
from dataclasses import dataclass


@dataclass(frozen=True)
class RequestInfo:
    request_id: str = ""
    client_addr: str = ""
    user_agent: str = ""


_EMPTY = RequestInfo()
_current: ContextVar[RequestInfo] = ContextVar("easymemory_request", default=_EMPTY)  # noqa: B039 - frozen


def current_request_info() -> RequestInfo:
    return _current.get()


def set_request_info(info: RequestInfo) -> Token[RequestInfo]:
    return _current.set(info)


def reset_request_info(token: Token[RequestInfo]) -> None:
    _current.reset(token)
