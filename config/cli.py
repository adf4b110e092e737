"""The `easymemory` command.

`easymemory serve` runs the whole product (database, migrations, first-run
bootstrap, background worker, web server). Every other sub-command is a
Django management command (`easymemory add`, `easymemory search`, ...).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any


def _setup() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()


def worker_command(concurrency: int, kinds: list[str] | None = None, name: str = "") -> list[str]:
    """The Celery worker that `serve` starts (tests start the same one): every queue unless
    `kinds` names some of EASYMEMORY_QUEUES (embeddings, llm, imports)."""
    from django.conf import settings

    queues = settings.EASYMEMORY_QUEUES
    unknown = sorted(set(kinds or []) - set(queues))
    if unknown:
        raise ValueError(f"unknown queue kind(s) {', '.join(unknown)}; use {', '.join(queues)}")
    chosen = [queues[kind] for kind in (kinds or list(queues))]
    return [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "config.celery",
        "--quiet",  # no start-up banner: `serve` prints its own stage lines
        "worker",
        "--pool=threads",
        f"--concurrency={concurrency}",
        "-Q",
        ",".join(chosen),
        *([f"--hostname={name}@%h"] if name else []),
        "--loglevel=WARNING",
        "--without-gossip",
        "--without-mingle",
    ]


def _die_with_parent() -> None:
    """In the child, before exec: receive SIGTERM when `serve` dies, even by SIGKILL (Linux)."""
    import ctypes

    pr_set_pdeathsig = 1
    try:
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)
    except (OSError, AttributeError):  # pragma: no cover - not Linux
        pass


def _start_child(command: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    # A process group of its own: a terminal's Ctrl-C or hang-up reaches only `serve`, which then
    # stops its children in order (web first, so in-flight requests finish; the database last).
    return subprocess.Popen(  # noqa: S603 - our own interpreter
        command,
        env=env,
        process_group=0,
        preexec_fn=_die_with_parent,  # noqa: PLW1509
    )


def _stop_child(child: subprocess.Popen[bytes] | None, timeout: float) -> None:
    if child is None or child.poll() is not None:
        return
    child.send_signal(signal.SIGTERM)
    try:
        child.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()


def _web_command(args: argparse.Namespace) -> list[str]:
    return [
        sys.executable,
        "-m",
        "uvicorn",
        "config.asgi:application",
        "--host",
        args.host,
        "--port",
        str(args.port),
        "--workers",
        str(args.workers),
        "--lifespan",
        "on",
        "--timeout-graceful-shutdown",
        str(int(args.shutdown_timeout)),
        "--log-level",
        os.environ.get("EASYMEMORY_LOG_LEVEL", "info").lower(),
        "--no-access-log",  # one structured line per request comes from config.observability
    ]


def _serve_parser() -> argparse.ArgumentParser:
    team = os.environ.get("EASYMEMORY_MODE", "single").strip().lower() == "team"
    parser = argparse.ArgumentParser(
        prog="easymemory serve",
        description="Run EasyMemory: database (embedded unless DATABASE_URL), migrations, worker, web server.",
    )
    parser.add_argument("--host", default=os.environ.get("EASYMEMORY_HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("EASYMEMORY_PORT", "8100")))
    parser.add_argument(
        "--workers",
        type=int,
        default=int(os.environ.get("EASYMEMORY_WEB_WORKERS", "2" if team else "1")),
        help="web processes (default 1; 2 in team mode; $EASYMEMORY_WEB_WORKERS)",
    )
    parser.add_argument(
        "--no-worker", action="store_true", help="do not start the background worker (team mode runs its own)"
    )
    # Four threads: while the embedding pipeline works on some tasks' memories, the next tasks are
    # already in the worker, so it never waits for the broker between batches.
    parser.add_argument("--worker-concurrency", type=int, default=4)
    parser.add_argument(
        "--drain-seconds",
        type=float,
        default=float(os.environ.get("EASYMEMORY_DRAIN_SECONDS", "5" if team else "0")),
        help="on SIGTERM, keep serving this long while /readyz says draining, so a load balancer "
        "stops sending new requests first (default 0; 5 in team mode; $EASYMEMORY_DRAIN_SECONDS)",
    )
    parser.add_argument(
        "--shutdown-timeout",
        type=float,
        default=float(os.environ.get("EASYMEMORY_SHUTDOWN_TIMEOUT", "30")),
        help="how long in-flight requests get to finish when stopping ($EASYMEMORY_SHUTDOWN_TIMEOUT)",
    )
    return parser


class _Signals:
    """Remembers the first stop signal; the supervisor loop acts on it."""

    def __init__(self) -> None:
        self.received: int | None = None
        self.supervising = False

    def __call__(self, signum: int, _frame: Any) -> None:
        first = self.received is None
        if first:
            self.received = signum
        # Still starting up (migrations, bootstrap): abandon it. A second Ctrl-C: skip the drain.
        if not self.supervising or (not first and signum == signal.SIGINT):
            raise KeyboardInterrupt

    def install(self) -> None:
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, self)


def serve(argv: list[str]) -> int:
    args = _serve_parser().parse_args(argv)
    if args.workers < 1:
        print("--workers must be at least 1", file=sys.stderr)
        return 2

    from config.instance import AlreadyRunning, data_dir_from_env, instance_lock, instance_release

    started = time.monotonic()
    stop_signals = _Signals()
    stop_signals.install()  # from here on, a signal stops everything started so far
    data_dir = data_dir_from_env()
    try:
        from config.startup import data_dir_prepare

        data_dir_prepare()
        _setup()
    except Exception as exc:  # noqa: BLE001 - configuration errors end here with their message
        print(f"easymemory serve: {exc}", file=sys.stderr)
        return 2
    from django.conf import settings

    url = f"http://{args.host}:{args.port}/"
    try:
        lock = instance_lock(data_dir, url=url)
    except AlreadyRunning as exc:
        print(f"{exc}; stop it with `easymemory stop` or use another EASYMEMORY_DATA_DIR", file=sys.stderr)
        return 1

    from core.metrics import metrics_dir_reset

    drain_file = data_dir / "draining"
    drain_file.unlink(missing_ok=True)
    metrics_dir_reset()
    children: dict[str, subprocess.Popen[bytes] | None] = {"web": None, "worker": None}
    code = 0
    try:
        from django.core.management import call_command

        from accounts.bootstrap import bootstrap_first_run

        print(f"EasyMemory ({settings.EASYMEMORY_MODE} mode), data in {settings.EASYMEMORY_DATA_DIR}", flush=True)
        where = "embedded PostgreSQL" if settings.EMBEDDED_DATABASE else "DATABASE_URL"
        print(f"starting the database ({where}) and migrating", flush=True)
        call_command("migrate", interactive=False, verbosity=0)
        bootstrap_first_run(stdout=sys.stdout, base_url=f"http://{args.host}:{args.port}")
        from django.db import connections

        connections.close_all()  # children open their own; the supervisor holds none

        ready_dir = _ready_dir_reset(data_dir)
        child_env = {**os.environ, "EASYMEMORY_DRAIN_FILE": str(drain_file), "EASYMEMORY_READY_DIR": str(ready_dir)}
        if not args.no_worker:
            print("starting the background worker", flush=True)
            children["worker"] = _start_child(worker_command(args.worker_concurrency), child_env)
        from memory.services import memory_reconcile

        requeued = memory_reconcile()
        connections.close_all()
        if requeued:
            print(f"re-queued {requeued} memories whose embedding is missing", flush=True)
        children["web"] = _start_child(_web_command(args), child_env)
        print("loading the embedding model (the server answers meanwhile)", flush=True)
        # The web server answers from here on, so a stop now drains like any other.
        stop_signals.supervising = True
        if _wait_until_loaded(args, children, ready_dir, stop_signals):
            if stop_signals.received is None:
                print(
                    f"ready in {time.monotonic() - started:.1f}s: {url} ({args.workers} web process"
                    f"{'es' if args.workers > 1 else ''}; API docs at /api/docs; Ctrl-C or `easymemory stop` to stop)",
                    flush=True,
                )
            code = _supervise(args, children, stop_signals, drain_file, child_env)
        else:
            web = children["web"]
            status = web.returncode if web is not None else None
            print(f"web server exited with {status}; stopping", file=sys.stderr, flush=True)
            code = 1
    except KeyboardInterrupt:
        pass
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, signal.SIG_IGN)  # the stop below is bounded by its own timeouts
        # Web first (in-flight requests finish), then the worker (acknowledged-late tasks are
        # re-delivered if cut short), then the database they both used.
        try:
            _stop_child(children["web"], args.shutdown_timeout + 10)
            _stop_child(children["worker"], 30)
            if settings.EMBEDDED_DATABASE:
                from config.instance import embedded_postgres_stop

                embedded_postgres_stop(data_dir)
        finally:
            drain_file.unlink(missing_ok=True)
            instance_release(data_dir, lock)
    print("EasyMemory stopped", flush=True)
    return code


READY_WAIT_SECONDS = 600.0


def _ready_dir_reset(data_dir: Path) -> Path:
    folder = data_dir / "ready"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return folder


def _wait_until_loaded(
    args: argparse.Namespace,
    children: dict[str, subprocess.Popen[bytes] | None],
    ready_dir: Path,
    stop_signals: _Signals,
) -> bool:
    """Wait until the worker and every web process have loaded the embedding model (each marks
    itself in `ready_dir`, memory/warmup.py), so that after "ready" a memory written is searchable
    at once, the first one included. False if the web server ended meanwhile."""
    deadline = time.monotonic() + READY_WAIT_SECONDS
    while time.monotonic() < deadline and stop_signals.received is None:
        marks = [path.name for path in ready_dir.iterdir()]
        webs = sum(1 for mark in marks if mark.startswith("web-"))
        worker = children["worker"]
        worker_done = worker is None or worker.poll() is not None or any(m.startswith("worker-") for m in marks)
        if webs >= args.workers and worker_done:
            return True
        web = children["web"]
        if web is None or web.poll() is not None:
            return False
        time.sleep(0.1)
    if stop_signals.received is None:
        print("the embedding model is still loading; the first searches will wait for it", file=sys.stderr, flush=True)
    return True


def _supervise(
    args: argparse.Namespace,
    children: dict[str, subprocess.Popen[bytes] | None],
    stop_signals: _Signals,
    drain_file: Any,
    child_env: dict[str, str],
) -> int:
    """Wait for a stop signal; restart a worker that died; end when the web server ends."""
    web = children["web"]
    assert web is not None
    stop_signals.supervising = True
    last_restart = 0.0
    while stop_signals.received is None:
        worker = children["worker"]
        if web.poll() is not None:
            print(f"web server exited with {web.returncode}; stopping", file=sys.stderr, flush=True)
            return 1
        if worker is not None and worker.poll() is not None and time.monotonic() - last_restart > 5:
            print(f"worker exited with {worker.returncode}; restarting it", file=sys.stderr, flush=True)
            last_restart = time.monotonic()
            children["worker"] = _start_child(worker_command(args.worker_concurrency), child_env)
        time.sleep(0.2)
    if stop_signals.received != signal.SIGINT and args.drain_seconds > 0:
        # Readiness fails first; requests keep being served while the load balancer notices.
        drain_file.touch()
        print(f"draining for {args.drain_seconds:.0f}s before stopping", flush=True)
        deadline = time.monotonic() + args.drain_seconds
        while time.monotonic() < deadline and web.poll() is None:
            time.sleep(0.1)
    drain_file.touch()
    return 0


def stop(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="easymemory stop",
        description="Stop the EasyMemory running on a data directory ($EASYMEMORY_DATA_DIR), and its embedded "
        "PostgreSQL if one was left running.",
    )
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds to wait (default 60)")
    args = parser.parse_args(argv)
    from config.instance import data_dir_from_env, instance_stop

    ok, message = instance_stop(data_dir_from_env(), timeout=args.timeout)
    print(message, file=sys.stdout if ok else sys.stderr)
    return 0 if ok else 1


# Sub-commands that may create an installation; every other one needs an existing one.
_CREATING_COMMANDS = {"migrate"}
# Earlier spellings of sub-commands whose module names may not hold a hyphen.
_ALIASES = {"add-file": "addfile"}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in _ALIASES:
        argv[0] = _ALIASES[argv[0]]
    if argv and argv[0] == "serve":
        try:
            return serve(argv[1:])
        except KeyboardInterrupt:
            return 130
    if argv and argv[0] == "stop":
        return stop(argv[1:])
    if not argv or argv[0] not in _CREATING_COMMANDS:
        os.environ["EASYMEMORY_NO_CREATE"] = "1"
    else:
        from config.startup import data_dir_prepare

        data_dir_prepare()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    return _run_command(argv)


def _run_command(argv: list[str]) -> int:
    from config.embedded_pg import NoInstallation
    from config.env import ConfigError
    from config.instance import data_dir_from_env, embedded_postgres_pid, embedded_postgres_stop, instance_running

    data_dir = data_dir_from_env()
    from config.env import env_str

    embedded = not env_str("DATABASE_URL")
    was_running = embedded_postgres_pid(data_dir) is not None
    try:
        from django.core.management import execute_from_command_line
        from django.db.utils import ProgrammingError

        execute_from_command_line(["easymemory", *argv])
    except (ConfigError, NoInstallation) as exc:
        print(f"easymemory: {exc}", file=sys.stderr)
        return 2
    except ProgrammingError as exc:
        if "does not exist" not in str(exc):
            raise
        print(
            f"easymemory: the database has no EasyMemory tables ({str(exc).splitlines()[0]}). "
            f"Run `easymemory serve` (or `easymemory migrate`) once on {data_dir}, or point "
            "EASYMEMORY_DATA_DIR / DATABASE_URL at an existing installation.",
            file=sys.stderr,
        )
        return 2
    finally:
        # A command that had to start the embedded server stops it again, unless `serve` now uses it.
        if embedded and not was_running and instance_running(data_dir) is None:
            embedded_postgres_stop(data_dir)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
