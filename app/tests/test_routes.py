"""Routes, headers and multiprocess metrics under gunicorn."""

from __future__ import annotations

import json
import time

import redis
import requests
from cachedapp.config import load_settings
from cachedapp.web import PageRenderer, create_app
from jinja2 import Environment, PackageLoader
from prometheus_client.parser import text_string_to_metric_families
from support import concurrent, write_config

PATHS = ["/", "/app", "/api/version", "/healthz", "/readyz", "/metrics", "/no-such-page"]


def _samples(text: str) -> dict[tuple[str, tuple], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def test_every_response_has_cache_headers(stack):
    app = stack(workers=2)
    for path in PATHS:
        reply = app.get(path)
        assert reply.cache in {"HIT", "MISS", "STALE", "BYPASS"}, path
        assert "app;dur=" in reply.headers["Server-Timing"], path
    assert app.get("/healthz").text == "ok\n"
    missing = app.get("/no-such-page", accept="application/json")
    assert missing.status == 404
    assert missing.json()["status"] == 404
    assert "Traceback" not in app.get("/no-such-page").text


def test_app_path_serves_the_page(stack):
    app = stack(workers=2)
    root, legacy = app.get("/"), app.get("/app")
    assert root.status == legacy.status == 200
    assert root.cache == "MISS"
    assert legacy.cache == "HIT"
    for reply in (root, legacy):
        assert "Database version" in reply.text
        assert reply.headers["Content-Type"].startswith("text/html")


def test_readyz_reports_each_dependency(stack):
    app = stack(workers=1)
    ready = app.get("/readyz")
    assert ready.status == 200
    body = ready.json()
    assert body["ready"] is True
    assert body["checks"]["database"]["ok"] is True
    assert body["checks"]["redis"]["ok"] is True
    assert body["checks"]["redis"]["breaker"] == "closed"


def test_metrics_are_aggregated_across_workers(stack):
    app = stack(workers=4)
    assert app.get().cache == "MISS"
    for _ in range(5):
        replies = concurrent([app.get] * 6)
        assert {r.cache for r in replies} == {"HIT"}
    # several worker processes wrote samples (the preloading master's files hold zeros)
    assert len(app.worker_pids_in_metrics() - {app.proc.pid}) >= 2
    s = _samples(app.get("/metrics").text)
    assert s[("cachedapp_cache_results_total", (("result", "hit"),))] == 30
    assert s[("cachedapp_cache_results_total", (("result", "miss"),))] == 1
    assert s[("cachedapp_cache_results_total", (("result", "stale"),))] == 0
    assert s[("cachedapp_cache_results_total", (("result", "bypass"),))] == 0
    assert s[("cachedapp_db_executions_total", ())] == 1
    count = s[("cachedapp_request_duration_seconds_count", (("route", "/api/version"),))]
    assert count == 31
    buckets = [
        v
        for (name, labels), v in s.items()
        if name == "cachedapp_request_duration_seconds_bucket"
        and ("route", "/api/version") in labels
    ]
    assert max(buckets) == 31  # the +Inf bucket holds every request


def test_page_renderer_fills_the_per_request_figures():
    """The pre-rendered page with its holes filled is byte for byte the full render."""
    env = Environment(loader=PackageLoader("cachedapp"), autoescape=True)
    pages = PageRenderer(env.get_template("page.html"))
    base = {
        "version": "PostgreSQL 15 <&>",
        "db_host": "db.internal",
        "cache": "HIT",
        "fetched_at": "2026-01-01T00:00:00+00:00",
        "served_by": "web-1",
    }
    for model in (
        {**base, "elapsed_ms": 0.42, "age_s": 1.5},
        {**base, "elapsed_ms": 12.0, "age_s": 30.25},  # same value: the memo is reused
        {**base, "cache": "STALE", "elapsed_ms": 3.1, "age_s": 61.0},  # another status
    ):
        full = pages.render({"error": None, "status": model["cache"], **model})
        assert pages.page(model) == full
        assert f"{model['elapsed_ms']} ms" in full
        assert "PostgreSQL 15 &lt;&amp;&gt;" in full


def test_fast_path_and_flask_answer_alike(servers, stack, tmp_path):
    """GETs of the page and the JSON are answered before Flask; HEAD goes through
    Flask: both carry the same headers, and the JSON is what jsonify writes. Flask
    has no before/after/teardown request hooks (the fast path would skip them)."""
    flask_app = create_app(
        load_settings(write_config(tmp_path / "inproc.toml", servers), environ={})
    )
    assert not any(flask_app.before_request_funcs.values())
    assert not any(flask_app.after_request_funcs.values())
    assert not any(flask_app.teardown_request_funcs.values())
    app = stack(workers=1)
    assert app.get().cache == "MISS"
    for path, content_type in (
        ("/", "text/html; charset=utf-8"),
        ("/api/version", "application/json"),
    ):
        got = requests.get(f"{app.url}{path}", timeout=10)
        head = requests.head(f"{app.url}{path}", timeout=10)
        for reply in (got, head):
            assert reply.status_code == 200
            assert reply.headers["Content-Type"] == content_type
            assert reply.headers["Cache-Control"] == "no-store"
            assert reply.headers["X-Cache"] == "HIT"
            assert "app;dur=" in reply.headers["Server-Timing"]
        assert int(got.headers["Content-Length"]) == len(got.content)
        assert {h.lower() for h in got.headers} == {h.lower() for h in head.headers}
    body = requests.get(f"{app.url}/api/version", timeout=10).text
    assert body.endswith("}\n")
    assert body == json.dumps(json.loads(body), separators=(",", ":")) + "\n"
    assert list(json.loads(body)) == [
        "version",
        "db_host",
        "cache",
        "elapsed_ms",
        "age_s",
        "fetched_at",
        "served_by",
    ]


def test_a_failing_fast_path_answer_gets_flasks_error_answer(servers, stack, namespace):
    """The lookup succeeds but building the answer raises (a cached value that is not
    an object): Flask's error answer, with X-Cache and Server-Timing, and the lookup is
    not repeated (one counted hit per request)."""
    plain = redis.Redis(port=servers.redis_plain_port)
    try:
        entry = {"c": time.time(), "v": ["not", "an", "object"]}
        plain.set(f"{namespace}:v1:{{slow_version}}", json.dumps(entry), px=60_000)
    finally:
        plain.close()
    app = stack(workers=1)
    as_json = app.get("/api/version")
    as_html = app.get("/", accept="text/html")
    for reply, content_type in ((as_json, "application/json"), (as_html, "text/html")):
        assert reply.status == 500
        assert reply.headers["Content-Type"].startswith(content_type)
        assert reply.cache == "HIT"  # the lookup's own status
        assert "app;dur=" in reply.headers["Server-Timing"]
        assert "Traceback" not in reply.text
    assert as_json.json()["status"] == 500
    assert "Internal error" in as_json.json()["error"]
    assert "Internal error" in as_html.text
    assert "unhandled error on /api/version" in app.log_text()
    s = _samples(app.get("/metrics").text)
    assert s[("cachedapp_cache_results_total", (("result", "hit"),))] == 2
    assert s[("cachedapp_request_duration_seconds_count", (("route", "/api/version"),))] == 1


def test_a_failed_fast_path_lookup_is_not_repeated(servers, stack, namespace):
    """A lookup that fails before Flask (503: another request holds the refresh lock
    past wait_timeout) is re-raised in the Flask view, not made again: Redis sees one
    GET of the key for the request."""
    plain = redis.Redis(port=servers.redis_plain_port)
    try:
        plain.set(f"{namespace}:v1:{{slow_version}}:lock", "someone-else", px=30_000)
        app = stack(workers=1, cache={"wait_timeout": 0.3, "local_ttl": 0})
        before = plain.info("commandstats").get("cmdstat_get", {}).get("calls", 0)
        reply = app.get("/api/version")
        after = plain.info("commandstats").get("cmdstat_get", {}).get("calls", 0)
    finally:
        plain.close()
    assert reply.status == 503
    assert reply.json()["status"] == 503
    assert after - before == 1
    s = _samples(app.get("/metrics").text)
    assert s[("cachedapp_request_duration_seconds_count", (("route", "/api/version"),))] == 1
