"""Per-credential rate limits shared by every server process.

A token bucket per credential (API key, OAuth application, user session):
capacity EASYMEMORY_RATE_LIMIT_BURST, refilled at EASYMEMORY_RATE_LIMIT_PER_MIN
per minute, unless the API key or OAuth application carries its own pair
(admin API / dashboard). Requests without a valid credential draw on a bucket
per client address (EASYMEMORY_ANON_RATE_LIMIT_*) before anything else is done
for them. A bucket has no window edges, so a client can never get two bursts
back to back the way a fixed window allows at its boundary.

The bucket lives where all processes see it and is updated in one atomic step:
a Lua script in Redis (team mode, or whenever EASYMEMORY_REDIS_URL is set), or
one INSERT ... ON CONFLICT DO UPDATE ... RETURNING on an UNLOGGED table in
PostgreSQL (single-user mode). Both use the server's clock, not the caller's.

REST (accounts.throttles) and MCP call `rate_limit_check(principal)` the same way;
REST, MCP and the websocket call `rate_limit_check_address(addr)` for anonymous traffic.
"""

from __future__ import annotations

import logging
import math
import threading
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import connection

from accounts.principal import Principal

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Decision:
    allowed: bool
    limit: int  # the bucket's capacity: how many requests may go at once
    remaining: int  # whole requests left in the bucket now
    retry_after: float  # seconds until one request is allowed again (0 when allowed)
    reset_after: float  # seconds until the bucket is full again
    per_min: int = 0  # refill rate: requests per minute sustained

    def headers(self) -> dict[str, str]:
        headers = {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(math.ceil(self.reset_after)),
            "X-RateLimit-Refill-Per-Minute": str(self.per_min),
        }
        if not self.allowed:
            headers["Retry-After"] = str(max(1, math.ceil(self.retry_after)))
        return headers


UNLIMITED = Decision(allowed=True, limit=0, remaining=0, retry_after=0.0, reset_after=0.0)

# KEYS[1] bucket; ARGV: capacity, tokens per second, cost (1, or 0 to only look).
# Returns {allowed, tokens-as-string}.
_LUA_BUCKET_SCRIPT = """
local capacity = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1])
local ts = tonumber(state[2])
if tokens == nil or ts == nil then
  tokens = capacity
  ts = now
end
tokens = math.min(capacity, tokens + math.max(0, now - ts) * rate)
local allowed = 0
if tokens >= 1 then
  tokens = tokens - cost
  allowed = 1
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(math.max(now, ts)))
redis.call('PEXPIRE', KEYS[1], math.ceil(capacity / rate * 1000) + 1000)
return {allowed, tostring(tokens)}
"""

# One statement: refill from the elapsed time, take a token if there is one.
# ON CONFLICT DO UPDATE locks the row, so concurrent requests of one credential
# queue on it and each sees the previous one's result (READ COMMITTED re-check).
_SQL_BUCKET_UPSERT = """
INSERT INTO easymemory_rate_bucket AS b (key, tokens, allowed, updated_at)
VALUES (%(key)s, %(capacity)s - %(cost)s, true, statement_timestamp())
ON CONFLICT (key) DO UPDATE SET
  allowed = LEAST(%(capacity)s, b.tokens
                  + GREATEST(0, EXTRACT(EPOCH FROM statement_timestamp() - b.updated_at)) * %(rate)s) >= 1,
  tokens = LEAST(%(capacity)s, b.tokens
                 + GREATEST(0, EXTRACT(EPOCH FROM statement_timestamp() - b.updated_at)) * %(rate)s)
           - CASE WHEN LEAST(%(capacity)s, b.tokens
                   + GREATEST(0, EXTRACT(EPOCH FROM statement_timestamp() - b.updated_at)) * %(rate)s) >= 1
                  THEN %(cost)s ELSE 0 END,
  updated_at = GREATEST(b.updated_at, statement_timestamp())
RETURNING allowed, tokens
"""

_redis_lock = threading.Lock()
_redis_client: Any = None
_redis_script: Any = None


