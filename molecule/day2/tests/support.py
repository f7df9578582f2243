"""Shared helpers for the day-2 tests: the scenario's stack, its playbooks, its drifts.

The verifier runs on the docker host with molecule's environment, which names the
stack (CGC_LOCAL_STACK, CGC_LOCAL_HTTPS_PORT, CGC_LOCAL_WEB_COUNT; molecule.yml).
Run outside molecule, the same variables point the tests at any local stack.
The load loop (LoadLoop, EDGE_BYPASS, warm) is scripts/cgc_load.py, which the drills
share; conftest.py puts scripts/ on the import path.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(os.environ.get("MOLECULE_PROJECT_DIRECTORY", Path(__file__).resolve().parents[3]))
STACK = os.environ.get("CGC_LOCAL_STACK", "cgc")
HTTP_PORT = int(os.environ.get("CGC_LOCAL_HTTP_PORT", "8080"))
HTTPS_PORT = int(os.environ.get("CGC_LOCAL_HTTPS_PORT", "8443"))
WEB_COUNT = int(os.environ.get("CGC_LOCAL_WEB_COUNT", "1"))
SECRETS = ROOT / ".ansible" / "secrets"
# The stack's private CA (role pki). Every requests call here verifies the
# front's certificate against it (requests reads REQUESTS_CA_BUNDLE).
CA_FILE = ROOT / ".ansible" / "pki" / "ca.crt"
os.environ["REQUESTS_CA_BUNDLE"] = str(CA_FILE)

_RECAP_LINE = re.compile(r"^(?P<host>\S+)\s*:\s*(?P<counters>(?:\w+=\d+\s*)+)$")


def base_url() -> str:
    """The stack's published HTTPS front (the lb, or web-1 with one web host)."""
    return f"https://127.0.0.1:{HTTPS_PORT}"


def container(member: str) -> str:
    """Container name of a stack member: db, cache, lb, web-1, web-2, ..."""
    return f"{STACK}-{member}"


@dataclass
class Run:
    """One ansible-playbook (or drift.sh) run: exit code, output, recap."""

    rc: int
    output: str
    seconds: float
    recap: dict[str, dict[str, int]] = field(default_factory=dict)

    def _sum(self, counter: str) -> int:
        return sum(host.get(counter, 0) for host in self.recap.values())

    @property
    def changed(self) -> int:
        return self._sum("changed")

    @property
    def failed(self) -> int:
        return self._sum("failed")

    @property
    def unreachable(self) -> int:
        return self._sum("unreachable")

    def changed_tasks(self) -> list[str]:
        """Names of the tasks and handlers that reported `changed` (from the banners)."""
        names, task = [], ""
        for line in self.output.splitlines():
            if line.startswith(("TASK [", "RUNNING HANDLER [")):
                task = line[line.index("[") + 1 : line.rfind("]")]
            elif line.startswith("changed:") and task and task not in names:
                names.append(task)
        return names


def parse_recap(output: str) -> dict[str, dict[str, int]]:
    """PLAY RECAP counters per host (the last recap in the output)."""
    recap: dict[str, dict[str, int]] = {}
    in_recap = False
    for line in output.splitlines():
        if line.startswith("PLAY RECAP"):
            in_recap, recap = True, {}
            continue
        match = _RECAP_LINE.match(line.strip()) if in_recap else None
        if match:
            counters = dict(kv.split("=") for kv in match["counters"].split())
            recap[match["host"]] = {k: int(v) for k, v in counters.items()}
    return recap


