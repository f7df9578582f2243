#!/usr/bin/env python3
"""Fault drills against a running local stack, under load.

Two load loops run through each phase: "app" requests carry a Cookie header, which takes
them past nginx's edge microcache to the app (its X-Cache is what the checks name); "edge"
requests go through the edge cache as shipped (X-Edge-Cache; every one must succeed too).
Each phase prints its counts: total, 2xx, non-2xx, errors (connection errors, timeouts)
and the cache headers. Single probes bypass the edge. The stack ends as site.yml leaves it
(every service running), also when a step fails or the drill is interrupted (Ctrl-C, TERM).

  redis     redis-server killed (SIGKILL) under load and kept down: every answer 2xx
            (BYPASS, from the database); started again: caching resumes (HIT)
  postgres  PostgreSQL stopped: the cached answer is served STALE (stale-if-error) with no
            failed response; a cold key answers 503 with a clear message (the edge keeps
            serving its stale copy: 200); started again: MISS, then HIT
  webhost   one web container stopped under load (needs the lb, CGC_LOCAL_WEB_COUNT >= 2):
            every answer 2xx from the others; started again: it serves again

Environment, as the playbooks': CGC_LOCAL_STACK (default cgc), CGC_LOCAL_HTTPS_PORT (8443),
CGC_LOCAL_WEB_COUNT (1); the units: CGC_DRILL_REDIS_UNIT (redis-server), CGC_DRILL_PG_UNITS
("postgresql postgresql@15-main"). Output ends with one line `drill-result: {json}` (every
phase's counts, each check); exit 0 when every check passed, 1 when one failed (or the
drill could not run), 2 on usage.
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
from functools import partial
from pathlib import Path
from typing import Any

import requests
from cachedapp.config import SCHEMA
from cgc_load import EDGE_BYPASS, LoadLoop

ROOT = Path(__file__).resolve().parents[1]
CA_FILE = ROOT / ".ansible" / "pki" / "ca.crt"  # the local CA (role pki) signs the front
REDIS_ADMIN_PASSWORD = ROOT / ".ansible" / "secrets" / "redis_admin_password"
# The cached value is {"c": created, "v": ...}: an older "c" makes it stale, so every
# request tries the (stopped) database and must fall back to it.
AGE_SCRIPT = """local v = redis.call('GET', KEYS[1]); if not v then return 0 end;
local d = cjson.decode(v); d['c'] = tonumber(ARGV[1]);
redis.call('SET', KEYS[1], cjson.encode(d), 'KEEPTTL'); return 1"""
OPTIONS = (  # flag, type, default, help
    ("--hold", float, 12.0, "seconds each fault phase runs under load (default 12: with the "
     "local stack's 5 s slow_version() a BYPASS answer takes ~5 s)"),
    ("--workers", int, 4, "concurrent clients of each load loop, app and edge (default 4)"),
    ("--path", str, "/api/version", "URL path under load"),
    ("--member", str, None, "webhost: the web container to stop (default: the last)"),
    ("--timeout", float, 20.0, "per-request timeout of the load loop (default 20)"),
)  # fmt: skip

Counts = dict[str, Any]
Checks = list[tuple[str, bool | None]]  # (name, passed); None: a note, not a check


def say(message: str) -> None:
    print(f"{time.strftime('%H:%M:%S')}  {message}", flush=True)


def parse_args(argv: Sequence[str], environ: Mapping[str, str] = os.environ) -> Stack:
    description, epilog = __doc__.split("\n\n", 1)
    parser = argparse.ArgumentParser(
        prog="drill.py",
        description=description,
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("mode", choices=("redis", "postgres", "webhost"))
    for flag, kind, default, text in OPTIONS:
        parser.add_argument(flag, type=kind, default=default, help=text)
    args = parser.parse_args(argv)
    if min(args.hold, args.workers, args.timeout) <= 0:
        parser.error("--hold, --workers and --timeout must be above 0")
    try:
        port = int(environ.get("CGC_LOCAL_HTTPS_PORT", "8443"))
        web_count = int(environ.get("CGC_LOCAL_WEB_COUNT", "1"))
    except ValueError as exc:
        parser.error(f"CGC_LOCAL_HTTPS_PORT / CGC_LOCAL_WEB_COUNT: {exc}")
    if args.mode == "webhost" and web_count < 2:
        parser.error("webhost needs 2+ web hosts behind the lb (CGC_LOCAL_WEB_COUNT)")
    return Stack(
        **vars(args) | {"member": args.member or f"web-{web_count}"},
        stack=environ.get("CGC_LOCAL_STACK", "cgc"),
        base_url=f"https://127.0.0.1:{port}",
        redis_unit=environ.get("CGC_DRILL_REDIS_UNIT", "redis-server"),
        pg_units=tuple(environ.get("CGC_DRILL_PG_UNITS", "postgresql postgresql@15-main").split()),
    )


def phase_counts(loop: LoadLoop) -> Counts:
    totals = {"total": loop.total, "2xx": loop.ok, "non_2xx": loop.non_2xx, "errors": loop.errors}
    by_value = {"status": loop.statuses, "x_cache": loop.cache, "x_edge_cache": loop.edge}
    counts = {k: {str(v): n for v, n in sorted(c.items())} for k, c in by_value.items()}
    rest = {"error_kinds": dict(loop.error_kinds), "seconds": round(loop.seconds, 1)}
    return totals | counts | rest


def phase_line(phase: str, app: LoadLoop, edge: LoadLoop) -> str:
    def line(loop: LoadLoop, values: Mapping[str, int]) -> str:
        shown = " ".join(f"{k}={v}" for k, v in sorted(values.items())) or "-"
        totals = f"total={loop.total} 2xx={loop.ok} non-2xx={loop.non_2xx} errors={loop.errors}"
        return f"{totals} {shown}"

    return (
        f"{phase:<9} app: {line(app, app.cache)} (X-Cache) | edge: "
        f"{line(edge, edge.edge)} (X-Edge-Cache)  ({app.seconds:.1f} s)"
    )


def no_failure(counts: Counts) -> bool:
    return counts["non_2xx"] == 0 and counts["errors"] == 0


def only(counts: Counts, field: str, value: str) -> bool:
    return counts["total"] > 0 and counts[field].get(value, 0) == counts["total"]


def edge_checks(phases: Mapping[str, Counts], *names: str) -> Checks:
    """The edge loop of each phase named: every answer 2xx (a stale copy when the app
    fails), and, over those phases, answers from the edge cache itself (HIT) - unless
    the stack runs without it (no X-Edge-Cache at all)."""
    edges = [phases[name]["edge"] for name in names]
    checks: Checks = [
        (f"{name}: edge: no failed response", edge["total"] > 0 and no_failure(edge))
        for name, edge in zip(names, edges, strict=True)
    ]
    if sum(edge["total"] - edge["x_edge_cache"].get("-", 0) for edge in edges) == 0:
        return [*checks, ("  (no X-Edge-Cache: the edge cache is off)", None)]
    hits = sum(edge["x_edge_cache"].get("HIT", 0) for edge in edges)
    return [*checks, ("edge: answered from the edge cache (HIT)", hits > 0)]


def redis_checks(p: Mapping[str, Counts], *, hit: bool, active: bool) -> Checks:
    return [
        ("kill: no failed response", no_failure(p["kill"])),
        ("down: no failed response", no_failure(p["down"])),
        ("down: answered BYPASS", only(p["down"], "x_cache", "BYPASS")),
        ("recovery: no failed response", no_failure(p["recovery"])),
        *edge_checks(p, "kill", "down", "recovery"),
        ("recovery: caching resumed (HIT)", hit),
        ("redis-server active", active),
    ]


def postgres_checks(
    p: Mapping[str, Counts], *, body_json: str, body_html: str, hit: bool
) -> Checks:
    return [
        ("stale: no failed response", no_failure(p["stale"])),
        ("stale: answered STALE", only(p["stale"], "x_cache", "STALE")),
        ("cold: 503 only", only(p["cold"], "status", "503")),
        ("cold: clear JSON body", "database is unavailable" in body_json.partition('"error"')[2]),
        ("cold: clear HTML body", "database is unavailable" in body_html),
        ("after: caching resumed (HIT)", hit),
        ("after: no failed response", no_failure(p["after"])),
        *edge_checks(p, "stale", "cold", "after"),
    ]


def webhost_checks(p: Mapping[str, Counts], *, member: str, served: bool) -> Checks:
    return [
        ("outage: no failed response", no_failure(p["outage"])),
        (f"after: {member} serves again", served),
        ("after: no failed response", no_failure(p["after"])),
        *edge_checks(p, "outage", "after"),
    ]


def cache_facts(config_toml: str, now: float) -> tuple[str, int, float]:
    """From web-1's config: the cached item's key, a created time older than ttl +
    stale-while-revalidate, and how long a worker may keep its own copy (local_ttl, and
    0.5 s more). The app's defaults (cachedapp.config.SCHEMA) fill in what the file leaves
    out; not the app's loader: the file names CA files of the host, not of this one."""
    table = tomllib.loads(config_toml).get("cache", {})
    c = {k: kind(table.get(k, d)) for (s, k), (kind, d, _) in SCHEMA.items() if s == "cache"}
    aged = int(now) - int(c["ttl"]) - int(c["stale_while_revalidate"]) - 5
    return f"{c['namespace']}:v{c['key_version']}:{{slow_version}}", aged, c["local_ttl"] + 0.5


