"""Benchmark driver, run by app/scripts/bench.sh once the servers are up.

One nginx on 127.0.0.1:28080 fronts every variant over the same transport (HTTP/1.1,
upstream keepalive, gunicorn on unix sockets with cachedapp.gunicorn_conf's defaults):

- cachedapp with the nginx edge microcache on (``/edge/``) and off (``/app/``), its
  Redis over plaintext and over TLS, with and without its in-process tier;
- peer style (``bench/styles.py:peer``: a new Redis client per request, PostgreSQL only
  on a miss), Redis over plaintext and over TLS;
- original style (``styles:original``: a new PostgreSQL connection and a new Redis
  client per request);
- nginx serving the same page bytes as a static file.

wrk sweeps the concurrency (1, 4, 16, 64, 256 connections), the variants interleaved
(each round runs every variant once per concurrency, in an order rotated per round);
medians per variant and concurrency, ratios against peer style and against static.
Then the cold test, with the edge off and on: 50 concurrent requests on an emptied key,
DB executions as PostgreSQL counts them and the slowest answer. Results go to
``bench.json`` and ``bench.png`` in --out.

``--url URL`` measures a running stack's page the same way (sweep, JSON, picture); the
probe checks an https target's certificate (``--cafile``, by default the project's CA).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg2
import redis
from plot import draw  # bench/plot.py (matplotlib, the bench extra)

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
NGINX_PORT = 28080
APP_NAME = "cachedapp-bench"
NAMESPACE = "cachedapp-bench"
PEER = "peer style"
STATIC = "static nginx"
EDGE_VALID = "1s"  # proxy_cache_valid 200
EDGE_LOCK = "10s"  # proxy_cache_lock_timeout / _age: above slow_version()'s 5 s
LOCAL_TTL = 1.0  # cache.local_ttl of the apps (the cold test waits it out)
# The private CA the project's playbooks create (README): --url checks the target's
# certificate against it when it exists, else against the system's store.
PROJECT_CA = HERE.parents[1] / ".ansible" / "pki" / "ca.crt"


@dataclass(frozen=True)
class Variant:
    name: str
    path: str  # on the bench nginx
    upstream: str | None  # gunicorn instance behind it (None: static)


@dataclass(frozen=True)
class Instance:
    """One gunicorn master: a WSGI target and its config overrides (env)."""

    name: str
    target: str
    env: dict[str, str]


def _instances(env: dict[str, str]) -> list[Instance]:
    tls = {
        "CACHEDAPP_REDIS_URL": f"rediss://localhost:{env['CGC_REDIS_TLS_PORT']}/0",
        "CACHEDAPP_REDIS_CA_FILE": env["CGC_TLS_CA"],
    }
    no_local = {"CACHEDAPP_CACHE_LOCAL_TTL": "0"}
    return [
        Instance("app", "cachedapp.wsgi:app", {}),
        Instance("app-tls", "cachedapp.wsgi:app", tls),
        Instance("app-nolocal", "cachedapp.wsgi:app", no_local),
        Instance("app-nolocal-tls", "cachedapp.wsgi:app", {**tls, **no_local}),
        Instance("peer", "styles:peer", {}),
        Instance("peer-tls", "styles:peer", tls),
        Instance("original", "styles:original", {}),
    ]


VARIANTS = [
    Variant("app, edge cache on", "/edge/", "app"),
    Variant("app", "/app/", "app"),
    Variant("app, Redis TLS", "/app-tls/", "app-tls"),
    Variant("app, no local tier", "/app-nolocal/", "app-nolocal"),
    Variant("app, no local tier, Redis TLS", "/app-nolocal-tls/", "app-nolocal-tls"),
    Variant(PEER, "/peer/", "peer"),
    Variant(f"{PEER}, Redis TLS", "/peer-tls/", "peer-tls"),
    Variant("original style", "/original/", "original"),
    Variant(STATIC, "/static/page.html", None),
]


@dataclass
class Run:
    variant: str
    conns: int
    rnd: int
    rps: float
    p50: float  # ms
    p99: float  # ms
    errors: int  # non-2xx/3xx responses + socket errors


def _ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


def wrk(url: str, conns: int, duration: int) -> tuple[float, float, float, int]:
    threads = min(2, conns)
    out = subprocess.run(
        [
            "wrk",
            f"-t{threads}",
            f"-c{conns}",
            f"-d{duration}s",
            "--timeout",
            "10s",
            "--latency",
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=duration + 60,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p50 = _ms(re.search(r"\s50%\s+(\S+)", out).group(1))
    p99 = _ms(re.search(r"\s99%\s+(\S+)", out).group(1))
    bad = 0
    if m := re.search(r"Non-2xx or 3xx responses: (\d+)", out):
        bad += int(m.group(1))
    if m := re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out):
        bad += sum(int(x) for x in m.groups())
    return rps, p50, p99, bad


def tls_context(cafile: str | None) -> ssl.SSLContext:
    """Checks an https target's certificate and name against this CA file (None: the
    system's store)."""
    if cafile is not None and not Path(cafile).is_file():
        raise SystemExit(f"bench: --cafile {cafile}: no such file")
    return ssl.create_default_context(cafile=cafile)


