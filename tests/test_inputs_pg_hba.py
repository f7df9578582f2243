"""roles/postgresql/templates/postgresql-validate-hba.sh.j2 against PostgreSQL itself.

The validator starts a throw-away server whose hba_file is the candidate, so
the verdict is PostgreSQL's own parser's. Run here with the controller's
PostgreSQL (Debian's layout, as on the db hosts; `make test-unit` installs it
with scripts/ensure-test-tools.sh postgres), as root.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import jinja2
import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
ROLE = ROOT / "roles" / "postgresql"
DEBIAN = yaml.safe_load((ROLE / "vars" / "Debian-12.yml").read_text())
VERSION = yaml.safe_load((ROLE / "vars" / "main.yml").read_text())["__postgresql_version"]
BIN_DIR = Path(jinja2.Template(DEBIAN["__postgresql_bin_dir"]).render(__postgresql_version=VERSION))

GOOD = """\
local   all       postgres  peer
host    cachedapp  cachedapp  10.230.80.5/32  scram-sha-256
hostssl cachedapp  cachedapp  10.230.80.0/24  scram-sha-256
hostssl cachedapp  cachedapp  fd00::7/128  scram-sha-256
"""
# Each line is one of the mistakes the role's inputs could once make.
BAD = {
    2: ("host cachedapp cachedapp 10.230.80.300/32 scram-sha-256", "10.230.80.300/32"),
    3: ("host cachedapp cachedapp 10.230.80.0/33 scram-sha-256", "10.230.80.0/33"),
    4: ("host cachedapp cachedapp 10.0.0.1/32 scram", 'invalid authentication method "scram"'),
}


@pytest.fixture(scope="module")
def validator(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if os.geteuid() != 0 or not (BIN_DIR / "initdb").is_file() or not shutil.which("runuser"):
        pytest.fail(f"needs root, runuser and PostgreSQL's server binaries in {BIN_DIR}")
    source = (ROLE / "templates" / "postgresql-validate-hba.sh.j2").read_text()
    script = tmp_path_factory.mktemp("validator") / "postgresql-validate-hba"
    script.write_text(
        jinja2.Template(source, keep_trailing_newline=True).render(
            ansible_managed="test", __postgresql_bin_dir=str(BIN_DIR)
        )
    )
    script.chmod(0o755)
    return script


def check(validator: Path, tmp_path: Path, text: str) -> subprocess.CompletedProcess[str]:
    candidate = tmp_path / "pg_hba.conf.candidate"
    candidate.write_text(text)
    candidate.chmod(0o600)  # as Ansible's temporary file: postgres cannot read it
    return subprocess.run(
        [str(validator), str(candidate)], capture_output=True, text=True, timeout=120, check=False
    )


def test_a_file_postgresql_accepts_passes(validator: Path, tmp_path: Path) -> None:
    run = check(validator, tmp_path, GOOD)
    assert run.returncode == 0, run.stderr
    assert list(tmp_path.iterdir()) == [tmp_path / "pg_hba.conf.candidate"]


def test_each_refused_line_is_named(validator: Path, tmp_path: Path) -> None:
    lines = ["local all postgres peer"] + [line for line, _ in BAD.values()]
    run = check(validator, tmp_path, "\n".join(lines) + "\n")
    assert run.returncode == 1, run.stderr
    assert "could not load pg_hba.conf" in run.stderr
    for number, (_, why) in BAD.items():
        assert why in run.stderr
        assert (
            f'line {number} of configuration file "{tmp_path}/pg_hba.conf.candidate"' in run.stderr
        )


def _our_checkers() -> list[str]:
    """Processes of this machine (not of a container) running in a check's directory."""
    here = os.stat("/").st_dev
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            args = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            if "/tmp/pg-hba-check." in args and os.stat(proc / "root").st_dev == here:
                found.append(args)
        except OSError:
            continue
    return found


def test_nothing_is_left_behind(validator: Path, tmp_path: Path) -> None:
    before = set(Path("/tmp").glob("pg-hba-check.*"))
    assert check(validator, tmp_path, GOOD).returncode == 0
    assert check(validator, tmp_path, BAD[3][0] + "\n").returncode == 1
    assert set(Path("/tmp").glob("pg-hba-check.*")) <= before
    assert _our_checkers() == []


PLAY = """
- name: Replace pg_hba.conf through the validator, as the role's template task does
  hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - name: Write pg_hba.conf
      ansible.builtin.copy:
        content: "{{ hba }}"
        dest: "{{ dest }}"
        mode: "0640"
        validate: "{{ validator }} %s"
"""


def test_a_refused_file_never_replaces_the_live_one(validator: Path, tmp_path: Path) -> None:
    live = tmp_path / "pg_hba.conf"
    live.write_text(GOOD)
    (tmp_path / "play.yml").write_text(PLAY)
    extra = {"hba": GOOD + BAD[3][0] + "\n", "dest": str(live), "validator": str(validator)}
    refused = subprocess.run(
        [
            str(Path(sys.executable).parent / "ansible-playbook"),
            *("-i", "localhost,", "-e", f"ansible_python_interpreter={sys.executable}"),
            *("-e", json.dumps(extra), str(tmp_path / "play.yml")),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1"},
    )
    assert refused.returncode != 0, refused.stdout[-2000:]
    assert 'invalid CIDR mask in address "10.230.80.0/33"' in refused.stdout
    assert live.read_text() == GOOD
