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
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from django.conf import settings
from django.db import connection, connections

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


def backup_create(out: Path) -> dict[str, object]:
    """Write a backup archive to `out` (atomically: a temporary file renamed at the end)."""
    tools = pg_tools()
    data_dir = Path(settings.EASYMEMORY_DATA_DIR)
    out = out.resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="easymemory-backup-") as tmp:
        dump = Path(tmp) / DUMP_NAME
        result = subprocess.run(  # noqa: S603 - fixed binary and arguments
            [tools.pg_dump, "--format=custom", "--no-owner", "--file", str(dump), *tools.args],
            env=tools.env,
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise BackupError(f"pg_dump failed: {result.stderr.strip()}")
        files = _data_files(data_dir, out)
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
        os.replace(partial, out)
    return manifest


def backup_restore(archive: Path) -> dict[str, object]:
    """Replace the database and the data directory's files with those in `archive`."""
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
        connections.close_all()
        result = subprocess.run(  # noqa: S603 - fixed binary and arguments
            [
                tools.pg_restore,
                "--clean",
                "--if-exists",
                "--no-owner",
                "--single-transaction",
                "--exit-on-error",
                *tools.args,
                str(dump),
            ],
            env=tools.env,
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise BackupError(f"pg_restore failed (the database is unchanged): {result.stderr.strip()}")
        restored = Path(tmp) / "files"
        count = 0
        if restored.is_dir():
            for path in sorted(restored.rglob("*")):
                if path.is_file():
                    target = data_dir / path.relative_to(restored)
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(path, target)
                    count += 1
    return {**manifest, "restored_files": count}
