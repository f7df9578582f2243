"""Cache-aside over Redis with stampede protection, stale-while-revalidate,
stale-if-error and fail-open.

One item is stored as one Redis string: JSON ``{"c": created_epoch, "v": value}``, with
a physical expiry of ``ttl + max(stale_while_revalidate, stale_if_error)``. Freshness
is judged from ``c`` with this process's settings, so the hit path is one GET.

Keys share a hash tag, so an item, its refresh lock and its error marker live in one
cluster slot: ``<namespace>:v<key_version>:{<item>}`` (+ ``:lock``, ``:error``).

Per request, by the age of what Redis holds:
- fresh (age < ttl): HIT.
- stale within ``stale_while_revalidate``: STALE at once; the first such request takes
  the refresh lock and refreshes in a background thread.
- missing or older: take the lock (SET NX PX, redis-py Lock), read again (another
  request may have refreshed it meanwhile: HIT) and query the DB: MISS.
  Requests that find the lock taken (other workers, other hosts) poll for the value
  until ``wait_timeout``: exactly one DB execution per refresh.
- DB fails: an error marker (``error_backoff`` s) tells waiters and later requests at
  once; a value younger than ``ttl + stale_if_error`` is served STALE, else
  CacheUnavailable (the app answers 503).
- Redis fails or times out (or its circuit breaker is open): BYPASS, answered from the
  DB; concurrent bypasses in one process share one DB query.

In front of Redis, each worker process keeps a small local tier (:class:`LocalTier`):
a fresh value read from or written to Redis is kept for at most ``local_ttl`` seconds
(and never past its own freshness, ``created + ttl``), so most hits skip the Redis
round trip. Only fresh values enter it; anything stale, missing or failing goes the
Redis way above, so every other semantic is unchanged.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, NamedTuple, TypeGuard, TypeVar

from redis.exceptions import LockError
from redis.lock import Lock

from cachedapp import metrics
from cachedapp.config import CacheSettings
from cachedapp.db import DatabaseError
from cachedapp.redisconn import RedisClient, RedisGateway, RedisUnavailable

log = logging.getLogger(__name__)
T = TypeVar("T")

HIT, MISS, STALE, BYPASS = "HIT", "MISS", "STALE", "BYPASS"
_POLL_FIRST = 0.02  # seconds between looks for another request's refresh, growing
_POLL_MAX = 0.1


@dataclass
class Timings:
    """Seconds spent per phase of one lookup (Server-Timing)."""

    redis: float = 0.0
    db: float = 0.0
    wait: float = 0.0
    local: bool = False  # answered from the worker's local tier (no Redis round trip)


@dataclass
class Result:
    value: dict[str, Any]
    status: str
    created: float  # epoch seconds the value was read from the database
    timings: Timings = field(default_factory=Timings)


class CacheUnavailable(Exception):
    """No value could be produced (DB failed and nothing stale enough was cached)."""

    def __init__(self, reason: str, status: str, timings: Timings) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.timings = timings


class Keys(NamedTuple):
    value: str
    lock: str
    error: str


class _Entry(NamedTuple):
    created: float
    value: dict[str, Any]


@dataclass
class _Lookup:
    """One request's lookup of one item."""

    item: str
    keys: Keys
    compute: Callable[[], dict[str, Any]]
    timings: Timings
    entry: _Entry | None = None  # what Redis held (possibly stale)


