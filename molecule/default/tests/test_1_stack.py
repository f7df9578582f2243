"""The converged stack: services, the page through nginx, cache MISS then HIT,
nginx's edge microcache (HIT on a repeat, never on health checks, one slow query
for 50 concurrent cold requests), the data tier refusing the docker host, file
modes, unit hardening."""

from __future__ import annotations

import ipaddress
import re
import socket
import statistics
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psycopg2
import pytest
import redis
from conftest import (
    CONFIG,
    CURRENT,
    EDGE_BYPASS,
    flush_cache,
    http_get,
    live_release,
)

# The slow query sleeps seconds; a HIT must be this many times faster.
MIN_SPEEDUP = 100


def enabled_and_active(host: Any, *units: str) -> list[str]:
    """`systemctl is-enabled` and `is-active` of each unit, in one command."""
    names = " ".join(units)
    out = host.run(f"systemctl is-enabled {names}; systemctl is-active {names}").stdout
    return out.split()


def test_services_enabled_and_running(
    web_hosts: list[Any], db: Any, cache: Any, services: dict[str, str]
) -> None:
    for web in web_hosts:
        states = enabled_and_active(web, "cachedapp", "nginx")
        assert states == ["enabled", "enabled", "active", "active"], states
    for host, name in ((db, services["db"]), (cache, services["cache"])):
        states = enabled_and_active(host, name)
        assert states == ["enabled", "active"], (name, states)


@pytest.mark.parametrize("path", ["/", "/app"])
def test_page_through_nginx(path: str) -> None:
    reply = http_get(path)
    assert reply.status == 200, reply.body[:500]
    assert reply.headers["Content-Type"].startswith("text/html")
    assert "PostgreSQL" in reply.body, "the page shows no database version"
    assert reply.headers.get("X-Cache") in {"HIT", "MISS", "STALE"}


def test_nginx_hides_its_version_and_the_metrics() -> None:
    reply = http_get("/healthz")
    assert reply.status == 200
    assert reply.headers["Server"] == "nginx", "server_tokens must be off"
    assert http_get("/metrics").status == 403


def test_first_request_is_a_miss_the_next_a_hit_much_faster(web: Any) -> None:
    """A cold request runs the slow query; the next ones come from Redis.

    The speed-up compares the MISS with the median of the next five requests
    (all HITs): one sample on a shared, busy CI machine can catch a scheduler
    hiccup of a second; the median cannot.
    """
    # Every gunicorn worker opens its Redis and database connections first
    # (concurrent /readyz requests reach all of them), so the HITs measure
    # the cache, not a worker's first connect. The cache itself is emptied.
    # Best effort: under a burst /readyz may answer 503 (it waits at most 1 s
    # for a pooled connection); the app answered either way.
    with ThreadPoolExecutor(max_workers=8) as pool:
        assert {r.status for r in pool.map(http_get, ["/readyz"] * 8)} <= {200, 503}
    # The app's own cache: past nginx's edge microcache (a Cookie header).
    flush_cache(web)
    miss = http_get("/", headers=EDGE_BYPASS)
    hits = [http_get("/", headers=EDGE_BYPASS) for _ in range(5)]
    hit_ms = statistics.median(h.seconds for h in hits) * 1000
    print(
        f"\nMISS {miss.seconds * 1000:.1f} ms ({miss.headers.get('Server-Timing')})"
        f"\nHIT  {hits[0].seconds * 1000:.1f} ms ({hits[0].headers.get('Server-Timing')})"
        f"\nHITs {', '.join(f'{h.seconds * 1000:.1f}' for h in hits)} ms, median {hit_ms:.1f} ms"
        f"\nratio {miss.seconds * 1000 / hit_ms:.0f}x"
    )
    assert miss.status == 200
    assert [r.headers.get("X-Edge-Cache") for r in [miss, *hits]] == ["BYPASS"] * 6
    assert miss.headers["X-Cache"] == "MISS"
    assert [(h.status, h.headers["X-Cache"]) for h in hits] == [(200, "HIT")] * 5
    # The MISS ran the slow query (its time is in the db part), the HITs did not.
    db_ms = re.search(r"\bdb;dur=([\d.]+)", miss.headers["Server-Timing"])
    assert db_ms, miss.headers["Server-Timing"]
    assert miss.seconds * 1000 >= float(db_ms.group(1))
    assert not [h for h in hits if "db;" in h.headers["Server-Timing"]]
    assert miss.seconds * 1000 >= MIN_SPEEDUP * hit_ms


