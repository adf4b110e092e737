"""Prometheus metrics, correct across every web process and worker of one machine.

prometheus-client's multiprocess mode: each process writes its samples to memory-mapped files in
one directory (`EASYMEMORY_METRICS_DIR`, exported as PROMETHEUS_MULTIPROC_DIR by the settings,
before anything imports the library) and `/metrics`, answered by any one web process, adds them
up. `easymemory serve` empties the directory when it starts, so counters count from that start.
Figures that are facts of the database or the broker (queue depth, oldest memory waiting for its
embedding) are read at scrape time instead of being kept per process.

Access: a bearer token (`EASYMEMORY_METRICS_TOKEN`, compared in constant time) or a client
address in `EASYMEMORY_METRICS_ALLOW`. With neither configured the endpoint answers 404; team mode
configures neither by default, so metrics are never readable anonymously on a LAN server.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import os
import shutil
import time
from collections.abc import Callable, Iterator
from functools import cache
from pathlib import Path
from types import SimpleNamespace
from typing import Any, TypeVar

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse

logger = logging.getLogger(__name__)

# Seconds; searches and requests mostly take milliseconds, imports and slow models seconds.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
TASK_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0)


@cache
def _metrics() -> SimpleNamespace:
    # Imported here, after the settings exported PROMETHEUS_MULTIPROC_DIR: the library reads it on import.
    from prometheus_client import Counter, Gauge, Histogram

    return SimpleNamespace(
        request_seconds=Histogram(
            "easymemory_http_request_duration_seconds",
            "HTTP requests by route (URL pattern, never the raw path), method and status.",
            ["route", "method", "status"],
            buckets=LATENCY_BUCKETS,
        ),
        search_list_seconds=Histogram(
            "easymemory_search_list_duration_seconds",
            "Time one search spent in each candidate list (vector includes embedding the query).",
            ["list"],
            buckets=LATENCY_BUCKETS,
        ),
        task_seconds=Histogram(
            "easymemory_task_duration_seconds",
            "Background task run time by task and outcome.",
            ["task", "outcome"],
            buckets=TASK_BUCKETS,
        ),
        task_failures=Counter("easymemory_task_failures_total", "Background tasks that raised.", ["task"]),
        task_retries=Counter("easymemory_task_retries_total", "Background tasks scheduled for a retry.", ["task"]),
        pool=Gauge(
            "easymemory_db_pool_connections",
            "Database connection pools of the live processes: size (open), available (idle), "
            "waiting (requests queued for a connection), max (configured ceiling).",
            ["state"],
            multiprocess_mode="livesum",
        ),
    )


def metrics_dir() -> Path:
    return Path(settings.EASYMEMORY_METRICS_DIR)


def metrics_dir_reset() -> None:
    """Start counting afresh (called by `serve` before it starts any other process)."""
    path = metrics_dir()
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True, exist_ok=True)


# --- recording ----------------------------------------------------------------------------------


def request_observe(*, route: str, method: str, status: int, seconds: float) -> None:
    _metrics().request_seconds.labels(route, method, str(status)).observe(seconds)


F = TypeVar("F", bound=Callable[..., Any])


def timed_candidate_list(name: str, fn: F) -> F:
    """`fn` (a search candidate list) with its duration recorded under `list=name`."""
    histogram = _metrics().search_list_seconds.labels(name)

    def timed(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            histogram.observe(time.perf_counter() - started)

    timed.__wrapped__ = fn  # type: ignore[attr-defined]
    return timed  # type: ignore[return-value]


def pool_observe() -> None:
    """This process's connection pool, as the `livesum` gauge adds it up with the others'."""
    from django.db import connections

    try:
        pool = getattr(connections["default"], "pool", None)
    except Exception:  # noqa: BLE001 - metrics never break a request
        return
    if pool is None:
        return
    stats = pool.get_stats()
    gauge = _metrics().pool
    gauge.labels("size").set(stats.get("pool_size", 0))
    gauge.labels("available").set(stats.get("pool_available", 0))
    gauge.labels("waiting").set(stats.get("requests_waiting", 0))
    gauge.labels("max").set(pool.max_size)


_task_started: dict[str, float] = {}


def celery_metrics_connect() -> None:
    """Record task durations, failures and retries in every worker process."""
    from celery.signals import task_failure, task_postrun, task_prerun, task_retry

    def prerun(task_id: str | None = None, **_: Any) -> None:
        if task_id:
            _task_started[task_id] = time.perf_counter()

    def postrun(task_id: str | None = None, task: Any = None, state: str | None = None, **_: Any) -> None:
        started = _task_started.pop(task_id or "", None)
        name = getattr(task, "name", "unknown")
        if started is not None:
            _metrics().task_seconds.labels(name, (state or "unknown").lower()).observe(time.perf_counter() - started)
        pool_observe()

    def failure(sender: Any = None, **_: Any) -> None:
        _metrics().task_failures.labels(getattr(sender, "name", "unknown")).inc()

    def retry(sender: Any = None, **_: Any) -> None:
        _metrics().task_retries.labels(getattr(sender, "name", "unknown")).inc()

    task_prerun.connect(prerun, weak=False)
    task_postrun.connect(postrun, weak=False)
    task_failure.connect(failure, weak=False)
    task_retry.connect(retry, weak=False)


# --- figures read at scrape time -----------------------------------------------------------------


def _queue_names() -> list[str]:
    names = {settings.CELERY_TASK_DEFAULT_QUEUE}
    for queue in getattr(settings, "CELERY_TASK_QUEUES", None) or []:
        names.add(getattr(queue, "name", None) or str(queue))
    for route in (getattr(settings, "CELERY_TASK_ROUTES", None) or {}).values():
        if isinstance(route, dict) and route.get("queue"):
            names.add(str(route["queue"]))
    return sorted(names)


def _broker_depths() -> dict[str, int]:
    """Messages waiting in each Celery queue (Redis broker; kombu keeps one list per priority band)."""
    if not settings.EASYMEMORY_REDIS_URL:
        return {}
    import redis

    client = redis.Redis.from_url(settings.EASYMEMORY_REDIS_URL, socket_timeout=2, socket_connect_timeout=2)
    try:
        depths = {}
        for name in _queue_names():
            keys = [name, *(f"{name}\x06\x16{band}" for band in (3, 6, 9))]
            depths[name] = sum(int(client.llen(key)) for key in keys)
        return depths
    finally:
        client.close()


ScrapeCollector = Callable[[], Iterator[Any]]
# Figures that are facts of an app's tables, read when /metrics is scraped; apps register a function
# yielding metric families (memory: the embedding backlog), so this module imports no app.
SCRAPE_COLLECTORS: list[ScrapeCollector] = []


def register_scrape_collector(collector: ScrapeCollector) -> ScrapeCollector:
    if collector not in SCRAPE_COLLECTORS:
        SCRAPE_COLLECTORS.append(collector)
    return collector


class _ScrapeTimeCollector:
    """The apps' scrape-time figures, then queue depths from the broker, when scraped."""

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        for collector in SCRAPE_COLLECTORS:
            yield from collector()

        depth = GaugeMetricFamily("easymemory_queue_depth", "Tasks waiting in each broker queue.", labels=["queue"])
        try:
            for name, count in _broker_depths().items():
                depth.add_metric([name], float(count))
        except Exception as exc:  # noqa: BLE001 - a broker outage shows as a missing series, not a 500
            logger.warning("queue depth unavailable: %s", type(exc).__name__)
        yield depth


