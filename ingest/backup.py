"""Whole-instance backup and restore: a pg_dump of the database plus the data directory's
other files (secret_key, credentials, ...), in one tar archive.

Single-user mode uses the embedded server's own pg_dump/pg_restore (their version
matches the server); with DATABASE_URL the binaries on PATH are used. Restore
runs pg_restore --clean in a single transaction: it either replaces the whole
database or changes nothing. Stop the server and worker before restoring.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from django.conf import settings
from django.db import connection, connections

from core.progress import Step

FORMAT = "easymemory-backup"
SKIP_DIRS = {"pg", "static"}  # the database (dumped instead) and collected static files (rebuilt)
DUMP_NAME = "database.dump"


class BackupError(Exception):
    pass


@dataclass(frozen=True)
class PgTools:
    pg_dump: str
    pg_restore: str
    args: list[str]
    env: dict[str, str]


def pg_tools() -> PgTools:
    if settings.EMBEDDED_DATABASE:
        from config.embedded_pg import ensure_server

        bin_dir = ensure_server(Path(settings.EASYMEMORY_DATA_DIR)).bin_dir
        dump, restore = str(bin_dir / "pg_dump"), str(bin_dir / "pg_restore")
    else:
        found_dump, found_restore = shutil.which("pg_dump"), shutil.which("pg_restore")
        if not found_dump or not found_restore:
            raise BackupError("pg_dump / pg_restore not found on PATH (install the PostgreSQL client tools)")
        dump, restore = found_dump, found_restore
    params = connection.get_connection_params()
    args = ["--dbname", str(params.get("dbname") or connection.settings_dict["NAME"])]
    if params.get("host"):
        args += ["--host", str(params["host"])]
    if params.get("port"):
        args += ["--port", str(params["port"])]
    if params.get("user"):
        args += ["--username", str(params["user"])]
    env = os.environ.copy()
    if params.get("password"):
        env["PGPASSWORD"] = str(params["password"])
    return PgTools(dump, restore, args, env)


def _data_files(data_dir: Path, exclude: Path | None) -> list[Path]:
    files: list[Path] = []
    for path in sorted(data_dir.rglob("*")):
        rel = path.relative_to(data_dir)
        if rel.parts[0] in SKIP_DIRS or path.is_symlink() or not path.is_file():
            continue  # sockets, lock files of the server, the database directory
        if rel.name.startswith(".s.PGSQL") or (exclude is not None and path.resolve() == exclude):
            continue
        files.append(path)
    return files


def _run_counting(command: list[str], env: dict[str, str], marker: str, tick: Callable[[], None]) -> tuple[int, str]:
    """Run a pg tool with --verbose, calling `tick` for each of its lines that contain `marker`
    (one per table); returns its exit status and its other messages (errors among them)."""
    process = subprocess.Popen(  # noqa: S603 - fixed binary and arguments
        [*command, "--verbose"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    assert process.stderr is not None
    other: list[str] = []
    for line in process.stderr:
        if marker in line:
            tick()
        elif "error" in line.lower() or "fatal" in line.lower() or "warning" in line.lower():
            other.append(line.rstrip())
    return process.wait(), "\n".join(other[-20:])


def _table_count() -> int:
    """Tables whose rows pg_dump writes (ordinary tables outside the system schemas)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE c.relkind = 'r' AND n.nspname <> 'information_schema' AND n.nspname NOT LIKE 'pg\\_%'"
        )
        return int(cursor.fetchone()[0])


