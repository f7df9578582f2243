"""The two comparison apps of the benchmark (not part of the package).

- ``peer``: the public solutions' pattern. On every request a new Redis client (so a
  new connection, a TLS handshake with ``rediss://``) GETs the key; only on a miss a new
  PostgreSQL connection runs slow_version() and the answer is SETEXed.
- ``original``: the original app's pattern (the benchmark's former "reference"): a new
  PostgreSQL connection *and* a new Redis client on every request, hits included.

Neither has a pool, stampede protection, stale serving or fail-open. Both read
cachedapp's config (CACHEDAPP_CONFIG + env) and render cachedapp's own page template
with Flask's render_template, as the public solutions do, so the bytes match the app's.
Redis over TLS is verified as cachedapp verifies it (certificate and host name).

    gunicorn -c python:cachedapp.gunicorn_conf --chdir app/bench styles:peer
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import cachedapp
import psycopg2
import redis
from cachedapp.config import load_settings
from cachedapp.db import connect_kwargs
from flask import Flask, Response, render_template

settings = load_settings()
TEMPLATES = Path(cachedapp.__file__).parent / "templates"
KEY = f"{settings.cache.namespace}-style:slow_version"


def _redis_client() -> redis.Redis:
    kwargs: dict[str, Any] = {
        "username": settings.redis.username or None,
        "password": settings.redis.password.reveal() or None,
    }
    if settings.redis.tls:
        kwargs.update(ssl_cert_reqs="required", ssl_check_hostname=True)
        if settings.redis.ca_file:
            kwargs["ssl_ca_certs"] = settings.redis.ca_file
    return redis.Redis.from_url(settings.redis.url, **kwargs)


def _slow_version(conn: Any) -> str:
    with conn.cursor() as cur:
        cur.execute("SELECT slow_version()")
        return cur.fetchone()[0]


def _page(version: str, status: str, start: float) -> Response:
    body = render_template(
        "page.html",
        error=None,
        version=version,
        db_host=settings.database.host,
        status=status,
        elapsed_ms=round((time.perf_counter() - start) * 1000, 2),
        age_s=0.0,
        served_by="bench",
    )
    return Response(body, mimetype="text/html", headers={"X-Cache": status})


peer = Flask("peer", template_folder=str(TEMPLATES))
original = Flask("original", template_folder=str(TEMPLATES))


@peer.get("/")
def peer_page() -> Response:
    start = time.perf_counter()
    cache = _redis_client()  # a new client (and connection) per request
    try:
        cached = cache.get(KEY)
        if cached is not None:
            return _page(cached.decode(), "HIT", start)
        conn = psycopg2.connect(**connect_kwargs(settings.database))  # only on a miss
        try:
            version = _slow_version(conn)
        finally:
            conn.close()
        cache.setex(KEY, int(settings.cache.ttl), version)
        return _page(version, "MISS", start)
    finally:
        cache.close()


@original.get("/")
def original_page() -> Response:
    start = time.perf_counter()
    conn = psycopg2.connect(**connect_kwargs(settings.database))  # hits included
    cache = _redis_client()
    try:
        cached = cache.get(KEY)
        if cached is not None:
            return _page(cached.decode(), "HIT", start)
        version = _slow_version(conn)
        cache.setex(KEY, int(settings.cache.ttl), version)
        return _page(version, "MISS", start)
    finally:
        cache.close()
        conn.close()
