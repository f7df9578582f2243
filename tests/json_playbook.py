"""Run a throw-away playbook against local hosts and read ansible's JSON report.

Shared by the tests that evaluate the roles' own expressions and checks on the
controller (tests/test_inputs_roles.py, tests/test_datastore_firewalld.py).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from aws_support import ansible_playbook

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent


def run_json_playbook(
    work: Path,
    hosts: dict[str, dict[str, Any]],
    play: str,
    timeout: float = 300,
    args: Sequence[str] = (),
) -> subprocess.CompletedProcess[str]:
    """ansible-playbook PLAY over HOSTS (an inventory written to WORK) with the
    project's ansible.cfg, the JSON stdout callback and only callbacks that print
    nothing, and ARGS (e.g. --diff); stdout is the JSON report."""
    (work / "hosts.yml").write_text(yaml.safe_dump({"all": {"hosts": hosts}}))
    (work / "play.yml").write_text(play)
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env |= {
        "PATH": f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}",
        "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
        "ANSIBLE_STDOUT_CALLBACK": "ansible.builtin.json",
        # Only callbacks that print nothing (the project's print timings).
        "ANSIBLE_CALLBACKS_ENABLED": "ansible.builtin.junit",
        "JUNIT_OUTPUT_DIR": str(work / "junit"),
        "ANSIBLE_CACHE_PLUGIN": "ansible.builtin.memory",
        "ANSIBLE_LOCAL_TEMP": str(work / "tmp"),
        "ANSIBLE_NOCOLOR": "1",
    }
    return ansible_playbook(
        env,
        "-i",
        str(work / "hosts.yml"),
        str(work / "play.yml"),
        *args,
        timeout=int(timeout),
    )
