"""Reference-style variant for the benchmark (not part of the package).

What the original challenge app does: on every request it opens a new PostgreSQL
connection and a new Redis client, GETs the key, and on a miss runs slow_version()
and SETEXes the answer. No pool, no stampede protection, no stale serving, no
fail-open. Same config file as cachedapp (CACHEDAPP_CONFIG), same page bytes shape.

    gunicorn -c python:cachedapp.gunicorn_conf --chdir app/bench reference_app:app
"""

from __future__ import annotations

import time
from html import escape

import psycopg2
import redis
from cachedapp.config import load_settings
from cachedapp.db import connect_kwargs
from flask import Flask, Response

settings = load_settings()
app = Flask(__name__)
KEY = f"{settings.cache.namespace}-reference:slow_version"
PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Database version</title></head>
<body><dl>
<dt>Database version</dt><dd>{version}</dd>
<dt>Database host</dt><dd>{host}</dd>
<dt>Cache status</dt><dd>{status}</dd>
<dt>Answered in</dt><dd>{ms:.2f} ms</dd>
</dl></body></html>
"""


@app.get("/")
def page() -> Response:
    start = time.perf_counter()
    conn = psycopg2.connect(**connect_kwargs(settings.database))  # new connection each time
    cache = redis.Redis.from_url(  # new client (and connection) each time
        settings.redis.url,
        username=settings.redis.username or None,
        password=settings.redis.password.reveal() or None,
    )
    try:
        cached = cache.get(KEY)
        if cached is not None:
            version, status = cached.decode(), "HIT"
        else:
            with conn.cursor() as cur:
                cur.execute("SELECT slow_version()")
                version = cur.fetchone()[0]
            cache.setex(KEY, int(settings.cache.ttl), version)
            status = "MISS"
    finally:
        cache.close()
        conn.close()
    body = PAGE.format(
        version=escape(version),
        host=escape(settings.database.host),
        status=status,
        ms=(time.perf_counter() - start) * 1000,
    )
    return Response(body, mimetype="text/html", headers={"X-Cache": status})
