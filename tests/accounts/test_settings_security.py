"""A LAN (team-mode) server refuses to start with insecure settings; single-user mode needs none."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PRINT = (
    "import json, config.startup; config.startup.data_dir_prepare(); import config.settings as s; "
    "print(json.dumps({k: getattr(s, k, None) for k in "
    "['SECRET_KEY', 'SESSION_COOKIE_SECURE', 'CSRF_COOKIE_SECURE', 'SECURE_HSTS_SECONDS', 'ALLOWED_HOSTS', "
    "'CSRF_TRUSTED_ORIGINS', 'EASYMEMORY_RATE_LIMIT_PER_MIN', 'EASYMEMORY_RATE_LIMIT_BURST']}, default=str))"
)
TEAM = {
    "EASYMEMORY_MODE": "team",
    "EASYMEMORY_SECRET_KEY": "k" * 50,
    "EASYMEMORY_ALLOWED_HOSTS": "memory.lan",
    "EASYMEMORY_REDIS_URL": "redis://127.0.0.1:6379/15",
    "DATABASE_URL": "postgresql://u:p@db.lan:5432/easymemory",
}


def load_settings(tmp_path: Path, code: str = PRINT, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("EASYMEMORY_") and k != "DATABASE_URL"}
    base.update({"EASYMEMORY_DATA_DIR": str(tmp_path / "data"), **env})
    return subprocess.run([sys.executable, "-c", code], cwd=REPO, env=base, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(
    "change,message",
    [
        ({"EASYMEMORY_SECRET_KEY": ""}, "EASYMEMORY_SECRET_KEY"),
        ({"EASYMEMORY_SECRET_KEY": "short"}, "at least 32"),
        ({"EASYMEMORY_ALLOWED_HOSTS": ""}, "EASYMEMORY_ALLOWED_HOSTS"),
        ({"EASYMEMORY_DEBUG": "true"}, "EASYMEMORY_DEBUG"),
        ({"EASYMEMORY_HTTPS": "true"}, "EASYMEMORY_CSRF_TRUSTED_ORIGINS"),
        ({"EASYMEMORY_ADMIN_TOKEN": "too-short"}, "EASYMEMORY_ADMIN_TOKEN"),
        ({"EASYMEMORY_RATE_LIMIT_PER_MIN": "lots"}, "EASYMEMORY_RATE_LIMIT_PER_MIN"),
        ({"EASYMEMORY_AUDIT_QUERIES": "everything"}, "EASYMEMORY_AUDIT_QUERIES"),
    ],
)
def test_team_mode_refuses_insecure_settings(tmp_path: Path, change: dict[str, str], message: str) -> None:
    result = load_settings(tmp_path, **{**TEAM, **change})
    assert result.returncode != 0
    assert "ConfigError" in result.stderr and message in result.stderr


def test_team_mode_behind_https_secures_cookies_and_sends_hsts(tmp_path: Path) -> None:
    secret_file = tmp_path / "secret"
    secret_file.write_text("f" * 64 + "\n")
    env = {**TEAM, "EASYMEMORY_SECRET_KEY": "", "EASYMEMORY_SECRET_KEY_FILE": str(secret_file)}
    env.update(EASYMEMORY_HTTPS="true", EASYMEMORY_CSRF_TRUSTED_ORIGINS="https://memory.lan")
    result = load_settings(tmp_path, **env)
    assert result.returncode == 0, result.stderr
    loaded = json.loads(result.stdout)
    assert loaded["SECRET_KEY"] == "f" * 64
    assert loaded["SESSION_COOKIE_SECURE"] is True and loaded["CSRF_COOKIE_SECURE"] is True
    assert loaded["SECURE_HSTS_SECONDS"] == 31536000
    assert loaded["ALLOWED_HOSTS"] == ["memory.lan"]
    assert loaded["CSRF_TRUSTED_ORIGINS"] == ["https://memory.lan"]


def test_single_user_mode_generates_its_secret_key_once(tmp_path: Path) -> None:
    env = {"EASYMEMORY_REDIS_URL": "redis://127.0.0.1:6379/15", "DATABASE_URL": "postgresql://u:p@h/db"}
    first = load_settings(tmp_path, **env)
    assert first.returncode == 0, first.stderr
    second = load_settings(tmp_path, **env)
    key_file = tmp_path / "data" / "secret_key"
    assert json.loads(first.stdout)["SECRET_KEY"] == json.loads(second.stdout)["SECRET_KEY"]
    assert len(json.loads(first.stdout)["SECRET_KEY"]) >= 50
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    loaded = json.loads(first.stdout)
    assert loaded["SESSION_COOKIE_SECURE"] is False
    # Defaults fit machine clients: 30 requests/s sustained, 120 at once.
    assert (loaded["EASYMEMORY_RATE_LIMIT_PER_MIN"], loaded["EASYMEMORY_RATE_LIMIT_BURST"]) == (1800, 120)


def test_the_benchmark_settings_that_disable_security_are_refused_in_team_mode(tmp_path: Path) -> None:
    result = load_settings(tmp_path, "import config.bench_settings", **TEAM)
    assert result.returncode != 0
    assert "ConfigError" in result.stderr and "refused in team mode" in result.stderr


def test_the_shipped_settings_have_no_switch_that_disables_security(tmp_path: Path) -> None:
    code = "import config.settings as s; print(s.EASYMEMORY_SECURITY_DISABLED_FOR_BENCH, s.REST_FRAMEWORK)"
    result = load_settings(tmp_path, code, EASYMEMORY_BENCH_DISABLE_SECURITY="1")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("False ") and "BenchAuthentication" not in result.stdout


def test_importing_the_settings_writes_nothing(tmp_path: Path) -> None:
    code = "import config.settings as s; print(repr(s.SECRET_KEY))"
    result = load_settings(tmp_path, code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "''"
    assert not (tmp_path / "data").exists()
