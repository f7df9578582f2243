"""The Flask app factory and its routes."""

from __future__ import annotations

import functools
import logging
import re
import socket
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from flask import Flask, Response, current_app, jsonify, render_template, request
from flask.json.provider import JSONProvider
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
API_PATH = "/api/version"
ROUTES = frozenset({"/", "/app", API_PATH, "/healthz", "/readyz", "/metrics"})
START_KEY = "cachedapp.start"  # WSGI environ keys shared by the views and Front
CACHE_KEY = "cachedapp.cache"  # (X-Cache status, Timings or None)
FAILED_KEY = "cachedapp.failed"  # what raised in Front's fast path (lookup or answer)
FAST_PATHS = frozenset({"/", "/app", API_PATH})  # GETs answered without Flask on success
HTML = "text/html; charset=utf-8"
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


@functools.lru_cache(maxsize=8)  # one value, many hits: formatted once per value
def _iso(created: float) -> str:
    return datetime.fromtimestamp(created, UTC).isoformat("T", "seconds")


def _view_model(result: Result, svc: Services, start: float) -> dict[str, Any]:
    return {
        "version": result.value.get("version"),
        "db_host": result.value.get("db_host"),
        "cache": result.status,
        "elapsed_ms": _ms(time.perf_counter() - start),
        "age_s": round(max(0.0, time.time() - result.created), 3),
        "fetched_at": _iso(result.created),
        "served_by": svc.hostname,
    }


_HOLE = re.compile("\x00(elapsed_ms|age_s)\x00")


class PageRenderer:
    """The page template, rendered once per (value, status) with markers where the
    per-request figures go (time taken, value age); each request fills them in.
    Rendered with Jinja's own ``Template.render``: no per-request template lookup,
    context processors or signals (the page uses none of them)."""

    def __init__(self, template: Any) -> None:
        self.template = template
        self._last: tuple[tuple[Any, ...], list[str]] = ((), [])

    def render(self, variables: dict[str, Any]) -> str:
        return self.template.render(variables)

    def page(self, model: dict[str, Any]) -> str:
        key = (model["cache"], model["fetched_at"], model["version"], model["db_host"])
        last = self._last
        if last[0] != key:
            holes = {name: f"\x00{name}\x00" for name in ("elapsed_ms", "age_s")}
            text = self.render({"error": None, "status": model["cache"], **model, **holes})
            last = self._last = (key, _HOLE.split(text))
        parts = last[1]
        # literal, hole name, literal, hole name, ..., literal
        return "".join(part if i % 2 == 0 else str(model[part]) for i, part in enumerate(parts))


Headers = list[tuple[str, str]]


class Answers:
    """The 200 answer of the page and JSON routes (body and headers), built one way for
    Front's fast path and the Flask views (HEAD). The JSON is what jsonify writes:
    the app's JSON provider, compact separators, a final newline."""

    def __init__(self, pages: PageRenderer, json_provider: JSONProvider) -> None:
        self.pages = pages
        self.json = json_provider

    def __call__(self, path: str, model: dict[str, Any]) -> tuple[bytes, Headers]:
        if path == API_PATH:
            body = (self.json.dumps(model, separators=(",", ":")) + "\n").encode()
            content_type = "application/json"
        else:
            body, content_type = self.pages.page(model).encode(), HTML
        headers = [
            ("Content-Type", content_type),
            ("Content-Length", str(len(body))),
            ("Cache-Control", "no-store"),
        ]
        return body, headers


def create_app(settings: Settings | None = None) -> Flask:
    """Build the app. Settings come from the TOML file + env when not given."""
    settings = settings or load_settings()
    configure_logging(settings.app.log_level)
    app = Flask(__name__)
    app.json.sort_keys = False  # type: ignore[attr-defined]
    svc = Services(settings)
    app.extensions[EXTENSION] = svc
    answer = Answers(PageRenderer(app.jinja_env.get_template("page.html")), app.json)
    app.wsgi_app = Front(app.wsgi_app, svc, answer)  # type: ignore[method-assign]
    _register_routes(app, svc, answer)
    _register_errors(app, svc)
    return app


