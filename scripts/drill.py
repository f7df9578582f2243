#!/usr/bin/env python3
"""Fault drills against a running local stack, under load.

Each drill runs load loops on the stack's published port through phases and prints,
per phase, the responses counted: total, 2xx, non-2xx, errors (connection errors and
timeouts) and the X-Cache values. Two loops run side by side: "app" requests carry a
Cookie header, which takes them past nginx's edge microcache to the app (its X-Cache
is what the checks name), and "edge" requests go through the edge cache as shipped
(X-Edge-Cache counted; every one of them must succeed too). Single probes bypass the
edge. The stack ends as `ansible-playbook site.yml` leaves it (every service running),
also when a step fails or the drill is interrupted (Ctrl-C, SIGTERM).

  drill.py redis    [options]  redis-server killed (SIGKILL) under load and kept down:
                               every answer 2xx (BYPASS, from the database); started
                               again: caching resumes (HIT)
  drill.py postgres [options]  PostgreSQL stopped: the cached answer is served STALE
                               (stale-if-error) with no failed response; a cold key
                               answers 503 with a clear message (the edge keeps serving
                               its stale copy: 200); started again: MISS, then HIT
  drill.py webhost  [options]  one web container stopped under load (needs the lb,
                               CGC_LOCAL_WEB_COUNT >= 2): every answer 2xx from the
                               others; started again: it serves again

The stack comes from the same environment as the playbooks: CGC_LOCAL_STACK (default
cgc), CGC_LOCAL_HTTPS_PORT (8443), CGC_LOCAL_WEB_COUNT (1); the units from
CGC_DRILL_REDIS_UNIT (redis-server) and CGC_DRILL_PG_UNITS ("postgresql
postgresql@15-main"). Output ends with one line `drill-result: {json}` (every phase's
counts and each check); exit 0 when every check passed, 1 when one failed (or the drill
could not run), 2 on usage.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
import tomllib
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import requests
from cachedapp.config import SCHEMA
from cgc_load import EDGE_BYPASS, LoadLoop

ROOT = Path(__file__).resolve().parents[1]
# The front's certificate is verified against the local CA (role pki).
CA_FILE = ROOT / ".ansible" / "pki" / "ca.crt"
REDIS_ADMIN_PASSWORD = ROOT / ".ansible" / "secrets" / "redis_admin_password"
# A Cookie header: past nginx's edge microcache, to the app (X-Edge-Cache: BYPASS).
PROBE_BYPASS = {"Cookie": "cgc-drill=edge-bypass"}
# The cached value is {"c": created, "v": ...}: an older "c" makes it stale, so every
# request tries the (stopped) database and must fall back to it.
AGE_SCRIPT = """local v = redis.call('GET', KEYS[1]); if not v then return 0 end;
local d = cjson.decode(v); d['c'] = tonumber(ARGV[1]);
redis.call('SET', KEYS[1], cjson.encode(d), 'KEEPTTL'); return 1"""

Counts = dict[str, Any]


def say(message: str) -> None:
    print(f"{time.strftime('%H:%M:%S')}  {message}", flush=True)


# --- command line ----------------------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    mode: str
    hold: float
    workers: int
    path: str
    member: str
    timeout: float
    stack: str = "cgc"
    port: int = 8443
    web_count: int = 1
    redis_unit: str = "redis-server"
    pg_units: tuple[str, ...] = ("postgresql", "postgresql@15-main")

    @property
    def base_url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return self.base_url + self.path

    def container(self, member: str) -> str:
        return f"{self.stack}-{member}"


def _positive(kind: type[int] | type[float]) -> Callable[[str], int | float]:
    def convert(text: str) -> int | float:
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"{text!r} is not above 0")
        return value

    convert.__name__ = kind.__name__  # argparse names the type in its error
    return convert


def parse_args(argv: Sequence[str], environ: Mapping[str, str] = os.environ) -> Settings:
    """The command line and the environment; usage errors exit 2 (argparse)."""
    parser = argparse.ArgumentParser(
        prog="drill.py",
        description=__doc__.split("\n\n", 1)[0],
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("mode", choices=("redis", "postgres", "webhost"))
    parser.add_argument(
        "--hold",
        type=_positive(float),
        default=12.0,
        help="seconds each fault phase runs under load (default 12: with the local "
        "stack's 5 s slow_version() a BYPASS answer takes ~5 s)",
    )
    parser.add_argument(
        "--workers",
        type=_positive(int),
        default=4,
        help="concurrent clients of each load loop, app and edge (default 4)",
    )
    parser.add_argument("--path", default="/api/version", help="URL path under load")
    parser.add_argument("--member", help="webhost: the web container to stop (default: the last)")
    parser.add_argument(
        "--timeout",
        type=_positive(float),
        default=20.0,
        help="per-request timeout of the load loop (default 20)",
    )
    args = parser.parse_args(argv)
    try:
        port = int(environ.get("CGC_LOCAL_HTTPS_PORT", "8443"))
        web_count = int(environ.get("CGC_LOCAL_WEB_COUNT", "1"))
    except ValueError as exc:
        parser.error(f"CGC_LOCAL_HTTPS_PORT / CGC_LOCAL_WEB_COUNT: {exc}")
    if args.mode == "webhost" and web_count < 2:
        parser.error("webhost needs 2+ web hosts behind the lb (CGC_LOCAL_WEB_COUNT)")
    return Settings(
        mode=args.mode,
        hold=args.hold,
        workers=args.workers,
        path=args.path,
        member=args.member or f"web-{web_count}",
        timeout=args.timeout,
        stack=environ.get("CGC_LOCAL_STACK", "cgc"),
        port=port,
        web_count=web_count,
        redis_unit=environ.get("CGC_DRILL_REDIS_UNIT", "redis-server"),
        pg_units=tuple(environ.get("CGC_DRILL_PG_UNITS", "postgresql postgresql@15-main").split()),
    )


# --- counts, checks, result (pure) --------------------------------------------------------


def phase_counts(loop: LoadLoop) -> Counts:
    """One load loop's counts as the drill-result JSON holds them."""
    return {
        "total": loop.total,
        "2xx": loop.ok,
        "non_2xx": loop.non_2xx,
        "errors": loop.errors,
        "status": {str(k): v for k, v in sorted(loop.statuses.items())},
        "x_cache": dict(sorted(loop.cache.items())),
        "x_edge_cache": dict(sorted(loop.edge.items())),
        "error_kinds": dict(loop.error_kinds),
        "seconds": round(loop.seconds, 1),
    }


