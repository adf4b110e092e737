"""What team mode requires, checked all at once.

A LAN administrator who starts team mode with three settings missing should learn of all three
from one message, not one per restart. `settings.py` calls this before reading the settings one
by one; their own checks stay as the last line of defence.
"""

from __future__ import annotations

from config.env import ConfigError, env_bool, env_list, env_str

# (variable, what it is for); each may also be given as <variable>_FILE.
REQUIRED = [
    ("DATABASE_URL", "the PostgreSQL server with pgvector, e.g. postgresql://user:pass@db:5432/easymemory"),
    ("EASYMEMORY_REDIS_URL", "the Redis that carries tasks, events and rate limits, e.g. redis://redis:6379/0"),
    ("EASYMEMORY_SECRET_KEY", "at least 32 random characters, e.g. `openssl rand -hex 32`"),
    ("EASYMEMORY_ALLOWED_HOSTS", "comma-separated host names clients use to reach the server"),
]


def team_settings_problems(environ: dict[str, str] | None = None) -> list[str]:
    """Every missing or unusable team-mode setting, one line each (empty when all is well)."""
    problems: list[str] = []
    for name, purpose in REQUIRED:
        if not env_str(name, environ=environ).strip():
            problems.append(f"{name} (or {name}_FILE) is not set: {purpose}")
    secret = env_str("EASYMEMORY_SECRET_KEY", environ=environ).strip()
    if secret and len(secret) < 32:
        problems.append("EASYMEMORY_SECRET_KEY must be at least 32 characters")
    if env_str("EASYMEMORY_ALLOWED_HOSTS", environ=environ).strip() and not env_list(
        "EASYMEMORY_ALLOWED_HOSTS", environ=environ
    ):
        problems.append("EASYMEMORY_ALLOWED_HOSTS names no host")
    try:
        https = env_bool("EASYMEMORY_HTTPS", False, environ=environ)
        if https and not env_list("EASYMEMORY_CSRF_TRUSTED_ORIGINS", environ=environ):
            problems.append("EASYMEMORY_CSRF_TRUSTED_ORIGINS is not set: needed behind HTTPS (https://host,…)")
        if env_bool("EASYMEMORY_DEBUG", False, environ=environ):
            problems.append("EASYMEMORY_DEBUG must be off in team mode (it leaks settings and tracebacks)")
    except ConfigError as exc:
        problems.append(str(exc))
    return problems


def team_settings_check(environ: dict[str, str] | None = None) -> None:
    problems = team_settings_problems(environ)
    if problems:
        listed = "\n".join(f"  - {problem}" for problem in problems)
        count = len(problems)
        raise ConfigError(f"team mode (EASYMEMORY_MODE=team) cannot start; {count} setting(s) to fix:\n{listed}")