def backup_create(out: Path, *, progress: Step | None = None) -> dict[str, object]:
    """Write a backup archive to `out` (atomically: a temporary file renamed at the end).
    `progress` is called with (tables dumped + files archived, their total)."""
    tools = pg_tools()
    data_dir = Path(settings.EASYMEMORY_DATA_DIR)
    out = out.resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="easymemory-backup-") as tmp:
        dump = Path(tmp) / DUMP_NAME
        command = [tools.pg_dump, "--format=custom", "--no-owner", "--file", str(dump), *tools.args]
        files = _data_files(data_dir, out)
        done = 0
        if progress is None:
            result = subprocess.run(command, env=tools.env, capture_output=True, text=True, check=False)  # noqa: S603
            status, errors = result.returncode, result.stderr.strip()
        else:
            total = _table_count() + len(files)

            def tick() -> None:
                nonlocal done
                done += 1
                progress(done, total)

            status, errors = _run_counting(command, tools.env, "dumping contents of table", tick)
        if status != 0:
            raise BackupError(f"pg_dump failed: {errors}")
        manifest = {
            "format": FORMAT,
            "version": 1,
            "created_at": datetime.now(tz=UTC).isoformat(),
            "database_bytes": dump.stat().st_size,
            "files": [str(p.relative_to(data_dir)) for p in files],
        }
        partial = out.with_name(out.name + ".partial")
        # The archive holds the database and the secret key: only the owner may read it, whatever
        # the umask (created 0600, and a leftover partial file set to 0600 too).
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as raw, tarfile.open(fileobj=raw, mode="w") as tar:
            data = json.dumps(manifest, indent=2).encode()
            info = tarfile.TarInfo("manifest.json")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
            tar.add(dump, arcname=DUMP_NAME)
            for path in files:
                tar.add(path, arcname=f"files/{path.relative_to(data_dir).as_posix()}")
                if progress is not None:
                    done += 1
                    progress(done, total)
        os.replace(partial, out)
    return manifest


def _dump_tables(tools: PgTools, dump: Path) -> int:
    """Tables with rows in a dump (its table of contents, read by pg_restore --list)."""
    listing = subprocess.run(  # noqa: S603 - fixed binary and arguments
        [tools.pg_restore, "--list", str(dump)], env=tools.env, capture_output=True, text=True, check=False
    )
    return sum(1 for line in listing.stdout.splitlines() if " TABLE DATA " in line and not line.startswith(";"))


def backup_restore(archive: Path, *, progress: Step | None = None) -> dict[str, object]:
    """Replace the database and the data directory's files with those in `archive`.
    `progress` is called with (tables restored + files put back, their total)."""
    if not archive.is_file():
        raise BackupError(f"{archive}: no such file")
    tools = pg_tools()
    data_dir = Path(settings.EASYMEMORY_DATA_DIR)
    try:
        tar = tarfile.open(archive, "r")
    except tarfile.TarError as exc:
        raise BackupError(f"{archive}: not a backup archive ({exc})") from exc
    with tar, tempfile.TemporaryDirectory(prefix="easymemory-restore-") as tmp:
        try:
            manifest = json.loads(tar.extractfile("manifest.json").read())  # type: ignore[union-attr]
        except (KeyError, AttributeError, ValueError) as exc:
            raise BackupError(f"{archive}: no valid manifest; not an EasyMemory backup") from exc
        if manifest.get("format") != FORMAT:
            raise BackupError(f"{archive}: not an EasyMemory backup")
        # The "data" filter refuses absolute names, `..`, links out and device files.
        tar.extractall(tmp, filter="data")
        dump = Path(tmp) / DUMP_NAME
        if not dump.is_file():
            raise BackupError(f"{archive}: the database dump is missing")
        restored = Path(tmp) / "files"
        put_back = [p for p in sorted(restored.rglob("*")) if p.is_file()] if restored.is_dir() else []
        total = _dump_tables(tools, dump) + len(put_back) if progress is not None else 0
        done = 0

        def tick() -> None:
            nonlocal done
            done += 1
            if progress is not None:
                progress(done, total)

        connections.close_all()
        command = [
            tools.pg_restore,
            "--clean",
            "--if-exists",
            "--no-owner",
            "--single-transaction",
            "--exit-on-error",
            *tools.args,
            str(dump),
        ]
        if progress is None:
            result = subprocess.run(command, env=tools.env, capture_output=True, text=True, check=False)  # noqa: S603
            status, errors = result.returncode, result.stderr.strip()
        else:
            status, errors = _run_counting(command, tools.env, "processing data for table", tick)
        if status != 0:
            raise BackupError(f"pg_restore failed (the database is unchanged): {errors}")
        count = 0
        for path in put_back:
            target = data_dir / path.relative_to(restored)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)
            count += 1
            tick()
    return {**manifest, "restored_files": count}