# --- nginx's edge microcache (role nginx, on by default: 1 s) ---------------------------

EDGE_VALID = 1.0
SECURITY = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}


def fresh_pair(path: str) -> tuple[Any, Any]:
    """Two GETs of a URL the edge has never seen, the second within the validity
    (tried again when the machine stalled the second past it)."""
    for _ in range(5):
        url = f"{path}?edge={uuid.uuid4().hex}"
        first = http_get(url)
        done = time.monotonic()
        second = http_get(url)
        if time.monotonic() - done < EDGE_VALID * 0.8:
            return first, second
    raise AssertionError(f"no two requests of {path} within {EDGE_VALID} s")


@pytest.mark.parametrize("path", ["/", "/app", "/api/version"])
def test_edge_cache_hits_a_repeat_within_its_validity(path: str) -> None:
    first, second = fresh_pair(path)
    print(
        f"\n{path}: edge {first.headers.get('X-Edge-Cache')} {first.seconds * 1000:.1f} ms"
        f" (X-Cache {first.headers.get('X-Cache')}),"
        f" then edge {second.headers.get('X-Edge-Cache')} {second.seconds * 1000:.1f} ms"
    )
    assert (first.status, second.status) == (200, 200)
    assert first.headers["X-Edge-Cache"] == "MISS"
    assert second.headers["X-Edge-Cache"] == "HIT"
    # The edge repeats the stored answer, the app's X-Cache included ...
    assert second.body == first.body
    assert second.headers["X-Cache"] == first.headers["X-Cache"]
    # ... and nginx's own headers stay (X-Edge-Cache does not displace them).
    for reply in (first, second):
        for name, value in SECURITY.items():
            assert reply.headers.get(name) == value, (name, reply.headers)
        assert reply.headers.get("Strict-Transport-Security", "").startswith("max-age=")


def test_edge_cache_serves_stale_while_it_refreshes() -> None:
    """Past the validity the stored answer is served once more while one background
    request refreshes it; the refreshed entry is then a HIT again."""
    url = f"/api/version?edge={uuid.uuid4().hex}"
    assert http_get(url).headers["X-Edge-Cache"] == "MISS"
    time.sleep(EDGE_VALID + 1.2)  # nginx counts validity in whole seconds
    late = http_get(url)
    assert late.status == 200
    assert late.headers["X-Edge-Cache"] in {"STALE", "UPDATING", "EXPIRED"}, late.headers
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        again = http_get(url)
        if again.headers["X-Edge-Cache"] == "HIT":
            break
        time.sleep(0.1)
    assert again.headers["X-Edge-Cache"] == "HIT", again.headers


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/metrics", "/no-such-page"])
def test_edge_cache_never_holds_health_checks_or_metrics(path: str) -> None:
    replies = [http_get(path) for _ in range(3)]
    for reply in replies:
        assert "X-Edge-Cache" not in reply.headers, (path, reply.headers)
    # /healthz through the HTTP port inside the network: not cached there either.
    if path == "/healthz":
        assert "X-Edge-Cache" not in http_get(path, scheme="http").headers


def test_a_cookie_bypasses_the_edge_cache() -> None:
    replies = [http_get("/api/version", headers=EDGE_BYPASS) for _ in range(2)]
    assert [(r.status, r.headers["X-Edge-Cache"]) for r in replies] == [(200, "BYPASS")] * 2


