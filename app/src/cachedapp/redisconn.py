"""Redis access for the cache: one pooled client per worker, a circuit breaker, fail-open.

Every Redis operation goes through :meth:`RedisGateway.call`. Any Redis error or
timeout raises :class:`RedisUnavailable`, which the cache turns into BYPASS. After
``breaker_failures`` consecutive failures the breaker opens for ``breaker_cooldown``
seconds: calls fail at once without touching the network; then one probe is let
through, and its success closes the breaker (caching resumes by itself).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

import redis
from redis.backoff import NoBackoff
from redis.cluster import RedisCluster
from redis.retry import Retry

from cachedapp import metrics
from cachedapp.config import RedisSettings

log = logging.getLogger(__name__)
T = TypeVar("T")
RedisClient = redis.Redis | RedisCluster


_REDIS_FAILURES = (redis.RedisError, redis.exceptions.RedisClusterException, OSError)


class RedisUnavailable(Exception):
    """Redis could not be used for this request (error, timeout or open breaker)."""


class CircuitBreaker:
    """Consecutive-failure breaker with a single half-open probe. Thread-safe."""

    def __init__(
        self, failures: int, cooldown: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.failures = failures
        self.cooldown = cooldown
        self._clock = clock
        self._lock = threading.Lock()
        self._count = 0
        self._open_until = 0.0
        self._probing = False

    @property
    def state(self) -> str:
        if self._open_until == 0.0:
            return "closed"
        return "open" if self._clock() < self._open_until else "half-open"

    def allow(self) -> bool:
        if self._open_until == 0.0:  # closed: the hot path takes no lock
            return True
        with self._lock:
            if self._open_until == 0.0:
                return True
            if self._clock() < self._open_until or self._probing:
                return False
            self._probing = True  # half-open: this caller is the probe
            return True

    def success(self) -> None:
        if self._count or self._open_until:
            with self._lock:
                if self._open_until:
                    log.warning("redis: reachable again, circuit breaker closed")
                self._count = 0
                self._open_until = 0.0
                self._probing = False

    def failure(self) -> None:
        with self._lock:
            self._count += 1
            if self._probing or self._count >= self.failures:
                if not self._open_until or self._probing:
                    metrics.breaker_opened.inc()
                    log.warning(
                        "redis: %d consecutive failure(s), circuit breaker open for %.1f s",
                        self._count,
                        self.cooldown,
                    )
                self._open_until = self._clock() + self.cooldown
                self._probing = False


def build_client(settings: RedisSettings) -> RedisClient:
    """A pooled client for the configured mode. Timeouts small, no retries (fail-open)."""
    kwargs: dict[str, Any] = {
        "socket_connect_timeout": settings.connect_timeout,
        "socket_timeout": settings.socket_timeout,
        "retry": Retry(NoBackoff(), 0),
        "max_connections": settings.max_connections,
        "health_check_interval": 0,
    }
    if settings.username:
        kwargs["username"] = settings.username
    if settings.password:
        kwargs["password"] = settings.password.reveal()
    if settings.tls:
        # Always verify the server's certificate and its name (as ElastiCache's
        # in-transit encryption expects), against ca_file or the system trust store.
        kwargs["ssl_cert_reqs"] = "required"
        kwargs["ssl_check_hostname"] = True
        if settings.ca_file:
            kwargs["ssl_ca_certs"] = settings.ca_file
    if settings.mode == "cluster":
        return RedisCluster.from_url(settings.url, require_full_coverage=True, **kwargs)
    return redis.Redis.from_url(settings.url, **kwargs)


class RedisGateway:
    """The worker's Redis client (built lazily, per process) behind a circuit breaker."""

    def __init__(self, settings: RedisSettings) -> None:
        self.settings = settings
        self.breaker = CircuitBreaker(settings.breaker_failures, settings.breaker_cooldown)
        self._client: RedisClient | None = None
        self._pid = 0
        self._lock = threading.Lock()

    def reset(self) -> None:
        """Forget the client without closing it (after fork its sockets are the parent's)."""
        with self._lock:
            self._client = None
            self._pid = 0
            self.breaker = CircuitBreaker(
                self.settings.breaker_failures, self.settings.breaker_cooldown
            )

    def client(self) -> RedisClient:
        client = self._client
        if client is None or self._pid != os.getpid():
            with self._lock:
                if self._client is None or self._pid != os.getpid():
                    self._client = build_client(self.settings)
                    self._pid = os.getpid()
                client = self._client
        return client

    def call(self, op: Callable[[RedisClient], T]) -> T:
        """Run ``op(client)``; any failure raises RedisUnavailable and feeds the breaker."""
        if not self.breaker.allow():
            raise RedisUnavailable("circuit breaker open")
        try:
            result = op(self.client())
        except _REDIS_FAILURES as exc:
            kind = _kind(exc)
            metrics.redis_errors.labels(kind).inc()
            self.breaker.failure()
            log.debug("redis: %s: %s", kind, exc)
            raise RedisUnavailable(f"{type(exc).__name__}: {exc}") from None
        self.breaker.success()
        return result

    def ping(self) -> None:
        """Readiness check: bypasses the breaker, same short timeouts."""
        try:
            self.client().ping()
        except _REDIS_FAILURES as exc:
            raise RedisUnavailable(f"{type(exc).__name__}: {exc}") from None


def _kind(exc: BaseException) -> str:
    if isinstance(exc, redis.TimeoutError | TimeoutError):
        return "timeout"
    if isinstance(exc, redis.AuthenticationError | redis.exceptions.NoPermissionError):
        return "auth"
    if isinstance(exc, redis.ConnectionError | OSError):
        return "connection"
    if isinstance(exc, redis.exceptions.RedisClusterException):
        return "cluster"
    return "other"
