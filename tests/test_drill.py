"""scripts/drill.py without a stack: the command line, the counts of a phase (a real
load loop against a loopback HTTP server), the checks, the result line, and the
restore of a fault the drill left injected when a step failed.

The drills themselves run against a stack in molecule/day2 (test_faults.py).
"""

from __future__ import annotations

import importlib
import json
import socket
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ROOT / "scripts"


@pytest.fixture(scope="module")
def drill() -> ModuleType:
    sys.path.insert(0, str(SCRIPTS))
    try:
        return importlib.import_module("drill")
    finally:
        sys.path.remove(str(SCRIPTS))


# --- command line ------------------------------------------------------------------------


def test_defaults_come_from_the_environment(drill: ModuleType) -> None:
    env = {"CGC_LOCAL_STACK": "cgcday2", "CGC_LOCAL_HTTPS_PORT": "9443", "CGC_LOCAL_WEB_COUNT": "3"}
    s = drill.parse_args(["webhost"], env)
    assert (s.mode, s.hold, s.workers, s.path, s.timeout) == ("webhost", 12, 4, "/api/version", 20)
    assert s.member == "web-3"  # the last web host
    assert s.url == "https://127.0.0.1:9443/api/version"
    assert s.container(s.member) == "cgcday2-web-3"
    assert (s.redis_unit, s.pg_units) == ("redis-server", ("postgresql", "postgresql@15-main"))


def test_options_and_unit_overrides(drill: ModuleType) -> None:
    env = {"CGC_DRILL_REDIS_UNIT": "valkey", "CGC_DRILL_PG_UNITS": " postgresql-16  "}
    argv = ["redis", "--hold", "2.5", "--workers", "2", "--path", "/", "--timeout", "3"]
    s = drill.parse_args([*argv, "--member", "web-1"], env)
    assert (s.hold, s.workers, s.path, s.timeout, s.member) == (2.5, 2, "/", 3.0, "web-1")
    assert s.url == "https://127.0.0.1:8443/"
    assert (s.redis_unit, s.pg_units) == ("valkey", ("postgresql-16",))


@pytest.mark.parametrize(
    ("argv", "env"),
    [
        ([], {}),
        (["mysql"], {}),
        (["redis", "--hold"], {}),
        (["redis", "--hold", "soon"], {}),
        (["redis", "--hold", "0"], {}),
        (["redis", "--workers", "1.5"], {}),
        (["redis", "--bogus", "1"], {}),
        (["webhost"], {}),  # one web host: nothing to stop behind the lb
        (["redis"], {"CGC_LOCAL_HTTPS_PORT": "https"}),
    ],
)
def test_usage_errors_exit_2(drill: ModuleType, argv: list[str], env: dict[str, str]) -> None:
    with pytest.raises(SystemExit) as exc:
        drill.parse_args(argv, env)
    assert exc.value.code == 2


