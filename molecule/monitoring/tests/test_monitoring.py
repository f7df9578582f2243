"""Prometheus on the monitor host: every target up, and alerts that fire and resolve.

Figures printed: seconds from the fault to the alert firing and from the repair to the
alert leaving (scrape and evaluation every 2 s, `for: 4s`, molecule.yml).
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import requests
from conftest import (
    CA_FILE,
    EDGE_BYPASS,
    HTTPS_PORT,
    ROOT,
    STACK,
    WEB_COUNT,
    alerts,
    api,
    container,
    docker,
    playbook,
    publish_drift,
    query,
    systemctl,
    wait_for,
)

JOBS = {"prometheus", "node", "cachedapp", "nginx_log", "redis", "postgres"}


def test_prometheus_is_published_on_loopback_only() -> None:
    ports = docker("port", container("monitor")).split()
    assert ports[:2] == ["9090/tcp", "->"], ports
    assert len(ports) == 3, ports
    assert ports[2].startswith("127.0.0.1:"), ports


def test_every_target_is_up(granted: None) -> None:
    def all_up() -> bool:
        targets = api("targets", state="active")["activeTargets"]
        jobs = {t["labels"]["job"] for t in targets}
        assert jobs == JOBS, f"jobs {sorted(jobs)}"
        down = [(t["labels"]["job"], t["lastError"]) for t in targets if t["health"] != "up"]
        assert not down, down
        return True

    print(f"\nall targets up after {wait_for('every target up', all_up):.1f} s")
    web = query('up{job="cachedapp"}')
    assert sorted(r["metric"]["host"] for r in web) == [
        f"{STACK}-web-{i}" for i in range(1, WEB_COUNT + 1)
    ]
    assert query("redis_up")[0]["value"][1] == "1"
    assert query("pg_up")[0]["value"][1] == "1"


def lookups_counted() -> float:
    """Every cache lookup the app counted (hit, miss, stale or bypass), all hosts."""
    found = query("sum(cachedapp_cache_results_total)")
    return float(found[0]["value"][1]) if found else 0.0


def test_the_apps_and_nginxs_counters_arrive() -> None:
    # Counted by any result: the value cached by the tests before may be in its
    # stale-while-revalidate window (result="stale") when this runs.
    before = lookups_counted()
    for _ in range(3):
        # Past the edge cache: each request reaches the app and its counters.
        requests.get(
            f"https://127.0.0.1:{HTTPS_PORT}/", timeout=30, verify=str(CA_FILE), headers=EDGE_BYPASS
        ).raise_for_status()
    wait_for("cache lookups counted", lambda: lookups_counted() >= before + 3)
    wait_for("200s counted by mtail", lambda: query('nginx_http_responses_total{status="200"}'))
    assert not alerts("CachedappHostDown")
    assert not alerts("RedisDown")


def test_redis_down_fires_and_resolves(granted: None) -> None:
    systemctl("cache", "stop", "redis-server")
    try:
        fired = wait_for("RedisDown firing", lambda: alerts("RedisDown", "firing"))
        firing = alerts("RedisDown", "firing")[0]
        assert firing["labels"]["severity"] == "critical"
        assert query("redis_up")[0]["value"][1] == "0"
    finally:
        systemctl("cache", "start", "redis-server")
    resolved = wait_for("RedisDown resolved", lambda: not alerts("RedisDown"))
    assert query("redis_up")[0]["value"][1] == "1"
    print(f"\nRedisDown: firing {fired:.1f} s after the stop, gone {resolved:.1f} s after start")


def test_a_stopped_web_host_fires_and_resolves() -> None:
    host = container("web-1")
    docker("stop", host)
    try:
        fired = wait_for("CachedappHostDown firing", lambda: alerts("CachedappHostDown", "firing"))
        assert [a["labels"]["host"] for a in alerts("CachedappHostDown", "firing")] == [host]
    finally:
        docker("start", host)
    resolved = wait_for("CachedappHostDown resolved", lambda: not alerts("CachedappHostDown"))
    print(
        f"\nCachedappHostDown: firing {fired:.1f} s after docker stop,"
        f" gone {resolved:.1f} s after docker start"
    )


def test_a_drifted_report_fires_until_an_in_sync_one(tmp_path: Path) -> None:
    report = {"verdict": "drifted", "finished": "2026-01-01T00:00:00+00:00", "changed_tasks": 1}
    report["hosts"] = {f"{STACK}-web-1": {"would_change": [{"task": "Install the app"}]}}
    try:
        publish_drift(report, tmp_path)
        fired = wait_for("DriftDetected firing", lambda: alerts("DriftDetected", "firing"))
        assert query("cgc_drift_hosts_changed")[0]["value"][1] == "1"
        start = time.monotonic()
        publish_drift({**report, "verdict": "in-sync", "hosts": {}}, tmp_path)
        wait_for("DriftDetected resolved", lambda: not alerts("DriftDetected"))
        resolved = time.monotonic() - start
        print(
            f"\nDriftDetected: firing {fired:.1f} s after the drifted report's publishing"
            f" ended, gone {resolved:.1f} s after the in-sync one's started"
        )
    finally:
        publish_drift(None, tmp_path)  # the project's own report (or none) again


def test_check_mode_changes_nothing_and_shows_no_secret() -> None:
    """The monitoring plays in --check --diff on the converged stack: changed=0, no password."""
    output = playbook(ROOT / "playbooks/monitoring.yml", "--check", "--diff")
    changed = [int(n) for n in re.findall(r"\bchanged=(\d+)", output)]
    assert changed, output[-2000:]
    assert sum(changed) == 0, output[-4000:]
    for name in ("redis_monitor_password", "db_monitor_password"):
        secret = (ROOT / ".ansible" / "secrets" / name).read_text().strip()
        assert secret not in output, name
