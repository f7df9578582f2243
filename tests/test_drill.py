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
from collections.abc import Iterator
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
        (["redis", "--workers", "0"], {}),
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


@pytest.mark.parametrize("argv", [[], ["webhost"]])
def test_cli_usage_exits_2_before_touching_a_stack(argv: list[str]) -> None:
    """The script as operators run it: usage on stderr, exit 2, nothing on stdout."""
    proc = subprocess.run(
        [sys.executable, str(SCRIPTS / "drill.py"), *argv],
        env={"PATH": "/usr/bin:/bin", "CGC_LOCAL_WEB_COUNT": "1"},
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
    keys = "total 2xx non_2xx errors status x_cache x_edge_cache error_kinds seconds"
    assert list(counts) == keys.split()
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


def failed(checks: list[tuple[str, bool | None]]) -> list[str]:
    return [name for name, passed in checks if passed is False]


def redis_phases() -> dict[str, dict[str, Any]]:
    return {
        "before": counts(100, edge=edge()),
        "kill": counts(90, x_cache={"BYPASS": 5, "HIT": 85}, edge=edge()),
        "down": counts(10, x_cache={"BYPASS": 10}, edge=edge()),
        "recovery": counts(80, x_cache={"BYPASS": 1, "HIT": 79}, edge=edge()),
    }


def test_redis_checks_in_order(drill: ModuleType) -> None:
    checks = drill.redis_checks(redis_phases(), hit=True, active=True)
    assert checks == [
        ("kill: no failed response", True),
        ("down: no failed response", True),
        ("down: answered BYPASS", True),
        ("recovery: no failed response", True),
        ("kill: edge: no failed response", True),
        ("down: edge: no failed response", True),
        ("recovery: edge: no failed response", True),
        ("edge: answered from the edge cache (HIT)", True),
        ("recovery: caching resumed (HIT)", True),
        ("redis-server active", True),
    ]


@pytest.mark.parametrize(
    ("update", "facts", "names"),
    [
        ({"down": {"x_cache": {"BYPASS": 9, "MISS": 1}}}, {}, ["down: answered BYPASS"]),
        ({"kill": counts(90, errors=1)}, {}, ["kill: no failed response"]),
        ({"down": counts(0, x_cache={})}, {}, ["down: answered BYPASS"]),  # no answer: no proof
        (
            {"recovery": {"edge": edge(status={"200": 49, "502": 1})}},
            {},
            ["recovery: edge: no failed response"],
        ),
        (
            {n: {"edge": edge(hits=0)} for n in ("kill", "down", "recovery")},
            {},
            ["edge: answered from the edge cache (HIT)"],
        ),
        (
            {},
            {"hit": False, "active": False},
            ["recovery: caching resumed (HIT)", "redis-server active"],
        ),
    ],
)
def test_redis_checks_fail(
    drill: ModuleType, update: dict[str, Any], facts: dict[str, bool], names: list[str]
) -> None:
    phases = redis_phases()
    for name, fields in update.items():
        phases[name].update(fields)
    assert failed(drill.redis_checks(phases, **{"hit": True, "active": True} | facts)) == names


def test_no_edge_cache_is_a_note_not_a_check(drill: ModuleType) -> None:
    phases = {
        n: counts(20, edge=counts(20) | {"x_edge_cache": {"-": 20}}) for n in ("outage", "after")
    }
    assert drill.webhost_checks(phases, member="web-2", served=False) == [
        ("outage: no failed response", True),
        ("after: web-2 serves again", False),
        ("after: no failed response", True),
        ("outage: edge: no failed response", True),
        ("after: edge: no failed response", True),
        ("  (no X-Edge-Cache: the edge cache is off)", None),
    ]


BODY_JSON = '{"error":"The database is unavailable and no cached answer can be served."}'


@pytest.mark.parametrize(
    ("cold_status", "body_json", "names"),
    [
        ({"503": 100}, BODY_JSON, []),
        ({"503": 99, "200": 1}, BODY_JSON, ["cold: 503 only"]),
        ({"503": 99, "502": 1}, BODY_JSON, ["cold: 503 only"]),
        ({"503": 100}, '{"message":"database is unavailable"}', ["cold: clear JSON body"]),
        ({"503": 100}, '"database is unavailable" {"error":""}', ["cold: clear JSON body"]),
        ({"503": 100}, "", ["cold: clear JSON body"]),
    ],
)
def test_postgres_checks(
    drill: ModuleType, cold_status: dict[str, int], body_json: str, names: list[str]
) -> None:
    phases = {
        "stale": counts(300, x_cache={"STALE": 300}, edge=edge()),
        "cold": counts(100, x_cache={"MISS": 100}, status=cold_status, edge=edge(hits=0)),
        "after": counts(100, edge=edge()),
    }
    html = "<p>The database is unavailable and no cached answer can be served.</p>"
    checks = drill.postgres_checks(phases, body_json=body_json, body_html=html, hit=True)
    assert len(checks) == 11
    assert failed(checks) == names
    # The cold phase's 503s are the app's; the edge serves its stale copy (200).
    assert ("cold: edge: no failed response", True) in checks


def test_cache_facts_with_the_apps_defaults(drill: ModuleType) -> None:
    config = '[cache]\nnamespace = "shop"\nttl = 30\nlocal_ttl = 2\n[redis]\nttl = 1\n'
    assert drill.cache_facts(config, 1000.9) == ("shop:v1:{slow_version}", 1000 - 30 - 30 - 5, 2.5)
    defaults = drill.cache_facts("[cache]\nkey_version = 3\nstale_while_revalidate = 12.7\n", 1000)
    assert defaults == ("cachedapp:v3:{slow_version}", 1000 - 60 - 12 - 5, 1.5)


# --- execute: preflight, check lines, result line, exit code, restore ----------------------


def stack(drill: ModuleType, status: str = "200", hit: bool = True) -> Any:
    """A Stack whose probes answer as told, and whose "before" phase runs no load."""

    class Fake(drill.Stack):
        def probe(self) -> tuple[str, str]:
            return status, "HIT" if hit else "MISS"

        def wait_for_hit(self, seconds: float) -> bool:
            return hit

        def steady(self, phase: str, seconds: float) -> None:
            self.phases[phase] = counts(5)

    return Fake(**vars(drill.parse_args(["redis"], {})))


def result_line(out: str) -> dict[str, Any]:
    last = out.splitlines()[-1]
    assert last.startswith("drill-result: ")
    return json.loads(last.removeprefix("drill-result: "))


@pytest.mark.parametrize(
    ("checks", "code"),
    [
        ([("fine", True), ("  (a note)", None)], 0),
        ([("fine", True), ("broken", False)], 1),
    ],
)
def test_execute_prints_checks_and_result(
    drill: ModuleType,
    capsys: pytest.CaptureFixture[str],
    checks: list[tuple[str, bool | None]],
    code: int,
) -> None:
    def run(s: Any) -> list[tuple[str, bool | None]]:
        s.phases["kill"] = counts(7)
        return checks

    assert drill.execute(stack(drill), run) == code
    out = capsys.readouterr().out
    assert [line[10:] for line in out.splitlines()[1:-1]] == [
        "  ok    fine",
        "  (a note)" if code == 0 else "  FAIL  broken",
    ]
    assert result_line(out) == {
        "drill": "redis",
        "ok": code == 0,
        "checks": {name: passed for name, passed in checks if passed is not None},
        "phases": {"before": counts(5), "kill": counts(7)},  # by name
    }


def test_no_local_ca_is_no_answer(drill: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    """A checkout whose stack never ran has no CA: the preflight's "000", not a traceback."""
    monkeypatch.setattr(drill, "CA_FILE", Path("/nonexistent/ca.crt"))
    s = drill.Stack(**vars(drill.parse_args(["redis"], {"CGC_LOCAL_HTTPS_PORT": "9"})))
    assert s.probe() == ("000", "")


@pytest.mark.parametrize(("status", "hit"), [("000", True), ("502", True), ("200", False)])
def test_execute_preflight_fails_without_touching_the_stack(
    drill: ModuleType, capsys: pytest.CaptureFixture[str], status: str, hit: bool
) -> None:
    ran = []
    assert drill.execute(stack(drill, status, hit), lambda *_: ran.append(1)) == 1
    assert ran == []
    assert "drill-result" not in capsys.readouterr().out


@pytest.mark.parametrize(
    "error",
    [
        subprocess.CalledProcessError(1, ["docker", "exec"], stderr="no such container\n"),
        KeyboardInterrupt(),
    ],
)
def test_a_failed_or_interrupted_drill_restores_the_fault(
    drill: ModuleType, capsys: pytest.CaptureFixture[str], error: BaseException
) -> None:
    restored: list[str] = []

    def broken(s: Any) -> None:
        s.inject("redis-server", lambda: restored.append("redis-server"))
        s.inject("PostgreSQL", lambda: restored.append("PostgreSQL"))
        s.inject("unrelated", lambda: restored.append("unrelated"))
        s.restore("unrelated")  # the drill's own recovery step: not repeated
        raise error

    if isinstance(error, KeyboardInterrupt):
        with pytest.raises(KeyboardInterrupt):
            drill.execute(stack(drill), broken)
    else:
        assert drill.execute(stack(drill), broken) == 1
        assert "drill aborted: docker exec: no such container" in capsys.readouterr().out
    assert restored == ["unrelated", "PostgreSQL", "redis-server"]  # last injected first
    assert "drill-result" not in capsys.readouterr().out