def test_cli_usage_exits_2_before_touching_a_stack() -> None:
    """The script as operators run it: usage on stderr, exit 2, nothing on stdout."""
    for argv, env in ([], {}), (["webhost"], {"CGC_LOCAL_WEB_COUNT": "1"}):
        proc = subprocess.run(
            [sys.executable, str(SCRIPTS / "drill.py"), *argv],
            env={"PATH": "/usr/bin:/bin", **env},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert proc.returncode == 2, proc.stderr
        assert proc.stdout == ""
        assert proc.stderr.startswith("usage: drill.py")


# --- the counts of a phase ---------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    """/hit: 200 X-Cache HIT (X-Edge-Cache HIT unless the request has a cookie);
    /down: 503 without cache headers."""

    def do_GET(self) -> None:
        if self.path == "/hit":
            self.send_response(200)
            self.send_header("X-Cache", "HIT")
            self.send_header("X-Edge-Cache", "BYPASS" if self.headers["Cookie"] else "HIT")
        else:
            self.send_response(503)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def _run_loop(drill: ModuleType, url: str, **kwargs: Any) -> Any:
    loop = drill.LoadLoop(url, 2, 2.0, **kwargs)
    with loop:
        threading.Event().wait(0.3)
    return loop


def test_phase_counts_of_answers(drill: ModuleType, server: str) -> None:
    app = drill.phase_counts(_run_loop(drill, server + "/hit", headers=drill.EDGE_BYPASS))
    edge = drill.phase_counts(_run_loop(drill, server + "/hit", pause=0.01))
    down = drill.phase_counts(_run_loop(drill, server + "/down"))
    n = app["total"]
    assert n > 0
    assert app == app | {"2xx": n, "non_2xx": 0, "errors": 0, "status": {"200": n}}
    assert app["x_cache"] == {"HIT": n}
    assert app["x_edge_cache"] == {"BYPASS": n}  # the cookie went with every request
    assert edge["x_edge_cache"] == {"HIT": edge["total"]}
    assert down["total"] > 0
    assert down["non_2xx"] == down["total"]
    assert down["2xx"] == down["errors"] == 0
    assert down["status"] == {"503": down["total"]}
    assert down["x_cache"] == down["x_edge_cache"] == {"-": down["total"]}
    assert 0.2 < down["seconds"] < 5


def test_phase_counts_of_connection_errors(drill: ModuleType) -> None:
    with socket.socket() as sock:  # bound, never listening: connections are refused
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}/"
        phase = drill.phase_counts(_run_loop(drill, url))
    assert phase["total"] == phase["errors"] > 0
    assert phase["error_kinds"] == {"ConnectionError": phase["errors"]}
    assert phase["status"] == phase["x_cache"] == {}
    assert phase["2xx"] == phase["non_2xx"] == 0


def _loop(drill: ModuleType, statuses: dict[int, int], cache: dict[str, int], **kw: Any) -> Any:
    loop = drill.LoadLoop("http://unused/")
    loop.statuses, loop.cache = Counter(statuses), Counter(cache)
    loop.edge = Counter(kw.get("edge", {}))
    loop.error_kinds = Counter(kw.get("errors", {}))
    loop.seconds = kw.get("seconds", 2.04)
    return loop


def test_counts_sort_statuses_numerically_and_line_shows_them(drill: ModuleType) -> None:
    app = _loop(drill, {503: 1, 200: 7, 1000: 1}, {"STALE": 2, "HIT": 6}, errors={"Timeout": 2})
    edge = _loop(drill, {200: 3}, {}, edge={"UPDATING": 1, "HIT": 2})
    counts = drill.phase_counts(app)
    assert list(counts["status"]) == ["200", "503", "1000"]
    assert list(counts["x_cache"]) == ["HIT", "STALE"]
    assert (counts["total"], counts["2xx"], counts["non_2xx"], counts["errors"]) == (11, 7, 2, 2)
    assert counts["seconds"] == 2.0
    assert drill.phase_line("kill", app, edge) == (
        "kill      app: total=11 2xx=7 non-2xx=2 errors=2 HIT=6 STALE=2 (X-Cache) | "
        "edge: total=3 2xx=3 non-2xx=0 errors=0 HIT=2 UPDATING=1 (X-Edge-Cache)  (2.0 s)"
    )
    assert "app: total=0 2xx=0 non-2xx=0 errors=0 - (X-Cache)" in drill.phase_line(
        "down", _loop(drill, {}, {}), edge
    )


# --- the checks ----------------------------------------------------------------------------


def counts(
    total: int,
    *,
    x_cache: dict[str, int] | None = None,
    status: dict[str, int] | None = None,
    errors: int = 0,
    edge: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A phase's counts as phase_counts makes them (edge: the edge loop's)."""
    status = status if status is not None else {"200": total - errors}
    ok = sum(n for s, n in status.items() if s.startswith("2"))
    phase = {
        "total": total,
        "2xx": ok,
        "non_2xx": total - errors - ok,
        "errors": errors,
        "status": status,
        "x_cache": x_cache if x_cache is not None else {"HIT": total - errors},
        "x_edge_cache": {"BYPASS": total - errors},
        "error_kinds": {"ConnectionError": errors} if errors else {},
        "seconds": 2.0,
    }
    if edge is not None:
        phase["edge"] = edge
    return phase


def edge(total: int = 50, hits: int = 40, **kw: Any) -> dict[str, Any]:
    phase = counts(total, **kw)
    return phase | {"x_edge_cache": {"HIT": hits, "UPDATING": total - hits}}


def _verdict(drill: ModuleType) -> tuple[Any, list[str]]:
    lines: list[str] = []
    return drill.Verdict(out=lines.append), lines


def redis_phases(down_cache: dict[str, int] | None = None) -> dict[str, dict[str, Any]]:
    return {
        "before": counts(100, edge=edge()),
        "kill": counts(90, x_cache={"BYPASS": 5, "HIT": 85}, edge=edge()),
        "down": counts(10, x_cache=down_cache or {"BYPASS": 10}, edge=edge()),
        "recovery": counts(80, x_cache={"BYPASS": 1, "HIT": 79}, edge=edge()),
    }


def test_redis_checks_pass_and_print_in_order(drill: ModuleType) -> None:
    verdict, lines = _verdict(drill)
    drill.redis_checks(verdict, redis_phases(), hit=True, active=True)
    assert verdict.ok
    assert list(verdict.checks) == [
        "kill: no failed response",
        "down: no failed response",
        "down: answered BYPASS",
        "recovery: no failed response",
        "kill: edge: no failed response",
        "down: edge: no failed response",
        "recovery: edge: no failed response",
        "edge: answered from the edge cache (HIT)",
        "recovery: caching resumed (HIT)",
        "redis-server active",
    ]
    assert lines[0] == "  ok    kill: no failed response"


@pytest.mark.parametrize(
    ("change", "failed"),
    [
        (lambda p: p["down"].update(x_cache={"BYPASS": 9, "MISS": 1}), "down: answered BYPASS"),
        (lambda p: p.update(kill=counts(90, errors=1, edge=edge())), "kill: no failed response"),
        (
            lambda p: p.update(down=counts(0, x_cache={}, edge=edge())),
            "down: answered BYPASS",  # no answer at all is no proof
        ),
        (
            lambda p: p["recovery"].update(edge=edge(status={"200": 49, "502": 1})),
            "recovery: edge: no failed response",
        ),
        (
            lambda p: [p[n].update(edge=edge(hits=0)) for n in ("kill", "down", "recovery")],
            "edge: answered from the edge cache (HIT)",
        ),
    ],
)
def test_redis_checks_fail(
    drill: ModuleType, change: Callable[[dict[str, Any]], object], failed: str
) -> None:
    phases = redis_phases()
    change(phases)
    verdict, lines = _verdict(drill)
    drill.redis_checks(verdict, phases, hit=True, active=True)
    assert not verdict.ok
    assert [name for name, ok in verdict.checks.items() if not ok] == [failed]
    assert f"  FAIL  {failed}" in lines


def test_no_edge_cache_is_a_note_not_a_check(drill: ModuleType) -> None:
    phases = {
        n: counts(20, edge=counts(20) | {"x_edge_cache": {"-": 20}}) for n in ("outage", "after")
    }
    verdict, lines = _verdict(drill)
    drill.webhost_checks(verdict, phases, member="web-2", served=False)
    assert "edge: answered from the edge cache (HIT)" not in verdict.checks
    assert "  (no X-Edge-Cache: the edge cache is off)" in lines
    assert verdict.checks["after: web-2 serves again"] is False
    assert not verdict.ok


BODY_JSON = '{"error":"The database is unavailable and no cached answer can be served."}'


def postgres_phases(cold_status: dict[str, int]) -> dict[str, dict[str, Any]]:
    return {
        "stale": counts(300, x_cache={"STALE": 300}, edge=edge()),
        "cold": counts(100, x_cache={"MISS": 100}, status=cold_status, edge=edge(hits=0)),
        "after": counts(100, edge=edge()),
    }


def test_postgres_checks(drill: ModuleType) -> None:
    verdict, _ = _verdict(drill)
    html = "<p>The database is unavailable and no cached answer can be served.</p>"
    drill.postgres_checks(
        verdict, postgres_phases({"503": 100}), body_json=BODY_JSON, body_html=html, hit=True
    )
    assert verdict.ok, verdict.checks
    assert len(verdict.checks) == 11
    # The cold phase's 503s are the app's; the edge serves its stale copy (200).
    assert verdict.checks["cold: edge: no failed response"]


@pytest.mark.parametrize(
    ("cold_status", "body_json", "failed"),
    [
        ({"503": 99, "200": 1}, BODY_JSON, ["cold: 503 only"]),
        ({"503": 99, "502": 1}, BODY_JSON, ["cold: 503 only"]),
        ({"503": 100}, '{"message":"database is unavailable"}', ["cold: clear JSON body"]),
        ({"503": 100}, '"database is unavailable" {"error":""}', ["cold: clear JSON body"]),
        ({"503": 100}, "", ["cold: clear JSON body"]),
    ],
)
def test_postgres_checks_fail(
    drill: ModuleType, cold_status: dict[str, int], body_json: str, failed: list[str]
) -> None:
    verdict, _ = _verdict(drill)
    drill.postgres_checks(
        verdict,
        postgres_phases(cold_status),
        body_json=body_json,
        body_html="database is unavailable",
        hit=True,
    )
    assert [name for name, ok in verdict.checks.items() if not ok] == failed


# --- cache settings and the result line ------------------------------------------------------


def test_cache_key_and_aged_created_time(drill: ModuleType) -> None:
    cache = drill.cache_settings('[cache]\nnamespace = "shop"\nttl = 30\n[redis]\nttl = 1\n')
    assert drill.cache_key(cache) == "shop:v1:{slow_version}"
    assert drill.stale_created(cache, 1000.9) == 1000 - 30 - 30 - 5
    defaults = drill.cache_settings("[app]\n")
    assert drill.cache_key(defaults) == "cachedapp:v1:{slow_version}"
    assert drill.stale_created(defaults | {"stale_while_revalidate": 12.7}, 1000) == 923


def test_result_json(drill: ModuleType) -> None:
    verdict, _ = _verdict(drill)
    drill.redis_checks(verdict, redis_phases({"BYPASS": 9, "HIT": 1}), hit=True, active=False)
    phases = redis_phases()
    result = json.loads(json.dumps(drill.drill_result("redis", verdict, phases)))
    assert list(result) == ["drill", "ok", "checks", "phases"]
    assert result["drill"] == "redis"
    assert result["ok"] is False
    assert result["checks"]["down: answered BYPASS"] is False
    assert result["checks"]["redis-server active"] is False
    assert list(result["phases"]) == ["before", "down", "kill", "recovery"]  # by name
    assert result["phases"]["kill"] == phases["kill"]


# --- execute: preflight, result line, exit code, restore -------------------------------------


class FakeStack:
    """A Stack whose probes answer as told, without docker or HTTP."""

    def __init__(self, drill: ModuleType, status: str = "200", hit: bool = True) -> None:
        self.real = drill.Stack(drill.parse_args(["redis"], {}))
        self.settings, self.phases = self.real.settings, self.real.phases
        self.inject, self.restore = self.real.inject, self.real.restore
        self.restore_pending = self.real.restore_pending
        self.status, self.hit = status, hit

    def probe(self) -> tuple[str, str]:
        return self.status, "HIT" if self.hit else "MISS"

    def wait_for_hit(self, seconds: float) -> bool:
        return self.hit


def test_execute_exit_codes_and_result_line(
    drill: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    def passing(stack: Any, verdict: Any) -> None:
        stack.phases["before"] = counts(5)
        verdict.check("fine", True)

    def failing(stack: Any, verdict: Any) -> None:
        verdict.check("fine", True)
        verdict.check("broken", False)

    assert drill.execute(FakeStack(drill), passing) == 0
    last = capsys.readouterr().out.splitlines()[-1]
    assert last.startswith("drill-result: ")
    result = json.loads(last.removeprefix("drill-result: "))
    assert result == {
        "drill": "redis",
        "ok": True,
        "checks": {"fine": True},
        "phases": {"before": counts(5)},
    }
    assert drill.execute(FakeStack(drill), failing) == 1
    last = capsys.readouterr().out.splitlines()[-1]
    assert json.loads(last.removeprefix("drill-result: "))["checks"] == {
        "fine": True,
        "broken": False,
    }


@pytest.mark.parametrize(("status", "hit"), [("000", True), ("502", True), ("200", False)])
def test_execute_preflight_fails_without_touching_the_stack(
    drill: ModuleType, capsys: pytest.CaptureFixture[str], status: str, hit: bool
) -> None:
    ran = []
    assert drill.execute(FakeStack(drill, status, hit), lambda *_: ran.append(1)) == 1
    assert ran == []
    assert "drill-result" not in capsys.readouterr().out


def test_a_failed_step_restores_the_fault_and_exits_1(
    drill: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    restored: list[str] = []

    def broken(stack: Any, verdict: Any) -> None:
        stack.inject("redis-server", lambda: restored.append("redis-server"))
        stack.inject("unrelated", lambda: restored.append("unrelated"))
        stack.restore("unrelated")  # the drill's own recovery step: not repeated
        raise subprocess.CalledProcessError(1, ["docker", "exec"], stderr="no such container\n")

    assert drill.execute(FakeStack(drill), broken) == 1
    assert restored == ["unrelated", "redis-server"]
    out = capsys.readouterr().out
    assert "drill aborted: docker exec: no such container" in out
    assert "drill-result" not in out


def test_an_interrupt_restores_the_fault_too(drill: ModuleType) -> None:
    restored: list[str] = []

    def interrupted(stack: Any, verdict: Any) -> None:
        stack.inject("PostgreSQL", lambda: restored.append("PostgreSQL"))
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        drill.execute(FakeStack(drill), interrupted)
    assert restored == ["PostgreSQL"]