def _run(argv: list[str], env: dict[str, str] | None, timeout: float) -> Run:
    full_env = {
        **os.environ,
        "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_FORCE_COLOR": "0",
        **(env or {}),
    }
    start = time.perf_counter()
    proc = subprocess.run(
        argv,
        cwd=ROOT,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    output = proc.stdout + proc.stderr
    return Run(proc.returncode, output, time.perf_counter() - start, parse_recap(output))


def run_playbook(
    playbook: str, *args: str, env: dict[str, str] | None = None, timeout: float = 1800
) -> Run:
    """ansible-playbook PLAYBOOK ARGS from the project root against the stack (not
    recorded by ARA: molecule.yml's callbacks)."""
    return _run(["ansible-playbook", playbook, *args], env, timeout)


def run_drift(*args: str, env: dict[str, str] | None = None, timeout: float = 1800) -> Run:
    """scripts/drift.sh (site.yml in check+diff mode): rc 0 in sync, 2 drifted, 1 failed."""
    return _run([str(ROOT / "scripts" / "drift.sh"), *args], env, timeout)


def docker_exec(
    name: str,
    *cmd: str,
    check: bool = True,
    input: str | None = None,  # mirrors subprocess.run
) -> subprocess.CompletedProcess[str]:
    """Run CMD in container NAME (docker exec -i), output as text. Secrets go
    in on stdin (input), never into the command line."""
    return subprocess.run(
        ["docker", "exec", "-i", name, *cmd],
        input=input,
        capture_output=True,
        text=True,
        check=check,
    )


def psql(sql: str, dbname: str = "cachedapp") -> str:
    """SQL as postgres in the db container; unaligned, tuples only, stripped."""
    proc = docker_exec(
        container("db"),
        "runuser", "-u", "postgres", "--",
        "psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", dbname,
        input=sql,
    )  # fmt: skip
    return proc.stdout.strip()


def redis_cli(*args: str) -> str:
    """redis-cli in the cache container as the admin user, over TLS (the
    password on stdin, never on a command line)."""
    password = (SECRETS / "redis_admin_password").read_text().strip()
    proc = docker_exec(
        container("cache"),
        "redis-cli", "--no-auth-warning", "--askpass", "--user", "admin",
        "--tls", "--cacert", "/etc/redis/tls/ca.crt", "-h", "127.0.0.1", *args,
        input=password + "\n",
    )  # fmt: skip
    return proc.stdout.strip()


# --- the drift catalogue: what test_drift injects and test_history reads back ----------

WEB_FIRST = container("web-1")
# The stopped service goes on the last web host: with two or more, its detection is
# independent of the config-mode drift on web-1 (which restarts the app there too).
WEB_LAST = container(f"web-{WEB_COUNT}")
CACHE = container("cache")

APP_CONFIG = "/etc/cachedapp/config.toml"
APP_UNIT = "cachedapp"
HAND_EDIT = "# edited by hand during an incident (drift test)"
# What the redis role manages, and what the drift sets at run time.
MANAGED_POLICY = "allkeys-lru"
DRIFTED_POLICY = "noeviction"
# drift.sh's JSON report of its last run.
DRIFT_REPORT = ROOT / ".ansible" / "drift" / STACK / "latest.json"


def sh(name: str, script: str, check: bool = True) -> str:
    """A shell script in container NAME; its stdout, stripped."""
    return docker_exec(name, "sh", "-c", script, check=check).stdout.strip()


def nginx_site_file() -> str:
    """The nginx file that holds the app's site (the nginx role templates it)."""
    found = sh(WEB_FIRST, "grep -rl 'proxy_pass http://cachedapp' /etc/nginx | sort | head -n 1")
    assert found, "no nginx file on web-1 proxies to the app"
    return found


def redis_policy() -> str:
    return redis_cli("CONFIG", "GET", "maxmemory-policy").splitlines()[-1]


def slow_version_count() -> int:
    return int(psql("SELECT count(*) FROM pg_proc WHERE proname = 'slow_version'"))


@dataclass
class Drift:
    """One kind of drift: how to inject it, how to see it, which task must name it."""

    kind: str
    host: str  # regex on the inventory host (= container name) the task runs on
    task: str  # regex on "role : task name" in drift.sh's summary
    inject: Callable[[], None]
    drifted: Callable[[], bool]


_site: dict[str, str] = {}


def edit_site() -> None:
    _site["path"] = nginx_site_file()
    sh(WEB_FIRST, f"printf '%s\\n' '{HAND_EDIT}' >> {_site['path']}")


def stop_app() -> None:
    sh(WEB_LAST, f"systemctl stop {APP_UNIT}")


def open_config() -> None:
    sh(WEB_FIRST, f"chmod 0644 {APP_CONFIG}")


def drop_function() -> None:
    psql("DROP FUNCTION slow_version()")


def set_policy() -> None:
    redis_cli("CONFIG", "SET", "maxmemory-policy", DRIFTED_POLICY)


DRIFTS = [
    Drift(
        "edited nginx site",
        re.escape(WEB_FIRST),
        r"nginx : .*(nginx\.conf|site)",
        edit_site,
        lambda: HAND_EDIT in sh(WEB_FIRST, f"cat {_site['path']}"),
    ),
    Drift(
        "stopped service",
        re.escape(WEB_LAST),
        r"app : .*(start|run)",
        stop_app,
        lambda: sh(WEB_LAST, f"systemctl is-active {APP_UNIT}", check=False) != "active",
    ),
    Drift(
        "wrong file mode",
        re.escape(WEB_FIRST),
        r"app : .*config",
        open_config,
        lambda: sh(WEB_FIRST, f"stat -c %a {APP_CONFIG}") == "644",
    ),
    Drift(
        "dropped slow_version()",
        # The schema tasks run once, on whichever web host comes first.
        re.escape(container("web-")) + r"\d+",
        r"app : .*slow_version",
        drop_function,
        lambda: slow_version_count() == 0,
    ),
    Drift(
        "changed Redis setting",
        re.escape(CACHE),
        r"redis : .*running settings",
        set_policy,
        lambda: redis_policy() == DRIFTED_POLICY,
    ),
]


@dataclass
class DriftCheck:
    """The one drift.sh run over every drift in DRIFTS (conftest.py's drift_check)."""

    run: Run
    still: dict[str, bool]  # per kind: still drifted after the check
    report: dict[str, Any]  # latest.json as that run left it
    policy_after_check: str


def inject_and_check() -> DriftCheck:
    """Inject every drift, run drift.sh once; what it reported and what it left."""
    originals = {"policy": redis_policy(), "functions": str(slow_version_count())}
    assert originals == {"policy": MANAGED_POLICY, "functions": "1"}, originals
    for drift in DRIFTS:
        drift.inject()
    assert all(d.drifted() for d in DRIFTS), "an injection did not take"
    run = run_drift()
    still = {d.kind: d.drifted() for d in DRIFTS}
    # Read now: later drift.sh runs (after the heal) replace latest.json.
    report = json.loads(DRIFT_REPORT.read_text()) if DRIFT_REPORT.exists() else {}
    return DriftCheck(run, still, report, redis_policy())
