"""The application behind a real PgBouncer in transaction mode (EASYMEMORY_PGBOUNCER=true).

Transaction pooling hands each transaction whichever server connection is free, so anything that
lives in a session breaks: server-side cursors (Django's `.iterator()` outside a transaction
declares a WITH HOLD cursor and fetches it in later transactions), prepared statements, session
SETs. The pool here has two server connections for many client transactions, so consecutive
transactions of one client do land on different server connections."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from django.db import connection

from memory.models import Memory
from tests.conftest import REPO, Persona, embed_pending, free_port, subprocess_env, wait_for_http

PGBOUNCER = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not os.path.exists(PGBOUNCER), reason="pgbouncer is not installed (apt-get install pgbouncer)"),
]


def pgbouncer_start(workdir: Path, database: str, host: str, port: int) -> tuple[subprocess.Popen[bytes], int]:
    listen = free_port()
    ini = workdir / "pgbouncer.ini"
    ini.write_text(
        f"""[databases]
{database} = host={host} port={port} dbname={database} user=postgres
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {listen}
unix_socket_dir =
auth_type = any
admin_users = postgres
pool_mode = transaction
default_pool_size = 2
min_pool_size = 2
max_client_conn = 200
server_round_robin = 1
ignore_startup_parameters = extra_float_digits
logfile = {workdir / "pgbouncer.log"}
"""
    )
    # PgBouncer refuses to run as root; the embedded server's system user serves here.
    command = [PGBOUNCER, str(ini)]
    if os.geteuid() == 0:
        command = ["runuser", "-u", "pgserver", "--", *command]
    process = subprocess.Popen(command)
    deadline = time.monotonic() + 30
    while True:
        try:
            psycopg.connect(f"postgresql://postgres@127.0.0.1:{listen}/{database}", connect_timeout=2).close()
            return process, listen
        except psycopg.OperationalError:
            if time.monotonic() > deadline or process.poll() is not None:
                process.kill()
                raise
            time.sleep(0.2)


def transactions_through(listen: int, database: str) -> int:
    """PgBouncer's own count of transactions it pooled for `database` (admin console, simple protocol)."""
    with psycopg.connect(
        f"postgresql://postgres@127.0.0.1:{listen}/pgbouncer", autocommit=True, cursor_factory=psycopg.ClientCursor
    ) as admin:
        cursor = admin.cursor()
        cursor.execute("SHOW STATS")
        columns = [c.name for c in cursor.description or []]
        for row in cursor.fetchall():
            stats = dict(zip(columns, row, strict=False))
            if stats["database"] == database:
                return int(stats["total_xact_count"])
    return 0


@pytest.fixture
def bounced_server(transactional_db: Any) -> Iterator[tuple[str, int, str]]:
    params = connection.get_connection_params()
    database = connection.settings_dict["NAME"]
    workdir = Path(tempfile.mkdtemp(prefix="easymemory-pgbouncer-"))
    workdir.chmod(0o777)  # PgBouncer's user writes its log here
    bouncer, listen = pgbouncer_start(workdir, database, str(params["host"]), int(params.get("port") or 5432))
    port = free_port()
    env = subprocess_env(
        DATABASE_URL=f"postgresql://postgres@127.0.0.1:{listen}/{database}",
        EASYMEMORY_PGBOUNCER="true",
        EASYMEMORY_DB_POOL_MIN="0",
    )
    command = [sys.executable, "-m", "uvicorn", "config.asgi:application", "--port", str(port), "--log-level", "error"]  # noqa: E501
    server = subprocess.Popen([*command, "--host", "127.0.0.1", "--lifespan", "on"], cwd=REPO, env=env)
    try:
        wait_for_http(f"http://127.0.0.1:{port}/healthz", process=server, timeout=120)
        yield f"http://127.0.0.1:{port}", listen, database
    finally:
        for process in (server, bouncer):
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
        shutil.rmtree(workdir, ignore_errors=True)


def test_it_writes_searches_lists_and_exports_through_pgbouncer_in_transaction_mode(
    bounced_server: tuple[str, int, str], writer: Persona
) -> None:
    base, listen, database = bounced_server
    client = httpx.Client(base_url=base, headers=writer.headers, timeout=120)
    before = transactions_through(listen, database)
    contents = [f"Release {n} ships the {word} feature" for n, word in enumerate(["export", "search", "graph"] * 4)]
    ids = []
    for content in contents:
        created = client.post("/v1/memories", json={"content": content, "tags": ["release"]})
        assert created.status_code == 201, created.text
        ids.append(created.json()["id"])
    embed_pending()
    assert not Memory.objects.filter(pk__in=ids, enrichment_state="pending").exists()
    # Repeated statements (psycopg would prepare them after five runs) on alternating server connections;
    # both the exact-scan and full-text plans set their planner options with SET LOCAL.
    for query in ["which release ships search", "graph feature", "export"] * 3:
        found = client.post("/v1/search", json={"query": query, "k": 5})
        assert found.status_code == 200, found.text
        assert found.json()["results"], query
    listed = client.get("/v1/memories")
    assert listed.status_code == 200 and len(listed.json()["results"]) == len(contents)
    # Export streams through .iterator(): a server-side cursor unless they are disabled.
    exported = client.get("/v1/export")
    assert exported.status_code == 200
    assert {line for line in exported.text.splitlines() if line.strip()} and all(i in exported.text for i in ids)
    assert transactions_through(listen, database) - before > len(contents)