def get(
    url: str, timeout: float = 30, context: ssl.SSLContext | None = None
) -> tuple[int, dict[str, str], bytes, float]:
    """One request (a probe). An https URL's certificate is checked (``context``, by
    default against the system's store)."""
    start = time.perf_counter()
    try:
        with urllib.request.urlopen(url, timeout=timeout, context=context) as r:
            body = r.read()
            return r.status, dict(r.headers), body, time.perf_counter() - start
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read(), time.perf_counter() - start


def wait_http(url: str, timeout: float = 60, context: ssl.SSLContext | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if get(url, timeout=10, context=context)[0] == 200:
                return
        except urllib.error.URLError as e:
            if isinstance(e.reason, ssl.SSLCertVerificationError):
                raise SystemExit(f"bench: {url}: {e.reason.verify_message} (--cafile)") from None
        except OSError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"bench: {url} did not answer 200 within {timeout} s")


def wait_socket(path: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket(socket.AF_UNIX) as s, contextlib.suppress(OSError):
            s.connect(str(path))
            return
        time.sleep(0.2)
    raise SystemExit(f"bench: nothing listens on {path} after {timeout} s")


# --- the bench's own stack -----------------------------------------------------------


def nginx_conf(work: Path, instances: list[Instance]) -> str:
    """The bench's nginx. Its edge location carries the directives the nginx role ships
    on the web hosts (proxy_cache zone on tmpfs, 1 s validity, lock above the query
    time, stale while updating or on errors, background update, cookies neither cached
    nor passed, health and metrics never cached, X-Edge-Cache); the role's key also
    starts with the serving release."""
    upstreams = "\n".join(
        f"    upstream {i.name.replace('-', '_')} {{\n"
        f"        server unix:{work / i.name}.sock;\n"
        "        keepalive 32;\n        keepalive_timeout 4s;\n    }"
        for i in instances
    )
    plain = "\n".join(
        f"        location {v.path} {{ proxy_pass http://{v.upstream.replace('-', '_')}/; }}"
        for v in VARIANTS
        if v.upstream in {i.name for i in instances} and v.path != "/edge/"
    )
    return f"""
worker_processes auto;
pid {work}/nginx.pid;
error_log {work}/nginx-error.log warn;
daemon off;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {work}/nginx-tmp/body;
    proxy_temp_path {work}/nginx-tmp/proxy;
    fastcgi_temp_path {work}/nginx-tmp/fastcgi;
    uwsgi_temp_path {work}/nginx-tmp/uwsgi;
    scgi_temp_path {work}/nginx-tmp/scgi;
    default_type text/html;
    # The edge microcache: RAM-backed (the work dir is on /dev/shm), small.
    proxy_cache_path {work}/edge-cache levels=1:2 keys_zone=cachedapp_edge:1m
                     max_size=16m inactive=10m use_temp_path=off;
{upstreams}
    server {{
        listen 127.0.0.1:{NGINX_PORT};
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_set_header Host $host;
{plain}
        location = /static/page.html {{ alias {work}/www/page.html; }}
        location = /healthz {{ proxy_pass http://app/healthz; }}
        location = /metrics {{ proxy_pass http://app/metrics; }}

        # --- edge microcache: the bench's own (what the nginx role should ship) ---
        location /edge/ {{
            proxy_pass http://app/;
            proxy_cache cachedapp_edge;
            proxy_cache_key $scheme$host$request_uri;
            proxy_cache_valid 200 {EDGE_VALID};
            proxy_cache_lock on;
            proxy_cache_lock_timeout {EDGE_LOCK};
            proxy_cache_lock_age {EDGE_LOCK};
            proxy_cache_use_stale updating error timeout http_500 http_502 http_503 http_504;
            proxy_cache_background_update on;
            # the app says Cache-Control: no-store for browsers; the edge keeps it 1 s
            proxy_ignore_headers Cache-Control Expires Set-Cookie;
            proxy_hide_header Set-Cookie;
            add_header X-Edge-Cache $upstream_cache_status always;
        }}
        location = /edge/healthz {{ proxy_pass http://app/healthz; }}
        location = /edge/readyz {{ proxy_pass http://app/readyz; }}
        location = /edge/metrics {{ proxy_pass http://app/metrics; }}
    }}
}}
"""


class Stack:
    """The gunicorn instances on unix sockets behind one nginx."""

    def __init__(self, work: Path, env: dict[str, str]) -> None:
        self.work = work
        self.env = env
        self.procs: list[subprocess.Popen] = []

    def gunicorn(self, inst: Instance) -> None:
        env = {
            **self.env,
            **inst.env,
            "PROMETHEUS_MULTIPROC_DIR": str(self.work / f"prom-{inst.name}"),
            "CACHEDAPP_DATABASE_APPLICATION_NAME": f"{APP_NAME}-{inst.name}",
        }
        log = (self.work / f"{inst.name}.log").open("ab")
        cmd = [
            str(BIN / "gunicorn"),
            "-c",
            "python:cachedapp.gunicorn_conf",
            "--bind",
            f"unix:{self.work / inst.name}.sock",
            "--pid",
            str(self.work / f"{inst.name}.pid"),
            "--chdir",
            str(HERE),
            *os.environ.get("BENCH_GUNICORN_ARGS", "").split(),
            inst.target,
        ]
        self.procs.append(subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env))

    def nginx(self, instances: list[Instance]) -> None:
        (self.work / "www").mkdir(exist_ok=True)
        (self.work / "nginx-tmp").mkdir(exist_ok=True)
        conf = self.work / "nginx.conf"
        conf.write_text(nginx_conf(self.work, instances))
        log = (self.work / "nginx.log").open("ab")
        self.procs.append(
            subprocess.Popen(
                ["nginx", "-c", str(conf), "-p", str(self.work)], stdout=log, stderr=log
            )
        )

    def stop(self) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGQUIT if "nginx" in proc.args[0] else signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()


