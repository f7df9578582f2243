"""Benchmark driver, run by app/scripts/bench.sh once the servers are up.

Measures with wrk, through nginx on 127.0.0.1:28080, cached req/s and p50/p99 at
16 and 64 connections for (a) cachedapp with every cache semantic on, (b) the
reference style (new DB connection + new Redis client per request), (c) nginx
serving the same page bytes as a static file. Then 50 concurrent cold requests:
DB executions (pg_stat_user_functions) and the slowest response.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import psycopg2
import redis

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
NGINX_PORT = 28080
APP_NAME = "cachedapp-bench"
NAMESPACE = "cachedapp-bench"


@dataclass
class Run:
    rps: float
    p50: float  # ms
    p99: float  # ms
    bad: int  # non-2xx responses + socket errors


def _ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


def wrk(url: str, conns: int, duration: int) -> Run:
    out = subprocess.run(
        ["wrk", "-t2", f"-c{conns}", f"-d{duration}s", "--latency", url],
        capture_output=True,
        text=True,
        check=True,
        timeout=duration + 30,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p50 = _ms(re.search(r"\s50%\s+(\S+)", out).group(1))
    p99 = _ms(re.search(r"\s99%\s+(\S+)", out).group(1))
    bad = 0
    if m := re.search(r"Non-2xx or 3xx responses: (\d+)", out):
        bad += int(m.group(1))
    if m := re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out):
        bad += sum(int(x) for x in m.groups())
    return Run(rps, p50, p99, bad)


def get(url: str, timeout: float = 30) -> tuple[int, dict[str, str], bytes, float]:
    start = time.perf_counter()
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            body = r.read()
            return r.status, dict(r.headers), body, time.perf_counter() - start
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read(), time.perf_counter() - start


class Stack:
    """gunicorn (ours + reference) on unix sockets behind one nginx."""

    def __init__(self, work: Path, env: dict[str, str], gunicorn_args: list[str]) -> None:
        self.work = work
        self.env = env
        self.gunicorn_args = gunicorn_args
        self.procs: list[subprocess.Popen] = []

    def gunicorn(self, name: str, target: str, extra: list[str]) -> None:
        env = {**self.env, "PROMETHEUS_MULTIPROC_DIR": str(self.work / f"prom-{name}")}
        log = (self.work / f"{name}.log").open("ab")
        cmd = [
            str(BIN / "gunicorn"),
            "-c",
            "python:cachedapp.gunicorn_conf",
            "--bind",
            f"unix:{self.work / name}.sock",
            "--pid",
            str(self.work / f"{name}.pid"),
            *self.gunicorn_args,
            *extra,
            target,
        ]
        self.procs.append(subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env))

    def nginx(self) -> None:
        www = self.work / "www"
        www.mkdir(exist_ok=True)
        conf = self.work / "nginx.conf"
        conf.write_text(
            f"""
