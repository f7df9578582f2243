"""The data-tier roles' templated files (tasks/configure.yml): secrets stay hidden.

Each role templates its files in loops whose items carry their own ``no_log`` and
``diff`` (the TLS private key: neither logged nor shown; Redis's ACL file, password
hashes: never shown). The first tests check that every secret file is marked so;
the last one that Ansible honours the per-item keywords: one ansible-playbook run on
the controller templates a "key" and an "ACL" with --diff into a temporary
directory, and the secret text must appear nowhere in the JSON report.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from json_playbook import run_json_playbook

ROOT = Path(__file__).resolve().parent.parent
NO_LOG = "{{ item.no_log | default(false) }}"
DIFF = "{{ item.diff | default(ansible_diff_mode) }}"
# Template source -> what the file must never show: everything (no_log) or its diff.
SECRETS = {
    "postgresql": {"tls-key.pem.j2": "no_log"},
    "redis": {"tls-key.pem.j2": "no_log", "users.acl.j2": "diff"},
}


def template_tasks(role: str) -> list[dict[str, Any]]:
    tasks = yaml.safe_load((ROOT / "roles" / role / "tasks" / "configure.yml").read_text())
    return [t for t in tasks if "ansible.builtin.template" in t]


@pytest.mark.parametrize("role", sorted(SECRETS))
def test_secret_files_are_never_logged_or_shown(role: str) -> None:
    seen = {}
    for task in template_tasks(role):
        for item in task.get("loop", []):
            hidden = SECRETS[role].get(item["src"])
            if hidden:
                seen[item["src"]] = hidden
                assert task["no_log"] == NO_LOG, task["name"]
                assert task["diff"] == DIFF, task["name"]
                assert item["diff"] is False, item["src"]
                assert item.get("no_log", False) is (hidden == "no_log"), item["src"]
            else:
                assert "no_log" not in item, item["src"]
    assert seen == SECRETS[role]


@pytest.mark.parametrize("role", sorted(SECRETS))
def test_every_template_is_validated_or_needs_no_validation(role: str) -> None:
    """The configuration files pass the server's own parser before they replace the
    live ones (nftables' for Redis's rule set)."""
    validated = {
        "postgresql": {"postgresql.conf.j2", "dropin.conf.j2", "pg_hba.conf.j2"},
        "redis": {"users.acl.j2", "redis.conf.j2", "redis.nft.j2"},
    }[role]
    items = [item for task in template_tasks(role) for item in task["loop"]]
    assert {item["src"] for item in items if "validate" in item} == validated
    for task in template_tasks(role):
        assert task["ansible.builtin.template"]["validate"] == (
            "{{ item.validate | default(omit) }}"
        )


PLAY = """
- name: Template a secret per item, with --diff
  hosts: all
  gather_facts: false
  tasks:
    - name: Template the files
      ansible.builtin.template:
        src: "{{ work }}/{{ item.src }}"
        dest: "{{ work }}/out-{{ item.src }}"
        mode: "0600"
      loop:
        - {src: plain.j2}
        - {src: key.j2, no_log: true, diff: false}
        - {src: acl.j2, diff: false}
      no_log: "NO_LOG"
      diff: "DIFF"
""".replace("NO_LOG", NO_LOG).replace("DIFF", DIFF)


def test_ansible_hides_the_secret_items_only(tmp_path: Path) -> None:
    for name in ("plain", "key", "acl"):
        (tmp_path / f"{name}.j2").write_text(f"{name}-text-7f2e\n")
        (tmp_path / f"out-{name}.j2").write_text("old\n")
    hosts = {
        "local": {
            "ansible_connection": "local",
            "ansible_python_interpreter": "{{ ansible_playbook_python }}",
            "work": str(tmp_path),
        }
    }
    proc = run_json_playbook(tmp_path, hosts, PLAY, args=["--diff"])
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "key-text-7f2e" not in proc.stdout + proc.stderr
    assert "acl-text-7f2e" not in proc.stdout + proc.stderr
    assert "plain-text-7f2e" in proc.stdout  # the diff of a plain file is shown
    results = json.loads(proc.stdout)["plays"][0]["tasks"][0]["hosts"]["local"]["results"]
    assert [r.get("censored") is not None for r in results] == [False, True, False]
    assert all(r["changed"] for r in results)
    for name in ("plain", "key", "acl"):
        assert (tmp_path / f"out-{name}.j2").read_text() == f"{name}-text-7f2e\n"