def end_leftovers(work: Path) -> None:
    """Stop what an interrupted earlier run left (pid files in its work dir)."""
    for pid_file in work.glob("*.pid"):
        with contextlib.suppress(ValueError, OSError):
            pid = int(pid_file.read_text().strip())
            os.kill(pid, signal.SIGQUIT if pid_file.stem == "nginx" else signal.SIGTERM)
            print(f"bench: stopped leftover {pid_file.stem} (pid {pid})", file=sys.stderr)
    for _ in range(100):
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", NGINX_PORT)) != 0:
                return
        time.sleep(0.1)
    raise SystemExit(f"bench: port {NGINX_PORT} is in use by another program")


def write_config(path: Path) -> None:
    e = os.environ
    path.write_text(
        f"""[database]
host = "127.0.0.1"
port = {e["CGC_PG_PORT"]}
dbname = "{e["CGC_DB_NAME"]}"
user = "{e["CGC_DB_USER"]}"
password = "{e["CGC_DB_PASSWORD"]}"
sslmode = "verify-full"
sslrootcert = "{e["CGC_TLS_CA"]}"
application_name = "{APP_NAME}"
[redis]
url = "redis://127.0.0.1:{e["CGC_REDIS_PLAIN_PORT"]}/0"
[cache]
namespace = "{NAMESPACE}"
ttl = 3600
stale_while_revalidate = 30
stale_if_error = 600
local_ttl = {LOCAL_TTL}
[app]
log_level = "WARNING"
"""
    )
    path.chmod(0o600)


