"""docs/aws-iam-policy.json under moto's IAM enforcement (molecule/aws/iam_user.py).

The aws scenario runs entirely as a user holding only this policy; here, two
fast runs of the provision playbook as such a user: a dry run on the empty
account passes with the policy, and a real run without one action it needs
(ec2:CreateVpc) is refused at that call, after the read-only checks passed.
"""

from __future__ import annotations

import configparser
import importlib.util
import json
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

ROOT = Path(__file__).resolve().parent.parent
POLICY = json.loads((ROOT / "docs/aws-iam-policy.json").read_text())


def _iam_user() -> Any:
    spec = importlib.util.spec_from_file_location("iam_user", ROOT / "molecule/aws/iam_user.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


iam_user = _iam_user()


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
    reset = urllib.request.Request(f"{aws_env['AWS_URL']}/moto-api/reset", method="POST")
    urllib.request.urlopen(reset, timeout=10)


def provision(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            str(Path(sys.executable).parent / "ansible-playbook"),
            *("-i", "inventory/aws", "--extra-vars=@molecule/aws/vars/test.yml", *args),
            "playbooks/provision.yml",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=300,
    )


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
    output = " ".join((proc.stdout + proc.stderr).split())
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
    assert [v for v in checker.describe_vpcs()["Vpcs"] if not v["IsDefault"]] == []
