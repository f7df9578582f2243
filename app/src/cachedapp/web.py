"""The Flask app factory and its routes."""

from __future__ import annotations

import logging
import socket
import time
from datetime import UTC, datetime
from typing import Any

from flask import Flask, Response, current_app, g, jsonify, render_template, request
from werkzeug.exceptions import HTTPException

from cachedapp import metrics
from cachedapp.cache import BYPASS, Cache, CacheUnavailable, Result
from cachedapp.config import Settings, load_settings
from cachedapp.db import Database, DatabaseError
from cachedapp.logs import configure as configure_logging
from cachedapp.redisconn import RedisGateway, RedisUnavailable

log = logging.getLogger(__name__)
ITEM = "slow_version"  # the one cached item: slow_version()'s answer
EXTENSION = "cachedapp"


class Services:
    """What one worker process holds: the DB pool, the Redis client, the cache."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.db = Database(settings.database)
        self.redis = RedisGateway(settings.redis)
        self.cache = Cache(settings.cache, self.redis)
        self.hostname = socket.gethostname()

    def reset(self) -> None:
        """After fork: drop the parent's pools; each worker builds its own on first use."""
        self.db.reset()
        self.redis.reset()

    def lookup(self) -> Result:
        return self.cache.get(ITEM, self.db.fetch_version)


def services(app: Flask | None = None) -> Services:
    return (app or current_app).extensions[EXTENSION]


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 2)


def _wants_json() -> bool:
    if request.path.startswith("/api/"):
        return True
    best = request.accept_mimetypes.best_match(["text/html", "application/json"], "text/html")
    return best == "application/json"


def _view_model(result: Result, svc: Services) -> dict[str, Any]:
    now = time.time()
    return {
        "version": result.value.get("version"),
        "db_host": result.value.get("db_host"),
        "cache": result.status,
        "elapsed_ms": _ms(time.perf_counter() - g.start),
        "age_s": round(max(0.0, now - result.created), 3),
        "fetched_at": datetime.fromtimestamp(result.created, UTC).isoformat(timespec="seconds"),
        "served_by": svc.hostname,
    }


def create_app(settings: Settings | None = None) -> Flask:
    """Build the app. Settings come from the TOML file + env when not given."""
    settings = settings or load_settings()
    configure_logging(settings.app.log_level)
    app = Flask(__name__)
    app.json.sort_keys = False  # type: ignore[attr-defined]
    svc = Services(settings)
    app.extensions[EXTENSION] = svc
    app.before_request(_start_timer)
    app.after_request(_add_headers)
    _register_routes(app, svc)
    _register_errors(app, svc)
    return app


def _start_timer() -> None:
    g.start = time.perf_counter()


def _add_headers(response: Response) -> Response:
    """X-Cache and Server-Timing on every response; the latency histogram."""
    start = g.get("start") or time.perf_counter()
    total = time.perf_counter() - start
    status = g.get("cache_status", BYPASS)
    timings = g.get("timings")
    parts = []
    if timings is not None:
        parts.append(f"redis;dur={_ms(timings.redis)}")
        if timings.db:
            parts.append(f"db;dur={_ms(timings.db)}")
        if timings.wait:
            parts.append(f"wait;dur={_ms(timings.wait)}")
    parts.append(f'app;dur={_ms(total)};desc="{status}"')
    headers = response.headers
    headers["X-Cache"] = status
    headers["Server-Timing"] = ", ".join(parts)
    rule = request.url_rule
    metrics.observe_latency(rule.rule if rule else "unmatched", total)
    return response


def _register_routes(app: Flask, svc: Services) -> None:
    def lookup() -> Result:
        result = svc.lookup()
        g.cache_status = result.status
        g.timings = result.timings
        return result

    # The compiled template, rendered directly: no per-request template lookup,
    # context processors or signals (the page uses none of them).
    page_template = app.jinja_env.get_template("page.html")

    @app.get("/")
    @app.get("/app")
    def page() -> Response:
        model = _view_model(lookup(), svc)
        body = page_template.render(error=None, status=model["cache"], **model)
        response = Response(body, mimetype="text/html")
        response.headers["Cache-Control"] = "no-store"
        return response

    @app.get("/api/version")
    def api_version() -> Response:
        response = jsonify(_view_model(lookup(), svc))
        response.headers["Cache-Control"] = "no-store"
        return response

    @app.get("/healthz")
    def healthz() -> Response:
        return Response("ok\n", mimetype="text/plain")

    @app.get("/readyz")
    def readyz() -> tuple[Response, int]:
        checks: dict[str, dict[str, Any]] = {}
        start = time.perf_counter()
        try:
            svc.db.ping()
            checks["database"] = {"ok": True}
        except DatabaseError as exc:
            checks["database"] = {"ok": False, "error": str(exc)}
        checks["database"]["ms"] = _ms(time.perf_counter() - start)
        start = time.perf_counter()
        try:
            svc.redis.ping()
            checks["redis"] = {"ok": True}
        except RedisUnavailable as exc:
            checks["redis"] = {"ok": False, "error": str(exc)}
        checks["redis"]["ms"] = _ms(time.perf_counter() - start)
        checks["redis"]["breaker"] = svc.redis.breaker.state
        # Fail-open: without Redis the app still answers (BYPASS), so only the
        # database decides readiness; Redis is reported for the operator.
        ready = checks["database"]["ok"]
        return jsonify({"ready": ready, "checks": checks}), 200 if ready else 503

    @app.get("/metrics")
    def metrics_view() -> Response:
        body, content_type = metrics.render()
        return Response(body, content_type=content_type)


ErrorResponse = tuple[Response | str, int, dict[str, str]]


def _register_errors(app: Flask, svc: Services) -> None:
    retry_after = str(max(1, round(svc.settings.cache.error_backoff)))

    def error(code: int, message: str, status: str, headers: dict[str, str]) -> ErrorResponse:
        """HTML or JSON by Accept (JSON under /api/); never a traceback."""
        elapsed = _ms(time.perf_counter() - (g.get("start") or time.perf_counter()))
        if _wants_json():
            body = {"error": message, "status": code, "cache": status, "elapsed_ms": elapsed}
            return jsonify(body), code, headers
        html = render_template(
            "page.html", error=message, status=status, elapsed_ms=elapsed, served_by=svc.hostname
        )
        return html, code, {**headers, "Content-Type": "text/html; charset=utf-8"}

    @app.errorhandler(CacheUnavailable)
    def unavailable(exc: CacheUnavailable) -> ErrorResponse:
        g.cache_status = exc.status
        g.timings = exc.timings
        message = f"The database is unavailable and no cached answer can be served ({exc})."
        return error(503, message, exc.status, {"Retry-After": retry_after})

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> ErrorResponse:
        return error(exc.code or 500, exc.description or exc.name, BYPASS, {})

    @app.errorhandler(Exception)
    def crash(exc: Exception) -> ErrorResponse:
        log.exception("unhandled error on %s", request.path)
        return error(500, "Internal error; the details are in the server log.", BYPASS, {})
