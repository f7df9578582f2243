"""PostgreSQL access: one psycopg2 pool per worker process, created lazily."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg2
import psycopg2.errors
import psycopg2.extensions
import psycopg2.pool

from cachedapp import metrics
from cachedapp.config import DatabaseSettings

log = logging.getLogger(__name__)


class DatabaseError(Exception):
    """The database could not answer. The message never holds credentials."""


def connect_kwargs(settings: DatabaseSettings) -> dict[str, Any]:
    kwargs = {
        "host": settings.host,
        "port": settings.port,
        "dbname": settings.dbname,
        "user": settings.user,
        "password": settings.password.reveal(),
        "sslmode": settings.sslmode,
        "connect_timeout": settings.connect_timeout,
        "application_name": settings.application_name,
        "options": f"-c statement_timeout={int(settings.query_timeout * 1000)}",
        "keepalives": 1,
        "keepalives_idle": 30,
        "keepalives_interval": 10,
        "keepalives_count": 3,
    }
    if settings.sslrootcert:
        # With sslmode verify-full libpq checks the server's certificate against this
        # bundle and its name against `host`; verify-ca checks the chain only.
        kwargs["sslrootcert"] = settings.sslrootcert
    return kwargs


def connect(settings: DatabaseSettings) -> psycopg2.extensions.connection:
    """A single connection (CLIs); errors become DatabaseError."""
    try:
        return psycopg2.connect(**connect_kwargs(settings))
    except psycopg2.Error as exc:
        raise DatabaseError(_describe(exc)) from None


def _describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else 'no detail'}"


class Database:
    """Pooled access. Safe across fork: a child builds its own pool on first use."""

    def __init__(self, settings: DatabaseSettings) -> None:
        self.settings = settings
        self._pid = 0
        self._pool: psycopg2.pool.ThreadedConnectionPool | None = None
        self._slots = threading.BoundedSemaphore(settings.pool_size)
        self._lock = threading.Lock()

    def reset(self) -> None:
        """Forget the pool without closing it (after fork the sockets are the parent's)."""
        with self._lock:
            self._pool = None
            self._pid = 0
            self._slots = threading.BoundedSemaphore(self.settings.pool_size)

    def close(self) -> None:
        with self._lock:
            if self._pool is not None and self._pid == os.getpid():
                self._pool.closeall()
            self._pool = None

    def _get_pool(self) -> psycopg2.pool.ThreadedConnectionPool:
        if self._pool is None or self._pid != os.getpid():
            with self._lock:
                if self._pool is None or self._pid != os.getpid():
                    pool = psycopg2.pool.ThreadedConnectionPool(
                        0, self.settings.pool_size, **connect_kwargs(self.settings)
                    )
                    # Created empty (connections are made on first use, so a worker
                    # starts while the DB is down), but psycopg2 keeps a returned
                    # connection only while fewer than `minconn` are idle: with 0 it
                    # closed every one, and each query paid a new (TLS) login.
                    pool.minconn = self.settings.pool_size
                    self._pool = pool
                    self._pid = os.getpid()
                    self._slots = threading.BoundedSemaphore(self.settings.pool_size)
        return self._pool

    @contextmanager
    def connection(self, wait: float | None = None) -> Iterator[psycopg2.extensions.connection]:
        """A pooled connection; waits up to ``wait`` s for a free one (pool_size per worker)."""
        pool = self._get_pool()
        slots = self._slots
        if wait is None:
            wait = self.settings.connect_timeout + self.settings.query_timeout
        if not slots.acquire(timeout=wait):
            metrics.db_errors.labels("pool").inc()
            raise DatabaseError(f"no pooled connection free within {wait:.0f} s")
        try:
            try:
                conn = pool.getconn()
            except psycopg2.Error as exc:
                metrics.db_errors.labels("connect").inc()
                raise DatabaseError(_describe(exc)) from None
            broken = True
            try:
                conn.autocommit = True
                yield conn
                broken = False
            finally:
                pool.putconn(conn, close=broken or bool(conn.closed))
        finally:
            slots.release()

    def _run(self, sql: str, wait: float | None = None) -> Any:
        """Run a one-value query; a pooled connection found dead is replaced once."""
        for attempt in (1, 2):
            with self.connection(wait) as conn:
                try:
                    with conn.cursor() as cur:
                        cur.execute(sql)
                        row = cur.fetchone()
                    return row[0] if row else None
                except (psycopg2.OperationalError, psycopg2.InterfaceError) as exc:
                    if conn.closed and attempt == 1 and _is_stale_connection(exc):
                        log.info("dropped a dead pooled connection; retrying once")
                        continue
                    kind = "timeout" if _is_timeout(exc) else "query"
                    metrics.db_errors.labels(kind).inc()
                    raise DatabaseError(_describe(exc)) from None
                except psycopg2.Error as exc:
                    metrics.db_errors.labels("query").inc()
                    raise DatabaseError(_describe(exc)) from None
        raise DatabaseError("unreachable")  # pragma: no cover

    def fetch_version(self) -> dict[str, Any]:
        """Run slow_version(): the expensive query the cache protects."""
        metrics.db_executions.inc()
        version = self._run("SELECT slow_version()")
        return {"version": version, "db_host": self.settings.host}

    def ping(self) -> None:
        """Readiness: a trivial query, waiting at most 1 s for a pooled connection."""
        self._run("SELECT 1", wait=1.0)


def _is_timeout(exc: BaseException) -> bool:
    return isinstance(exc, psycopg2.errors.QueryCanceled) or "timeout" in str(exc).lower()


def _is_stale_connection(exc: BaseException) -> bool:
    """The server closed an idle pooled connection (restart, idle timeout, failover)."""
    text = str(exc).lower()
    return any(
        marker in text
        for marker in (
            "server closed the connection",
            "terminating connection",
            "connection already closed",
            "ssl connection has been closed",
            "eof detected",
        )
    )
