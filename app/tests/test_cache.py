"""Cache semantics under a real gunicorn (several sync workers) with real servers."""

from __future__ import annotations

import time
from collections import Counter

from support import DB_SLEEP, concurrent, db_executions, wait_for


def test_miss_then_hit(servers, stack):
    app = stack()
    before = db_executions(servers, app)
    first = app.get()
    second = app.get()
    assert (first.status, first.cache) == (200, "MISS")
    assert (second.status, second.cache) == (200, "HIT")
    assert first.json()["version"].startswith("PostgreSQL")
    assert second.json()["version"] == first.json()["version"]
    assert second.json()["db_host"] == "127.0.0.1"
    assert second.elapsed * 2 < first.elapsed  # the hit skipped the slow query
    assert "db;dur=" in first.headers["Server-Timing"]
    assert "db;dur=" not in second.headers["Server-Timing"]
    assert db_executions(servers, app) - before == 1


def test_ttl_expiry_refreshes(servers, stack):
    app = stack(cache={"ttl": 1, "stale_while_revalidate": 0, "stale_if_error": 0})
    before = db_executions(servers, app)
    assert app.get().cache == "MISS"
    assert app.get().cache == "HIT"
    time.sleep(1.2)
    expired = app.get()
    assert expired.cache == "MISS"
    assert expired.json()["age_s"] < 1
    assert app.get().cache == "HIT"
    assert db_executions(servers, app) - before == 2


def test_cold_stampede_one_db_execution(servers, stack):
    """20 concurrent cold requests, 4 workers: one DB execution, 19 answered from Redis."""
    app = stack(workers=4)
    before = db_executions(servers, app)
    replies = concurrent([app.get] * 20)
    assert {r.status for r in replies} == {200}
    assert Counter(r.cache for r in replies) == {"MISS": 1, "HIT": 19}
    assert len({r.json()["fetched_at"] for r in replies}) == 1
    assert db_executions(servers, app) - before == 1
    # The waiters say so in Server-Timing.
    assert any("wait;dur=" in r.headers["Server-Timing"] for r in replies if r.cache == "HIT")


def test_cold_stampede_across_hosts(servers, stack):
    """Two gunicorn masters ("hosts") sharing Redis: still exactly one execution."""
    host_a = stack(workers=2)
    host_b = stack(workers=2)
    before = db_executions(servers, host_a, host_b)
    replies = concurrent([host_a.get, host_b.get] * 8)
    assert {r.status for r in replies} == {200}
    assert Counter(r.cache for r in replies)["MISS"] == 1
    assert db_executions(servers, host_a, host_b) - before == 1


def test_stale_while_revalidate(servers, stack):
    app = stack(cache={"ttl": 1, "stale_while_revalidate": 30, "stale_if_error": 0})
    before = db_executions(servers, app)
    miss = app.get()
    assert miss.cache == "MISS"
    time.sleep(1.2)
    # Expired: everyone is served the stale value at once, one refresh runs behind.
    stale = concurrent([app.get] * 6)
    assert {r.cache for r in stale} == {"STALE"}
    assert {r.json()["fetched_at"] for r in stale} == {miss.json()["fetched_at"]}
    # nobody waited for the DB: no db phase, and each answer faster than the query
    assert not any("db;dur=" in r.headers["Server-Timing"] for r in stale)
    assert max(r.elapsed for r in stale) < miss.elapsed

    def refreshed():
        reply = app.get()
        return reply if reply.cache == "HIT" else None

    hit = wait_for(refreshed, timeout=DB_SLEEP + 5, interval=0.1)
    assert hit.json()["fetched_at"] >= miss.json()["fetched_at"]
    assert hit.json()["age_s"] < 1
    assert db_executions(servers, app) - before == 2


def test_stale_if_error_and_503(servers, stack, namespace):
    """DB down: a stale value is served; a cold key gets a clear 503 (HTML and JSON)."""
    warm = stack(cache={"ttl": 1, "stale_while_revalidate": 0, "stale_if_error": 60})
    cold = stack(cache={"namespace": f"{namespace}-cold", "error_backoff": 1})
    assert warm.get().cache == "MISS"
    servers.control("stop", "pg")
    try:
        time.sleep(1.2)
        stale = warm.get()
        assert (stale.status, stale.cache) == (200, "STALE")
        assert stale.json()["version"].startswith("PostgreSQL")
        assert warm.get("/").status == 200

        as_json = cold.get("/", accept="application/json")
        assert as_json.status == 503
        assert as_json.headers["Content-Type"].startswith("application/json")
        body = as_json.json()
        assert body["status"] == 503
        assert "database is unavailable" in body["error"]
        assert as_json.cache == "MISS"
        assert "Retry-After" in as_json.headers

        as_html = cold.get("/", accept="text/html")
        assert as_html.status == 503
        assert as_html.headers["Content-Type"].startswith("text/html")
        assert "Service unavailable" in as_html.text
        assert "Traceback" not in as_html.text
        assert (
            cold.get("/api/version", accept="text/html")
            .headers["Content-Type"]
            .startswith("application/json")
        )

        ready = warm.get("/readyz")
        assert ready.status == 503
        assert ready.json()["checks"]["database"] == {
            "ok": False,
            "error": "database unavailable",
            "ms": ready.json()["checks"]["database"]["ms"],
        }
        # Public answers say little (no host, port or driver message); the log has it.
        for reply in (as_json, as_html, ready):
            assert str(servers.pg_port) not in reply.text
            assert "127.0.0.1" not in reply.text
        assert f"port {servers.pg_port} failed" in warm.log_text() + cold.log_text()
    finally:
        servers.control("start", "pg")
    # The database is back: the cold key fills once the error backoff has passed.
    recovered = wait_for(lambda: (r := cold.get()).status == 200 and r, timeout=15, interval=0.3)
    assert recovered.cache == "MISS"
    assert cold.get().cache == "HIT"
    assert servers.db_password not in warm.log_text() + cold.log_text()


def test_redis_outage_fails_open_and_recovers(servers, stack):
    # local tier off: every request here must reach Redis (the tier has its own tests)
    app = stack(redis={"breaker_failures": 1, "breaker_cooldown": 0.5}, cache={"local_ttl": 0})
    assert app.get().cache == "MISS"
    assert app.get().cache == "HIT"
    servers.control("stop", "redis-plain")
    try:
        replies = [app.get() for _ in range(4)]
        assert {(r.status, r.cache) for r in replies} == {(200, "BYPASS")}
        assert all(r.json()["version"].startswith("PostgreSQL") for r in replies)
        page = app.get("/")
        assert (page.status, page.cache) == (200, "BYPASS")
        assert "BYPASS" in page.text
        ready = app.get("/readyz")
        assert ready.status == 200  # fail-open: Redis down does not make the host unready
        assert ready.json()["checks"]["redis"]["ok"] is False
    finally:
        servers.control("start", "redis-plain")
    # Caching resumes by itself: the breaker lets a probe through, the value is refilled.
    wait_for(lambda: app.get().cache == "HIT", timeout=20, interval=0.2)
    metrics = app.get("/metrics").text
    assert 'cachedapp_cache_results_total{result="bypass"}' in metrics
    assert "cachedapp_redis_breaker_opened_total" in metrics
