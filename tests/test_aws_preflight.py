"""Read-only checks aws_infra makes before any change, and its input filters:
the AMI from the SSM public parameter with the architecture checked against
the instance type (aws_infra_ami, on moto), the key pair of the same name
holding another key (on moto, through the provision playbook), SSH key types,
the admin CIDR's width and the RDS engine version to request."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from ansible.errors import AnsibleFilterError
from aws_support import (
    LIBRARY,
    TEST_VARS,
    aws_infra_filters,
    client,
    flat,
    module_result,
    own_vpcs,
    provision_refused,
)
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

AMI_MODULE = LIBRARY / "aws_infra_ami.py"
SSM_X86 = "ami-0d27e0fb3bac4d724"  # moto's us-east-1 al2023-ami-kernel-default-x86_64
SSM_ARM = "ami-065b1b834d2a83a7a"  # ... -arm64 (both in molecule/aws/amis.json)

f = aws_infra_filters()


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
    return module_result(AMI_MODULE, env, args)


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
    output = flat(provision_refused(env, tmp_path, {**TEST_VARS, **extra}))
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
    assert own_vpcs(ec2) == []


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
    assert own_vpcs(ec2) == []
    assert ec2.describe_key_pairs()["KeyPairs"] == []
