"""The project's action plugins (plugins/action/), run by ansible-playbook on the
controller: check_inputs (the roles' input checks) and packages_present (the
roles' package installs; the install path itself runs in every molecule
scenario's fresh containers)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from json_playbook import run_json_playbook

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "plugins" / "action"))
import packages_present  # noqa: E402

LOCAL = {"localhost": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}}


def results(
    work: Path, tasks: str, vars_: str = "{}", args: tuple[str, ...] = ()
) -> list[dict[str, Any]]:
    play = f"""
- hosts: all
  gather_facts: false
  vars: {vars_}
  tasks:
{tasks}
"""
    proc = run_json_playbook(work, LOCAL, play, args=args)
    assert proc.stdout.startswith("{"), proc.stdout[-2000:] + proc.stderr[-2000:]
    report = json.loads(proc.stdout)
    return [task["hosts"]["localhost"] for task in report["plays"][0]["tasks"]]


CHECK = """
    - check_inputs:
        role: demo
        inputs: {demo_port: port, demo_ttl: {type: number, above: 0}, demo_password: secret}
        rules: {"demo_ttl must stay below demo_port": "{{ demo_ttl | float < demo_port | int }}"}
      ignore_errors: true
"""


def test_check_inputs_passes_good_values_and_reads_templated_variables(tmp_path: Path) -> None:
    (result,) = results(
        tmp_path, CHECK, "{demo_port: '{{ 5000 + 432 }}', demo_ttl: 60, demo_password: s3cret-x}"
    )
    assert not result.get("failed"), result
    assert result["changed"] is False


def test_check_inputs_lists_every_bad_value_and_rule_without_the_secret(tmp_path: Path) -> None:
    (result,) = results(tmp_path, CHECK, "{demo_port: 70000, demo_ttl: 0, demo_password: ''}")
    assert result["failed"], result
    message = result["msg"]
    assert message.startswith("demo role: invalid input: "), message
    for name in ("demo_port", "demo_ttl", "demo_password"):
        assert name in message, message
    assert "demo_ttl must stay below demo_port" not in message  # 0 < 70000 holds
    (result,) = results(
        tmp_path, CHECK, "{demo_port: 80, demo_ttl: 90, demo_password: top-Secret-77}"
    )
    assert result["msg"] == "demo role: invalid input: demo_ttl must stay below demo_port", result
    assert "top-Secret-77" not in json.dumps(result)


def test_check_inputs_takes_rules_as_a_list_with_templated_messages(tmp_path: Path) -> None:
    tasks = """
    - check_inputs:
        role: demo
        rules:
          - msg: "bad names: {{ names | reject('match', '^[A-Z]+$') | join(', ') }}"
            ok: "{{ false }}"
          - {msg: never shown, ok: "{{ true }}"}
      ignore_errors: true
"""
    (result,) = results(tmp_path, tasks, "{names: [GOOD, bad, worse]}")
    assert result["msg"] == "demo role: invalid input: bad names: bad, worse", result


def test_check_inputs_refuses_a_rule_that_is_not_a_boolean(tmp_path: Path) -> None:
    tasks = """
    - check_inputs: {role: demo, rules: {"odd": "{{ 'yes please' }}"}}
      ignore_errors: true
"""
    (result,) = results(tmp_path, tasks)
    assert result["failed"], result
    assert "is not a boolean" in result["msg"], result


@pytest.mark.parametrize("rule", ['{msg: "no ok"}', '"a bare string"'])
def test_check_inputs_refuses_a_list_rule_without_msg_and_ok(tmp_path: Path, rule: str) -> None:
    tasks = f"""
    - check_inputs: {{role: demo, rules: [{rule}]}}
      ignore_errors: true
"""
    (result,) = results(tmp_path, tasks)
    assert result["failed"], result
    assert "a rule is not {msg, ok}" in result["msg"], result


def test_package_queries_cover_every_package_manager_of_the_platforms() -> None:
    """apt hosts ask dpkg, the dnf family rpm; each query prints "ii <name>" for an
    installed package only, and each manager has its install module."""
    queries = packages_present.QUERIES
    assert queries["apt"][0] == "dpkg-query"
    assert "${db:Status-Abbrev}" in queries["apt"][-1]
    for manager in ("dnf", "dnf5", "yum"):
        assert queries[manager][:2] == ["rpm", "--query"], manager
        assert queries[manager][-1] == r"--queryformat=ii %{NAME}\n", manager
    assert set(packages_present.MODULES) == set(queries)


@pytest.mark.parametrize(
    ("rc", "stdout", "expected"),
    [
        (0, "ii bash\nii coreutils\n", True),
        (0, "ii bash\nrc nginx\n", False),  # removed, configuration left
        (1, "ii bash\n", False),  # dpkg-query: one unknown
        (0, "", False),
    ],
)
def test_all_installed_reads_the_package_query(rc: int, stdout: str, expected: bool) -> None:
    assert packages_present.all_installed(rc, stdout) is expected


def test_packages_present_asks_the_database_and_leaves_installed_packages_alone(
    tmp_path: Path,
) -> None:
    if not Path("/usr/bin/dpkg-query").exists():
        pytest.fail("this test needs a Debian controller (dpkg-query), as CI has")
    tasks = """
    - ansible.builtin.setup: {gather_subset: [min, pkg_mgr]}
    - packages_present: {name: [bash, coreutils]}
    - packages_present: {name: [bash]}
      check_mode: true
"""
    _, present, checked = results(tmp_path, tasks)
    assert present == {**present, "changed": False, "msg": "installed: bash, coreutils"}, present
    assert checked["changed"] is False, checked
    assert not checked.get("failed"), checked


def test_packages_present_refuses_an_unknown_package_manager(tmp_path: Path) -> None:
    tasks = """
    - packages_present: {name: [bash]}
      ignore_errors: true
"""
    (result,) = results(tmp_path, tasks)
    assert result["failed"], result
    assert "gather facts" in result["msg"], result
