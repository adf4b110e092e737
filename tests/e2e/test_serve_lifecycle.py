"""`easymemory serve` / `stop` as an administrator uses them: one instance per data directory,
graceful stop (readiness drains, in-flight requests finish), nothing left running afterwards;
commands that only read create nothing."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from config.instance import embedded_postgres_pid
from tests.conftest import REPO, free_port, wait_for_http


def cli_env(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "EASYMEMORY_", "DJANGO_"))}
    env.update({"EASYMEMORY_DATA_DIR": str(data_dir), "PYTHONWARNINGS": "ignore", **extra})
    return env


def cli(data_dir: Path, *args: str, timeout: float = 120, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "config.cli", *args],
        cwd=REPO,
        env=cli_env(data_dir, **extra),
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def start_serve(data_dir: Path, port: int, log: Path, *args: str) -> subprocess.Popen[bytes]:
    # The test session's ONNX export of the model serves here too (tests/memory covers the export).
    model_cache = os.environ["EASYMEMORY_MODEL_CACHE_DIR"]
    env = cli_env(data_dir, EASYMEMORY_LOG_LEVEL="info", EASYMEMORY_LOG_FORMAT="json")
    env["EASYMEMORY_MODEL_CACHE_DIR"] = model_cache
    return subprocess.Popen(
        [sys.executable, "-m", "config.cli", "serve", "--port", str(port), *args],
        cwd=REPO,
        env=env,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def processes_mentioning(text: str) -> list[str]:
    out = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True, check=True).stdout
    return [line for line in out.splitlines() if text in line and "ps -eo" not in line]


def children_of(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-eo", "pid,ppid"], capture_output=True, text=True, check=True).stdout
    return [int(p) for p, pp in (line.split() for line in out.splitlines()[1:]) if int(pp) == pid]


def wait_gone(process: subprocess.Popen[bytes], timeout: float = 120) -> int:
    try:
        return process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        raise


def test_help_and_commands_that_only_read_create_nothing(tmp_path: Path) -> None:
    data_dir = tmp_path / "nowhere"
    assert cli(data_dir, "--help").returncode == 0
    assert cli(data_dir, "stop").returncode == 0
    for command in (["mcp"], ["search", "anything"]):
        result = cli(data_dir, *command)
        assert result.returncode == 2, result.stderr
        assert str(data_dir) in result.stderr and "EASYMEMORY_DATA_DIR" in result.stderr
        assert "Traceback" not in result.stderr
    assert not data_dir.exists()
    assert processes_mentioning(str(data_dir)) == []


def test_team_mode_names_every_missing_setting_at_once(tmp_path: Path) -> None:
    result = cli(tmp_path / "d", "serve", EASYMEMORY_MODE="team", EASYMEMORY_SECRET_KEY="short")
    assert result.returncode == 2
    for name in (
        "DATABASE_URL",
        "EASYMEMORY_REDIS_URL",
        "EASYMEMORY_ALLOWED_HOSTS",
        "SECRET_KEY must be at least 32",
    ):
        assert name in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


@pytest.fixture(scope="module")
def installed() -> Iterator[Path]:
    """A data directory that `serve` initialised once (the tests below restart it).

    Not under pytest's tmp_path: that parent is private to root, and as root the embedded server
    runs as its own system user, which must be able to reach its data directory."""
    parent = Path(tempfile.mkdtemp(prefix="easymemory-lifecycle-"))
    parent.chmod(0o755)
    data_dir = parent / "data"
    yield data_dir
    cli(data_dir, "stop")
    cli(parent / "unmigrated", "stop")
    shutil.rmtree(parent, ignore_errors=True)


@pytest.mark.slow
@pytest.mark.e2e
def test_stop_drains_readiness_finishes_in_flight_requests_and_stops_everything(installed: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = installed.parent / "serve.log"
    serve = start_serve(installed, port, log, "--drain-seconds", "3")
    try:
        wait_for_http(f"{base}/healthz", timeout=300, process=serve)
        key = re.search(r"API key\s+:\s+(emk_\S+)", log.read_text())
        assert key
        headers = {"Authorization": f"Bearer {key.group(1)}", "Content-Type": "application/json"}
        assert json.loads((installed / "serve.json").read_text())["pid"] == serve.pid

        # A second serve on the same data directory refuses, naming the running one.
        second = cli(installed, "serve", "--port", str(free_port()))
        assert second.returncode == 1
        assert f"pid {serve.pid}" in second.stderr and f":{port}/" in second.stderr

        # An upload still arriving when the stop begins.
        result: dict[str, object] = {}
        sending = threading.Event()

        # The body keeps arriving until the web server has closed its listening socket (the stop is
        # under way), then the rest comes at once: the request was in flight through the shutdown.
        parts = [b'{"content": "written while the server was stopping', *([b" ."] * 200), b'"}']
        listener_closed = threading.Event()

        def slow_body() -> Iterator[bytes]:
            yield parts[0]
            sending.set()
            for part in parts[1:]:
                if not listener_closed.is_set():
                    time.sleep(0.2)
                yield part

        def upload() -> None:
            length = {"Content-Length": str(sum(map(len, parts)))}  # the API refuses bodies of unknown size
            response = httpx.post(f"{base}/v1/memories", content=slow_body(), headers=headers | length, timeout=120)
            result["status"] = response.status_code
            result["body"] = response.text
            result["closed_before_done"] = listener_closed.is_set()

        uploader = threading.Thread(target=upload)
        uploader.start()
        assert sending.wait(60)
        web = children_of(serve.pid)
        postgres = embedded_postgres_pid(installed)
        assert postgres is not None and len(web) == 2  # uvicorn and the worker
        stopping = subprocess.Popen(  # `easymemory stop` sends serve SIGTERM and waits for it
            [sys.executable, "-m", "config.cli", "stop"], cwd=REPO, env=cli_env(installed), stdout=subprocess.PIPE
        )
        deadline = time.monotonic() + 60
        while (ready := httpx.get(f"{base}/readyz", timeout=30)).status_code == 200:
            assert time.monotonic() < deadline, "readiness never reported draining"
            time.sleep(0.1)
        assert ready.status_code == 503 and ready.json()["status"] == "draining"
        assert httpx.get(f"{base}/healthz", timeout=30).status_code == 200  # still serving while draining
        while not listener_closed.is_set() and uploader.is_alive():
            try:
                httpx.get(f"{base}/healthz", timeout=5)
                time.sleep(0.2)
            except (httpx.ConnectError, httpx.ReadError, httpx.RemoteProtocolError):
                # Refused, or reset while the closing server dropped a just-accepted connection.
                listener_closed.set()
        uploader.join(120)
        assert result.get("status") == 201, result
        assert result["closed_before_done"], "the stop did not begin while the request was in flight"
        assert wait_gone(serve) == 0
        out, _ = stopping.communicate(timeout=120)
        assert stopping.returncode == 0 and f"stopped EasyMemory (pid {serve.pid}" in out.decode()
    finally:
        if serve.poll() is None:
            os.killpg(serve.pid, signal.SIGKILL)
    assert [pid for pid in [*web, postgres] if _alive(pid)] == []
    assert embedded_postgres_pid(installed) is None
    assert not (installed / "serve.json").exists()
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    posted = [line for line in lines if line.get("route") == "v1/memories" and line.get("status") == 201]
    assert posted and posted[0]["tenant"] == "default" and posted[0]["principal"].startswith("api_key:")
    assert "written while the server" not in log.read_text()


@pytest.mark.slow
@pytest.mark.e2e
def test_hangup_of_the_process_group_leaves_nothing_running(installed: Path) -> None:
    port = free_port()
    log = installed.parent / "serve-2.log"
    serve = start_serve(installed, port, log, "--no-worker")
    try:
        wait_for_http(f"http://127.0.0.1:{port}/healthz", timeout=300, process=serve)
        children = children_of(serve.pid)
        postgres = embedded_postgres_pid(installed)
        assert postgres is not None and children
        os.killpg(serve.pid, signal.SIGHUP)  # the terminal went away
        wait_gone(serve)
    finally:
        if serve.poll() is None:
            os.killpg(serve.pid, signal.SIGKILL)
    assert [pid for pid in [*children, postgres] if _alive(pid)] == []
    assert embedded_postgres_pid(installed) is None


@pytest.mark.slow
@pytest.mark.e2e
def test_stop_cleans_up_a_postgres_left_by_a_killed_serve_and_mcp_needs_the_schema(installed: Path) -> None:
    port = free_port()
    log = installed.parent / "serve-3.log"
    serve = start_serve(installed, port, log)
    try:
        wait_for_http(f"http://127.0.0.1:{port}/healthz", timeout=300, process=serve)
        children = children_of(serve.pid)
        os.kill(serve.pid, signal.SIGKILL)
        serve.wait(30)
    finally:
        if serve.poll() is None:
            os.killpg(serve.pid, signal.SIGKILL)
    deadline = time.monotonic() + 60
    while any(_alive(pid) for pid in children):  # they get SIGTERM when their parent dies
        assert time.monotonic() < deadline, "children outlived a killed serve"
        time.sleep(0.2)
    assert embedded_postgres_pid(installed) is not None  # PostgreSQL runs in its own session
    stopped = cli(installed, "stop")
    assert stopped.returncode == 0 and "embedded PostgreSQL" in stopped.stdout
    assert embedded_postgres_pid(installed) is None

    # An installed but unmigrated database: the command says so and stops the server it started.
    empty = installed.parent / "unmigrated"
    subprocess.run(
        [sys.executable, "-c", "import sys; from pathlib import Path; from config.embedded_pg import ensure_server; "
         "ensure_server(Path(sys.argv[1]))", str(empty)],
        cwd=REPO, env=cli_env(empty), check=True, timeout=120,
    )  # fmt: skip
    result = cli(empty, "mcp")
    assert result.returncode == 2 and "no EasyMemory tables" in result.stderr and "Traceback" not in result.stderr
    cli(empty, "stop")
    assert embedded_postgres_pid(empty) is None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0); it is gone for every purpose here.
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split(") ")[-1][:1] != "Z"
