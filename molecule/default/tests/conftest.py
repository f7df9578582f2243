"""Shared fixtures: the scenario's stack, its hosts and a way to run its playbooks.

The verifier runs on the docker host with molecule's environment: ANSIBLE_CONFIG,
ANSIBLE_ROLES_PATH, MOLECULE_* and the stack overrides CGC_LOCAL_* (molecule.yml).
Hosts are reached through the same inventory the playbooks use (testinfra's
ansible backend maps community.docker.docker onto its docker backend).
"""

from __future__ import annotations

import json
import os
import re
import ssl
import subprocess
import time
import tomllib
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import testinfra

PROJECT = Path(os.environ.get("MOLECULE_PROJECT_DIRECTORY", Path(__file__).parents[3]))
INVENTORY = Path(os.environ["MOLECULE_INVENTORY_FILE"]).parent
STACK = os.environ.get("CGC_LOCAL_STACK", "cgc")
HTTP_PORT = int(os.environ.get("CGC_LOCAL_HTTP_PORT", "8080"))
HTTPS_PORT = int(os.environ.get("CGC_LOCAL_HTTPS_PORT", "8443"))
DISTRO = os.environ.get("CGC_LOCAL_DISTRO", "debian12")

# Per base image: the data tier's service names, nginx's group.
SERVICES = {
    "debian12": {"db": "postgresql", "cache": "redis-server", "web_group": "www-data"},
    "al2023": {"db": "postgresql", "cache": "redis6", "web_group": "nginx"},
    "centos9": {"db": "postgresql", "cache": "redis", "web_group": "nginx"},
    "rocky9": {"db": "postgresql", "cache": "redis", "web_group": "nginx"},
}

CONFIG = "/etc/cachedapp/config.toml"
CURRENT = "/opt/cachedapp/current"


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: str
    seconds: float


def pki_dir() -> Path:
    """The controller's private CA (role pki) in the project's state directory
    (local_state_dir, inventory/local/group_vars/all/local.yml)."""
    return PROJECT / ".ansible" / "pki"


def tls_context() -> ssl.SSLContext:
    """Verifies the stack's certificates against the local CA only."""
    return ssl.create_default_context(cafile=str(pki_dir() / "ca.crt"))


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


# The web hosts' nginx answers /, /app and /api/version from its edge microcache
# (X-Edge-Cache); a request with a Cookie header bypasses it (X-Edge-Cache: BYPASS)
# and reaches the app, so checks of the app's own cache (X-Cache) send this.
EDGE_BYPASS = {"Cookie": "cgc-verify=edge-bypass"}


def http_get(
    path: str, timeout: float = 30, scheme: str = "https", headers: dict[str, str] | None = None
) -> Response:
    """GET through the published front (HTTPS, verified against the local CA;
    or plain HTTP, redirects not followed), timed on the client."""
    port = HTTPS_PORT if scheme == "https" else HTTP_PORT
    request = urllib.request.Request(f"{scheme}://127.0.0.1:{port}{path}", headers=headers or {})
    opener = urllib.request.build_opener(
        urllib.request.HTTPSHandler(context=tls_context()), _NoRedirect()
    )
    start = time.perf_counter()
    try:
        with opener.open(request, timeout=timeout) as reply:
            body = reply.read().decode("utf-8", "replace")
            status, headers = reply.status, dict(reply.headers)
    except urllib.error.HTTPError as exc:
        body = exc.read().decode("utf-8", "replace")
        status, headers = exc.code, dict(exc.headers)
    return Response(status, headers, body, time.perf_counter() - start)


def _inventory() -> dict[str, Any]:
    """ansible-inventory --list. A source that fails to parse (the docker API slow
    to answer on a loaded machine) fails the listing instead of leaving the
    containers' groups empty; it is tried again a few times."""
    env = {**os.environ, "ANSIBLE_INVENTORY_ANY_UNPARSED_IS_FAILED": "true"}
    for attempt in range(4):
        proc = subprocess.run(
            ["ansible-inventory", "-i", str(INVENTORY), "--list"],
            capture_output=True,
            text=True,
            env=env,
            check=False,
        )
        if proc.returncode == 0:
            return _plain(json.loads(proc.stdout))
        time.sleep(2 + 3 * attempt)
    raise RuntimeError(f"ansible-inventory failed:\n{proc.stderr[-3000:]}")