worker_processes auto;
pid {self.work}/nginx.pid;
error_log {self.work}/nginx-error.log warn;
daemon off;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {self.work}/nginx-tmp/body;
    proxy_temp_path {self.work}/nginx-tmp/proxy;
    fastcgi_temp_path {self.work}/nginx-tmp/fastcgi;
    uwsgi_temp_path {self.work}/nginx-tmp/uwsgi;
    scgi_temp_path {self.work}/nginx-tmp/scgi;
    default_type text/html;
    upstream cachedapp {{
        server unix:{self.work}/app.sock;
        keepalive 32;
        keepalive_timeout 4s;
    }}
    upstream reference {{
        server unix:{self.work}/ref.sock;
        keepalive 32;
        keepalive_timeout 4s;
    }}
    server {{
        listen 127.0.0.1:{NGINX_PORT};
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_set_header Host $host;
        location / {{ proxy_pass http://cachedapp; }}
        location /ref/ {{ proxy_pass http://reference/; }}
        location = /static/page.html {{ alias {www}/page.html; }}
    }}
}}
"""
        )
        (self.work / "nginx-tmp").mkdir(exist_ok=True)
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


def wait_http(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            if get(url, timeout=10)[0] == 200:
                return
        time.sleep(0.2)
    raise SystemExit(f"bench: {url} did not answer 200 within {timeout} s")


def db_calls() -> int:
    """slow_version() calls per PostgreSQL, after ending the app's backends (stats flush)."""
    conn = psycopg2.connect(
        host=os.environ["CGC_PG_SOCKET_DIR"],
        port=os.environ["CGC_PG_PORT"],
        user="postgres",
        dbname=os.environ["CGC_DB_NAME"],
    )
    conn.autocommit = True
    with contextlib.closing(conn), conn.cursor() as cur:
        cur.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s",
            (APP_NAME,),
        )
        for _ in range(300):
            cur.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", (APP_NAME,)
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


def cold_test(url: str, n: int) -> tuple[int, float, dict[str, int]]:
    client = redis.Redis(port=int(os.environ["CGC_REDIS_PLAIN_PORT"]))
    client.delete(f"{NAMESPACE}:v1:{{slow_version}}")
    client.close()
    before = db_calls()
    barrier = threading.Barrier(n)

    def one(_: int) -> tuple[int, str, float]:
        barrier.wait()
        status, headers, _body, elapsed = get(url, timeout=60)
        return status, headers.get("X-Cache", "?"), elapsed

    with ThreadPoolExecutor(n) as pool:
        results = list(pool.map(one, range(n)))
    executions = db_calls() - before
    outcome: dict[str, int] = {}
    for status, cache, _ in results:
        key = f"{status} {cache}"
        outcome[key] = outcome.get(key, 0) + 1
    return executions, max(r[2] for r in results), outcome


def write_config(path: Path) -> None:
    e = os.environ
    path.write_text(
        f"""[database]
host = "127.0.0.1"
port = {e["CGC_PG_PORT"]}
dbname = "{e["CGC_DB_NAME"]}"
user = "{e["CGC_DB_USER"]}"
password = "{e["CGC_DB_PASSWORD"]}"
application_name = "{APP_NAME}"
[redis]
url = "redis://127.0.0.1:{e["CGC_REDIS_PLAIN_PORT"]}/0"
[cache]
namespace = "{NAMESPACE}"
ttl = 3600
stale_while_revalidate = 30
stale_if_error = 600
[app]
log_level = "WARNING"
"""
    )
    path.chmod(0o600)


def med(runs: list[Run]) -> Run:
    return Run(
        statistics.median(r.rps for r in runs),
        statistics.median(r.p50 for r in runs),
        statistics.median(r.p99 for r in runs),
        sum(r.bad for r in runs),
    )


def table(results: dict[tuple[str, int], Run], conns: list[int], names: list[str]) -> str:
    lines = [
        f"{'variant':<34}{'conns':>6}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}"
        f"{'vs ref':>8}{'of static':>10}{'errors':>8}"
    ]
    for name in names:
        for c in conns:
            r = results[(name, c)]
            ref = results.get(("reference style", c))
            static = results.get(("static nginx", c))
            vs_ref = f"{r.rps / ref.rps:.2f}x" if ref else "-"
            of_static = f"{100 * r.rps / static.rps:.1f}%" if static else "-"
            lines.append(
                f"{name:<34}{c:>6}{r.rps:>10.0f}{r.p50:>9.2f}{r.p99:>9.2f}"
                f"{vs_ref:>8}{of_static:>10}{r.bad:>8}"
            )
    return "\n".join(lines)


def measure(work: Path, args: argparse.Namespace, conns: list[int]) -> int:
    """Start both apps and nginx, run wrk and the cold test, print the report."""
    config = work / "config.toml"
    write_config(config)
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
    gunicorn_args = os.environ.get("BENCH_GUNICORN_ARGS", "").split()
    stack = Stack(work, env, gunicorn_args)
    try:
        stack.gunicorn("app", "cachedapp.wsgi:app", [])
        stack.gunicorn("ref", "reference_app:app", ["--chdir", str(HERE)])
        stack.nginx()
        base = f"http://127.0.0.1:{NGINX_PORT}"
        wait_http(f"{base}/healthz")
        print("bench: warming the caches (one 5 s miss each) ...", flush=True)
        status, headers, _, elapsed = get(f"{base}/", timeout=60)
        print(f"bench: first request: {status} {headers.get('X-Cache')} in {elapsed:.2f} s")
        get(f"{base}/ref/", timeout=60)
        (work / "www" / "page.html").write_bytes(get(f"{base}/")[2])
        targets = {
            "cachedapp (all semantics)": f"{base}/",
            "reference style": f"{base}/ref/",
            "static nginx": f"{base}/static/page.html",
        }
        if args.only:
            targets = {k: v for k, v in targets.items() if args.only in k}
        for name, url in targets.items():
            status, headers, _, _ = get(url)
            assert status == 200, (name, status)
            if name != "static nginx":
                assert headers.get("X-Cache") == "HIT", (name, headers.get("X-Cache"))
        results: dict[tuple[str, int], Run] = {}
        for c in conns:
            for name, url in targets.items():
                results[(name, c)] = r = med([wrk(url, c, args.duration) for _ in range(args.reps)])
                print(f"bench: {name} c={c}: {r.rps:.0f} req/s p50 {r.p50:.2f} ms", flush=True)
        metrics = get(f"{base}/metrics")[2].decode()
        counts = dict(re.findall(r'cachedapp_cache_results_total\{result="(\w+)"\} (\S+)', metrics))

        executions, slowest, outcome = 1, 0.0, {}
        if args.cold:
            print(f"bench: cold test, {args.cold} concurrent requests on an empty key", flush=True)
            executions, slowest, outcome = cold_test(f"{base}/", args.cold)
    finally:
        stack.stop()

    print()
    print(f"gunicorn: {' '.join(gunicorn_args) or '(cachedapp.gunicorn_conf defaults)'}")
    print(f"wrk -t2, {args.duration} s x {args.reps} runs each, medians; nginx -> unix socket")
    print(table(results, conns, list(targets)))
    print(f"cachedapp cache results during the runs: {counts}")
    print(
        f"cold: {args.cold} concurrent requests -> {executions} DB execution(s), "
        f"slowest {slowest:.2f} s, responses {outcome}"
    )
    ok = executions == 1 and slowest <= 6.0
    print(f"cold-test verdict: {'PASS' if ok else 'FAIL'} (want 1 execution, slowest <= 6 s)")
    return 0 if ok else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", help="measure this existing stack's page only")
    parser.add_argument("--duration", type=int, default=int(os.environ.get("BENCH_DURATION", "5")))
    parser.add_argument("--reps", type=int, default=int(os.environ.get("BENCH_REPS", "3")))
    parser.add_argument("--conns", default="16,64")
    parser.add_argument("--cold", type=int, default=50, help="0: skip the cold test")
    parser.add_argument("--only", help="measure only the variants whose name contains this")
    parser.add_argument("--work", default=str(HERE.parent / ".cache" / "bench"))
    args = parser.parse_args()
    conns = [int(c) for c in args.conns.split(",")]

    if args.url:
        wait_http(args.url)
        results = {
            ("target", c): med([wrk(args.url, c, args.duration) for _ in range(args.reps)])
            for c in conns
        }
        print(table(results, conns, ["target"]))
        return 0

    work = Path(args.work)
    end_leftovers(work)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    work.chmod(0o755)
    return measure(work, args, conns)


if __name__ == "__main__":
    sys.exit(main())