def _redis_bucket(key: str, capacity: int, rate: float, cost: int) -> tuple[bool, float]:
    global _redis_client, _redis_script
    if _redis_script is None:
        with _redis_lock:
            if _redis_script is None:
                import redis

                _redis_client = redis.Redis.from_url(settings.EASYMEMORY_REDIS_URL, socket_timeout=2)
                _redis_script = _redis_client.register_script(_LUA_BUCKET_SCRIPT)
    allowed, tokens = _redis_script(keys=[f"easymemory:rl:{key}"], args=[capacity, repr(rate), cost])
    return bool(allowed), float(tokens)


def _database_bucket(key: str, capacity: int, rate: float, cost: int) -> tuple[bool, float]:
    with connection.cursor() as cursor:
        params: dict[str, Any] = {"key": key, "capacity": float(capacity), "rate": rate, "cost": float(cost)}
        # unscoped: a rate-limit bucket, keyed by credential or client address; no tenant data
        cursor.execute(_SQL_BUCKET_UPSERT, params)
        allowed, tokens = cursor.fetchone()
    return bool(allowed), float(tokens)


def rate_limit_backend() -> str:
    """'redis', 'database' or 'off' (EASYMEMORY_RATE_LIMIT_BACKEND=auto picks Redis when configured)."""
    if settings.EASYMEMORY_RATE_LIMIT_PER_MIN <= 0 or settings.EASYMEMORY_SECURITY_DISABLED_FOR_BENCH:
        return "off"
    backend: str = settings.EASYMEMORY_RATE_LIMIT_BACKEND
    if backend == "auto":
        return "redis" if settings.EASYMEMORY_REDIS_URL else "database"
    return backend


def credential_key(principal: Principal) -> str:
    # The tenant's UUID makes keys unique across installations sharing one Redis.
    return f"{principal.tenant_id}:{principal.actor_type}:{principal.actor_id}"


def credential_limits(principal: Principal) -> tuple[int, int]:
    """(requests per minute, burst) for this credential: its own pair, else the defaults."""
    per_min: int = principal.rate_per_min or settings.EASYMEMORY_RATE_LIMIT_PER_MIN
    capacity: int = principal.rate_burst or settings.EASYMEMORY_RATE_LIMIT_BURST
    return per_min, capacity


def rate_limit_check(principal: Principal) -> Decision:
    """Take one request from `principal`'s bucket. System principals are never limited."""
    backend = rate_limit_backend()
    if backend == "off" or principal.actor_type == "system":
        return UNLIMITED
    per_min, capacity = credential_limits(principal)
    return _take(backend, credential_key(principal), per_min, capacity)


def rate_limit_check_address(client_addr: str, *, take: bool = True) -> Decision:
    """Take one request from the bucket of a client address that failed authentication
    (`take=False`: only look whether one is left).

    Called before such a request is audited, so a flood of them costs one bucket update
    each and, once the bucket is spent, gets 429 instead of further work.
    """
    backend = rate_limit_backend()
    per_min: int = settings.EASYMEMORY_ANON_RATE_LIMIT_PER_MIN
    if backend == "off" or per_min <= 0:
        return UNLIMITED
    capacity: int = settings.EASYMEMORY_ANON_RATE_LIMIT_BURST
    return _take(backend, f"anon:{client_addr or 'unknown'}", per_min, capacity, cost=1 if take else 0)


def _take(backend: str, key: str, per_min: int, capacity: int, cost: int = 1) -> Decision:
    rate = per_min / 60.0
    try:
        bucket = _redis_bucket if backend == "redis" else _database_bucket
        allowed, tokens = bucket(key, capacity, rate, cost)
    except Exception:
        # A broken limiter must not take the API down with it; it is logged loudly.
        logger.exception("rate limiter (%s) failed; request let through", backend)
        return UNLIMITED
    return Decision(
        allowed=allowed,
        limit=capacity,
        per_min=per_min,
        remaining=max(0, math.floor(tokens)),
        retry_after=0.0 if allowed else (1 - tokens) / rate,
        reset_after=(capacity - tokens) / rate,
    )
