"""The data-tier roles' firewalld rules (tasks/firewall.yml), computed without a host.

One ansible-playbook run on the controller evaluates the roles' own expressions
(vars/main.yml: ``__<role>_firewalld_*``) for a few fake hosts, each with the role's
inputs and what the read-only probes would have registered (``firewall-cmd --state``,
``--list-rich-rules``). The rules must be written exactly as firewalld lists them
(firewall-cmd --list-rich-rules prints ``rule family="ipv4" source address="..."
port port="..." protocol="tcp" accept``, addresses as given): the stale-rule check
compares strings, and the module's own idempotence check (ansible.posix.firewalld
normalizes through firewalld's Rich_Rule) would otherwise differ from ours.
The molecule scenario ``monitoring`` runs the same tasks against a live firewalld.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from json_playbook import run_json_playbook

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent

PLAY = """
- name: Evaluate the firewalld expressions of the data-tier roles
  hosts: all
  gather_facts: false
  tasks:
    - name: The roles' internal variables
      ansible.builtin.include_vars:
        file: "{{ repo_root }}/roles/{{ role }}/vars/main.yml"

    - name: Show what tasks/firewall.yml would use
      ansible.builtin.debug:
        msg:
          running: "{{ lookup('ansible.builtin.vars', '__' ~ role ~ '_firewalld_running') }}"
          scope: "{{ lookup('ansible.builtin.vars', '__' ~ role ~ '_firewalld_scope') }}"
          rules: "{{ lookup('ansible.builtin.vars', '__' ~ role ~ '_firewalld_rules') }}"
          stale: "{{ lookup('ansible.builtin.vars', '__' ~ role ~ '_firewalld_stale') }}"
"""


def rule(family: int, source: str, port: int, tail: str = "accept") -> str:
    return (
        f'rule family="ipv{family}" source address="{source}"'
        f' port port="{port}" protocol="tcp" {tail}'
    )


def listed(runtime: list[str], permanent: list[str]) -> dict[str, Any]:
    """What the role registers from firewall-cmd [--permanent] --list-rich-rules."""
    return {"results": [{"stdout_lines": runtime}, {"stdout_lines": permanent}]}


RUNNING = {"rc": 0, "stdout": "running"}
NOT_RUNNING = {"rc": 252, "stdout": "not running"}
NOT_INSTALLED = {"rc": 2, "failed": True, "msg": "[Errno 2] No such file or directory"}
SKIPPED = {"skipped": True, "changed": False}

HOSTS: dict[str, dict[str, Any]] = {
    # Web hosts and a monitor host (also a web host's address: listed once);
    # a former client's rule in both sets, another port's and a logging rule
    # (not the role's) left alone.
    "pg_running": {
        "role": "postgresql",
        "postgresql_port": 5433,
        "postgresql_allowed_clients": ["10.0.1.15", "10.0.2.0/24", "fd00::1"],
        "postgresql_monitor_clients": ["10.0.9.9", "10.0.1.15"],
        "postgresql_firewalld_mode": "auto",
        "postgresql_firewalld_zone": "",
        "__postgresql_firewalld_state": RUNNING,
        "__postgresql_firewalld_listed": listed(
            [
                rule(4, "10.0.1.15/32", 5433),
                rule(4, "10.0.3.3/32", 5433),
                rule(4, "10.0.3.3/32", 6379),
                rule(4, "10.0.4.4/32", 5433, 'log prefix="pg" accept'),
            ],
            [rule(4, "10.0.3.3/32", 5433), rule(6, "fd00::2/128", 5433)],
        ),
    },
    "pg_stopped_zone": {
        "role": "postgresql",
        "postgresql_port": 5432,
        "postgresql_allowed_clients": ["10.0.1.15"],
        "postgresql_monitor_clients": [],
        "postgresql_firewalld_mode": "required",
        "postgresql_firewalld_zone": "internal",
        "__postgresql_firewalld_state": NOT_RUNNING,
    },
    "pg_absent": {
        "role": "postgresql",
        "postgresql_port": 5432,
        "postgresql_allowed_clients": [],
        "postgresql_monitor_clients": [],
        "postgresql_firewalld_mode": "auto",
        "postgresql_firewalld_zone": "",
        "__postgresql_firewalld_state": NOT_INSTALLED,
    },
    "pg_disabled": {
        "role": "postgresql",
        "postgresql_port": 5432,
        "postgresql_allowed_clients": ["10.0.1.15"],
        "postgresql_monitor_clients": [],
        "postgresql_firewalld_mode": "disabled",
        "postgresql_firewalld_zone": "",
        "__postgresql_firewalld_state": SKIPPED,
    },
    "redis_running": {
        "role": "redis",
        "redis_port": 6380,
        "redis_allowed_clients": ["10.0.1.15", "10.0.9.9/32", "FD00:0::1"],
        "redis_firewalld_mode": "auto",
        "redis_firewalld_zone": "trusted",
        "__redis_firewalld_state": RUNNING,
        "__redis_firewalld_listed": listed(
            [rule(4, "10.0.1.15/32", 6380), rule(4, "10.0.7.7", 6380)],
            [rule(4, "10.0.1.15/32", 5432)],
        ),
    },
}


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    work = tmp_path_factory.mktemp("firewalld")
    hosts = {
        name: {"ansible_connection": "local", "repo_root": str(ROOT), **values}
        for name, values in HOSTS.items()
    }
    proc = run_json_playbook(work, hosts, PLAY)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads(proc.stdout)
    task = result["plays"][0]["tasks"][-1]
    return {host: task["hosts"][host]["msg"] for host in HOSTS}


def test_one_rule_per_client_network_in_firewalld_listing_form(
    evaluated: dict[str, dict[str, Any]],
) -> None:
    """The app's and the exporter's hosts, each network once, IPv4 and IPv6."""
    pg = evaluated["pg_running"]
    assert pg["running"] is True
    assert pg["scope"] == []
    assert pg["rules"] == [
        rule(4, "10.0.1.15/32", 5433),
        rule(4, "10.0.2.0/24", 5433),
        rule(4, "10.0.9.9/32", 5433),
        rule(6, "fd00::1/128", 5433),
    ]
    redis = evaluated["redis_running"]
    assert redis["running"] is True
    assert redis["scope"] == ["--zone=trusted"]
    assert redis["rules"] == [
        rule(4, "10.0.1.15/32", 6380),
        rule(4, "10.0.9.9/32", 6380),
        rule(6, "fd00::1/128", 6380),
    ]


def test_stale_rules_are_former_clients_of_this_port_only(
    evaluated: dict[str, dict[str, Any]],
) -> None:
    """From the runtime and the permanent set, once each; another port's rule and a
    rule of another form (logging) are not the role's to remove."""
    assert evaluated["pg_running"]["stale"] == [
        rule(4, "10.0.3.3/32", 5433),
        rule(6, "fd00::2/128", 5433),
    ]
    assert evaluated["redis_running"]["stale"] == [rule(4, "10.0.7.7", 6380)]


