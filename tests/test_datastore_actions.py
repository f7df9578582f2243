"""The data-tier roles' shared steps: plugins/action/firewalld_clients.py (the port
open to its clients only, where firewalld runs) and plugins/action/module_stream.py
(on EL, the server from its AppStream module stream).

The pure parts are tested directly; the actions themselves run once in one
ansible-playbook run on the controller, each fake host with its own fake
``firewall-cmd``, ``rpm`` and ``dnf`` (a per-host shell that puts them first on
PATH), which log their calls. The firewalld rules must be written exactly as
firewalld lists them (firewall-cmd --list-rich-rules prints ``rule family="ipv4"
source address="..." port port="..." protocol="tcp" accept``): the stale-rule
check compares strings. The molecule scenario ``monitoring`` runs the firewalld
step against a live firewalld.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from aws_support import load_module
from json_playbook import run_json_playbook

ROOT = Path(__file__).resolve().parent.parent
firewalld = load_module(ROOT / "plugins/action/firewalld_clients.py", "firewalld_clients")
stream = load_module(ROOT / "plugins/action/module_stream.py", "module_stream")
inputs = load_module(ROOT / "plugins/filter/inputs.py", "datastore_inputs")


def rule(family: int, source: str, port: int, tail: str = "accept") -> str:
    return (
        f'rule family="ipv{family}" source address="{source}"'
        f' port port="{port}" protocol="tcp" {tail}'
    )


def listed(runtime: list[str], permanent: list[str]) -> dict[str, Any]:
    """What the action reads from firewall-cmd [--permanent] --list-rich-rules."""
    return {"results": [{"stdout_lines": runtime}, {"stdout_lines": permanent}]}


# --- firewalld_clients: pure parts ---------------------------------------------------


def test_one_rule_per_client_network_and_former_clients_of_this_port_removed() -> None:
    """PostgreSQL's call: the app's and the exporter's hosts (one also a web host:
    listed once), IPv4 and IPv6; from the runtime and the permanent set, each stale
    rule once; another port's rule and a rule of another form (logging) stay."""
    allowed, monitor = ["10.0.1.15", "10.0.2.0/24", "fd00::1"], ["10.0.9.9", "10.0.1.15"]
    clients = [*allowed, *monitor]
    rules = inputs.firewalld_rich_rules(clients, 5433)
    assert rules == [
        rule(4, "10.0.1.15/32", 5433),
        rule(4, "10.0.2.0/24", 5433),
        rule(4, "10.0.9.9/32", 5433),
        rule(6, "fd00::1/128", 5433),
    ]
    found = listed(
        [
            rule(4, "10.0.1.15/32", 5433),
            rule(4, "10.0.3.3/32", 5433),
            rule(4, "10.0.3.3/32", 6379),
            rule(4, "10.0.4.4/32", 5433, 'log prefix="pg" accept'),
        ],
        [rule(4, "10.0.3.3/32", 5433), rule(6, "fd00::2/128", 5433)],
    )
    stale = inputs.firewalld_stale_rules(found, clients, 5433)
    assert stale == [rule(4, "10.0.3.3/32", 5433), rule(6, "fd00::2/128", 5433)]
    calls = firewalld.changes(rules, stale, 5433, "")
    assert [c.get("rich_rule", c.get("port")) for c in calls] == [*rules, *stale, "5433/tcp"]
    assert [c["state"] for c in calls] == ["enabled"] * 4 + ["disabled"] * 3
    for call in calls:
        assert call["permanent"] is True
        assert call["immediate"] is True
        assert "zone" not in call  # firewalld's default zone


def test_redis_rules_in_a_zone() -> None:
    clients = ["10.0.1.15", "10.0.9.9/32", "FD00:0::1"]
    rules = inputs.firewalld_rich_rules(clients, 6380)
    assert rules == [
        rule(4, "10.0.1.15/32", 6380),
        rule(4, "10.0.9.9/32", 6380),
        rule(6, "fd00::1/128", 6380),
    ]
    found = listed(
        [rule(4, "10.0.1.15/32", 6380), rule(4, "10.0.7.7", 6380)], [rule(4, "10.0.1.15/32", 5432)]
    )
    assert inputs.firewalld_stale_rules(found, clients, 6380) == [rule(4, "10.0.7.7", 6380)]
    assert firewalld.scope("trusted") == ["--zone=trusted"]
    assert firewalld.scope("") == []
    assert {c["zone"] for c in firewalld.changes(rules, [], 6380, "trusted")} == {"trusted"}


