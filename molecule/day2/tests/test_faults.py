"""Fault drills under load, through scripts/drill.py (the operators' own drill).

- Redis killed (SIGKILL) under load and kept down: no failed response, the app answers
  BYPASS from the database; started again, caching resumes (HIT).
- PostgreSQL stopped: the cached answer is served STALE (stale-if-error) with no failed
  response; a cold key answers 503 with a clear message (JSON and HTML); started again,
  the key is refilled (MISS) and served HIT.

Each drill prints its counts per phase (total, 2xx, non-2xx, errors, X-Cache) and ends
with a `drill-result:` JSON line, which these tests read; the end state (every service
running as site.yml leaves it, the site answering HIT) is checked here on its own.
The counts named above are the app's (requests past nginx's edge microcache); a second
loop goes through the edge cache as shipped, and none of its requests may fail either
(when PostgreSQL is down and the app answers 503, the edge serves its stale copy).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from typing import Any

import pytest
import requests
from cgc_load import EDGE_BYPASS
from support import ROOT, base_url, container, docker_exec, redis_cli

# Seconds each fault phase runs under load: with the stack's 5 s slow_version() a
# BYPASS answer (straight from the database) takes ~5 s, so a few arrive per client.
HOLD = "12"


def drill(mode: str) -> dict[str, Any]:
    """Run scripts/drill.py MODE; its drill-result JSON (the output is printed)."""
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "drill.py"), mode, "--hold", HOLD],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    print(f"\n$ scripts/drill.py {mode} --hold {HOLD}  (exit {proc.returncode})")
    lines = proc.stdout.splitlines()
    print("\n".join(ln for ln in lines if not ln.startswith("drill-result: ")))
    lines = [ln for ln in lines if ln.startswith("drill-result: ")]
    assert lines, f"no drill-result line (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    result: dict[str, Any] = json.loads(lines[-1].removeprefix("drill-result: "))
    result["rc"] = proc.returncode
    return result


def active(member: str, unit: str) -> str:
    proc = docker_exec(container(member), "systemctl", "is-active", unit, check=False)
    return proc.stdout.strip()


def serves_hit(timeout: float = 60) -> bool:
    """Whether the site answers 200 with X-Cache: HIT within TIMEOUT seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        reply = requests.get(f"{base_url()}/api/version", timeout=30, headers=EDGE_BYPASS)
        if reply.status_code == 200 and reply.headers.get("X-Cache") == "HIT":
            return True
        time.sleep(0.5)
    return False


@pytest.fixture(scope="module")
def redis_drill() -> dict[str, Any]:
    return drill("redis")


@pytest.fixture(scope="module")
def postgres_drill() -> dict[str, Any]:
    return drill("postgres")


# --- Redis killed under load ---------------------------------------------------------


@pytest.mark.parametrize("phase", ["kill", "down"])
def test_redis_outage_fails_no_request(redis_drill: dict[str, Any], phase: str) -> None:
    counts = redis_drill["phases"][phase]
    assert counts["total"] > 0
    assert counts["non_2xx"] == 0, counts
    assert counts["errors"] == 0, counts


@pytest.mark.parametrize("phase", ["kill", "down", "recovery"])
def test_redis_outage_fails_no_request_through_the_edge(
    redis_drill: dict[str, Any], phase: str
) -> None:
    edge = redis_drill["phases"][phase]["edge"]
    assert edge["total"] > 0
    assert edge["non_2xx"] == 0, edge
    assert edge["errors"] == 0, edge
    assert "-" not in edge["x_edge_cache"], edge  # every answer says what the edge did


def test_redis_drill_load_is_answered_by_the_edge(redis_drill: dict[str, Any]) -> None:
    hits = sum(p["edge"]["x_edge_cache"].get("HIT", 0) for p in redis_drill["phases"].values())
    assert hits > 0, redis_drill["phases"]


def test_redis_down_is_answered_bypass(redis_drill: dict[str, Any]) -> None:
    down = redis_drill["phases"]["down"]
    assert down["x_cache"] == {"BYPASS": down["total"]}, down


def test_redis_recovery_resumes_caching(redis_drill: dict[str, Any]) -> None:
    recovery = redis_drill["phases"]["recovery"]
    assert recovery["non_2xx"] == 0, recovery
    assert recovery["errors"] == 0, recovery
    assert recovery["x_cache"].get("HIT", 0) > 0, recovery
    assert redis_drill["checks"]["recovery: caching resumed (HIT)"]


def test_redis_drill_verdict(redis_drill: dict[str, Any]) -> None:
    assert redis_drill["rc"] == 0, redis_drill["checks"]
    assert all(redis_drill["checks"].values()), redis_drill["checks"]


def test_redis_back_as_site_leaves_it(redis_drill: dict[str, Any]) -> None:
    assert active("cache", "redis-server") == "active"
    assert redis_cli("CONFIG", "GET", "maxmemory-policy").splitlines()[-1] == "allkeys-lru"
    assert serves_hit()


# --- PostgreSQL stopped ----------------------------------------------------------------


def test_postgres_outage_serves_stale(postgres_drill: dict[str, Any]) -> None:
    stale = postgres_drill["phases"]["stale"]
    assert stale["total"] > 0
    assert stale["non_2xx"] == 0, stale
    assert stale["errors"] == 0, stale
    assert stale["x_cache"] == {"STALE": stale["total"]}, stale


def test_postgres_outage_cold_key_is_503(postgres_drill: dict[str, Any]) -> None:
    cold = postgres_drill["phases"]["cold"]
    assert cold["total"] > 0
    assert cold["status"] == {"503": cold["total"]}, cold
    assert cold["errors"] == 0, cold
    assert postgres_drill["checks"]["cold: clear JSON body"]
    assert postgres_drill["checks"]["cold: clear HTML body"]


@pytest.mark.parametrize("phase", ["stale", "cold", "after"])
def test_postgres_outage_fails_no_request_through_the_edge(
    postgres_drill: dict[str, Any], phase: str
) -> None:
    """Even the cold key: the app answers 503, the edge keeps serving its copy."""
    edge = postgres_drill["phases"][phase]["edge"]
    assert edge["total"] > 0
    assert edge["status"] == {"200": edge["total"]}, edge
    assert edge["errors"] == 0, edge
    assert "-" not in edge["x_edge_cache"], edge


def test_postgres_recovery_resumes_caching(postgres_drill: dict[str, Any]) -> None:
    after = postgres_drill["phases"]["after"]
    assert after["non_2xx"] == 0, after
    assert after["errors"] == 0, after
    assert after["x_cache"].get("HIT", 0) > 0, after


def test_postgres_drill_verdict(postgres_drill: dict[str, Any]) -> None:
    assert postgres_drill["rc"] == 0, postgres_drill["checks"]
    assert all(postgres_drill["checks"].values()), postgres_drill["checks"]


def test_postgres_back_as_site_leaves_it(postgres_drill: dict[str, Any]) -> None:
    assert active("db", "postgresql") == "active"
    assert active("db", "postgresql@15-main") == "active"
    ready = requests.get(f"{base_url()}/readyz", timeout=30)
    assert ready.status_code == 200, ready.text
    assert serves_hit()
