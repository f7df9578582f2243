"""Shared pytest fixtures: the repository root, a session ARA history, moto's server.

ara_history (autouse, whole session): the ansible-playbook runs of the unit tests
read the project's ansible.cfg, which records every run with ARA; ARA_BASE_DIR
points them at a temporary directory, so they never land in the operator's history
(.ansible/ara/) or an ARA server named in the environment (ARA_DATABASE_NAME,
ARA_API_SERVER and ARA_API_CLIENT are unset for the session). Tests that set their
own ARA_* variables (test_ara_callback, test_drift_timer) keep them.

moto_server starts `moto_server` on a free loopback port once per session
(with the AMI fixture of molecule/aws); `moto` resets it before each test and
`aws_env` is an environment pointing boto3/Ansible at it with fake
credentials (real AWS configuration files are never read); `aws_module_env`
is the same for a moto emptied once per test module.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from aws_support import reset_moto

REPO_ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session", autouse=True)
def ara_history(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The session's own ARA directory (ARA_BASE_DIR) for every run the tests start."""
    base = tmp_path_factory.mktemp("ara-session")
    with pytest.MonkeyPatch.context() as patch:
        for name in ("ARA_DATABASE_NAME", "ARA_API_SERVER", "ARA_API_CLIENT"):
            patch.delenv(name, raising=False)
        patch.setenv("ARA_BASE_DIR", str(base))
        yield base


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def moto_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of a moto_server this session started (and stops)."""
    port = _free_port()
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    env = {**os.environ, "MOTO_AMIS_PATH": str(REPO_ROOT / "molecule/aws/amis.json")}
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(VENV_BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(f"{url}/moto-api/", timeout=1)
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"moto_server did not start: {log.read_text()}")
            time.sleep(0.2)
    yield url
    proc.terminate()
    proc.wait(timeout=10)


def aws_environment(url: str) -> dict[str, str]:
    """Environment for boto3, Ansible and inventory/aws against moto at ``url``,
    with fake credentials (real AWS configuration files are never read)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "ANSIBLE_"))}
    env.update(
        {
            "PATH": f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}",
            "AWS_URL": url,
            "AWS_REGION": "us-east-1",
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            "CACHEDAPP_ENV": "ci",
            "ANSIBLE_CONFIG": str(REPO_ROOT / "ansible.cfg"),
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_FORCE_COLOR": "0",
        }
    )
    return env


@pytest.fixture
def moto(moto_server: str) -> str:
    """The session's moto, emptied for this test."""
    reset_moto(moto_server)
    return moto_server


@pytest.fixture
def aws_env(moto: str) -> dict[str, str]:
    """aws_environment() for this test's (emptied) moto."""
    return aws_environment(moto)


@pytest.fixture(scope="module")
def aws_module_env(moto_server: str) -> dict[str, str]:
    """aws_environment() for a moto emptied once for the whole test module."""
    reset_moto(moto_server)
    return aws_environment(moto_server)
