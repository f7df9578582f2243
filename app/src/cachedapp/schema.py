"""The slow_version() function: render, inspect and install it idempotently."""

from __future__ import annotations

import math
from importlib import resources
from typing import Any

SQL_RESOURCE = "sql/slow_version.sql"
DEFAULT_SLEEP = 5.0
_LOCK_KEY = "cachedapp.schema"
_STATUS_SQL = """
SELECT p.prosrc, l.lanname
  FROM pg_proc p
  JOIN pg_namespace n ON n.oid = p.pronamespace
  JOIN pg_language l ON l.oid = p.prolang
 WHERE n.nspname = 'public' AND p.proname = 'slow_version' AND p.pronargs = 0
"""


def check_sleep(sleep: float) -> float:
    if not math.isfinite(sleep) or not 0 <= sleep <= 3600:
        raise ValueError("--sleep must be a number of seconds between 0 and 3600")
    return float(sleep)


def render(sleep: float = DEFAULT_SLEEP) -> str:
    """The CREATE OR REPLACE statement with the sleep filled in (a number, never text)."""
    template = resources.files("cachedapp").joinpath(SQL_RESOURCE).read_text("utf-8")
    return template.replace("{sleep_seconds}", repr(check_sleep(sleep)))


def expected_body(sleep: float = DEFAULT_SLEEP) -> str:
    """The function body as PostgreSQL stores it in pg_proc.prosrc."""
    return render(sleep).split("$body$")[1]


def status(conn: Any, sleep: float = DEFAULT_SLEEP) -> dict[str, bool]:
    """{"installed": the function exists, "current": it is exactly what we would install}."""
    with conn.cursor() as cur:
        cur.execute(_STATUS_SQL)
        row = cur.fetchone()
    if row is None:
        return {"installed": False, "current": False}
    prosrc, language = row
    return {"installed": True, "current": language == "plpgsql" and prosrc == expected_body(sleep)}


def install(conn: Any, sleep: float = DEFAULT_SLEEP) -> dict[str, bool]:
    """Create or replace slow_version() unless it is already current. {"changed": bool}.

    Serialised by an advisory lock so hosts deploying at once do not race.
    """
    sql = render(sleep)
    with conn:  # one transaction, committed on success
        with conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (_LOCK_KEY,))
        if status(conn, sleep)["current"]:
            return {"changed": False}
        with conn.cursor() as cur:
            cur.execute(sql)
    return {"changed": True}