def until(test: Callable[[], bool], seconds: float, pause: float = 0.5) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if test():
            return True
        time.sleep(pause)
    return False


def _describe(exc: BaseException) -> str:
    if isinstance(exc, subprocess.CalledProcessError):
        detail = (exc.stderr or "").strip() or f"exit {exc.returncode}"
        return f"{' '.join(map(str, exc.cmd))}: {detail}"
    return f"{type(exc).__name__}: {exc}"


@dataclass
class Stack:
    """The stack to drill and how (command line, environment); its commands, single GETs
    and load phases; the phases' counts and the restore steps of the faults injected and
    not yet undone."""

    mode: str
    hold: float
    workers: int
    path: str
    member: str
    timeout: float
    stack: str
    base_url: str
    redis_unit: str
    pg_units: tuple[str, ...]
    phases: dict[str, Counts] = field(default_factory=dict)
    pending: dict[str, Callable[[], object]] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return self.base_url + self.path

    def container(self, member: str) -> str:
        return f"{self.stack}-{member}"

    def run(self, *cmd: str, check: bool = True, stdin: str | None = None) -> str:
        proc = subprocess.run(cmd, input=stdin, capture_output=True, text=True, check=check)
        return proc.stdout.strip()

    def dexec(self, member: str, *cmd: str, check: bool = True, stdin: str | None = None) -> str:
        container = self.container(member)
        return self.run("docker", "exec", "-i", container, *cmd, check=check, stdin=stdin)

    def redis_admin(self, *args: str) -> str:
        """redis-cli as the role's admin user, over TLS; the password goes in on stdin
        (--askpass), never on a command line or in the output."""
        return self.dexec(
            "cache",
            "redis-cli", "--no-auth-warning", "--askpass", "--user", "admin",
            "--tls", "--cacert", "/etc/redis/tls/ca.crt", "-h", "127.0.0.1", *args,
            stdin=REDIS_ADMIN_PASSWORD.read_text(),
        )  # fmt: skip

    def get(self, path: str = "", headers: Mapping[str, str] = EDGE_BYPASS) -> Any:
        """One GET (path: the drill's; past the edge): the response, None when none came."""
        url = self.base_url + (path or self.path)
        try:
            return requests.get(url, headers=headers, timeout=self.timeout, verify=CA_FILE)
        except OSError:  # requests' errors are OSErrors, as is a missing CA file
            return None

    def probe(self) -> tuple[str, str]:
        """Status ("000": no answer) and X-Cache of one GET."""
        if (reply := self.get()) is None:
            return "000", ""
        return str(reply.status_code), reply.headers.get("X-Cache", "")

    def wait_for_hit(self, seconds: float) -> bool:
        return until(lambda: self.probe()[1] == "HIT", seconds)

    @contextmanager
    def load(self, phase: str, hold: float = 0.0) -> Iterator[None]:
        """The load loops of PHASE through the block and HOLD seconds more, app (past the
        edge) and edge; the edge loop is paced a little (its answers take nginx alone:
        unpaced it would take the CPU the app needs). Counts recorded and printed."""
        loop = partial(LoadLoop, self.url, self.workers, self.timeout, verify=str(CA_FILE))
        with loop(headers=EDGE_BYPASS) as app, loop(pause=0.01) as edge:
            yield
            time.sleep(hold)
        self.phases[phase] = phase_counts(app) | {"edge": phase_counts(edge)}
        say("    " + phase_line(phase, app, edge))

    def steady(self, phase: str, seconds: float) -> None:
        with self.load(phase, seconds):
            pass

    def inject(self, fault: str, restore: Callable[[], object]) -> None:
        self.pending[fault] = restore  # registered before the fault is injected

    def restore(self, fault: str) -> None:
        self.pending.pop(fault)()

    def restore_pending(self) -> None:
        for fault in reversed(list(self.pending)):
            say(f"restoring {fault}")
            try:
                self.restore(fault)
            except (subprocess.CalledProcessError, OSError) as exc:
                say(f"could not restore {fault}: {_describe(exc)}")

    # The drills, each after a 2 s "before" phase; their checks.

    def redis(self) -> Checks:
        def systemctl(*args: str, check: bool = True) -> str:
            return self.dexec("cache", "systemctl", *args, self.redis_unit, check=check)

        say("kill -9 redis-server under load, then keep it down (its unit has Restart=always)")
        with self.load("kill", 2):
            time.sleep(1)
            self.inject("redis-server", lambda: systemctl("start"))
            systemctl("kill", "--signal=SIGKILL")
            systemctl("stop")
        self.steady("down", self.hold)
        say("start redis-server again; wait for HIT under load")
        with self.load("recovery", 2):
            self.restore("redis-server")
            hit = self.wait_for_hit(60)
        active = systemctl("is-active", check=False) == "active"
        return redis_checks(self.phases, hit=hit, active=active)

    def postgres(self) -> Checks:
        units = self.pg_units
        config = self.dexec("web-1", "cat", "/etc/cachedapp/config.toml")
        key, aged, local_ttl = cache_facts(config, time.time())
        say(f"stop PostgreSQL ({' '.join(units)}); age the cached answer past ttl + "
            "stale-while-revalidate")  # fmt: skip
        self.inject("PostgreSQL", lambda: self.dexec("db", "systemctl", "start", *units))
        self.dexec("db", "systemctl", "stop", *units)
        self.redis_admin("EVAL", AGE_SCRIPT, "1", key, str(aged))
        time.sleep(local_ttl)
        self.steady("stale", self.hold)
        say("drop the cached answer (a cold key) while PostgreSQL is down")
        self.redis_admin("DEL", key)
        time.sleep(local_ttl)
        self.steady("cold", 3)
        body_json = getattr(self.get("/api/version"), "text", "")
        body_html = getattr(self.get("/", EDGE_BYPASS | {"Accept": "text/html"}), "text", "")
        say(f"    cold /api/version body: {body_json.strip()}")
        say("start PostgreSQL again; the first request refills the key (MISS)")
        self.restore("PostgreSQL")
        say("    first answer after the restart: {} {}".format(*self.probe()))
        hit = self.wait_for_hit(60)
        self.steady("after", 2)
        return postgres_checks(self.phases, body_json=body_json, body_html=body_html, hit=hit)

    def webhost(self) -> Checks:
        member, name = self.member, self.container(self.member)
        say(f"stop the container {name} under load for {self.hold:g}s")
        with self.load("outage", self.hold):
            time.sleep(1)
            self.inject(name, lambda: self.run("docker", "start", name))
            self.run("docker", "stop", "-t", "10", name)
        say(f"start {name} again; wait until it serves")
        self.restore(name)
        # systemd's bus comes up a moment after the container starts.
        booted = ("timeout", "90", "systemctl", "is-system-running", "--wait")
        until(lambda: self.dexec(member, *booted, check=False) in ("running", "degraded"), 30, 1)
        served = f'"served_by":"{member}"'
        served_ok = until(lambda: served in getattr(self.get("/api/version", {}), "text", ""), 30)
        self.steady("after", 2)
        return webhost_checks(self.phases, member=member, served=served_ok)