# --- cold test -------------------------------------------------------------------------


def _admin_db() -> Any:
    conn = psycopg2.connect(
        host=os.environ["CGC_PG_SOCKET_DIR"],
        port=os.environ["CGC_PG_PORT"],
        user="postgres",
        dbname=os.environ["CGC_DB_NAME"],
    )
    conn.autocommit = True
    return conn


def db_calls() -> int:
    """slow_version() calls per PostgreSQL, after ending the app's backends (stats flush)."""
    with contextlib.closing(_admin_db()) as conn, conn.cursor() as cur:
        like = f"{APP_NAME}%"
        cur.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name LIKE %s",
            (like,),
        )
        for _ in range(300):
            cur.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE %s", (like,)
            )
            if cur.fetchone()[0] == 0:
                break
            time.sleep(0.05)
        cur.execute("SELECT pg_stat_clear_snapshot()")
        cur.execute(
            "SELECT coalesce(sum(calls), 0) FROM pg_stat_user_functions "
            "WHERE funcname = 'slow_version'"
        )
        return int(cur.fetchone()[0])


def cold_test(url: str, n: int, local_ttl: float) -> dict[str, Any]:
    """n concurrent requests on an emptied key: DB executions, slowest answer, statuses."""
    client = redis.Redis(port=int(os.environ["CGC_REDIS_PLAIN_PORT"]))
    client.delete(f"{NAMESPACE}:v1:{{slow_version}}")
    client.close()
    time.sleep(local_ttl + 0.3)  # the workers' local tiers let go of the deleted value
    before = db_calls()
    barrier = threading.Barrier(n)

    def one(_: int) -> tuple[int, str, str, float]:
        barrier.wait()
        status, headers, _body, elapsed = get(url, timeout=60)
        return status, headers.get("X-Cache", "-"), headers.get("X-Edge-Cache", "-"), elapsed

    with ThreadPoolExecutor(n) as pool:
        results = list(pool.map(one, range(n)))
    executions = db_calls() - before
    outcome: dict[str, int] = {}
    for status, cache, edge, _ in results:
        key = f"{status} X-Cache {cache} X-Edge-Cache {edge}"
        outcome[key] = outcome.get(key, 0) + 1
    slowest = max(r[3] for r in results)
    return {
        "requests": n,
        "db_executions": executions,
        "slowest_s": round(slowest, 3),
        "responses": outcome,
        "pass": executions == 1 and slowest <= 6.0 and all(r[0] == 200 for r in results),
    }


# --- measuring and reporting -----------------------------------------------------------


