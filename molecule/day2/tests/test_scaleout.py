"""Scale-out: two web hosts behind the load balancer container.

The balancer spreads requests over both hosts; a cold key hit by many concurrent
requests on both hosts runs the slow query once (counted by PostgreSQL itself); a web
host stopped under load costs no failed response.
"""

from __future__ import annotations

import subprocess
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from cgc_load import TIMEOUT, LoadLoop, warm
from support import WEB_COUNT, base_url, container, psql, redis_cli

WEB = [f"web-{n}" for n in range(1, WEB_COUNT + 1)]
# The app's keys (app/src/cachedapp/cache.py): <namespace>:v<key_version>:{<item>}
# plus :lock and :error, with the app role's defaults.
ITEM_KEY = "cachedapp:v1:{slow_version}"
COLD_REQUESTS = 30
# PostgreSQL (15) adds a backend's function counters to pg_stat_user_functions when
# the backend goes idle after its transaction - at once, unless it flushed less than
# a second before or the shared stats were busy (then within 10 s). slow_version()
# runs for seconds, so its call shows up at once; the wait covers the rare late flush
# without waiting 10 s every time.
STATS_WAIT = 12


pytestmark = pytest.mark.skipif(WEB_COUNT < 2, reason="needs two web hosts behind the lb")


def api_version(
    session: requests.Session | None = None, query: str = ""
) -> tuple[int, str, str, str]:
    """GET /api/version through the balancer: (status, served_by, X-Cache,
    X-Edge-Cache). QUERY: a query string, a key the web hosts' edge caches have
    never seen."""
    getter = session or requests
    reply = getter.get(base_url() + "/api/version" + query, timeout=TIMEOUT * 2)
    host = reply.json().get("served_by", "-") if reply.status_code == 200 else "-"
    return (
        reply.status_code,
        host,
        reply.headers.get("X-Cache", "-"),
        reply.headers.get("X-Edge-Cache", "-"),
    )


def slow_version_calls() -> int:
    """Executions of slow_version() counted by PostgreSQL (track_functions)."""
    out = psql(
        "SELECT coalesce(sum(calls), 0) FROM pg_stat_user_functions WHERE funcname = 'slow_version'"
    )
    return int(out or 0)


def settled_calls(more_than: int = -1) -> int:
    """slow_version() executions once the count exceeds `more_than` and holds for 2 s."""
    deadline = time.monotonic() + STATS_WAIT
    calls = slow_version_calls()
    while calls <= more_than and time.monotonic() < deadline:
        time.sleep(0.25)
        calls = slow_version_calls()
    for _ in range(STATS_WAIT // 2):  # until no other execution arrives for 2 s
        time.sleep(2)
        again = slow_version_calls()
        if again == calls:
            break
        calls = again
    return calls


def docker(*args: str) -> str:
    """The docker CLI on the docker host; its output."""
    proc = subprocess.run(["docker", *args], check=True, capture_output=True, text=True)
    return proc.stdout.strip()


def test_the_balancer_spreads_requests_over_every_web_host() -> None:
    assert warm(base_url() + "/") == 200
    with requests.Session() as session:
        answers = [api_version(session) for _ in range(20)]
    hosts = Counter(host for _, host, _, _ in answers)
    print(f"\n20 requests through the lb: {dict(sorted(hosts.items()))}")
    assert {status for status, _, _, _ in answers} == {200}
    assert set(hosts) == set(WEB)
    # Round robin: no host gets more than its share plus one.
    assert max(hosts.values()) - min(hosts.values()) <= 2, hosts


def test_cold_key_across_hosts_runs_the_slow_query_once() -> None:
    """Stampede protection across hosts: the refresh lock lives in Redis. Through
    each web host's edge cache as shipped, on a URL it has never seen: its lock
    lets one request per host through to the app; the others wait for its answer."""
    assert warm(base_url() + "/") == 200
    redis_cli("DEL", ITEM_KEY, f"{ITEM_KEY}:lock", f"{ITEM_KEY}:error")
    assert redis_cli("EXISTS", ITEM_KEY) == "0"
    time.sleep(1.2)  # the workers' in-process copies (cache.local_ttl, 1 s) expire
    before = settled_calls()

    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=COLD_REQUESTS) as pool:
        query = f"?cold={uuid.uuid4().hex}"
        answers = list(pool.map(lambda _: api_version(query=query), range(COLD_REQUESTS)))
    seconds = time.perf_counter() - start
    calls = settled_calls(more_than=before) - before

    statuses = Counter(status for status, _, _, _ in answers)
    hosts = Counter(host for _, host, _, _ in answers)
    edge = Counter(xedge for _, _, _, xedge in answers)
    # What each host's app answered: its edge's one MISS (the others repeat it).
    app = Counter(xcache for _, _, xcache, xedge in answers if xedge == "MISS")
    print(
        f"\n{COLD_REQUESTS} concurrent cold requests in {seconds:.1f} s:"
        f" status {dict(statuses)}, hosts {dict(sorted(hosts.items()))},"
        f" X-Edge-Cache {dict(edge)}, the apps' X-Cache {dict(app)};"
        f" slow_version() executions (pg_stat_user_functions): {calls}"
    )
    assert statuses == {200: COLD_REQUESTS}
    assert set(hosts) == set(WEB), "the requests did not reach every web host"
    # One request per host went to its app; the others waited for it at the edge.
    assert edge["MISS"] == len(WEB), edge
    assert edge["HIT"] == COLD_REQUESTS - len(WEB), edge
    assert app["MISS"] == 1, app
    assert calls == 1


def wait_until_served_by(member: str, timeout: float = 90) -> float:
    """Seconds until `member` answers through the balancer again."""
    start = time.perf_counter()
    with requests.Session() as session:
        while time.perf_counter() - start < timeout:
            try:
                status, host, _, _ = api_version(session)
            except requests.RequestException:
                status, host = 0, "-"
            if status == 200 and host == member:
                return time.perf_counter() - start
            time.sleep(0.2)
    raise AssertionError(f"{member} did not answer through the balancer in {timeout} s")


def test_a_web_host_stopped_under_load_costs_no_failed_response() -> None:
    stopped = WEB[-1]
    assert warm(base_url() + "/") == 200
    with LoadLoop(base_url() + "/", workers=2, pause=0.02) as load:
        time.sleep(2)
        docker("stop", container(stopped))
        # Longer than the balancer's fail_timeout (10 s): the stopped host is tried
        # again with live traffic, and routed around again.
        time.sleep(15)
        during = load.total
        docker("start", container(stopped))
        back = wait_until_served_by(stopped)
        time.sleep(2)
    running = docker("inspect", "-f", "{{.State.Running}}", container(stopped))
    print(
        f"\n{stopped} stopped for 15 s under load, serving again {back:.1f} s after start;"
        f" {during} responses before the restart; {load.summary()}"
    )
    assert running == "true"
    assert load.total > 0
    assert load.non_2xx == 0, load.summary()
    assert load.errors == 0, load.summary()
