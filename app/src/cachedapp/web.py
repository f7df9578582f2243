"""The Flask app factory and its routes."""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from flask import Flask, Response, current_app, jsonify, render_template, request
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
ROUTES = frozenset({"/", "/app", "/api/version", "/healthz", "/readyz", "/metrics"})
START_KEY = "cachedapp.start"  # WSGI environ keys shared by the views and Instrument
CACHE_KEY = "cachedapp.cache"  # (X-Cache status, Timings or None)
# The generic reasons public answers give (/readyz); the details go to the log.
DB_UNAVAILABLE = "database unavailable"
CACHE_UNAVAILABLE = "cache unavailable"


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
        "elapsed_ms": _ms(time.perf_counter() - request.environ[START_KEY]),
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
    app.wsgi_app = Instrument(app.wsgi_app)  # type: ignore[method-assign]
    _register_routes(app, svc)
    _register_errors(app, svc)
    return app


StartResponse = Callable[..., Any]


class Instrument:
    """WSGI layer around the Flask app: X-Cache and Server-Timing on every response
    (whatever produced it) and the latency histogram, with no per-request Flask
    hooks. Views leave ``(status, timings)`` in ``environ[CACHE_KEY]``."""

    def __init__(self, wsgi_app: Callable[[dict[str, Any], StartResponse], Iterable[bytes]]):
        self.wsgi_app = wsgi_app

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        start = environ[START_KEY] = time.perf_counter()

        def instrumented(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            total = time.perf_counter() - start
            cache, timings = environ.get(CACHE_KEY) or (BYPASS, None)
            if timings is None:
                server_timing = f'app;dur={_ms(total)};desc="{cache}"'
            elif timings.local:  # a hit from the worker's local tier: no Redis phase
                server_timing = f'local;desc="in-process", app;dur={_ms(total)};desc="{cache}"'
            else:
                server_timing = f"redis;dur={_ms(timings.redis)}, "
                if timings.db:
                    server_timing += f"db;dur={_ms(timings.db)}, "
                if timings.wait:
                    server_timing += f"wait;dur={_ms(timings.wait)}, "
                server_timing += f'app;dur={_ms(total)};desc="{cache}"'
            headers.append(("X-Cache", cache))
            headers.append(("Server-Timing", server_timing))
            path = environ.get("PATH_INFO", "")
            metrics.observe_latency(path if path in ROUTES else "unmatched", total)
            return start_response(status, headers, exc_info)

        return self.wsgi_app(environ, instrumented)


def _register_routes(app: Flask, svc: Services) -> None:
    def lookup() -> Result:
        result = svc.lookup()
        request.environ[CACHE_KEY] = (result.status, result.timings)
        return result

    # The compiled template rendered in a shared context: no per-request template
    # lookup, context processors, signals or copy of Flask's globals (the page uses
    # none of them). Halves the render's cost on the hit path.
    page_template = app.jinja_env.get_template("page.html")

    def render_page(variables: dict[str, Any]) -> str:
        context = page_template.new_context(variables, shared=True)
        return "".join(page_template.root_render_func(context))

    @app.get("/")
    @app.get("/app")
    def page() -> Response:
        model = _view_model(lookup(), svc)
        body = render_page({"error": None, "status": model["cache"], **model})
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
        # Public answers say little: a generic reason here, the details in the log.
        try:
            svc.db.ping()
            checks["database"] = {"ok": True}
        except DatabaseError as exc:
            log.warning("readyz: database check failed: %s", exc)
            checks["database"] = {"ok": False, "error": DB_UNAVAILABLE}
        checks["database"]["ms"] = _ms(time.perf_counter() - start)
        start = time.perf_counter()
        try:
            svc.redis.ping()
            checks["redis"] = {"ok": True}
        except RedisUnavailable as exc:
            log.warning("readyz: cache check failed: %s", exc)
            checks["redis"] = {"ok": False, "error": CACHE_UNAVAILABLE}
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
        elapsed = _ms(time.perf_counter() - request.environ.get(START_KEY, time.perf_counter()))
        if _wants_json():
            body = {"error": message, "status": code, "cache": status, "elapsed_ms": elapsed}
            return jsonify(body), code, headers
        html = render_template(
            "page.html", error=message, status=status, elapsed_ms=elapsed, served_by=svc.hostname
        )
        return html, code, {**headers, "Content-Type": "text/html; charset=utf-8"}

    @app.errorhandler(CacheUnavailable)
    def unavailable(exc: CacheUnavailable) -> ErrorResponse:
        request.environ[CACHE_KEY] = (exc.status, exc.timings)
        log.warning("503 on %s: %s", request.path, exc)
        message = "The database is unavailable and no cached answer can be served."
        return error(503, message, exc.status, {"Retry-After": retry_after})

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> ErrorResponse:
        return error(exc.code or 500, exc.description or exc.name, BYPASS, {})

    @app.errorhandler(Exception)
    def crash(exc: Exception) -> ErrorResponse:
        log.exception("unhandled error on %s", request.path)
        return error(500, "Internal error; the details are in the server log.", BYPASS, {})
