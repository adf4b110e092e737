"""The `easymemory` command.

`easymemory serve` runs the whole product (database, migrations, first-run
bootstrap, background worker, web server). Every other sub-command is a
Django management command (`easymemory add`, `easymemory search`, ...).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
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


def _start_worker(concurrency: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(worker_command(concurrency), env=os.environ.copy())  # noqa: S603 - our own interpreter


def serve(argv: list[str]) -> int:
    started = time.monotonic()
    _setup()
    from django.conf import settings

    parser = argparse.ArgumentParser(prog="easymemory serve", description="Run EasyMemory.")
    parser.add_argument("--host", default=settings.EASYMEMORY_HOST)
    parser.add_argument("--port", type=int, default=settings.EASYMEMORY_PORT)
    parser.add_argument("--workers", type=int, default=settings.EASYMEMORY_WEB_WORKERS)
    parser.add_argument(
        "--no-worker", action="store_true", help="do not start the background worker (team mode runs its own)"
    )
    parser.add_argument("--worker-concurrency", type=int, default=2)
    args = parser.parse_args(argv)

    from django.core.management import call_command

    from accounts.bootstrap import bootstrap_first_run

    print(f"EasyMemory ({settings.EASYMEMORY_MODE} mode), data in {settings.EASYMEMORY_DATA_DIR}", flush=True)
    where = "embedded PostgreSQL" if settings.EMBEDDED_DATABASE else "DATABASE_URL"
    print(f"starting the database ({where}) and migrating", flush=True)
    call_command("migrate", interactive=False, verbosity=0)
    bootstrap_first_run(stdout=sys.stdout, base_url=f"http://{args.host}:{args.port}")

    if not args.no_worker:
        print("starting the background worker", flush=True)
    worker = None if args.no_worker else _start_worker(args.worker_concurrency)
    from memory.services import memory_reconcile

    requeued = memory_reconcile()
    if requeued:
        print(f"re-queued {requeued} memories whose embedding is missing", flush=True)

    import uvicorn

    print("loading the embedding model in the background (the server answers meanwhile)", flush=True)
    print(
        f"ready in {time.monotonic() - started:.1f}s: http://{args.host}:{args.port}/ "
        f"(API docs at /api/docs; Ctrl-C to stop)",
        flush=True,
    )

    def _stop_worker(*_: Any) -> None:
        if worker is not None and worker.poll() is None:
            worker.send_signal(signal.SIGTERM)
            try:
                worker.wait(timeout=20)
            except subprocess.TimeoutExpired:
                worker.kill()

    try:
        uvicorn.run(
            "config.asgi:application",
            host=args.host,
            port=args.port,
            workers=args.workers,
            lifespan="on",
            log_level=settings.EASYMEMORY_LOG_LEVEL.lower(),
            access_log=False,
        )
    finally:
        _stop_worker()
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    from config.startup import data_dir_prepare

    data_dir_prepare()
    if argv and argv[0] == "serve":
        return serve(argv[1:])
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(["easymemory", *argv])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