def phase_line(phase: str, app: LoadLoop, edge: LoadLoop) -> str:
    """The human line of one phase: the app loop's X-Cache, the edge loop's X-Edge-Cache."""

    def line(loop: LoadLoop, values: Mapping[str, int]) -> str:
        shown = " ".join(f"{k}={v}" for k, v in sorted(values.items())) or "-"
        return (
            f"total={loop.total} 2xx={loop.ok} non-2xx={loop.non_2xx} errors={loop.errors} {shown}"
        )

    return (
        f"{phase:<9} app: {line(app, app.cache)} (X-Cache) | edge: "
        f"{line(edge, edge.edge)} (X-Edge-Cache)  ({app.seconds:.1f} s)"
    )


def no_failure(counts: Counts) -> bool:
    return counts["non_2xx"] == 0 and counts["errors"] == 0


@dataclass
class Verdict:
    """The checks in the order made; each is printed as it is made."""

    out: Callable[[str], None] = say
    checks: dict[str, bool] = field(default_factory=dict)

    def check(self, name: str, passed: bool) -> None:
        self.checks[name] = bool(passed)
        self.out(f"  {'ok' if passed else 'FAIL':<4}  {name}")

    @property
    def ok(self) -> bool:
        return all(self.checks.values())


def edge_checks(verdict: Verdict, phases: Mapping[str, Counts], names: Sequence[str]) -> None:
    """The edge loop of each phase named: every answer 2xx (a stale copy when the app
    fails), and, over those phases, answers from the edge cache itself (HIT) - unless
    the stack runs without it (no X-Edge-Cache at all)."""
    hits = seen = 0
    for name in names:
        edge = phases[name]["edge"]
        verdict.check(f"{name}: edge: no failed response", edge["total"] > 0 and no_failure(edge))
        hits += edge["x_edge_cache"].get("HIT", 0)
        seen += edge["total"] - edge["x_edge_cache"].get("-", 0)
    if seen > 0:
        verdict.check("edge: answered from the edge cache (HIT)", hits > 0)
    else:
        verdict.out("  (no X-Edge-Cache: the edge cache is off)")