def test_edge_cache_is_keyed_by_the_serving_release_on_tmpfs(web_hosts: list[Any]) -> None:
    for web in web_hosts:
        release = live_release(web).rsplit("/", 1)[-1]
        key = web.check_output("cat /etc/nginx/edge-release.conf")
        assert f'default "{release}:";' in key, key
        # RAM-backed, written by nginx's workers (its user owns it).
        out = web.check_output(
            "stat -f -c %T /run/nginx-edge-cache; stat -c %U /run/nginx-edge-cache"
        )
        assert out.split() == ["tmpfs", "www-data"], out
        assert int(web.check_output("find /run/nginx-edge-cache -type f | wc -l")) > 0


def test_nginx_starts_on_a_fresh_run_directory(web_hosts: list[Any]) -> None:
    """After a reboot /run is empty: nginx creates the edge cache's directory and gives
    it to its user under its sandbox (the seccomp filter once killed it: SIGSYS)."""
    for web in web_hosts:
        web.check_output("rm -rf /run/nginx-edge-cache && systemctl restart nginx")
        assert web.check_output("systemctl is-active nginx") == "active"
        assert web.check_output("stat -c %U /run/nginx-edge-cache") == "www-data"
    assert http_get("/").status == 200


def slow_version_calls(db: Any, dbname: str) -> int:
    query = (
        "SELECT coalesce(sum(calls), 0) FROM pg_stat_user_functions WHERE funcname = 'slow_version'"
    )
    return int(db.check_output(f'runuser -u postgres -- psql -At -d {dbname} -c "{query}"'))


def settled_calls(db: Any, dbname: str, more_than: int = -1) -> int:
    """slow_version() executions once the count exceeds MORE_THAN and holds for 2 s
    (PostgreSQL flushes a backend's function counters when it goes idle, rarely up
    to 10 s late)."""
    deadline = time.monotonic() + 12
    calls = slow_version_calls(db, dbname)
    while calls <= more_than and time.monotonic() < deadline:
        time.sleep(0.25)
        calls = slow_version_calls(db, dbname)
    for _ in range(6):
        time.sleep(2)
        again = slow_version_calls(db, dbname)
        if again == calls:
            break
        calls = again
    return calls


COLD_REQUESTS = 50


@pytest.mark.parametrize("edge", ["edge", "bypass"])
def test_cold_requests_run_the_slow_query_once(
    web: Any, db: Any, app_config: dict[str, Any], edge: str
) -> None:
    """50 concurrent requests on an emptied cache: one slow_version() execution, as
    PostgreSQL counts it. edge: a URL the edge has never seen (its lock lets one
    request through); bypass: past the edge (Cookie), the app's Redis lock alone."""
    dbname = app_config["database"]["dbname"]
    flush_cache(web)
    before = settled_calls(db, dbname)
    url = f"/api/version?cold={uuid.uuid4().hex}"
    headers = EDGE_BYPASS if edge == "bypass" else None
    with ThreadPoolExecutor(max_workers=COLD_REQUESTS) as pool:
        replies = list(pool.map(lambda _: http_get(url, headers=headers), range(COLD_REQUESTS)))
    calls = settled_calls(db, dbname, more_than=before) - before
    statuses = Counter(r.status for r in replies)
    edges = Counter(r.headers.get("X-Edge-Cache", "-") for r in replies)
    app_cache = Counter(r.headers.get("X-Cache", "-") for r in replies)
    slowest = max(r.seconds for r in replies)
    print(
        f"\n{COLD_REQUESTS} concurrent cold requests ({edge}): status {dict(statuses)},"
        f" X-Edge-Cache {dict(edges)}, X-Cache {dict(app_cache)},"
        f" slowest {slowest:.1f} s; slow_version() executions: {calls}"
    )
    assert statuses == {200: COLD_REQUESTS}
    assert calls == 1
    if edge == "edge":
        # One request filled the entry; the others waited for it (the lock).
        assert edges["MISS"] == 1, edges
        assert edges["HIT"] == COLD_REQUESTS - 1, edges
    else:
        assert edges == {"BYPASS": COLD_REQUESTS}