def test_the_refusal_names_the_mode_and_firewalld_s_answer() -> None:
    message = firewalld.not_running("redis", {"rc": 252, "stdout": "not running\n"})
    assert message == (
        'redis role: redis_firewalld_mode is "required", but firewalld does not run'
        " (firewall-cmd --state: not running)"
    )
    absent = firewalld.not_running("redis", {"rc": 127, "stdout": "", "stderr": "sh: not found"})
    assert absent.endswith("(firewall-cmd --state: sh: not found)")
    assert firewalld.not_running("redis", {"rc": 1}).endswith("(firewall-cmd --state: no answer)")


# --- module_stream: pure parts -------------------------------------------------------


def test_stream_decision() -> None:
    assert stream.decide("", False, "") == "skip"
    assert stream.decide("", True, "(none)") == "skip"
    assert stream.decide("redis:7", False, "") == "enable"
    assert stream.decide("redis:7", True, "redis:7:9030020230807:abc") == "ok"
    for label in ("(none)", "redis:6:903:abc", "redis:70:1:x"):
        with pytest.raises(ValueError, match=re.escape(label)):
            stream.decide("redis:7", True, label)


# --- both actions, run ------------------------------------------------------------

FAKE = """#!/bin/sh
echo "$(basename "$0") $*" >>"{log}"
case "$*" in
{cases}
esac
"""

# host -> (variables, {command: shell case branches})
HOSTS: dict[str, tuple[dict[str, Any], dict[str, str]]] = {
    # A fake that is "not found": never the controller's own firewalld.
    "fw_absent": (
        {"cgc_step": "firewalld", "redis_firewalld_mode": "auto"},
        {"firewall-cmd": '*) echo "sh: firewall-cmd: not found" >&2; exit 127 ;;'},
    ),
    "fw_auto_stopped": (
        {"cgc_step": "firewalld", "redis_firewalld_mode": "auto"},
        {"firewall-cmd": '--state) echo "not running"; exit 252 ;;'},
    ),
    "fw_stopped": (
        {"cgc_step": "firewalld", "redis_firewalld_mode": "required"},
        {"firewall-cmd": '--state) echo "not running"; exit 252 ;;'},
    ),
    "fw_disabled": (
        {"cgc_step": "firewalld", "redis_firewalld_mode": "disabled"},
        {"firewall-cmd": "*) exit 0 ;;"},
    ),
    "stream_none": ({"cgc_step": "stream", "cgc_stream": ""}, {"rpm": "*) exit 0 ;;"}),
    "stream_ok": (
        {"cgc_step": "stream"},
        {"rpm": "*) printf 'redis:7:9030020230807:abc' ;;"},
    ),
    "stream_other": (
        {"cgc_step": "stream"},
        {"rpm": "*) printf '(none)' ;;"},
    ),
    "stream_enable": (
        {"cgc_step": "stream"},
        {
            "rpm": "*) echo 'package redis is not installed'; exit 1 ;;",
            "dnf": "*) echo 'Enabling module streams: redis 7' ;;",
        },
    ),
    "stream_enabled_before": (
        {"cgc_step": "stream"},
        {"rpm": "*) exit 1 ;;", "dnf": "*) echo 'Nothing to do.' ;;"},
    ),
    "stream_enable_check": (
        {"cgc_step": "stream", "cgc_check": True},
        {"rpm": "*) exit 1 ;;", "dnf": "*) echo 'Enabling' ;;"},
    ),
}

PLAY = """
- name: Run the data tier's shared steps
  hosts: all
  gather_facts: false
  tasks:
    - name: Open the port
      firewalld_clients:
        role: redis
        clients: [10.0.1.15]
      when: cgc_step == 'firewalld'

    - name: Take the package from its stream
      module_stream:
        role: redis
        package: redis
        stream: "{{ cgc_stream | default('redis:7') }}"
        other_stream_hint: switch it first
      check_mode: "{{ cgc_check | default(false) }}"
      when: cgc_step == 'stream'
"""


