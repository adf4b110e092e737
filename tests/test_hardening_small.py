"""Issue 13, item 8: the smaller hardening items (websocket ?token= in team mode, first-run
credentials, /readyz detail, backup file mode)."""

from __future__ import annotations

import json
import os
import stat
import tarfile
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.test import Client

from accounts.bootstrap import CREDENTIALS_FILE, bootstrap_first_run
from accounts.models import ApiKey
from tests.accounts.test_settings_security import TEAM


def ws_query_token(tmp_path: Path, **env: str) -> Any:
    code = "import json, config.settings as s; print(json.dumps(s.EASYMEMORY_WS_QUERY_TOKEN))"
    import subprocess
    import sys

    base = {k: v for k, v in os.environ.items() if not k.startswith("EASYMEMORY_") and k != "DATABASE_URL"}
    base.update({"EASYMEMORY_DATA_DIR": str(tmp_path / "data"), **env})
    done = subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).resolve().parents[1], env=base,
                          capture_output=True, text=True, timeout=60, check=True)  # fmt: skip
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_the_websocket_query_token_is_off_by_default_in_team_mode(tmp_path: Path) -> None:
    assert ws_query_token(tmp_path, **TEAM) is False
    assert ws_query_token(tmp_path, **TEAM, EASYMEMORY_WS_QUERY_TOKEN="true") is True
    assert ws_query_token(tmp_path) is True  # single user: the dashboard's own socket on localhost


@pytest.mark.django_db
@pytest.mark.parametrize("team", [True, False])
def test_first_run_credentials_go_to_a_0600_file_and_to_the_log_only_in_single_user_mode(
    team: bool, settings: Any, tmp_path: Path
) -> None:
    settings.TEAM_MODE = team
    settings.EASYMEMORY_DATA_DIR = tmp_path
    (tmp_path / CREDENTIALS_FILE).write_text("stale")
    (tmp_path / CREDENTIALS_FILE).chmod(0o644)
    out = StringIO()
    assert bootstrap_first_run(stdout=out, base_url="http://127.0.0.1:8000")
    written = (tmp_path / CREDENTIALS_FILE).read_text()
    assert stat.S_IMODE((tmp_path / CREDENTIALS_FILE).stat().st_mode) == 0o600
    key_prefix = ApiKey.objects.get().prefix
    assert key_prefix in written and "admin / " in written
    assert (key_prefix in out.getvalue()) is not team
    assert ("admin / " in out.getvalue()) is not team
    assert str(tmp_path / CREDENTIALS_FILE) in out.getvalue()


@pytest.mark.django_db
def test_readyz_does_not_show_exception_text(monkeypatch: pytest.MonkeyPatch) -> None:
    from config.celery import app

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise OSError("connect to broker-secret.lan:6379 refused for user celery")

    monkeypatch.setattr(app, "connection_for_write", refuse)
    response = Client().get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["checks"] == {"database": "ok", "queue": "unavailable"}
    assert "broker-secret" not in response.content.decode()


def test_a_backup_is_readable_only_by_its_owner(transactional_db: Any, tmp_path: Path) -> None:
    archive = tmp_path / "easymemory.tar"
    previous = os.umask(0o022)
    try:
        call_command("backup", "--out", str(archive), stdout=StringIO())
    finally:
        os.umask(previous)
    assert stat.S_IMODE(archive.stat().st_mode) == 0o600
    with tarfile.open(archive) as tar:
        assert "manifest.json" in tar.getnames()
