"""Routes, headers and multiprocess metrics under gunicorn."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families
from support import concurrent

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
