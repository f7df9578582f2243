"""ARA records every ansible-playbook that reads the project's ansible.cfg.

ansible.cfg finds ARA's callback through plugins/callback/ara_default.py (no venv
path written anywhere). A plain run is recorded into the embedded SQLite database
(.ansible/ara/ by default; ARA_BASE_DIR moves it, as here, to keep the project's own
history clean); with ARA_API_SERVER set, the same run goes to that ARA API server -
a real `ara-manage runserver` here - and nothing is written locally. An Ansible
whose Python cannot import ara runs unrecorded, with a warning, instead of crashing.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
PLAYBOOK = """---
- name: A run to record
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Say something
      ansible.builtin.debug:
        msg: recorded
"""


def base_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARA_")}
    env |= {
        "PATH": f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}",
        "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
        "ANSIBLE_NOCOLOR": "1",
    }
    return env | extra


@pytest.fixture(scope="module")
def playbook(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("ara-run")
    inventory = base / "inventory.yml"
    inventory.write_text(
        "all:\n  hosts:\n    localhost:\n      ansible_connection: local\n"
        '      ansible_python_interpreter: "{{ ansible_playbook_python }}"\n'
    )
    path = base / "recorded.yml"
    path.write_text(PLAYBOOK)
    return path, inventory


def run_playbook(playbook: tuple[Path, Path], env: dict[str, str]) -> str:
    path, inventory = playbook
    proc = subprocess.run(
        ["ansible-playbook", "-i", str(inventory), str(path)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    return proc.stdout + proc.stderr


def ara_json(env: dict[str, str], *args: str) -> Any:
    proc = subprocess.run(
        [str(VENV_BIN / "ara"), *args, "-f", "json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return json.loads(proc.stdout)


def test_plugin_defaults_to_the_projects_database() -> None:
    """Loaded with no ARA_* settings, the callback points ARA at .ansible/ara/."""
    code = (
        "import os, runpy; runpy.run_path('plugins/callback/ara_default.py');"
        "print(os.environ['ARA_BASE_DIR']); print(os.environ.get('ARA_API_CLIENT', '-'))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=base_env(),
        capture_output=True,
        text=True,
        check=True,
    )
    assert proc.stdout.split() == [str(ROOT / ".ansible" / "ara"), "-"]


def test_plain_run_is_recorded(playbook: tuple[Path, Path], tmp_path: Path) -> None:
    env = base_env(ARA_BASE_DIR=str(tmp_path / "ara"))
    output = run_playbook(playbook, env)
    assert "Operations to perform" not in output, "Django's migration report leaked"
    recorded = ara_json(env, "playbook", "list")
    # the CLI shortens long paths: "...<tail>"
    assert [(p["path"][-30:], p["status"]) for p in recorded] == [
        (str(playbook[0])[-30:], "completed")
    ]
    shown = ara_json(env, "playbook", "show", str(recorded[0]["id"]))
    labels = {label["name"] for label in shown["labels"]}
    assert "check:False" in labels


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def ara_server(tmp_path: Path) -> Iterator[str]:
    """A real ARA API server (ara-manage runserver) on loopback, with its own database."""
    env = base_env(ARA_BASE_DIR=str(tmp_path / "server"))
    subprocess.run(
        [str(VENV_BIN / "ara-manage"), "migrate"], env=env, capture_output=True, check=True
    )
    url = f"http://127.0.0.1:{free_port()}"
    proc = subprocess.Popen(
        [str(VENV_BIN / "ara-manage"), "runserver", "--noreload", url.removeprefix("http://")],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                if requests.get(f"{url}/api/v1/", timeout=5).ok:
                    break
            except requests.ConnectionError:
                pass
            assert proc.poll() is None, "ara-manage runserver exited"
            assert time.monotonic() < deadline, f"no ARA API on {url}"
            time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_ara_api_server_setting_sends_runs_there(
    playbook: tuple[Path, Path], ara_server: str, tmp_path: Path
) -> None:
    url = ara_server
    embedded = tmp_path / "embedded"
    run_playbook(playbook, base_env(ARA_API_SERVER=url, ARA_BASE_DIR=str(embedded)))
    on_server = requests.get(f"{url}/api/v1/playbooks", timeout=30).json()["results"]
    assert [p["path"] for p in on_server] == [str(playbook[0])]
    assert not (embedded / "ansible.sqlite").exists(), "the run was also written locally"


def test_run_without_ara_goes_on_unrecorded(playbook: tuple[Path, Path], tmp_path: Path) -> None:
    """An `ara` that cannot be imported (shadowed on PYTHONPATH): a warning, no crash."""
    shadow = tmp_path / "shadow" / "ara"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError('ara is not installed here')\n")
    env = base_env(PYTHONPATH=str(shadow.parent), ARA_BASE_DIR=str(tmp_path / "ara"))
    output = run_playbook(playbook, env)
    assert "ARA cannot be imported" in output
    assert "this run is not recorded" in output
    assert not (tmp_path / "ara" / "ansible.sqlite").exists()


def test_unit_test_runs_stay_out_of_the_project_history(ara_history: Path) -> None:
    """tests/conftest.py's session ARA directory: runs started by the tests (which
    pass os.environ on) record there, not into the operator's .ansible/ara/."""
    assert os.environ["ARA_BASE_DIR"] == str(ara_history)
    assert not ara_history.is_relative_to(ROOT)
    assert not {"ARA_DATABASE_NAME", "ARA_API_SERVER"} & os.environ.keys()
