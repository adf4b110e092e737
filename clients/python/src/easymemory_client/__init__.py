"""Python client for EasyMemory: `EasyMemory` (sync) and `AsyncEasyMemory` (async)."""

from easymemory_client._core import RetryPolicy
from easymemory_client._ops import Filters, MemoryInput
from easymemory_client.async_client import AsyncEasyMemory
from easymemory_client.client import EasyMemory
from easymemory_client.errors import (
    ApiError,
    AuthenticationError,
    BadRequest,
    EasyMemoryError,
    JobFailed,
    NotFound,
    PermissionDenied,
    RateLimited,
    ServerError,
    TransportError,
)
from easymemory_client.models import (
    Entity,
    EntityDetail,
    EntityRef,
    GraphPath,
    HistoryEntry,
    Hit,
    Job,
    Memory,
    Relation,
    SearchResult,
    SkippedMemory,
    Subgraph,
)

__version__ = "0.1.0"
__all__ = [
    "ApiError", "AsyncEasyMemory", "AuthenticationError", "BadRequest", "EasyMemory", "EasyMemoryError", "Entity",
    "EntityDetail", "EntityRef", "Filters", "GraphPath", "HistoryEntry", "Hit", "Job", "JobFailed", "Memory",
    "MemoryInput", "NotFound", "PermissionDenied", "RateLimited", "Relation", "RetryPolicy", "SearchResult",
    "ServerError", "SkippedMemory", "Subgraph", "TransportError",
]  # fmt: skip
