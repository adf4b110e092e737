"""The running instance of a data directory: who holds it, where it listens, and how to stop it.

`easymemory serve` takes an exclusive lock on `<data dir>/serve.lock` for its whole life and
writes `<data dir>/serve.json` (pid, address). The lock, not the file, says whether an instance
runs: the kernel drops it when the process dies, however it dies, so a stale file never blocks
a restart. Nothing here imports Django: `easymemory stop` and the checks made before settings
load must not create or touch anything.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

from config.startup import data_dir_from_env

LOCK_NAME = "serve.lock"
INFO_NAME = "serve.json"
__all__ = ["data_dir_from_env"]  # re-exported: the CLI reaches the data directory through this module


class AlreadyRunning(RuntimeError):
    """Another `easymemory serve` holds this data directory."""


@dataclass(frozen=True)
class InstanceInfo:
    pid: int
    url: str
    data_dir: str

    def describe(self) -> str:
        return f"pid {self.pid}, {self.url}" if self.url else f"pid {self.pid}"


def installation_exists(data_dir: Path) -> bool:
    """True when the data directory holds an initialised embedded PostgreSQL cluster."""
    return (data_dir / "pg" / "PG_VERSION").is_file()


def instance_lock(data_dir: Path, *, url: str) -> int:
    """Take the data directory for this process; returns the lock's file descriptor (keep it open).

    Raises AlreadyRunning, naming the holder, when another process has it.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(data_dir / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        holder = instance_running(data_dir)
        where = holder.describe() if holder else "pid unknown"
        raise AlreadyRunning(f"EasyMemory is already running on {data_dir} ({where})") from None
    os.set_inheritable(fd, False)
    info = {"pid": os.getpid(), "url": url, "data_dir": str(data_dir)}
    tmp = data_dir / f".{INFO_NAME}.tmp"
    tmp.write_text(json.dumps(info), encoding="utf-8")
    tmp.replace(data_dir / INFO_NAME)
    return fd


def instance_release(data_dir: Path, fd: int) -> None:
    (data_dir / INFO_NAME).unlink(missing_ok=True)
    os.close(fd)


def instance_running(data_dir: Path) -> InstanceInfo | None:
    """The serve process holding `data_dir`, or None when no process holds its lock."""
    lock_path = data_dir / LOCK_NAME
    if not lock_path.exists():
        return None
    fd = os.open(lock_path, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            pass  # held: an instance runs
        else:
            return None
    finally:
        os.close(fd)
    try:
        raw = json.loads((data_dir / INFO_NAME).read_text(encoding="utf-8"))
        return InstanceInfo(pid=int(raw["pid"]), url=str(raw.get("url", "")), data_dir=str(data_dir))
    except (OSError, ValueError, KeyError, TypeError):
        # The holder is between taking the lock and writing its file.
        return InstanceInfo(pid=0, url="", data_dir=str(data_dir))


def embedded_postgres_pid(data_dir: Path) -> int | None:
    """The postmaster of the data directory's embedded cluster, when one is alive."""
    pid_file = data_dir / "pg" / "postmaster.pid"
    try:
        pid = int(pid_file.read_text(encoding="utf-8").splitlines()[0])
    except (OSError, ValueError, IndexError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        return pid  # alive, owned by the PostgreSQL system user
    return pid


def embedded_postgres_stop(data_dir: Path, *, timeout: float = 60.0) -> bool:
    """Stop the embedded cluster of `data_dir`: SIGINT to the postmaster is PostgreSQL's "fast"
    shutdown (open transactions roll back, committed work is on disk, then it exits). A signal
    rather than `pg_ctl`: as root the server runs as the package's system user, who may not be
    able to reach a data directory under a private parent. Returns False when none was running."""
    pid = embedded_postgres_pid(data_dir)
    if pid is None:
        return False
    try:
        os.kill(pid, signal.SIGINT)
    except ProcessLookupError:
        return True
    deadline = time.monotonic() + timeout
    # The postmaster removes postmaster.pid as the last step of a clean shutdown.
    while embedded_postgres_pid(data_dir) is not None:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def instance_stop(data_dir: Path, *, timeout: float = 60.0) -> tuple[bool, str]:
    """Stop the instance running on `data_dir`: its serve process (which stops what it started)
    or, when serve is gone but left the embedded PostgreSQL behind, that server.

    Returns (ok, message).
    """
    holder = instance_running(data_dir)
    if holder is not None and holder.pid > 0:
        try:
            os.kill(holder.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + timeout
        while instance_running(data_dir) is not None:
            if time.monotonic() > deadline:
                return False, f"EasyMemory ({holder.describe()}) did not stop within {timeout:.0f}s"
            time.sleep(0.2)
        # serve stops the embedded server itself; this only catches one it could not stop.
        embedded_postgres_stop(data_dir, timeout=timeout)
        return True, f"stopped EasyMemory ({holder.describe()}) on {data_dir}"
    if embedded_postgres_stop(data_dir, timeout=timeout):
        return True, f"no EasyMemory server was running on {data_dir}; stopped its embedded PostgreSQL"
    if embedded_postgres_pid(data_dir) is not None:
        return False, f"the embedded PostgreSQL of {data_dir} did not stop"
    return True, f"nothing is running on {data_dir}"
