"""The in-process tier in front of Redis: bounded in size and age, never past freshness,
keyed by the versioned Redis key, shared by a worker's threads; end to end under
gunicorn against the real Redis."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import replace

import redis
from cachedapp.cache import HIT, MISS, STALE, Cache, LocalTier, _Entry
from cachedapp.config import load_settings
from cachedapp.redisconn import RedisGateway
from support import concurrent, db_executions, wait_for, write_config


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _tier(max_age=1.0, max_items=3):
    mono, wall = Clock(), Clock(5000.0)
    return LocalTier(max_age, max_items, clock=mono, wall=wall), mono, wall


def _stored(tier: LocalTier) -> int:
    """How many entries the tier holds (expired ones included until looked up)."""
    return len(tier._items)


def test_serves_within_its_max_age_only():
    tier, mono, wall = _tier(max_age=1.0)
    tier.put("k", _Entry(wall.now, {"v": 1}))
    mono.now += 0.9
    assert tier.get("k", ttl=60) == _Entry(wall.now, {"v": 1})
    mono.now += 0.2
    assert tier.get("k", ttl=60) is None
    assert _stored(tier) == 0  # the expired entry was dropped


def test_never_serves_a_value_past_its_freshness():
    """The value was 59.5 s old when stored: fresh for 0.5 s more, whatever max_age says."""
    tier, mono, wall = _tier(max_age=10.0)
    tier.put("k", _Entry(wall.now - 59.5, {"v": 1}))
    assert tier.get("k", ttl=60) is not None
    wall.now += 0.6
    mono.now += 0.6
    assert tier.get("k", ttl=60) is None


def test_bounded_size_drops_the_oldest():
    tier, _, wall = _tier(max_items=3)
    for key in "abcd":
        tier.put(key, _Entry(wall.now, key))
    assert _stored(tier) == 3
    assert tier.get("a", ttl=60) is None
    assert [tier.get(k, ttl=60).value for k in "bcd"] == ["b", "c", "d"]
    tier.put("b", _Entry(wall.now, "b2"))  # a re-stored key becomes the newest
    tier.put("e", _Entry(wall.now, "e"))
    assert tier.get("c", ttl=60) is None
    assert tier.get("b", ttl=60).value == "b2"


def test_max_age_zero_disables_it():
    tier, _, wall = _tier(max_age=0)
    tier.put("k", _Entry(wall.now, 1))
    assert _stored(tier) == 0
    assert tier.get("k", ttl=60) is None


def test_threads_share_one_tier():
    tier, _, wall = _tier(max_items=1000)
    barrier = threading.Barrier(8)

    def work(n: int) -> None:
        barrier.wait()
        for i in range(200):
            tier.put(f"{n}-{i}", _Entry(wall.now, i))
            assert tier.get(f"{n}-{i}", ttl=60) is not None

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert _stored(tier) == 1000  # bounded under concurrent writers


def _cache(servers, tmp_path, namespace, tier, **cache):
    path = write_config(
        tmp_path / "c.toml",
        servers,
        {"cache": {"namespace": namespace, "local_ttl": 5, **cache}},
    )
    settings = load_settings(path, environ={})
    return Cache(settings.cache, RedisGateway(settings.redis), local=tier), settings


def test_cache_hits_skip_redis_and_honour_the_key_version(servers, tmp_path, namespace):
    """Against the real Redis: the second lookup is answered locally (Redis is not
    asked); a bumped key_version, sharing the same tier, does not see v1's value."""
    tier = LocalTier(5.0, 16)
    calls = []

    def compute():
        calls.append(1)
        return {"n": len(calls)}

    v1, settings = _cache(servers, tmp_path, namespace, tier)
    assert not _stored(tier)  # an empty tier passed in is the one used
    first = v1.get("item", compute)
    assert (first.status, first.value, first.timings.local) == (MISS, {"n": 1}, False)
    plain = redis.Redis(port=servers.redis_plain_port)
    try:
        plain.delete(v1.keys("item").value)  # Redis forgets it; the local tier still has it
        local = v1.get("item", compute)
        assert (local.status, local.value, local.timings.local) == (HIT, {"n": 1}, True)
        assert local.timings.redis == 0.0

        v2 = Cache(replace(settings.cache, key_version=2), v1.gateway, local=tier)
        assert v1.local is tier
        assert v2.local is tier
        other = v2.get("item", compute)
        assert (other.status, other.value) == (MISS, {"n": 2})
        assert plain.exists(f"{namespace}:v2:{{item}}") == 1
    finally:
        plain.close()
    assert len(calls) == 2


def test_a_background_refresh_enters_the_tier(servers, tmp_path, namespace):
    """Every fresh value written to Redis is kept locally, the one a
    stale-while-revalidate refresh writes from its background thread included."""
    tier = LocalTier(5.0, 16)
    cache, _ = _cache(
        servers, tmp_path, namespace, tier, ttl=1, stale_while_revalidate=30, stale_if_error=0
    )
    key = cache.keys("item").value
    go = threading.Event()

    def compute():
        go.wait(10)  # the refresh ends only once the stale answer has been checked
        return {"n": 1}

    plain = redis.Redis(port=servers.redis_plain_port)
    try:
        plain.set(key, json.dumps({"c": time.time() - 2, "v": {"n": 0}}), px=60_000)
        stale = cache.get("item", compute)
        assert (stale.status, stale.value) == (STALE, {"n": 0})
        assert tier.get(key, ttl=1) is None  # a stale value stays out
        go.set()
        kept = wait_for(lambda: tier.get(key, ttl=1), timeout=5, interval=0.02)
        assert kept.value == {"n": 1}
        assert json.loads(plain.get(key))["v"] == {"n": 1}
    finally:
        plain.close()
    local = cache.get("item", lambda: {"n": 2})
    assert (local.status, local.value, local.timings.local) == (HIT, {"n": 1}, True)


def test_gunicorn_local_hits_are_bounded_in_age(servers, stack, namespace):
    """Under gunicorn: hits come from the worker's tier (counted in /metrics) while
    Redis is not read; a value deleted from Redis disappears once local_ttl has passed."""
    app = stack(workers=1, cache={"local_ttl": 0.5})
    before = db_executions(servers, app)
    assert app.get().cache == "MISS"
    replies = concurrent([app.get] * 4)
    assert {r.cache for r in replies} == {"HIT"}
    assert all("local;" in r.headers["Server-Timing"] for r in replies)
    assert all("redis;" not in r.headers["Server-Timing"] for r in replies)
    metrics = app.get("/metrics").text
    assert "cachedapp_cache_local_hits_total 4.0" in metrics
    plain = redis.Redis(port=servers.redis_plain_port)
    try:
        plain.delete(f"{namespace}:v1:{{slow_version}}")
    finally:
        plain.close()
    time.sleep(0.6)
    assert app.get().cache == "MISS"
    assert db_executions(servers, app) - before == 2
