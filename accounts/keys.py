"""API key format: ``emk_`` + 40 url-safe characters; the first 12 characters are the visible prefix."""

from __future__ import annotations

import hashlib
import hmac
import secrets

KEY_PREFIX = "emk_"
PREFIX_LENGTH = 12


def generate_key() -> tuple[str, str, str]:
    """Return (secret, prefix, hash). The secret is shown once and never stored."""
    secret = KEY_PREFIX + secrets.token_urlsafe(30)
    return secret, secret[:PREFIX_LENGTH], hash_key(secret)


def hash_key(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def key_matches(secret: str, stored_hash: str) -> bool:
    return hmac.compare_digest(hash_key(secret), stored_hash)


def looks_like_key(value: str) -> bool:
    return value.startswith(KEY_PREFIX) and len(value) > PREFIX_LENGTH