def redis_checks(
    verdict: Verdict, phases: Mapping[str, Counts], *, hit: bool, active: bool
) -> None:
    down = phases["down"]
    verdict.check("kill: no failed response", no_failure(phases["kill"]))
    verdict.check("down: no failed response", no_failure(down))
    verdict.check(
        "down: answered BYPASS",
        down["total"] > 0 and down["x_cache"].get("BYPASS", 0) == down["total"],
    )
    verdict.check("recovery: no failed response", no_failure(phases["recovery"]))
    edge_checks(verdict, phases, ["kill", "down", "recovery"])
    verdict.check("recovery: caching resumed (HIT)", hit)
    verdict.check("redis-server active", active)


def postgres_checks(
    verdict: Verdict, phases: Mapping[str, Counts], *, body_json: str, body_html: str, hit: bool
) -> None:
    stale, cold = phases["stale"], phases["cold"]
    stale_count = stale["x_cache"].get("STALE", 0)
    verdict.check("stale: no failed response", no_failure(stale))
    verdict.check("stale: answered STALE", stale_count > 0 and stale_count == stale["total"])
    verdict.check(
        "cold: 503 only", cold["total"] > 0 and cold["status"].get("503", 0) == cold["total"]
    )
    json_error = body_json.partition('"error"')[2]
    verdict.check("cold: clear JSON body", "database is unavailable" in json_error)
    verdict.check("cold: clear HTML body", "database is unavailable" in body_html)
    verdict.check("after: caching resumed (HIT)", hit)
    verdict.check("after: no failed response", no_failure(phases["after"]))
    edge_checks(verdict, phases, ["stale", "cold", "after"])


def webhost_checks(
    verdict: Verdict, phases: Mapping[str, Counts], *, member: str, served: bool
) -> None:
    verdict.check("outage: no failed response", no_failure(phases["outage"]))
    verdict.check(f"after: {member} serves again", served)
    verdict.check("after: no failed response", no_failure(phases["after"]))
    edge_checks(verdict, phases, ["outage", "after"])


def drill_result(mode: str, verdict: Verdict, phases: Mapping[str, Counts]) -> dict[str, Any]:
    """The drill-result JSON: phases by name (sorted), the checks in the order made."""
    return {
        "drill": mode,
        "ok": verdict.ok,
        "checks": dict(verdict.checks),
        "phases": dict(sorted(phases.items())),
    }


def cache_settings(config_toml: str) -> dict[str, Any]:
    """web-1's [cache] table, typed, with the app's own defaults (cachedapp.config.SCHEMA)
    for the keys it leaves out. Not the app's loader: the file names CA files of the host."""
    table = tomllib.loads(config_toml).get("cache", {})
    return {k: kind(table.get(k, d)) for (s, k), (kind, d, _) in SCHEMA.items() if s == "cache"}


def cache_key(cache: Mapping[str, Any]) -> str:
    return f"{cache['namespace']}:v{cache['key_version']}:{{slow_version}}"


def stale_created(cache: Mapping[str, Any], now: float) -> int:
    """A created time that makes the cached value older than ttl + stale-while-revalidate."""
    return int(now) - int(float(cache["ttl"])) - int(float(cache["stale_while_revalidate"])) - 5


# --- the stack (docker, HTTP) ----------------------------------------------------------