def _queued(sock: Path) -> int:
    """Connections waiting in a listening unix socket's accept queue (ss Recv-Q)."""
    out = subprocess.run(["ss", "-xlnH"], capture_output=True, text=True, check=False).stdout
    for line in out.splitlines():
        fields = line.split()
        if str(sock) in fields:
            return int(fields[2])
    return 0


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, all threads (/proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _busy_seconds(master: int) -> float:
    """CPU seconds of a gunicorn master's workers (those alive now)."""
    total = 0.0
    with contextlib.suppress(OSError, ValueError):
        for child in Path(f"/proc/{master}/task/{master}/children").read_text().split():
            total += cpu_seconds(int(child))
    return total


def settle(work: Path, instance: str | None, limit: float = 30.0) -> float:
    """Wait until the instance behind the last run is idle again: wrk's connections are
    gone when it exits, but the requests already queued at gunicorn still run (a slow
    style at 256 connections keeps its workers busy for seconds) and would be billed to
    the next variant. Idle = empty accept queue and workers under 10 % of a CPU."""
    if instance is None:
        return 0.0
    pid_file = work / f"{instance}.pid"
    if not pid_file.exists():
        return 0.0
    master = int(pid_file.read_text())
    start = time.monotonic()
    while time.monotonic() - start < limit:
        before = _busy_seconds(master)
        time.sleep(0.2)
        if _queued(work / f"{instance}.sock") == 0 and _busy_seconds(master) - before < 0.02:
            break
    return time.monotonic() - start


def sweep(
    targets: dict[str, str],
    conns: list[int],
    rounds: int,
    duration: int,
    after: Any = lambda name: None,
) -> list[Run]:
    """Every variant at every concurrency, ``rounds`` times, interleaved; ``after(name)``
    runs after each measurement (the bench's own stack: wait until it is idle)."""
    runs: list[Run] = []
    names = list(targets)
    total = rounds * len(conns) * len(names)
    done = 0
    for rnd in range(rounds):
        order = names[rnd % len(names) :] + names[: rnd % len(names)]
        for c in conns:
            for name in order:
                rps, p50, p99, bad = wrk(targets[name], c, duration)
                runs.append(Run(name, c, rnd, rps, p50, p99, bad))
                after(name)
                done += 1
                print(
                    f"bench: [{done}/{total}] {name} c={c}: {rps:.0f} req/s, "
                    f"p50 {p50:.2f} ms, p99 {p99:.2f} ms" + (f", {bad} errors" if bad else ""),
                    flush=True,
                )
    return runs


def medians(runs: list[Run], names: list[str], conns: list[int]) -> list[dict[str, Any]]:
    rows = []
    for name in names:
        for c in conns:
            mine = [r for r in runs if r.variant == name and r.conns == c]
            rows.append(
                {
                    "variant": name,
                    "conns": c,
                    "rps": round(statistics.median(r.rps for r in mine), 1),
                    "p50_ms": round(statistics.median(r.p50 for r in mine), 3),
                    "p99_ms": round(statistics.median(r.p99 for r in mine), 3),
                    "errors": sum(r.errors for r in mine),
                    "runs": len(mine),
                }
            )
    by_key = {(row["variant"], row["conns"]): row for row in rows}
    for row in rows:
        peer = by_key.get((PEER, row["conns"]))
        static = by_key.get((STATIC, row["conns"]))
        row["x_peer"] = round(row["rps"] / peer["rps"], 2) if peer else None
        row["of_static"] = round(row["rps"] / static["rps"], 4) if static else None
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        f"{'variant':<32}{'conns':>6}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}"
        f"{'x peer':>8}{'of static':>10}{'errors':>8}"
    ]
    for row in rows:
        x_peer = f"{row['x_peer']:.2f}x" if row["x_peer"] is not None else "-"
        of_static = f"{100 * row['of_static']:.1f}%" if row["of_static"] is not None else "-"
        lines.append(
            f"{row['variant']:<32}{row['conns']:>6}{row['rps']:>10.0f}{row['p50_ms']:>9.2f}"
            f"{row['p99_ms']:>9.2f}{x_peer:>8}{of_static:>10}{row['errors']:>8}"
        )
    return "\n".join(lines)


def tls_cost(rows: list[dict[str, Any]], conns: list[int]) -> list[str]:
    """Redis TLS against plaintext, per style and concurrency, from the same run."""
    by_key = {(row["variant"], row["conns"]): row for row in rows}
    lines = []
    for plain, tls in (
        ("app", "app, Redis TLS"),
        ("app, no local tier", "app, no local tier, Redis TLS"),
        (PEER, f"{PEER}, Redis TLS"),
    ):
        for c in conns:
            p, t = by_key.get((plain, c)), by_key.get((tls, c))
            if p and t:
                lines.append(
                    f"{plain:<20} c={c:<4} req/s {p['rps']:.0f} -> {t['rps']:.0f} "
                    f"({100 * (t['rps'] / p['rps'] - 1):+.1f}%), p50 {p['p50_ms']:.2f} -> "
                    f"{t['p50_ms']:.2f} ms, p99 {p['p99_ms']:.2f} -> {t['p99_ms']:.2f} ms"
                )
    return lines