def test_database_refuses_the_docker_host(
    db: Any, web: Any, app_config: dict[str, Any], inventory_vars: dict[str, Any]
) -> None:
    # The app's own credentials work from the web host ...
    status = web.run(f"{CURRENT}/venv/bin/cachedapp-db schema-status --config {CONFIG}")
    assert status.rc == 0, status.stderr
    assert '"installed": true' in status.stdout
    # ... and the same credentials are refused from the docker host: the
    # port is reachable (TCP connects), pg_hba rejects the login.
    address = inventory_vars[db.backend.name]["private_ip_address"]
    assert ipaddress.ip_address(address)
    socket.create_connection((address, 5432), timeout=5).close()
    cfg = app_config["database"]
    with pytest.raises(psycopg2.OperationalError) as refused:
        psycopg2.connect(
            host=address,
            port=cfg["port"],
            dbname=cfg["dbname"],
            user=cfg["user"],
            password=cfg["password"],
            connect_timeout=5,
            sslmode="prefer",
        )
    print(f"\npostgresql from the docker host: {str(refused.value).strip()}")
    assert "pg_hba.conf" in str(refused.value)


def test_redis_refuses_the_docker_host(
    cache: Any, web: Any, app_config: dict[str, Any], inventory_vars: dict[str, Any]
) -> None:
    cfg = app_config["redis"]
    ping = (
        "import redis, tomllib\n"
        f"c = tomllib.load(open('{CONFIG}', 'rb'))['redis']\n"
        "print(redis.Redis.from_url(c['url'], username=c['username'] or None,"
        " password=c['password'] or None, socket_timeout=3).ping())\n"
    )
    quoted = "'" + ping.replace("'", "'\"'\"'") + "'"
    assert web.check_output(f"{CURRENT}/venv/bin/python -c {quoted}") == "True"
    address = inventory_vars[cache.backend.name]["private_ip_address"]
    assert ipaddress.ip_address(address)
    client = redis.Redis(
        host=address,
        port=6379,
        username=cfg["username"] or None,
        password=cfg["password"] or None,
        socket_timeout=3,
        socket_connect_timeout=3,
    )
    with pytest.raises(
        (redis.exceptions.ConnectionError, redis.exceptions.AuthenticationError)
    ) as refused:
        client.ping()
    print(f"\nredis from the docker host: {type(refused.value).__name__}: {refused.value}")


def test_file_modes_and_owners(web_hosts: list[Any], services: dict[str, str]) -> None:
    group = services["web_group"]
    expected = {
        "/etc/cachedapp": "directory 750 root:cachedapp",
        CONFIG: "regular file 640 root:cachedapp",
        "/etc/systemd/system/cachedapp.service": "regular file 644 root:root",
        "/etc/nginx/nginx.conf": "regular file 644 root:root",
        "/run/cachedapp": f"directory 750 cachedapp:{group}",
        "/run/cachedapp/gunicorn.sock": f"socket 770 cachedapp:{group}",
        CURRENT: "symbolic link 777 root:root",
    }
    for web in web_hosts:
        out = web.check_output("stat -c '%n|%F %a %U:%G' " + " ".join(expected))
        found = dict(line.split("|") for line in out.splitlines())
        assert found == expected
        assert web.file(f"{web.file(CURRENT).linked_to}/.complete").exists


def test_unit_exposure_at_most_2(web_hosts: list[Any]) -> None:
    for web in web_hosts:
        out = web.check_output("systemd-analyze security --no-pager cachedapp.service")
        score = float(re.search(r"Overall exposure level for \S+: ([\d.]+)", out).group(1))
        print(f"\nsystemd-analyze security cachedapp.service: {score}")
        assert score <= 2.0


def test_psycopg2_compiled_against_system_libpq(web: Any) -> None:
    pip_list = web.check_output(f"{CURRENT}/venv/bin/python -m pip list --format=freeze")
    assert "psycopg2==" in pip_list
    assert "psycopg2-binary" not in pip_list
    ext = web.check_output(
        f"{CURRENT}/venv/bin/python -c 'import psycopg2._psycopg as m; print(m.__file__)'"
    )
    linked = web.check_output(f"ldd {ext}")
    libpq = [line for line in linked.splitlines() if "libpq.so" in line]
    assert libpq, linked
    assert "site-packages" not in libpq[0], libpq[0]
