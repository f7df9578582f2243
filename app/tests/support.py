"""Helpers for the app suite: config files, gunicorn processes, DB-side counters."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg2
import requests

DB_SLEEP = 1.0  # seconds slow_version() sleeps in this suite
PORTS = range(28001, 28050)  # the suite's gunicorn ports (bench uses 28050+)
BIN = Path(sys.executable).parent
_port_lock = threading.Lock()


@dataclass(frozen=True)
class Servers:
    run_dir: Path
    servers_sh: Path
    pg_port: int
    pg_socket_dir: str
    db_name: str
    db_user: str
    db_password: str
    redis_plain_port: int
    redis_acl_port: int
    redis_acl_user: str
    redis_acl_password: str
    redis_admin_password: str
    redis_token: str
    redis_tls_port: int
    redis_tls_ca: str
    tls_ca: str  # the test CA: PostgreSQL's and the TLS Redis's certificates
    wrong_name_host: str  # a loopback address the servers listen on, not in their certificate
    cluster_ports: tuple[int, ...]

    @classmethod
    def from_env(cls) -> Servers:
        e = os.environ
        return cls(
            run_dir=Path(e["CGC_APP_RUN"]),
            servers_sh=Path(e["CGC_SERVERS_SH"]),
            pg_port=int(e["CGC_PG_PORT"]),
            pg_socket_dir=e["CGC_PG_SOCKET_DIR"],
            db_name=e["CGC_DB_NAME"],
            db_user=e["CGC_DB_USER"],
            db_password=e["CGC_DB_PASSWORD"],
            redis_plain_port=int(e["CGC_REDIS_PLAIN_PORT"]),
            redis_acl_port=int(e["CGC_REDIS_ACL_PORT"]),
            redis_acl_user=e["CGC_REDIS_ACL_USER"],
            redis_acl_password=e["CGC_REDIS_ACL_PASSWORD"],
            redis_admin_password=e["CGC_REDIS_ADMIN_PASSWORD"],
            redis_token=e["CGC_REDIS_TOKEN"],
            redis_tls_port=int(e["CGC_REDIS_TLS_PORT"]),
            redis_tls_ca=e["CGC_REDIS_TLS_CA"],
            tls_ca=e["CGC_TLS_CA"],
            wrong_name_host=e["CGC_WRONG_NAME_HOST"],
            cluster_ports=tuple(int(p) for p in e["CGC_CLUSTER_PORTS"].split()),
        )

    def control(self, action: str, name: str) -> None:
        """servers.sh start-one|stop-one NAME (pg, redis-plain, ...)."""
        subprocess.run(
            ["bash", str(self.servers_sh), f"{action}-one", name],
            check=True,
            timeout=60,
            env={**os.environ, "CGC_APP_RUN": str(self.run_dir)},
        )

    def admin_db(self) -> Any:
        conn = psycopg2.connect(
            host=self.pg_socket_dir, port=self.pg_port, user="postgres", dbname=self.db_name
        )
        conn.autocommit = True
        return conn


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return json.dumps(str(value))  # a TOML basic string


def base_sections(servers: Servers) -> dict[str, dict[str, Any]]:
    return {
        "database": {
            "host": "127.0.0.1",
            "port": servers.pg_port,
            "dbname": servers.db_name,
            "user": servers.db_user,
            "password": servers.db_password,
            # as shipped: TLS, the server's certificate and name verified against the CA
            "sslmode": "verify-full",
            "sslrootcert": servers.tls_ca,
            "connect_timeout": 2,
            "query_timeout": 5,
        },
        "redis": {"mode": "standalone", "url": f"redis://127.0.0.1:{servers.redis_plain_port}/0"},
        "cache": {"ttl": 60, "lock_timeout": 5, "wait_timeout": 6},
        "app": {"log_level": "INFO"},
    }


def write_config(
    path: Path, servers: Servers, sections: dict[str, dict[str, Any]] | None = None
) -> Path:
    merged = base_sections(servers)
    for name, values in (sections or {}).items():
        merged.setdefault(name, {}).update(values)
    lines = []
    for name, values in merged.items():
        lines.append(f"[{name}]")
        lines += [f"{k} = {_toml_value(v)}" for k, v in values.items() if v is not None]
        lines.append("")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines), encoding="utf-8")
    path.chmod(0o600)
    return path


def run_cli(
    *args: str,
    config: Path | None = None,
    env: dict[str, str] | None = None,
    stdin: str | None = None,
) -> Any:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("CACHEDAPP_")}
    if config is not None:
        full_env["CACHEDAPP_CONFIG"] = str(config)
    full_env.update(env or {})
    return subprocess.run(
        [str(BIN / args[0]), *args[1:]],
        capture_output=True,
        text=True,
        timeout=60,
        env=full_env,
        input=stdin,
        check=False,
    )


def install_schema(config: Path, sleep: float) -> None:
    out = run_cli("cachedapp-db", "install-schema", "--sleep", str(sleep), config=config)
    assert out.returncode == 0, out.stderr


def _free_port() -> int:
    with _port_lock:
        for port in PORTS:
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port
    raise RuntimeError("no free port in 28001-28049")


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    text: str
    elapsed: float

    @property
    def cache(self) -> str:
        return self.headers.get("X-Cache", "")

    def json(self) -> Any:
        return json.loads(self.text)


class Stack:
    """One gunicorn master (a "web host") with its own config and metrics dir."""

    def __init__(self, workdir: Path, config: Path, port: int, app_name: str, proc: Any) -> None:
        self.workdir = workdir
        self.config = config
        self.port = port
        self.app_name = app_name
        self.proc = proc
        self.url = f"http://127.0.0.1:{port}"
        self.metrics_dir = workdir / "prom"
        self.log = workdir / "gunicorn.log"

    @classmethod
    def start(
        cls,
        servers: Servers,
        workdir: Path,
        sections: dict[str, dict[str, Any]],
        workers: int = 3,
        env: dict[str, str] | None = None,
    ) -> Stack:
        workdir.mkdir(parents=True, exist_ok=True)
        app_name = f"cachedapp-test-{uuid.uuid4().hex[:8]}"
        sections = {**sections}
        sections["database"] = {"application_name": app_name, **sections.get("database", {})}
        config = write_config(workdir / "config.toml", servers, sections)
        port = _free_port()
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("CACHEDAPP_")}
        full_env.update(
            CACHEDAPP_CONFIG=str(config),
            PROMETHEUS_MULTIPROC_DIR=str(workdir / "prom"),
            **(env or {}),
        )
        log = (workdir / "gunicorn.log").open("ab")
        proc = subprocess.Popen(
            [
                str(BIN / "gunicorn"),
                "-c",
                "python:cachedapp.gunicorn_conf",
                "--bind",
                f"127.0.0.1:{port}",
                "--workers",
                str(workers),
                "cachedapp.wsgi:app",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=full_env,
            cwd=workdir,
        )
        log.close()
        app = cls(workdir, config, port, app_name, proc)
        app.wait_ready()
        return app

    def wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gunicorn exited {self.proc.returncode}:\n{self.log_text()}")
            with contextlib.suppress(requests.RequestException):
                if requests.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            time.sleep(0.1)
        raise RuntimeError(f"gunicorn not ready after {timeout} s:\n{self.log_text()}")

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def get(self, path: str = "/api/version", accept: str | None = None) -> Reply:
        headers = {"Accept": accept} if accept else {}
        start = time.perf_counter()
        r = requests.get(f"{self.url}{path}", headers=headers, timeout=60)
        return Reply(r.status_code, dict(r.headers), r.text, time.perf_counter() - start)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # quick shutdown; nothing to drain here
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def worker_pids_in_metrics(self) -> set[int]:
        pids = set()
        for f in self.metrics_dir.glob("*.db"):
            tail = f.stem.rsplit("_", 1)[-1]
            if tail.isdigit():
                pids.add(int(tail))
        return pids


def concurrent(calls: list[Any]) -> list[Reply]:
    """Run the callables at the same moment (a barrier), each in its own thread."""
    barrier = threading.Barrier(len(calls))

    def run(call: Any) -> Reply:
        barrier.wait()
        return call()

    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(run, calls))


def db_executions(servers: Servers, *stacks: Stack) -> int:
    """slow_version() calls as PostgreSQL counts them (pg_stat_user_functions).

    Backends flush their function stats when they exit, so the given stacks'
    connections are ended first (their pools reconnect on next use).
    """
    names = [s.app_name for s in stacks]
    with contextlib.closing(servers.admin_db()) as conn, conn.cursor() as cur:
        if names:
            cur.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name = ANY(%s)",
                (names,),
            )
            deadline = time.monotonic() + 15
            while True:
                cur.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name = ANY(%s)",
                    (names,),
                )
                if cur.fetchone()[0] == 0:
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError("app backends did not exit")
                time.sleep(0.05)
        cur.execute("SELECT pg_stat_clear_snapshot()")
        cur.execute(
            "SELECT coalesce(sum(calls), 0) FROM pg_stat_user_functions "
            "WHERE schemaname = 'public' AND funcname = 'slow_version'"
        )
        return int(cur.fetchone()[0])


def wait_for(predicate: Any, timeout: float, interval: float = 0.1) -> Any:
    """Poll until predicate() is truthy; return its value (or fail)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(interval)
