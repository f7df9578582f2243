"""docs/aws-iam-policy.json under moto's IAM enforcement (molecule/aws/iam_user.py).

The aws scenario runs entirely as a user holding only this policy; here, two
fast runs of the provision playbook as such a user: a dry run on the empty
account passes with the policy, and a real run without one action it needs
(ec2:CreateVpc) is refused at that call, after the read-only checks passed.
"""

from __future__ import annotations

import configparser
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from aws_support import ROOT, aws_playbook, flat, load_module, own_vpcs, reset_moto

POLICY = json.loads((ROOT / "docs/aws-iam-policy.json").read_text())
iam_user = load_module(ROOT / "molecule/aws/iam_user.py", "iam_user")


@pytest.fixture
def as_deployer(aws_env: dict[str, str], tmp_path: Path) -> Iterator[Any]:
    """A function (without=...) -> the environment of a user with only the policy."""

    def make(*without: str) -> dict[str, str]:
        credentials = tmp_path / "credentials"
        iam_user.setup(aws_env["AWS_URL"], credentials, set(without))
        env = {k: v for k, v in aws_env.items() if not k.startswith("AWS_ACCESS_KEY_ID")}
        env.pop("AWS_SECRET_ACCESS_KEY", None)
        env.update({"AWS_SHARED_CREDENTIALS_FILE": str(credentials), "AWS_PROFILE": "deployer"})
        return env

    yield make
    iam_user.enforce(aws_env["AWS_URL"], "inf")
    reset_moto(aws_env["AWS_URL"])


def provision(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return aws_playbook(env, "provision", "--extra-vars=@molecule/aws/vars/test.yml", *args)


def test_policy_is_valid_and_scoped() -> None:
    sids = [s["Sid"] for s in POLICY["Statement"]]
    assert len(sids) == len(set(sids))
    actions = [
        a
        for s in POLICY["Statement"]
        for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])
    ]
    assert len(actions) == len(set(actions)), "an action is listed twice"
    assert not [a for a in actions if "*" in a], "no wildcard actions"
    slr = next(s for s in POLICY["Statement"] if s["Action"] == "iam:CreateServiceLinkedRole")
    assert all("aws-service-role/" in r for r in slr["Resource"])
    assert set(slr["Condition"]["StringEquals"]["iam:AWSServiceName"]) == {
        "elasticloadbalancing.amazonaws.com",
        "rds.amazonaws.com",
        "elasticache.amazonaws.com",
    }


def test_enforcement_refuses_an_unknown_key(as_deployer: Any, aws_env: dict[str, str]) -> None:
    """moto really enforces: the scenario's default fake key is refused."""
    as_deployer()
    proc = provision({**aws_env}, "--check")
    assert proc.returncode != 0
    assert "InvalidClientTokenId" in proc.stdout + proc.stderr or "AuthFailure" in proc.stdout


def test_dry_run_passes_with_the_policy(as_deployer: Any) -> None:
    proc = provision(as_deployer(), "--check")
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-3000:]
    assert "Check mode: VPC cachedapp-ci does not exist" in output


def test_one_action_removed_is_refused(as_deployer: Any) -> None:
    env = as_deployer("ec2:CreateVpc")
    proc = provision(env)
    output = flat(proc.stdout + proc.stderr)
    assert proc.returncode != 0, output[-3000:]
    assert "Create the VPC" in output
    assert "UnauthorizedOperation" in output or "not authorized" in output, output[-3000:]
    # The read-only checks before it (AMI, key pair, RDS) were allowed.
    assert "Pick the AMI from the SSM public parameter" in output
    keys = configparser.ConfigParser()
    keys.read(env["AWS_SHARED_CREDENTIALS_FILE"])
    checker = boto3.client(
        "ec2", endpoint_url=env["AWS_URL"], region_name=env["AWS_REGION"], **keys["checker"]
    )
    assert own_vpcs(checker) == []
