"""The monitoring scenario's stack and Prometheus's API.

The verifier runs on the docker host with molecule's environment (molecule.yml), which
names the stack and Prometheus's published port; run outside molecule, the same
variables point the tests at any local stack with a monitor host.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests

ROOT = Path(os.environ.get("MOLECULE_PROJECT_DIRECTORY", Path(__file__).resolve().parents[3]))
SCENARIO = Path(__file__).resolve().parents[1]
STACK = os.environ.get("CGC_LOCAL_STACK", "cgc")
HTTP_PORT = int(os.environ.get("CGC_LOCAL_HTTP_PORT", "8080"))
HTTPS_PORT = int(os.environ.get("CGC_LOCAL_HTTPS_PORT", "8443"))
# The stack's private CA (role pki; this scenario runs on the project's inventory).
CA_FILE = ROOT / ".ansible" / "pki" / "ca.crt"
# A cookie takes a request past the web host's edge microcache (nginx role) to the
# app, whose own cache and counters these tests check.
EDGE_BYPASS = {"Cookie": "cgc-verify=edge-bypass"}
PROMETHEUS = f"http://127.0.0.1:{os.environ.get('CGC_LOCAL_PROMETHEUS_PORT', '9090')}"
WEB_COUNT = int(os.environ.get("CGC_LOCAL_WEB_COUNT", "1"))


def container(member: str) -> str:
    return f"{STACK}-{member}"


def docker(*argv: str, check: bool = True) -> str:
    proc = subprocess.run(["docker", *argv], capture_output=True, text=True, check=False)
    if check and proc.returncode != 0:
        raise AssertionError(f"docker {' '.join(argv)}: {proc.stdout}{proc.stderr}")
    return proc.stdout


def playbook(path: Path, *args: str) -> str:
    """ansible-playbook from the project root with the project's ansible.cfg/inventory."""
    env = {**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg")}
    proc = subprocess.run(
        ["ansible-playbook", str(path), *args],
        capture_output=True, text=True, cwd=ROOT, env=env, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    return proc.stdout


def api(path: str, **params: str) -> Any:
    answer = requests.get(f"{PROMETHEUS}/api/v1/{path}", params=params, timeout=5)
    answer.raise_for_status()
    body = answer.json()
    assert body["status"] == "success", body
    return body["data"]


def query(expr: str) -> list[dict[str, Any]]:
    return api("query", query=expr)["result"]


def alerts(name: str, state: str | None = None) -> list[dict[str, Any]]:
    """Alerts named `name` Prometheus holds now (pending or firing; resolved ones leave)."""
    found = [a for a in api("alerts")["alerts"] if a["labels"]["alertname"] == name]
    return [a for a in found if state is None or a["state"] == state]


def wait_for(what: str, check: Callable[[], Any], timeout: float = 90) -> float:
    """Seconds until check() is truthy; fails with `what` after timeout."""
    start = time.monotonic()
    last: Any = None
    while time.monotonic() - start < timeout:
        try:
            last = check()
        except (requests.RequestException, AssertionError) as exc:
            last = exc
        else:
            if last:
                return time.monotonic() - start
        time.sleep(0.5)
    raise AssertionError(f"{what}: not within {timeout:.0f} s (last: {last!r})")


def systemctl(member: str, *argv: str) -> None:
    docker("exec", container(member), "systemctl", *argv)


@pytest.fixture(scope="session")
def granted() -> None:
    """The exporters' users, granted by the redis and postgresql roles (site.yml):
    both exporters log in over TLS."""
    wait_for("redis_up == 1", lambda: [r for r in query("redis_up") if r["value"][1] == "1"])
    wait_for("pg_up == 1", lambda: [r for r in query("pg_up") if r["value"][1] == "1"])


def publish_drift(report: dict[str, Any] | None, tmp: Path) -> None:
    """Publish `report` (None: the project's own latest.json) as the monitor's drift verdict."""
    args = ["--tags", "drift_report"]
    if report is not None:
        path = tmp / "latest.json"
        path.write_text(json.dumps(report))
        args += ["-e", json.dumps({"monitoring_drift_report_file": str(path)})]
    playbook(ROOT / "playbooks/monitoring.yml", *args)