class Stack:
    """The running stack: docker commands, single probes, the load phases, and the
    restore steps of the faults injected and not yet undone."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.phases: dict[str, Counts] = {}
        self._pending: dict[str, Callable[[], object]] = {}

    def dexec(self, member: str, *cmd: str, check: bool = True, stdin: str | None = None) -> str:
        """CMD in the stack's container MEMBER; its stdout, stripped."""
        proc = subprocess.run(
            ["docker", "exec", "-i", self.settings.container(member), *cmd],
            input=stdin,
            capture_output=True,
            text=True,
            check=check,
        )
        return proc.stdout.strip()

    def docker(self, *args: str) -> None:
        subprocess.run(["docker", *args], capture_output=True, text=True, check=True)

    def redis_admin(self, *args: str) -> str:
        """redis-cli in the cache container as the role's admin user, over TLS; the
        password goes in on stdin (--askpass), never on a command line or in the output."""
        return self.dexec(
            "cache",
            "redis-cli", "--no-auth-warning", "--askpass", "--user", "admin",
            "--tls", "--cacert", "/etc/redis/tls/ca.crt", "-h", "127.0.0.1", *args,
            stdin=REDIS_ADMIN_PASSWORD.read_text(),
        )  # fmt: skip

    def get(
        self, path: str | None = None, headers: Mapping[str, str] | None = None
    ) -> requests.Response | None:
        """One GET (path: the drill's); None on a connection error or timeout."""
        url = self.settings.base_url + (self.settings.path if path is None else path)
        try:
            return requests.get(
                url, headers=dict(headers or {}), timeout=self.settings.timeout, verify=CA_FILE
            )
        except requests.RequestException:
            return None

    def probe(self) -> tuple[str, str]:
        """Status ("000": no answer) and X-Cache of one GET to the app (past the edge)."""
        reply = self.get(headers=PROBE_BYPASS)
        if reply is None:
            return "000", ""
        return str(reply.status_code), reply.headers.get("X-Cache", "")

    def wait_for_hit(self, seconds: float) -> bool:
        """Whether a GET to the app answers X-Cache: HIT within SECONDS."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.probe()[1] == "HIT":
                return True
            time.sleep(0.5)
        return False

    @contextmanager
    def load(self, phase: str) -> Iterator[None]:
        """The load loops of one phase, app (past the edge) and edge; the edge loop is
        paced a little (its answers take nginx alone: unpaced it would take the CPU the
        app needs). Their counts are recorded and printed when the block ends."""
        s = self.settings
        with (
            LoadLoop(s.url, s.workers, s.timeout, headers=EDGE_BYPASS, verify=str(CA_FILE)) as app,
            LoadLoop(s.url, s.workers, s.timeout, pause=0.01, verify=str(CA_FILE)) as edge,
        ):
            yield
        self.phases[phase] = phase_counts(app) | {"edge": phase_counts(edge)}
        say("    " + phase_line(phase, app, edge))

    def inject(self, fault: str, restore: Callable[[], object]) -> None:
        """Register how to undo FAULT before injecting it."""
        self._pending[fault] = restore

    def restore(self, fault: str) -> None:
        """The drill's own recovery step: undo FAULT now."""
        self._pending.pop(fault)()

    def restore_pending(self) -> list[str]:
        """Undo every fault still injected (the drill stopped early); the failures."""
        failed = []
        for fault in reversed(list(self._pending)):
            say(f"restoring {fault}")
            try:
                self._pending.pop(fault)()
            except (subprocess.CalledProcessError, OSError) as exc:
                say(f"could not restore {fault}: {_describe(exc)}")
                failed.append(fault)
        return failed


def _describe(exc: BaseException) -> str:
    if isinstance(exc, subprocess.CalledProcessError):
        detail = (exc.stderr or "").strip() or f"exit {exc.returncode}"
        return f"{' '.join(map(str, exc.cmd))}: {detail}"
    return f"{type(exc).__name__}: {exc}"


# --- the drills --------------------------------------------------------------------------


def drill_redis(stack: Stack, verdict: Verdict) -> None:
    s, unit = stack.settings, stack.settings.redis_unit
    with stack.load("before"):
        time.sleep(2)
    say("kill -9 redis-server under load, then keep it down (its unit has Restart=always)")
    with stack.load("kill"):
        time.sleep(1)
        stack.inject("redis-server", lambda: stack.dexec("cache", "systemctl", "start", unit))
        stack.dexec("cache", "systemctl", "kill", "--signal=SIGKILL", unit)
        stack.dexec("cache", "systemctl", "stop", unit)
        time.sleep(2)
    with stack.load("down"):
        time.sleep(s.hold)
    say("start redis-server again; wait for HIT under load")
    with stack.load("recovery"):
        stack.restore("redis-server")
        hit = stack.wait_for_hit(60)
        time.sleep(2)
    active = stack.dexec("cache", "systemctl", "is-active", unit, check=False) == "active"
    redis_checks(verdict, stack.phases, hit=hit, active=active)