def _forget_dead_processes(path: Path) -> None:
    """Drop the live-gauge files of processes that are gone (a killed worker cannot do it itself)."""
    from prometheus_client import multiprocess

    for file in path.glob("gauge_live*_*.db"):
        pid_text = file.stem.rsplit("_", 1)[-1]
        if not pid_text.isdigit():
            continue
        try:
            os.kill(int(pid_text), 0)
        except ProcessLookupError:
            multiprocess.mark_process_dead(int(pid_text), str(path))
        except PermissionError:
            pass


def metrics_render() -> tuple[bytes, str]:
    from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest, multiprocess

    pool_observe()
    path = metrics_dir()
    _forget_dead_processes(path)
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=str(path))
    registry.register(_ScrapeTimeCollector())
    return generate_latest(registry), CONTENT_TYPE_LATEST


# --- access ---------------------------------------------------------------------------------------


def _address_allowed(address: str) -> bool:
    try:
        client = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(client in network for network in settings.EASYMEMORY_METRICS_ALLOW)


def metrics_view(request: HttpRequest) -> HttpResponse:
    token = settings.EASYMEMORY_METRICS_TOKEN
    allow = settings.EASYMEMORY_METRICS_ALLOW
    if not token and not allow:
        return JsonResponse({"detail": "Not found."}, status=404)
    header = request.META.get("HTTP_AUTHORIZATION", "")
    given = header[7:].strip() if header[:7].lower() == "bearer " else ""
    by_token = bool(token) and hmac.compare_digest(given.encode(), token.encode())
    if not by_token and not _address_allowed(request.META.get("REMOTE_ADDR", "")):
        if token:
            response = JsonResponse({"detail": "A valid metrics token is required."}, status=401)
            response["WWW-Authenticate"] = 'Bearer realm="metrics"'
            return response
        return JsonResponse({"detail": "This address may not read metrics."}, status=403)
    body, content_type = metrics_render()
    return HttpResponse(body, content_type=content_type)