@pytest.fixture(scope="module")
def ran(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    work = tmp_path_factory.mktemp("datastore_actions")
    hosts = {}
    for host, (variables, commands) in HOSTS.items():
        bin_dir = work / host
        bin_dir.mkdir()
        for command, cases in commands.items():
            fake = bin_dir / command
            fake.write_text(FAKE.format(log=work / f"{host}.log", cases=cases))
            fake.chmod(0o755)
        shell = bin_dir / "sh"
        shell.write_text(f'#!/bin/sh\nPATH="{bin_dir}:$PATH" exec /bin/sh "$@"\n')
        shell.chmod(0o755)
        hosts[host] = {
            "ansible_connection": "local",
            "ansible_python_interpreter": "{{ ansible_playbook_python }}",
            "ansible_shell_executable": str(shell),
            "redis_port": 6379,
            "redis_firewalld_zone": "",
            **variables,
        }
    proc = run_json_playbook(work, hosts, PLAY)
    report = json.loads(proc.stdout)
    results = {}
    for task in report["plays"][0]["tasks"]:
        for host, result in task["hosts"].items():
            if not (result.get("skipped") and "false_condition" in result):
                results[host] = result
    logs = {
        host: (work / f"{host}.log").read_text().splitlines()
        if (work / f"{host}.log").exists()
        else []
        for host in HOSTS
    }
    return {"results": results, "logs": logs, "output": proc.stdout + proc.stderr}


def test_firewalld_absent_or_disabled_is_skipped(ran: dict[str, Any]) -> None:
    for host in ("fw_absent", "fw_auto_stopped", "fw_disabled"):
        result = ran["results"][host]
        assert result.get("skipped") is True, result
        assert not result.get("changed")
    assert ran["logs"]["fw_disabled"] == []  # disabled: firewalld never asked
    for host in ("fw_absent", "fw_auto_stopped"):  # auto: asked once, nothing else
        assert ran["logs"][host] == ["firewall-cmd --state"], ran["logs"][host]


def test_firewalld_required_fails_where_it_does_not_run(ran: dict[str, Any]) -> None:
    result = ran["results"]["fw_stopped"]
    assert result["failed"] is True
    assert result["msg"] == (
        'redis role: redis_firewalld_mode is "required", but firewalld does not run'
        " (firewall-cmd --state: not running)"
    )
    assert ran["logs"]["fw_stopped"] == ["firewall-cmd --state"]


def test_stream_steps(ran: dict[str, Any]) -> None:
    results, logs = ran["results"], ran["logs"]
    assert results["stream_none"]["skipped"] is True
    assert logs["stream_none"] == []  # no stream: not even the query
    assert results["stream_ok"]["changed"] is False
    assert "failed" not in results["stream_ok"]
    assert logs["stream_ok"] == ["rpm -q --queryformat %{MODULARITYLABEL} redis"]
    assert results["stream_other"]["failed"] is True
    assert results["stream_other"]["msg"] == (
        "redis role: redis is installed, but not from the module stream redis:7"
        " (its label: (none)); switch it first"
    )
    assert results["stream_enable"]["changed"] is True
    assert logs["stream_enable"][-1] == "dnf -y module enable redis:7"
    assert results["stream_enabled_before"]["changed"] is False
    # Check mode: the query runs, the enable does not.
    assert results["stream_enable_check"]["changed"] is False
    assert [line.split()[0] for line in logs["stream_enable_check"]] == ["rpm"]


@pytest.mark.parametrize("role", ["postgresql", "redis"])
def test_the_roles_use_the_shared_steps(role: str) -> None:
    """main.yml opens the port through firewalld_clients after the installation;
    install.yml takes the server from its stream before packages_present installs it."""
    main = yaml.safe_load((ROOT / "roles" / role / "tasks" / "main.yml").read_text())
    steps = [t.get("ansible.builtin.import_tasks") or next(iter(set(t) - {"name"})) for t in main]
    assert steps.index("firewalld_clients") == steps.index("install.yml") + 1
    (task,) = [t for t in main if "firewalld_clients" in t]
    assert task["firewalld_clients"]["role"] == role
    install = yaml.safe_load((ROOT / "roles" / role / "tasks" / "install.yml").read_text())
    assert install[0]["module_stream"] == {
        "role": role,
        "package": f"{{{{ __{role}_packages[0] }}}}",
        "stream": f"{{{{ __{role}_module_stream }}}}",
        "other_stream_hint": install[0]["module_stream"]["other_stream_hint"],
    }
    assert "packages_present" in install[1]