def _plain(value: Any) -> Any:
    """Drop ansible-inventory's {"__ansible_unsafe": ...} wrappers."""
    if isinstance(value, dict):
        if set(value) == {"__ansible_unsafe"}:
            return value["__ansible_unsafe"]
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


INVENTORY_DATA = _inventory()


def hosts(group: str) -> list[Any]:
    """The group's containers (from the inventory), over testinfra's docker backend.

    The ansible backend would run every command through an Ansible module
    (about 2 s each); `docker exec` takes a tenth of a second.
    """
    names = INVENTORY_DATA.get(group, {}).get("hosts", [])
    for name in names:
        assert INVENTORY_DATA["_meta"]["hostvars"][name]["ansible_connection"] == (
            "community.docker.docker"
        )
    return [testinfra.get_host(f"docker://{name}") for name in names]


@pytest.fixture(scope="session")
def services() -> dict[str, str]:
    return SERVICES[DISTRO]


@pytest.fixture(scope="session")
def web_hosts() -> list[Any]:
    found = hosts("web")
    assert found, "no web host in the inventory"
    return found


@pytest.fixture(scope="session")
def web(web_hosts: list[Any]) -> Any:
    return web_hosts[0]


@pytest.fixture(scope="session")
def db() -> Any:
    (host,) = hosts("db")
    return host


@pytest.fixture(scope="session")
def cache() -> Any:
    (host,) = hosts("cache")
    return host


@pytest.fixture(scope="session")
def inventory_vars() -> dict[str, Any]:
    """Host variables of every host, as ansible-inventory computes them."""
    return INVENTORY_DATA["_meta"]["hostvars"]


@pytest.fixture(scope="session")
def app_config(web: Any) -> dict[str, Any]:
    """The app's live config (the credentials the app really uses)."""
    return tomllib.loads(web.check_output(f"cat {CONFIG}"))


def live_release(web: Any) -> str:
    return web.check_output(f"readlink -f {CURRENT}")


# The app's in-process tier (cache.local_ttl, 1 s by default) may answer from a
# worker's copy for that long after the key left Redis.
LOCAL_TIER_SECONDS = 1.0


def flush_cache(web: Any) -> int:
    """Delete the app's cache keys with the app's own Redis credentials, then wait
    out the workers' in-process copies, so the next request is really cold."""
    script = (
        "import redis, tomllib\n"
        f"c = tomllib.load(open('{CONFIG}', 'rb'))['redis']\n"
        "r = redis.Redis.from_url(c['url'], username=c['username'] or None,"
        " password=c['password'] or None)\n"
        "keys = list(r.scan_iter(match='cachedapp:*', count=1000))\n"
        "print(r.delete(*keys) if keys else 0)\n"
    )
    deleted = int(web.check_output(f"{CURRENT}/venv/bin/python -c {_quote(script)}"))
    time.sleep(LOCAL_TIER_SECONDS + 0.2)
    return deleted


def _quote(text: str) -> str:
    return "'" + text.replace("'", "'\"'\"'") + "'"


@dataclass
class PlaybookRun:
    rc: int
    output: str

    def recap(self, host: str) -> dict[str, int]:
        """The PLAY RECAP counters of one host (summed over the plays' recap)."""
        match = re.search(rf"^\s*{re.escape(host)}\s*:\s*(.+)$", self.output, re.MULTILINE)
        assert match, f"no recap line for {host}:\n{self.output[-3000:]}"
        return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", match.group(1))}


def run_playbook(playbook: Path, *args: str, timeout: int = 600) -> PlaybookRun:
    proc = subprocess.run(
        ["ansible-playbook", "-i", str(INVENTORY), str(playbook), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=PROJECT,
        check=False,
        env={**os.environ, "ANSIBLE_NOCOLOR": "1", "ANSIBLE_FORCE_COLOR": "0"},
    )
    return PlaybookRun(proc.returncode, proc.stdout + proc.stderr)


@pytest.fixture(scope="session")
def playbook() -> Any:
    return run_playbook