def drill_postgres(stack: Stack, verdict: Verdict) -> None:
    s, units = stack.settings, stack.settings.pg_units
    cache = cache_settings(stack.dexec("web-1", "cat", "/etc/cachedapp/config.toml"))
    key, aged = cache_key(cache), stale_created(cache, time.time())
    with stack.load("before"):
        time.sleep(2)
    say(
        f"stop PostgreSQL ({' '.join(units)}); "
        "age the cached answer past ttl + stale-while-revalidate"
    )
    stack.inject("PostgreSQL", lambda: stack.dexec("db", "systemctl", "start", *units))
    stack.dexec("db", "systemctl", "stop", *units)
    stack.redis_admin("EVAL", AGE_SCRIPT, "1", key, str(aged))
    time.sleep(1.5)  # each worker's in-process tier may hold the fresh copy for 1 s
    with stack.load("stale"):
        time.sleep(s.hold)
    say("drop the cached answer (a cold key) while PostgreSQL is down")
    stack.redis_admin("DEL", key)
    time.sleep(1.5)
    with stack.load("cold"):
        time.sleep(3)
    json_reply = stack.get("/api/version", PROBE_BYPASS)
    html_reply = stack.get("/", PROBE_BYPASS | {"Accept": "text/html"})
    body_json = json_reply.text if json_reply is not None else ""
    body_html = html_reply.text if html_reply is not None else ""
    say(f"    cold /api/version body: {body_json.strip()}")
    say("start PostgreSQL again; the first request refills the key (MISS)")
    stack.restore("PostgreSQL")
    say("    first answer after the restart: {} {}".format(*stack.probe()))
    hit = stack.wait_for_hit(60)
    with stack.load("after"):
        time.sleep(2)
    postgres_checks(verdict, stack.phases, body_json=body_json, body_html=body_html, hit=hit)


def drill_webhost(stack: Stack, verdict: Verdict) -> None:
    s, member = stack.settings, stack.settings.member
    name = s.container(member)
    with stack.load("before"):
        time.sleep(2)
    say(f"stop the container {name} under load for {s.hold:g}s")
    with stack.load("outage"):
        time.sleep(1)
        stack.inject(name, lambda: stack.docker("start", name))
        stack.docker("stop", "-t", "10", name)
        time.sleep(s.hold)
    say(f"start {name} again; wait until it serves")
    stack.restore(name)
    for _ in range(30):  # systemd's bus comes up a moment after the container starts
        state = stack.dexec(
            member, "timeout", "90", "systemctl", "is-system-running", "--wait", check=False
        )
        if state in ("running", "degraded"):
            break
        time.sleep(1)
    served = False
    for _ in range(60):
        reply = stack.get("/api/version")
        if reply is not None and f'"served_by":"{member}"' in reply.text:
            served = True
            break
        time.sleep(0.5)
    with stack.load("after"):
        time.sleep(2)
    webhost_checks(verdict, stack.phases, member=member, served=served)


DRILLS: dict[str, Callable[[Stack, Verdict], None]] = {
    "redis": drill_redis,
    "postgres": drill_postgres,
    "webhost": drill_webhost,
}


def execute(stack: Stack, drill: Callable[[Stack, Verdict], None]) -> int:
    """Preflight, the drill, the restore of whatever it left injected, the result line."""
    s = stack.settings
    say(f"drill {s.mode} on stack {s.stack} ({s.url}), hold {s.hold:g}s, {s.workers} clients")
    status = stack.probe()[0]
    if status != "200":
        say(
            f"the stack does not answer 200 on {s.url} (got {status}): "
            "bring it up with site.yml first"
        )
        return 1
    if not stack.wait_for_hit(30):
        say(f"no HIT on {s.url} within 30 s: is the cache working?")
        return 1
    verdict = Verdict()
    aborted = ""
    try:
        drill(stack, verdict)
    except (subprocess.CalledProcessError, OSError) as exc:
        aborted = _describe(exc)
    finally:
        stack.restore_pending()  # empty unless the drill stopped before its recovery step
    if aborted:
        say(f"drill aborted: {aborted}")
        return 1
    print("drill-result: " + json.dumps(drill_result(s.mode, verdict, stack.phases)), flush=True)
    return 0 if verdict.ok else 1


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)  # unwinds through execute's restore


def main(argv: Sequence[str] | None = None) -> int:
    settings = parse_args(sys.argv[1:] if argv is None else argv)
    signal.signal(signal.SIGTERM, _terminate)
    return execute(Stack(settings), DRILLS[settings.mode])


if __name__ == "__main__":
    sys.exit(main())
