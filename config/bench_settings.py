"""Settings for bench/auth_overhead.py only: the shipped settings with authentication, rate
limiting and audit switched off, so the benchmark can measure what they cost per request.

Every request acts as the first admin API key. Selected with
DJANGO_SETTINGS_MODULE=config.bench_settings; refused in team mode, so a LAN server
cannot be started with it.
"""

from config.settings import *  # noqa: F403
from config.settings import REST_FRAMEWORK, TEAM_MODE, ConfigError

if TEAM_MODE:
    raise ConfigError("config.bench_settings is refused in team mode")

EASYMEMORY_SECURITY_DISABLED_FOR_BENCH = True
REST_FRAMEWORK = {**REST_FRAMEWORK, "DEFAULT_AUTHENTICATION_CLASSES": ["accounts.authentication.BenchAuthentication"]}