class LocalTier:
    """A worker's in-process copy of fresh values, shared by its threads.

    Bounded in size (oldest stored first out) and in age: an entry is served for at
    most ``max_age`` seconds after it was stored, and never once its value is no
    longer fresh (``created + ttl``, the same judgement as a Redis hit). Keyed by the
    full Redis key, namespace and key version included. ``max_age`` 0 disables it.
    Reads take no lock (a dict lookup is atomic); writes do.
    """

    def __init__(
        self,
        max_age: float,
        max_items: int,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.max_age = max_age
        self.max_items = max_items
        self._clock = clock
        self._wall = wall
        self._items: dict[str, tuple[float, _Entry]] = {}
        self._lock = threading.Lock()

    def get(self, key: str, ttl: float) -> _Entry | None:
        item = self._items.get(key)
        if item is None:
            return None
        stored, entry = item
        if self._clock() - stored < self.max_age and self._wall() - entry.created < ttl:
            return entry
        with self._lock:
            if self._items.get(key) is item:
                del self._items[key]
        return None

    def put(self, key: str, entry: _Entry) -> None:
        if self.max_age <= 0:
            return
        with self._lock:
            self._items.pop(key, None)
            self._items[key] = (self._clock(), entry)
            while len(self._items) > self.max_items:
                del self._items[next(iter(self._items))]

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


def _decode(raw: bytes | None) -> _Entry | None:
    if raw is None:
        return None
    try:
        doc = json.loads(raw)
        return _Entry(float(doc["c"]), doc["v"])
    except (ValueError, TypeError, KeyError):
        log.warning("cache: ignoring an undecodable entry")
        return None


def _younger(entry: _Entry | None, seconds: float) -> TypeGuard[_Entry]:
    """An entry read from the database less than ``seconds`` ago."""
    return entry is not None and time.time() - entry.created < seconds


class SingleFlight:
    """Concurrent calls with one key in this process share one execution."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._calls: dict[str, Future[Any]] = {}

    def do(self, key: str, fn: Callable[[], T]) -> T:
        with self._lock:
            future = self._calls.get(key)
            leader = future is None
            if future is None:
                future = self._calls[key] = Future()
        if not leader:
            return future.result()
        try:
            result = fn()
        except BaseException as exc:
            future.set_exception(exc)
            raise
        else:
            future.set_result(result)
            return result
        finally:
            with self._lock:
                self._calls.pop(key, None)


class Cache:
    def __init__(
        self, settings: CacheSettings, gateway: RedisGateway, local: LocalTier | None = None
    ) -> None:
        self.settings = settings
        self.gateway = gateway
        self.local = (
            local if local is not None else LocalTier(settings.local_ttl, settings.local_max_items)
        )
        self.life_ms = int(
            (settings.ttl + max(settings.stale_while_revalidate, settings.stale_if_error)) * 1000
        )
        self._prefix = f"{settings.namespace}:v{settings.key_version}:"
        self._keys: dict[str, Keys] = {}
        self._bypass_flight = SingleFlight()
        self._executor: ThreadPoolExecutor | None = None
        self._executor_pid = 0

    def keys(self, item: str) -> Keys:
        keys = self._keys.get(item)
        if keys is None:
            base = f"{self._prefix}{{{item}}}"
            keys = self._keys.setdefault(item, Keys(base, f"{base}:lock", f"{base}:error"))
        return keys

    # --- the lookup ------------------------------------------------------------------

    def get(self, item: str, compute: Callable[[], dict[str, Any]]) -> Result:
        """The value for ``item``, from Redis when possible, else from ``compute()``."""
        keys = self.keys(item)
        if self.local.max_age > 0:
            local = self.local.get(keys.value, self.settings.ttl)
            if local is not None:
                metrics.results["hit"].inc()
                metrics.local_hits.inc()
                return Result(local.value, HIT, local.created, Timings(local=True))
        lk = _Lookup(item, keys, compute, Timings())
        try:
            raw = self._redis(lk, lambda c: c.get(keys.value))
        except RedisUnavailable:
            return self._bypass(lk)
        entry = lk.entry = _decode(raw)
        if self._fresh(entry):
            return self._hit(lk, entry)
        if _younger(entry, self.settings.ttl + self.settings.stale_while_revalidate):
            self._revalidate_in_background(lk)
            metrics.results["stale"].inc()
            return Result(entry.value, STALE, entry.created, lk.timings)
        return self._fill(lk)

    def _fresh(self, entry: _Entry | None) -> TypeGuard[_Entry]:
        """Younger than ``ttl``: a HIT (LocalTier.get judges alike)."""
        return _younger(entry, self.settings.ttl)

    def _hit(self, lk: _Lookup, entry: _Entry) -> Result:
        """A fresh value read from Redis: kept locally and answered HIT."""
        self._keep(lk.keys, entry)
        metrics.results["hit"].inc()
        return Result(entry.value, HIT, entry.created, lk.timings)

    def _keep(self, keys: Keys, entry: _Entry) -> None:
        """The one way into the local tier: every fresh value read from or written to
        Redis (:meth:`_hit`, :meth:`_write`) comes here; anything else stays out."""
        if self._fresh(entry):
            self.local.put(keys.value, entry)

    def _fill(self, lk: _Lookup) -> Result:
        """Refresh under the lock, or wait for whoever holds it."""
        deadline = time.monotonic() + self.settings.wait_timeout
        delay = _POLL_FIRST
        while True:
            try:
                lock = self._redis(lk, lambda c: self._acquire(c, lk.keys))
            except RedisUnavailable:
                return self._bypass(lk)
            if lock is not None:
                return self._refresh_locked(lk, lock)
            # Another request (any worker, any host) is refreshing: wait for its value.
            if time.monotonic() + delay > deadline:
                return self._stale_or_fail(lk, "timed out waiting for another request's refresh")
            start = time.perf_counter()
            time.sleep(delay)
            lk.timings.wait += time.perf_counter() - start
            delay = min(delay * 1.5, _POLL_MAX)
            read = self._reread(lk)
            if isinstance(read, Result):
                return read
            entry, error = read
            if error is not None:
                lk.entry = entry or lk.entry
                return self._stale_or_fail(lk, "the database is unavailable")

    def _reread(self, lk: _Lookup) -> Result | tuple[_Entry | None, bytes | None]:
        """The value and the database-error marker in one round trip; a Result when
        that settles it (Redis unusable: BYPASS; a fresh value: HIT)."""
        try:
            raw, error = self._redis(lk, lambda c: c.mget(lk.keys.value, lk.keys.error))
        except RedisUnavailable:
            return self._bypass(lk)
        entry = _decode(raw)
        return self._hit(lk, entry) if self._fresh(entry) else (entry, error)

    def _refresh_locked(self, lk: _Lookup, lock: Lock) -> Result:
        try:
            # Read again under the lock: a request that found the key empty may take
            # the lock only after another one refreshed it and let go (a lost race,
            # not a cold key). One round trip also reads the error marker.
            read = self._reread(lk)
            if isinstance(read, Result):
                return read
            if read[1] is not None:  # a recent database error
                return self._stale_or_fail(lk, "the database is unavailable (recent error)")
            start = time.perf_counter()
            try:
                value = lk.compute()
            except DatabaseError as exc:
                log.warning("cache: refresh of %s failed: %s", lk.keys.value, exc)
                self._mark_db_error(lk.keys)
                return self._stale_or_fail(lk, str(exc))
            finally:
                lk.timings.db += time.perf_counter() - start
            entry = _Entry(time.time(), value)
            try:
                self._write(lk.keys, entry, lambda op: self._redis(lk, op))
            except RedisUnavailable:
                metrics.results["bypass"].inc()
                return Result(value, BYPASS, entry.created, lk.timings)
            metrics.results["miss"].inc()
            return Result(value, MISS, entry.created, lk.timings)
        finally:
            self._release(lock)

    def _stale_or_fail(self, lk: _Lookup, reason: str, status: str = MISS) -> Result:
        """stale-if-error: serve a value within ttl + stale_if_error, else fail clearly."""
        entry = lk.entry
        if _younger(entry, self.settings.ttl + self.settings.stale_if_error):
            metrics.results["stale"].inc()
            return Result(entry.value, STALE, entry.created, lk.timings)
        raise CacheUnavailable(reason, status, lk.timings)

    def _bypass(self, lk: _Lookup) -> Result:
        """Fail-open: Redis is unusable, answer from the database."""
        start = time.perf_counter()
        try:
            value = self._bypass_flight.do(lk.item, lk.compute)
        except DatabaseError as exc:
            return self._stale_or_fail(lk, str(exc), BYPASS)
        finally:
            lk.timings.db += time.perf_counter() - start
        metrics.results["bypass"].inc()
        return Result(value, BYPASS, time.time(), lk.timings)

    # --- stale-while-revalidate --------------------------------------------------------

    def _revalidate_in_background(self, lk: _Lookup) -> None:
        try:
            lock = self._redis(lk, lambda c: self._acquire(c, lk.keys))
        except RedisUnavailable:
            return
        if lock is not None:
            self._pool().submit(self._background_refresh, lk.keys, lk.compute, lock)

    def _background_refresh(
        self, keys: Keys, compute: Callable[[], dict[str, Any]], lock: Lock
    ) -> None:
        try:
            if self.gateway.call(lambda c: c.get(keys.error)) is not None:
                return  # the database failed moments ago; keep serving stale
            try:
                value = compute()
            except DatabaseError as exc:
                log.warning("cache: background refresh of %s failed: %s", keys.value, exc)
                self._mark_db_error(keys)
                return
            self._write(keys, _Entry(time.time(), value), self.gateway.call)
        except RedisUnavailable:
            pass
        except Exception:
            log.exception("cache: background refresh of %s crashed", keys.value)
        finally:
            self._release(lock)

    def _pool(self) -> ThreadPoolExecutor:
        if self._executor is None or self._executor_pid != os.getpid():
            self._executor = ThreadPoolExecutor(2, thread_name_prefix="cachedapp-refresh")
            self._executor_pid = os.getpid()
        return self._executor

    # --- Redis primitives ----------------------------------------------------------------

    def _redis(self, lk: _Lookup, op: Callable[[RedisClient], T]) -> T:
        start = time.perf_counter()
        try:
            return self.gateway.call(op)
        finally:
            lk.timings.redis += time.perf_counter() - start

    def _acquire(self, client: RedisClient, keys: Keys) -> Lock | None:
        lock = client.lock(
            keys.lock, timeout=self.settings.lock_timeout, blocking=False, thread_local=False
        )
        return lock if lock.acquire() else None

    def _write(
        self, keys: Keys, entry: _Entry, call: Callable[[Callable[[RedisClient], Any]], Any]
    ) -> None:
        """Store a value just read from the database in Redis (through ``call``), then
        keep it locally. RedisUnavailable propagates, and the value is not kept."""
        payload = json.dumps({"c": entry.created, "v": entry.value}, separators=(",", ":"))
        call(lambda c: c.set(keys.value, payload, px=self.life_ms))
        self._keep(keys, entry)

    def _mark_db_error(self, keys: Keys) -> None:
        """Tell waiters and the next requests that the DB just failed (error_backoff s)."""
        backoff_ms = int(self.settings.error_backoff * 1000)
        if backoff_ms > 0:
            with contextlib.suppress(RedisUnavailable):
                self.gateway.call(lambda c: c.set(keys.error, b"1", px=backoff_ms))

    def _release(self, lock: Lock) -> None:
        def release(_client: RedisClient) -> None:
            try:
                lock.release()
            except LockError:
                log.warning(
                    "cache: refresh lock %s expired before the refresh ended "
                    "(raise cache.lock_timeout)",
                    lock.name,
                )

        with contextlib.suppress(RedisUnavailable):  # else it expires after lock_timeout
            self.gateway.call(release)
