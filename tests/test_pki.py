"""The pki role on the controller: a CA and host certificates, modes, a re-run
that changes nothing, and renewal of a certificate within pki_renew_days of
its expiry (issue 9). Controller only: the "host" is an inventory entry with a
private_ip_address, as the local target's containers are."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aws_support import load_module
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent

PLAY = """
- name: The pki role for one fake host
  hosts: localhost
  gather_facts: false
  roles:
    - role: pki
"""

INVENTORY = """
all:
  hosts:
    localhost:
      ansible_connection: local
      ansible_python_interpreter: "{{ ansible_playbook_python }}"
    web-9:
      private_ip_address: 10.99.0.9
  children:
    web:
      hosts:
        web-9:
"""


@pytest.fixture
def pki(tmp_path: Path) -> Any:
    (tmp_path / "play.yml").write_text(PLAY)
    (tmp_path / "hosts.yml").write_text(INVENTORY)
    # Not the project's ansible.cfg: no ARA record or fact cache for a test run.
    (tmp_path / "ansible.cfg").write_text("[defaults]\nlocal_tmp = .ansible/tmp\n")
    pki_dir = tmp_path / "pki"

    def run(**extra: Any) -> int:
        """One run; its number of changed tasks on the controller."""
        values = {
            "pki_dir": str(pki_dir),
            "pki_hosts": ["web-9"],
            "pki_group_sans": {"web": ["DNS:web"]},
        }
        proc = subprocess.run(
            [
                str(VENV_BIN / "ansible-playbook"),
                "-i",
                str(tmp_path / "hosts.yml"),
                str(tmp_path / "play.yml"),
                "-e",
                json.dumps(values | extra),
            ],
            capture_output=True,
            text=True,
            check=False,
            cwd=tmp_path,
            env={
                **os.environ,
                "PATH": f"{VENV_BIN}:{os.environ['PATH']}",
                "ANSIBLE_ROLES_PATH": str(ROOT / "roles"),
                "ANSIBLE_STDOUT_CALLBACK": "ansible.builtin.json",
                "ANSIBLE_CONFIG": str(tmp_path / "ansible.cfg"),
            },
        )
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        return json.loads(proc.stdout)["stats"]["localhost"]["changed"]

    run.dir = pki_dir  # type: ignore[attr-defined]
    return run


def certificate(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def test_ca_and_host_certificate_then_a_rerun_changes_nothing(pki: Any) -> None:
    assert pki() > 0
    folder = pki.dir
    assert (folder / "ca.crt").stat().st_mode & 0o777 == 0o644
    for key in ("ca.key", "web-9.key"):
        assert (folder / key).stat().st_mode & 0o777 == 0o600
    host = certificate(folder / "web-9.crt")
    names = host.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert {str(ip) for ip in names.get_values_for_type(x509.IPAddress)} == {
        "10.99.0.9",
        "127.0.0.1",
    }
    assert set(names.get_values_for_type(x509.DNSName)) == {"web-9", "localhost", "web"}
    host.verify_directly_issued_by(certificate(folder / "ca.crt"))
    assert pki() == 0


def test_a_certificate_near_expiry_is_issued_again(pki: Any) -> None:
    # Issued for 10 days: already within the 30-day renewal window.
    pki(pki_cert_valid_days=10)
    first = certificate(pki.dir / "web-9.crt")
    assert first.not_valid_after_utc - datetime.now(UTC) < timedelta(days=11)
    assert pki(pki_cert_valid_days=10) > 0
    assert certificate(pki.dir / "web-9.crt").serial_number != first.serial_number
    # A full lifetime again: renewed once more, then left alone.
    assert pki() > 0
    renewed = certificate(pki.dir / "web-9.crt")
    assert renewed.not_valid_after_utc - datetime.now(UTC) > timedelta(days=300)
    assert pki() == 0
    assert certificate(pki.dir / "web-9.crt").serial_number == renewed.serial_number


def test_a_ca_near_expiry_is_issued_again_and_so_is_every_host(pki: Any) -> None:
    pki(pki_ca_valid_days=10)
    ca, host = certificate(pki.dir / "ca.crt"), certificate(pki.dir / "web-9.crt")
    assert pki(pki_ca_valid_days=10) > 0
    renewed = certificate(pki.dir / "ca.crt")
    assert renewed.serial_number != ca.serial_number
    assert certificate(pki.dir / "web-9.crt").serial_number != host.serial_number
    certificate(pki.dir / "web-9.crt").verify_directly_issued_by(renewed)


@pytest.mark.parametrize(
    ("content", "days", "due"),
    [(None, 30, True), (b"not a certificate", 30, True), (10, 30, True), (10, 5, False)],
)
def test_the_renewal_rule(
    tmp_path: Path, content: bytes | int | None, days: int, due: bool
) -> None:
    """Missing, unreadable, or valid for fewer than `days` more days: due."""
    rule = load_module(ROOT / "roles/pki/filter_plugins/pki_renewal.py", "pki_renewal")
    path = tmp_path / "host.crt"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:  # a certificate valid for `content` more days
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "t")])
        now = datetime.now(UTC)
        cert = (
            x509.CertificateBuilder(subject_name=name, issuer_name=name)
            .public_key(key.public_key())
            .serial_number(1)
            .not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=content))
            .sign(key, hashes.SHA256())
        )
        path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    assert rule.pki_renewal_due(str(path), days) is due