def git_commit() -> str:
    out = subprocess.run(
        ["git", "-C", str(HERE), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
    )
    return out.stdout.strip() or "unknown"


def report(doc: dict[str, Any], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench.json").write_text(json.dumps(doc, indent=1) + "\n")
    print(f"bench: results in {out / 'bench.json'}")
    draw(doc, out / "bench.png")
    print(f"bench: picture in {out / 'bench.png'}")


def meta(args: argparse.Namespace, conns: list[int]) -> dict[str, Any]:
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": git_commit(),
        "host": platform.node(),
        "cpus": os.cpu_count(),
        "load_before": os.getloadavg()[0],
        "wrk": f"-t2 (-t1 at 1 connection), {args.duration} s per run, --timeout 10s",
        "rounds": args.rounds,
        "conns": conns,
        "gunicorn": os.environ.get("BENCH_GUNICORN_ARGS") or "cachedapp.gunicorn_conf defaults",
        "edge": f"proxy_cache_valid 200 {EDGE_VALID}, lock timeout/age {EDGE_LOCK}",
    }


def app_env(config: Path) -> dict[str, str]:
    """The apps' environment (config file, no stray CACHEDAPP_*); slow_version() installed."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CACHEDAPP_")}
    env["CACHEDAPP_CONFIG"] = str(config)
    out = subprocess.run(
        [str(BIN / "cachedapp-db"), "install-schema", "--sleep", "5"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode:
        raise SystemExit(f"bench: install-schema failed: {out.stderr}")
    return env


def start(stack: Stack, variants: list[Variant], cold: bool) -> dict[str, str]:
    """The gunicorn instances the variants need, nginx, warm caches: name -> URL."""
    wanted = {v.upstream for v in variants} | ({"app"} if cold else set())
    instances = [i for i in _instances(dict(os.environ)) if i.name in wanted]
    base = f"http://127.0.0.1:{NGINX_PORT}"
    for inst in instances:
        stack.gunicorn(inst)
    stack.nginx(instances)
    for inst in instances:
        wait_socket(stack.work / f"{inst.name}.sock")
    wait_http(f"{base}/healthz")
    print("bench: warming the caches (one 5 s miss per Redis and style) ...", flush=True)
    with ThreadPoolExecutor(len(variants)) as pool:
        list(pool.map(lambda v: get(f"{base}{v.path}", timeout=60), variants))
    (stack.work / "www" / "page.html").write_bytes(get(f"{base}/app/")[2])
    targets = {}
    for v in variants:
        status, headers, _, _ = get(f"{base}{v.path}")
        if status != 200:
            raise SystemExit(f"bench: {v.name}: answered {status} after the warm-up, not 200")
        # the edge may hold the miss 1 s
        if v.upstream and "X-Edge-Cache" not in headers and headers.get("X-Cache") != "HIT":
            raise SystemExit(
                f"bench: {v.name}: X-Cache {headers.get('X-Cache')} after the warm-up, not HIT"
            )
        targets[v.name] = f"{base}{v.path}"
    return targets


def measure(work: Path, args: argparse.Namespace, conns: list[int]) -> int:
    config = work / "config.toml"
    write_config(config)
    env = app_env(config)
    variants = [v for v in VARIANTS if not args.only or re.search(args.only, v.name)]
    base = f"http://127.0.0.1:{NGINX_PORT}"
    stack = Stack(work, env)
    doc: dict[str, Any] = {"meta": meta(args, conns)}
    try:
        targets = start(stack, variants, cold=bool(args.cold))
        upstream = {v.name: v.upstream for v in variants}
        runs = sweep(
            targets, conns, args.rounds, args.duration, lambda n: settle(work, upstream[n])
        )
        doc["runs"] = [asdict(r) for r in runs]
        doc["medians"] = medians(runs, list(targets), conns)
        cold: dict[str, Any] = {}
        if args.cold:
            print(f"bench: cold test, {args.cold} concurrent requests, edge off", flush=True)
            cold["edge off"] = cold_test(f"{base}/app/", args.cold, LOCAL_TTL)
            print(f"bench: cold test, {args.cold} concurrent requests, edge on", flush=True)
            # a query string the edge has never seen: its cache key is cold too
            cold["edge on"] = cold_test(
                f"{base}/edge/?cold={uuid.uuid4().hex}", args.cold, LOCAL_TTL
            )
        doc["cold"] = cold
        doc["meta"]["load_after"] = os.getloadavg()[0]
    finally:
        stack.stop()

    print()
    print(f"wrk {doc['meta']['wrk']}, {args.rounds} interleaved rounds, medians")
    print(table(doc["medians"]))
    print("\nRedis TLS against plaintext (same run):")
    print("\n".join(tls_cost(doc["medians"], conns)) or "(not measured)")
    ok = True
    for name, result in doc["cold"].items():
        print(
            f"cold ({name}): {result['requests']} concurrent -> {result['db_executions']} DB "
            f"execution(s), slowest {result['slowest_s']:.2f} s, {result['responses']}: "
            f"{'PASS' if result['pass'] else 'FAIL'}"
        )
        ok = ok and result["pass"]
    report(doc, Path(args.out))
    return 0 if ok else 1


def measure_url(args: argparse.Namespace, conns: list[int]) -> int:
    """An existing stack: the same sweep on its page (JSON + picture)."""
    context = tls_context(args.cafile) if args.url.startswith("https:") else None
    wait_http(args.url, context=context)
    status, headers, _, _ = get(args.url, context=context)
    seen = {k: v for k, v in headers.items() if k.lower() in ("x-cache", "x-edge-cache")}
    print(f"bench: {args.url}: {status} {seen}")
    name = f"target {args.url}"
    doc: dict[str, Any] = {"meta": {**meta(args, conns), "url": args.url}}
    runs = sweep({name: args.url}, conns, args.rounds, args.duration)
    doc["runs"] = [asdict(r) for r in runs]
    doc["medians"] = medians(runs, [name], conns)
    doc["meta"]["load_after"] = os.getloadavg()[0]
    print(table(doc["medians"]))
    report(doc, Path(args.out))
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="measure this running stack's page instead")
    parser.add_argument(
        "--cafile",
        default=str(PROJECT_CA) if PROJECT_CA.is_file() else None,
        help="CA file for an https --url (default: the project's .ansible/pki/ca.crt "
        "when it exists, else the system's store)",
    )
    parser.add_argument("--quick", action="store_true", help="16 and 64 connections, 1 round")
    parser.add_argument("--duration", type=int, default=int(os.environ.get("BENCH_DURATION", "3")))
    parser.add_argument("--rounds", type=int, default=int(os.environ.get("BENCH_ROUNDS", "3")))
    parser.add_argument("--conns", default=os.environ.get("BENCH_CONNS", "1,4,16,64,256"))
    parser.add_argument("--cold", type=int, default=50, help="0: skip the cold tests")
    parser.add_argument("--only", help="only the variants whose name matches this regex")
    parser.add_argument(
        "--work", default=f"/dev/shm/cachedapp-bench-{os.getuid()}", help="run dir (tmpfs)"
    )
    parser.add_argument("--out", default=str(HERE.parent / ".cache" / "bench"))
    args = parser.parse_args()
    if args.quick:
        args.conns, args.rounds = "16,64", 1
    conns = [int(c) for c in args.conns.split(",")]
    if args.url:
        return measure_url(args, conns)
    work = Path(args.work)
    end_leftovers(work)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    work.chmod(0o711)  # nginx's workers (nobody) reach the sockets, page and cache below
    return measure(work, args, conns)


if __name__ == "__main__":
    sys.exit(main())
