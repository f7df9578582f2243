"""firewalld on the data hosts (prepare.yml starts it, as EL9 ships it): the postgresql
and redis roles open 5432/6379 to their clients only (firewalld_clients, plugins/action/).

The clients are the web host (the app) and the monitor host (the exporters); any other
host of the stack's network is turned away by firewalld. Runs before test_monitoring.py
(file order), while every service is up.
"""

from __future__ import annotations

import json
import re
import socket
import time

import pytest
import requests
from conftest import (
    CA_FILE,
    EDGE_BYPASS,
    HTTPS_PORT,
    ROOT,
    STACK,
    container,
    docker,
    playbook,
)

PORTS = {"db": 5432, "cache": 6379}
CONFIG = "/etc/cachedapp/config.toml"
CURRENT = "/opt/cachedapp/current"
# The app's in-process tier (cache.local_ttl, 1 s by default).
LOCAL_TIER_SECONDS = 1.0


def address(member: str) -> str:
    """The member's address on the stack's network (docker inspect, like the inventory)."""
    networks = json.loads(
        docker("inspect", "--format", "{{json .NetworkSettings.Networks}}", container(member))
    )
    return networks[f"{STACK}-net"]["IPAddress"]


def rule(client: str, port: int) -> str:
    """A rich rule as firewall-cmd --list-rich-rules prints it."""
    source = f'rule family="ipv4" source address="{client}/32"'
    return f'{source} port port="{port}" protocol="tcp" accept'


def firewall_cmd(member: str, *argv: str) -> list[str]:
    return docker("exec", container(member), "firewall-cmd", *argv).splitlines()


def tcp_connects(source: list[str], target: str, port: int) -> bool:
    """Whether a TCP connect from `source` (a docker command prefix running bash) to
    target:port succeeds within 3 s (firewalld rejects: refused at once)."""
    probe = f"timeout 3 bash -c 'exec 3<>/dev/tcp/{target}/{port}' && echo open || echo closed"
    out = docker(*source, "bash", "-c", probe).strip().splitlines()
    assert out, probe
    assert out[-1] in {"open", "closed"}, out
    return out[-1] == "open"


def host_connects(target: str, port: int) -> bool:
    """Whether the docker host (the bridge gateway) gets a TCP connection within 3 s."""
    try:
        socket.create_connection((target, port), timeout=3).close()
    except OSError:
        return False
    return True


def recap(output: str, host: str) -> dict[str, int]:
    """The PLAY RECAP counters of one host (its first recap line; molecule's
    environment may force colours, so escape sequences go first)."""
    plain = re.sub(r"\x1b\[[0-9;]*m", "", output)
    match = re.search(rf"^\s*{re.escape(host)}\s*:\s*(.+)$", plain, re.MULTILINE)
    assert match, f"no recap line for {host}:\n{plain[-3000:]}"
    return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", match.group(1))}


@pytest.fixture(scope="module")
def clients() -> list[str]:
    return [address("web-1"), address("monitor")]


@pytest.mark.parametrize("member", ["db", "cache"])
def test_firewalld_runs_on_the_data_hosts(member: str) -> None:
    assert firewall_cmd(member, "--state") == ["running"]


@pytest.mark.parametrize("member", ["db", "cache"])
def test_the_port_is_open_to_the_clients_only(member: str, clients: list[str]) -> None:
    """One rich rule per client (web host, monitor host), in the runtime and the
    permanent set alike; the port is not open to every source."""
    port = PORTS[member]
    expected = sorted(rule(c, port) for c in clients)
    assert sorted(firewall_cmd(member, "--list-rich-rules")) == expected
    assert sorted(firewall_cmd(member, "--permanent", "--list-rich-rules")) == expected
    assert f"{port}/tcp" not in " ".join(firewall_cmd(member, "--list-ports"))


@pytest.mark.parametrize("member", ["db", "cache"])
def test_clients_connect_and_another_host_is_turned_away(member: str) -> None:
    """The web and monitor hosts connect; a short-lived container on the same network
    (an address no role lists) does not, nor does the docker host (the bridge
    gateway), which reached PostgreSQL's port before (pg_hba refused only the login)."""
    target, port = address(member), PORTS[member]
    assert tcp_connects(["exec", container("web-1")], target, port)
    assert tcp_connects(["exec", container("monitor")], target, port)
    outsider = [
        "run", "--rm", "--name", f"{STACK}-outsider-{member}", "--network", f"{STACK}-net",
        "cgc/debian12-systemd:latest",
    ]  # fmt: skip
    assert not tcp_connects(outsider, target, port)
    assert not host_connects(target, port)


def test_the_web_tier_reaches_postgresql_and_redis() -> None:
    """Through firewalld: a cold request is a MISS (the slow query in PostgreSQL, the
    answer stored in Redis), the next a HIT (from Redis)."""
    script = (
        "import redis, tomllib\n"
        f"c = tomllib.load(open('{CONFIG}', 'rb'))['redis']\n"
        "r = redis.Redis.from_url(c['url'], username=c['username'] or None,"
        " password=c['password'] or None)\n"
        "keys = list(r.scan_iter(match='cachedapp:*', count=1000))\n"
        "print(r.delete(*keys) if keys else 0)\n"
    )
    docker("exec", container("web-1"), f"{CURRENT}/venv/bin/python", "-c", script)
    time.sleep(LOCAL_TIER_SECONDS + 0.2)
    url = f"https://127.0.0.1:{HTTPS_PORT}/"
    miss = requests.get(url, timeout=30, verify=str(CA_FILE), headers=EDGE_BYPASS)
    hit = requests.get(url, timeout=30, verify=str(CA_FILE), headers=EDGE_BYPASS)
    assert (miss.status_code, miss.headers.get("X-Cache")) == (200, "MISS"), miss.headers
    assert "db;" in miss.headers["Server-Timing"], miss.headers
    assert (hit.status_code, hit.headers.get("X-Cache")) == (200, "HIT"), hit.headers


def test_a_run_removes_the_rules_of_former_clients(clients: list[str]) -> None:
    """Drift: a rule for an address no role lists (a former client) and the port opened
    to every source, both runtime and permanent, are gone after a run of the data tier;
    the clients' rules stay."""
    former = address("web-1").rsplit(".", 1)[0] + ".250"
    for member, port in PORTS.items():
        for scope in ([], ["--permanent"]):
            firewall_cmd(member, *scope, f"--add-rich-rule={rule(former, port)}")
            firewall_cmd(member, *scope, f"--add-port={port}/tcp")
        assert rule(former, port) in firewall_cmd(member, "--list-rich-rules")
    # --check reports the drift and changes nothing (the probes are read-only).
    checked = playbook(ROOT / "playbooks/datastores.yml", "--check")
    for member, port in PORTS.items():
        assert recap(checked, container(member))["changed"] >= 1, member
        assert rule(former, port) in firewall_cmd(member, "--permanent", "--list-rich-rules")
    # The run (the roles' firewalld_clients step) removes them and says so.
    out = playbook(ROOT / "playbooks/datastores.yml")
    for member in PORTS:
        assert recap(out, container(member))["changed"] >= 1, member
    for member, port in PORTS.items():
        expected = sorted(rule(c, port) for c in clients)
        for scope in ([], ["--permanent"]):
            assert sorted(firewall_cmd(member, *scope, "--list-rich-rules")) == expected, scope
            assert firewall_cmd(member, *scope, "--list-ports") in ([], [""]), scope
