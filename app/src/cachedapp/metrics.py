"""Prometheus metrics, multiprocess-safe under gunicorn.

With ``PROMETHEUS_MULTIPROC_DIR`` set (it must be set before the first import of
prometheus_client, i.e. in the service's environment) every worker writes its own
files and ``/metrics`` aggregates them; without it the default registry is used.
"""

from __future__ import annotations

import os
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
CACHE_RESULTS = ("hit", "miss", "stale", "bypass")

cache_results = Counter(
    "cachedapp_cache_results_total",
    "Cached lookups by result: hit, miss (filled from the DB), stale (served stale), "
    "bypass (Redis unavailable, answered from the DB)",
    ["result"],
)
local_hits = Counter(
    "cachedapp_cache_local_hits_total",
    "Hits answered from the worker's in-process tier, without a Redis round trip "
    "(a subset of result=hit)",
)
db_executions = Counter("cachedapp_db_executions_total", "slow_version() executions started")
db_errors = Counter("cachedapp_db_errors_total", "Database errors", ["kind"])
redis_errors = Counter("cachedapp_redis_errors_total", "Redis errors (fail-open)", ["kind"])
breaker_opened = Counter(
    "cachedapp_redis_breaker_opened_total", "Times the Redis circuit breaker opened"
)
request_latency = Histogram(
    "cachedapp_request_duration_seconds",
    "Request latency by route",
    ["route"],
    buckets=(0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)

# Label children bound once: the hot path skips labels()' lookup and lock.
results = {result: cache_results.labels(result) for result in CACHE_RESULTS}
_latency_by_route: dict[str, Any] = {}


def observe_latency(route: str, seconds: float) -> None:
    child = _latency_by_route.get(route)
    if child is None:
        child = _latency_by_route.setdefault(route, request_latency.labels(route))
    child.observe(seconds)


def render() -> tuple[bytes, str]:
    """The exposition text and its content type."""
    if os.environ.get(MULTIPROC_ENV):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(), CONTENT_TYPE_LATEST
