"""Read-only checks aws_infra makes before any change, and its input filters:
the AMI from the SSM public parameter with the architecture checked against
the instance type (aws_infra_ami, on moto), the key pair of the same name
holding another key (on moto, through the provision playbook), SSH key types,
the admin CIDR's width and the RDS engine version to request."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml
from ansible.errors import AnsibleFilterError
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

ROOT = Path(__file__).resolve().parent.parent
AMI_MODULE = ROOT / "roles/aws_infra/library/aws_infra_ami.py"
TEST_VARS = yaml.safe_load((ROOT / "molecule/aws/vars/test.yml").read_text())
SSM_X86 = "ami-0d27e0fb3bac4d724"  # moto's us-east-1 al2023-ami-kernel-default-x86_64
SSM_ARM = "ami-065b1b834d2a83a7a"  # ... -arm64 (both in molecule/aws/amis.json)


def _filters() -> Any:
    path = ROOT / "roles/aws_infra/filter_plugins/aws_infra_filters.py"
    spec = importlib.util.spec_from_file_location("aws_infra_filters_pf", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


f = _filters()


def openssh(kind: str) -> str:
    key: Any = (
        ed25519.Ed25519PrivateKey.generate()
        if kind == "ed25519"
        else rsa.generate_private_key(public_exponent=65537, key_size=2048)
    )
    line = key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    return line.decode() + " someone@example"


def client(env: dict[str, str], service: str) -> Any:
    return boto3.client(
        service,
        endpoint_url=env["AWS_URL"],
        region_name=env["AWS_REGION"],
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
    )


# --- filters --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "min_prefix", "ok"),
    [
        ("10.20.0.0/16", 16, True),
        ("203.0.113.7/32", 16, True),
        ("10.0.0.0/15", 16, False),
        ("10.0.0.0/8", 16, False),
        ("10.0.0.0/8", 0, True),
    ],
)
def test_admin_cidr_width(value: str, min_prefix: int, ok: bool) -> None:
    error = f.cidr_error(value, "aws_infra_admin_cidr", allow_default=False, min_prefix=min_prefix)
    assert (error == "") is ok
    if not ok:
        assert "aws_infra_admin_cidr_allow_wide: true" in error
        assert repr(value) in error


@pytest.mark.parametrize("kind", ["ed25519", "rsa"])
def test_rsa_and_ed25519_keys_are_accepted(kind: str) -> None:
    assert f.ssh_key_error(openssh(kind), "k") == ""


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAA=", "EC2 imports RSA"),
        ("ssh-dss AAAAB3NzaC1kc3MAAAA=", "EC2 imports RSA"),
        ("ssh-ed25519", "not one"),
        ("ssh-ed25519 not*base64", "not base64"),
        ("ssh-ed25519 AAAAB3NzaC1yc2EAAAA=", "does not hold a ssh-ed25519 key"),
    ],
)
def test_other_keys_are_refused(line: str, message: str) -> None:
    assert message in f.ssh_key_error(line, "k")


@pytest.mark.parametrize(
    ("wanted", "running", "send"),
    [
        ("", None, ""),
        ("", "16.4", ""),
        ("16", None, "16"),
        ("16", "16.4", ""),  # AWS reports 16.4 for "16": no modify on every run
        ("16.4", "16.4", ""),
        ("16.4", "16.3", "16.4"),
        ("17", "16.4", "17"),
    ],
)
def test_db_engine_version_compares_by_prefix(wanted: str, running: str | None, send: str) -> None:
    assert f.db_engine_version(wanted, running) == send


def test_db_engine_version_refuses_a_downgrade() -> None:
    with pytest.raises(AnsibleFilterError, match=r"older than the running '16\.4'"):
        f.db_engine_version("15", "16.4")
    with pytest.raises(AnsibleFilterError, match="cannot downgrade"):
        f.db_engine_version("16.2", "16.4")
    assert f.db_major_upgrade("17", "16.4") is True
    assert f.db_major_upgrade("16", "16.4") is False


@pytest.mark.parametrize("kind", ["ed25519", "rsa"])
def test_fingerprint_matches_what_ec2_reports(kind: str, aws_env: dict[str, str]) -> None:
    """moto computes fingerprints as AWS documents for RSA (MD5 of the DER key);
    for ED25519 it differs from AWS and the filter lists both forms."""
    line = openssh(kind)
    ec2 = client(aws_env, "ec2")
    reported = ec2.import_key_pair(KeyName="k", PublicKeyMaterial=line.encode())["KeyFingerprint"]
    assert reported in f.ssh_key_fingerprints(line)
    assert reported not in f.ssh_key_fingerprints(openssh(kind))


# --- aws_infra_ami against moto ---------------------------------------------------------


def run_ami(env: dict[str, str], **args: Any) -> dict[str, Any]:
    module_args = {"region": env["AWS_REGION"], "endpoint_url": env["AWS_URL"], **args}
    proc = subprocess.run(
        [sys.executable, str(AMI_MODULE), json.dumps({"ANSIBLE_MODULE_ARGS": module_args})],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=60,
    )
    return json.loads(proc.stdout)


@pytest.mark.parametrize(
    ("itype", "arch", "image", "found"),
    [("t3.micro", "", SSM_X86, "x86_64"), ("t4g.micro", "", SSM_ARM, "arm64")],
)
def test_ami_from_the_ssm_parameter_by_architecture(
    aws_env: dict[str, str], itype: str, arch: str, image: str, found: str
) -> None:
    result = run_ami(aws_env, instance_type=itype, architecture=arch)
    assert result.get("failed") is not True, result
    assert result["image_id"] == image
    assert result["architecture"] == found
    assert result["changed"] is False


def test_architecture_the_instance_type_cannot_run_is_refused(aws_env: dict[str, str]) -> None:
    result = run_ami(
        aws_env,
        instance_type="t4g.micro",
        architecture="x86_64",
        setting_names={
            "instance_type": "aws_infra_instance_type",
            "architecture": "aws_infra_ami_architecture",
        },
    )
    assert result["failed"] is True
    assert result["msg"] == (
        "aws_infra: aws_infra_ami_architecture 'x86_64' does not run on "
        "aws_infra_instance_type 't4g.micro' (it supports arm64)"
    )


def test_unknown_instance_type_is_refused(aws_env: dict[str, str]) -> None:
    result = run_ami(aws_env, instance_type="t3.bogus")
    assert result["failed"] is True
    assert "instance_type 't3.bogus' is not an instance type" in result["msg"]


# --- the provision playbook stops before any change ------------------------------------


def provision_fails(env: dict[str, str], tmp_path: Path, extra: dict[str, Any]) -> str:
    vars_file = tmp_path / "vars.json"
    vars_file.write_text(json.dumps({**TEST_VARS, **extra}))
    proc = subprocess.run(
        [
            str(Path(sys.executable).parent / "ansible-playbook"),
            *("-i", "inventory/aws", f"--extra-vars=@{vars_file}", "playbooks/provision.yml"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=300,
    )
    output = " ".join((proc.stdout + proc.stderr).split())
    assert proc.returncode != 0, output
    assert "Traceback" not in output
    return output


def test_key_pair_holding_another_key_is_not_reused(
    aws_env: dict[str, str], tmp_path: Path
) -> None:
    ec2 = client(aws_env, "ec2")
    ec2.import_key_pair(KeyName="cachedapp-ci", PublicKeyMaterial=openssh("ed25519").encode())
    output = provision_fails(aws_env, tmp_path, {})
    assert "key pair cachedapp-ci already exists with fingerprint" in output
    assert "which is not the key in aws_infra_ssh_public_key" in output
    assert [v for v in ec2.describe_vpcs()["Vpcs"] if not v["IsDefault"]] == []


def test_wrong_architecture_stops_before_any_change(
    aws_env: dict[str, str], tmp_path: Path
) -> None:
    output = provision_fails(
        aws_env,
        tmp_path,
        {"aws_infra_instance_type": "t4g.micro", "aws_infra_ami_architecture": "x86_64"},
    )
    assert "aws_infra_ami_architecture 'x86_64' does not run on aws_infra_instance_type" in output
    ec2 = client(aws_env, "ec2")
    assert [v for v in ec2.describe_vpcs()["Vpcs"] if not v["IsDefault"]] == []
    assert ec2.describe_key_pairs()["KeyPairs"] == []