StartResponse = Callable[..., Any]


class Front:
    """The WSGI front of the Flask app. It serves the hot path itself and instruments
    every response.

    Serves: a GET of the page or of /api/version that the cache answers is answered
    here (:class:`Answers`) without Flask's request machinery (context, URL matching,
    session, Response object: about a third of a hit's Python work). Anything else
    (HEAD, other routes), or a lookup or answer that raised, goes through Flask; the
    failure is not repeated: the view re-raises it (``environ[FAILED_KEY]``) for
    Flask's error handlers.

    Instruments: X-Cache and Server-Timing on every response, whatever produced it,
    and the latency histogram, with no per-request Flask hooks. Views leave
    ``(status, timings)`` in ``environ[CACHE_KEY]``."""

    def __init__(
        self,
        wsgi_app: Callable[[dict[str, Any], StartResponse], Iterable[bytes]],
        svc: Services,
        answer: Answers,
    ):
        self.wsgi_app = wsgi_app
        self.svc = svc
        self.answer = answer

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

        path = environ.get("PATH_INFO")
        if environ.get("REQUEST_METHOD") == "GET" and path in FAST_PATHS:
            try:
                result = self.svc.lookup()
                environ[CACHE_KEY] = (result.status, result.timings)
                body, headers = self.answer(path, _view_model(result, self.svc, start))
            except Exception as exc:  # lookup or answer: handed to Flask's error handlers
                environ[FAILED_KEY] = exc
            else:
                instrumented("200 OK", headers)
                return [body]
        return self.wsgi_app(environ, instrumented)


def _register_routes(app: Flask, svc: Services, answer: Answers) -> None:
    # GETs of the cached routes are answered by Front; Flask serves the rest (HEAD)
    # and the errors (what failed there is re-raised here, not repeated).
    def lookup() -> Result:
        failed = request.environ.pop(FAILED_KEY, None)
        if failed is not None:
            raise failed
        result = svc.lookup()
        request.environ[CACHE_KEY] = (result.status, result.timings)
        return result

    def cached() -> Response:
        result = lookup()
        model = _view_model(result, svc, request.environ[START_KEY])
        body, headers = answer(request.path, model)
        return Response(body, headers=headers)

    app.add_url_rule("/", "page", cached)
    app.add_url_rule("/app", "page", cached)
    app.add_url_rule(API_PATH, "api_version", cached)

    @app.get("/healthz")
    def healthz() -> Response:
        return Response("ok\n", mimetype="text/plain")

    @app.get("/readyz")
    def readyz() -> tuple[Response, int]:
        checks = {
            "database": _probe("database", svc.db.ping, DatabaseError, DB_UNAVAILABLE),
            "redis": _probe("cache", svc.redis.ping, RedisUnavailable, CACHE_UNAVAILABLE),
        }
        checks["redis"]["breaker"] = svc.redis.breaker.state
        # Fail-open: without Redis the app still answers (BYPASS), so only the
        # database decides readiness; Redis is reported for the operator.
        ready = checks["database"]["ok"]
        return jsonify({"ready": ready, "checks": checks}), 200 if ready else 503

    @app.get("/metrics")
    def metrics_view() -> Response:
        body, content_type = metrics.render()
        return Response(body, content_type=content_type)


def _probe(
    what: str, ping: Callable[[], object], errors: type[Exception], public_error: str
) -> dict[str, Any]:
    """One /readyz check: ok or not, and how long it took. Public answers say little
    (a generic reason); the details go to the log."""
    start = time.perf_counter()
    try:
        ping()
        check: dict[str, Any] = {"ok": True}
    except errors as exc:
        log.warning("readyz: %s check failed: %s", what, exc)
        check = {"ok": False, "error": public_error}
    check["ms"] = _ms(time.perf_counter() - start)
    return check


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