DRILLS = {"redis": Stack.redis, "postgres": Stack.postgres, "webhost": Stack.webhost}


def execute(s: Stack, drill: Callable[[Stack], Checks]) -> int:
    """Preflight, the drill, the restore of whatever it left injected, the result line."""
    say(f"drill {s.mode} on stack {s.stack} ({s.url}), hold {s.hold:g}s, {s.workers} clients")
    if (status := s.probe()[0]) != "200":
        say(f"the stack does not answer 200 on {s.url} (got {status}): "
            "bring it up with site.yml first")  # fmt: skip
        return 1
    if not s.wait_for_hit(30):
        say(f"no HIT on {s.url} within 30 s: is the cache working?")
        return 1
    aborted = ""
    checks: dict[str, bool] = {}
    try:
        s.steady("before", 2)
        for name, passed in drill(s):  # each check (or note) printed as it is made
            say(name if passed is None else f"  {'ok' if passed else 'FAIL':<4}  {name}")
            if passed is not None:
                checks[name] = passed
    except (subprocess.CalledProcessError, OSError) as exc:
        aborted = _describe(exc)
    finally:
        s.restore_pending()  # none unless the drill stopped before its recovery step
    if aborted:
        say(f"drill aborted: {aborted}")
        return 1
    ok, phases = all(checks.values()), dict(sorted(s.phases.items()))
    result = {"drill": s.mode, "ok": ok, "checks": checks, "phases": phases}
    print("drill-result: " + json.dumps(result), flush=True)
    return 0 if ok else 1


def main(argv: Sequence[str] | None = None) -> int:
    stack = parse_args(sys.argv[1:] if argv is None else argv)
    # SIGTERM unwinds through execute's restore, as Ctrl-C does.
    signal.signal(signal.SIGTERM, lambda signum, _: sys.exit(128 + signum))
    return execute(stack, DRILLS[stack.mode])


if __name__ == "__main__":
    sys.exit(main())