@pytest.mark.parametrize("host", ["pg_stopped_zone", "pg_absent", "pg_disabled"])
def test_skipped_where_firewalld_does_not_run_or_is_disabled(
    evaluated: dict[str, dict[str, Any]], host: str
) -> None:
    assert evaluated[host]["running"] is False
    assert evaluated[host]["stale"] == []


def test_zone_scope(evaluated: dict[str, dict[str, Any]]) -> None:
    assert evaluated["pg_stopped_zone"]["scope"] == ["--zone=internal"]
    assert evaluated["pg_stopped_zone"]["rules"] == [rule(4, "10.0.1.15/32", 5432)]


@pytest.mark.parametrize("role", ["postgresql", "redis"])
def test_firewall_tasks_are_read_only_until_firewalld_runs(role: str) -> None:
    """The probes change nothing and run in check mode; every change is an
    ansible.posix.firewalld task inside the block that needs a running firewalld,
    permanent and immediate, in the configured zone."""
    tasks = yaml.safe_load((ROOT / "roles" / role / "tasks" / "firewall.yml").read_text())
    probes = [t for t in tasks if "ansible.builtin.command" in t]
    assert probes
    for probe in probes:
        assert probe["changed_when"] is False
        assert probe["check_mode"] is False
    (block,) = [t for t in tasks if "block" in t]
    assert block["when"] == f"__{role}_firewalld_running"
    changes = [t for t in block["block"] if "ansible.posix.firewalld" in t]
    assert len(changes) == 3
    for task in changes:
        args = task["ansible.posix.firewalld"]
        assert args["permanent"] is True
        assert args["immediate"] is True
        assert args["zone"] == f"{{{{ {role}_firewalld_zone | default(omit, true) }}}}"
    main = yaml.safe_load((ROOT / "roles" / role / "tasks" / "main.yml").read_text())
    assert any(t.get("ansible.builtin.import_tasks") == "firewall.yml" for t in main)
