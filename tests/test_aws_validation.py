"""Bad input to the aws target is refused before any AWS call.

Each case runs `ansible-playbook -i inventory/aws playbooks/provision.yml`
against moto (conftest.py) with the scenario's test variables and one bad
setting, then asserts: the run failed, the message names the setting, the
bad secret is not echoed, and moto holds no resources afterwards.
Also covers the role's CIDR filters directly.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from aws_support import (
    TEST_VARS,
    aws_infra_filters,
    aws_playbook,
    client,
    flat,
    own_vpcs,
)
from aws_support import provision_refused as provision


def assert_nothing_created(env: dict[str, str]) -> None:
    ec2 = client(env, "ec2")
    assert own_vpcs(ec2) == []
    assert ec2.describe_key_pairs()["KeyPairs"] == []
    assert ec2.describe_instances()["Reservations"] == []
    assert client(env, "rds").describe_db_instances()["DBInstances"] == []
    cache = client(env, "elasticache")
    assert cache.describe_replication_groups()["ReplicationGroups"] == []
    assert client(env, "ssm").describe_parameters()["Parameters"] == []


def without(name: str) -> dict[str, Any]:
    return {k: v for k, v in TEST_VARS.items() if k != name}


# (extra vars, text the failure must contain)
BAD_INPUT = {
    "admin CIDR missing": (
        without("aws_infra_admin_cidr"),
        "missing required arguments: aws_infra_admin_cidr",
    ),
    "admin CIDR malformed": (
        {**TEST_VARS, "aws_infra_admin_cidr": "203.0.113.7/33"},
        "aws_infra_admin_cidr '203.0.113.7/33' is not a valid IPv4 network",
    ),
    "admin CIDR with host bits": (
        {**TEST_VARS, "aws_infra_admin_cidr": "203.0.113.7/24"},
        "aws_infra_admin_cidr '203.0.113.7/24' is not a valid IPv4 network",
    ),
    "admin CIDR not a CIDR": (
        {**TEST_VARS, "aws_infra_admin_cidr": "my-office"},
        "aws_infra_admin_cidr must be an IPv4 network in CIDR notation",
    ),
    "admin CIDR wider than /16": (
        {**TEST_VARS, "aws_infra_admin_cidr": "10.0.0.0/8"},
        "aws_infra_admin_cidr '10.0.0.0/8' spans 16777216 addresses (/8); give /16 or narrower, "
        "or set aws_infra_admin_cidr_allow_wide: true",
    ),
    "SSH from anywhere": (
        {**TEST_VARS, "aws_infra_admin_cidr": "0.0.0.0/0"},
        "aws_infra_admin_cidr '0.0.0.0/0' would allow the whole internet",
    ),
    "region malformed": (
        {**TEST_VARS, "aws_infra_region": "eu-west"},
        "aws_infra_region must be an AWS region like eu-west-1, got 'eu-west'",
    ),
    "instance count zero": (
        {**TEST_VARS, "aws_infra_instance_count": 0},
        "aws_infra_instance_count must be between 1 and 20, got 0",
    ),
    "instance count not a number": (
        {**TEST_VARS, "aws_infra_instance_count": "two"},
        "aws_infra_instance_count",
    ),
    "RDS password too short": (
        {**TEST_VARS, "vault_app_db_password": "Short7!"},
        "aws_infra_db_password must be 8 to 128 characters long (RDS), got 7",
    ),
    "RDS password with a forbidden character": (
        {**TEST_VARS, "vault_app_db_password": "has/slash-in-it"},
        'aws_infra_db_password may hold printable ASCII except / " @ and space',
    ),
    "Redis AUTH token too short": (
        {**TEST_VARS, "vault_app_redis_password": "short-token"},
        "aws_infra_cache_auth_token must be 16 to 128 characters long",
    ),
    "Redis AUTH token with '_' (token_urlsafe)": (
        {**TEST_VARS, "vault_app_redis_password": "urlsafe_token_0123456789"},
        "aws_infra_cache_auth_token may hold only letters, digits and ! & # $ ^ < > -",
    ),
    "Redis AUTH token with '@'": (
        {**TEST_VARS, "vault_app_redis_password": "at@token-0123456789"},
        "aws_infra_cache_auth_token may hold only letters, digits and ! & # $ ^ < > -",
    ),
    "ECDSA SSH key": (
        {
            **TEST_VARS,
            "aws_infra_ssh_public_key": (
                "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBHUC"
                "sjbIs0qNg472pCXJ3CRKzSz/cNj66QS8bROaHONwMXyfoKR4KzarlESvPicM2WeQqozrp0nxYLY+"
                "RuuDFeo= ecdsa@test"
            ),
        },
        "aws_infra_ssh_public_key is a ecdsa-sha2-nistp256 key; EC2 imports RSA (ssh-rsa) "
        "and ED25519 (ssh-ed25519) keys only",
    ),
    "SSH key whose data is another type": (
        {
            **TEST_VARS,
            "aws_infra_ssh_public_key": TEST_VARS["aws_infra_ssh_public_key"].replace(
                "ssh-ed25519", "ssh-rsa", 1
            ),
        },
        "the key data does not hold a ssh-rsa key",
    ),
    "unknown alarm threshold": (
        {**TEST_VARS, "aws_infra_alarm_thresholds": {"db_cpu": 90}},
        "aws_infra_alarm_thresholds has unknown keys db_cpu",
    ),
    "ALB certificate not an ARN": (
        {**TEST_VARS, "aws_infra_instance_count": 2, "aws_infra_alb_certificate_arn": "my-cert"},
        "aws_infra_alb_certificate_arn must be empty or an ACM/IAM certificate ARN, got 'my-cert'",
    ),
    "unknown RDS instance class": (
        {**TEST_VARS, "aws_infra_db_instance_class": "m5.large"},
        "aws_infra_db_instance_class must be an RDS instance class like db.t4g.micro",
    ),
    "unknown EC2 instance type": (
        {**TEST_VARS, "aws_infra_instance_type": "t3micro"},
        "aws_infra_instance_type must be an EC2 instance type like t3.micro",
    ),
    "unknown cache node type": (
        {**TEST_VARS, "aws_infra_cache_node_type": "t4g.micro"},
        "aws_infra_cache_node_type must be an ElastiCache node type",
    ),
    "SSH public key malformed": (
        {**TEST_VARS, "aws_infra_ssh_public_key": "AAAAC3NzaC1lZDI1NTE5 no type"},
        "aws_infra_ssh_public_key must be one OpenSSH public key line",
    ),
    "subnet outside the VPC": (
        {**TEST_VARS, "aws_infra_public_subnet_cidrs": ["10.99.0.0/24", "10.20.1.0/24"]},
        "the subnets must lie inside aws_infra_vpc_cidr",
    ),
}


@pytest.fixture(scope="module")
def refusals(aws_module_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Every BAD_INPUT case run once (four at a time): case -> output."""

    def attempt(case: str) -> str:
        return provision(aws_module_env, tmp_path_factory.mktemp("case"), BAD_INPUT[case][0])

    with ThreadPoolExecutor(max_workers=4) as pool:
        return dict(zip(BAD_INPUT, pool.map(attempt, BAD_INPUT), strict=True))


@pytest.mark.parametrize("case", list(BAD_INPUT), ids=list(BAD_INPUT))
def test_bad_input_is_refused_before_any_aws_call(
    case: str, refusals: dict[str, str], aws_module_env: dict[str, str]
) -> None:
    extra, message = BAD_INPUT[case]
    output = refusals[case]
    flattened = flat(output)
    assert message in flattened, flattened[-3000:]
    for secret in ("Short7!", "has/slash-in-it", "short-token", "urlsafe_token", "at@token"):
        if secret in json.dumps(extra):
            assert secret not in output, "a rejected secret was echoed"
    assert "Traceback" not in output
    assert_nothing_created(aws_module_env)


def test_missing_region_names_the_variable(aws_env: dict[str, str], tmp_path: Path) -> None:
    """inventory/aws takes the region from AWS_REGION; without it nothing starts."""
    env = {k: v for k, v in aws_env.items() if k != "AWS_REGION"}
    output = provision(env, tmp_path, TEST_VARS)
    assert "aws_infra_region must be an AWS region like eu-west-1, got ''" in flat(output)
    assert_nothing_created(aws_env)


def test_every_invalid_setting_is_listed_at_once(aws_env: dict[str, str], tmp_path: Path) -> None:
    bad = {
        **TEST_VARS,
        "aws_infra_instance_count": 0,
        "aws_infra_db_instance_class": "large",
        "vault_app_redis_password": "tiny",
    }
    flattened = flat(provision(aws_env, tmp_path, bad))
    for name in ("aws_infra_instance_count", "aws_infra_db_instance_class", "cache_auth_token"):
        assert name in flattened


def test_teardown_requires_the_confirmation(aws_env: dict[str, str]) -> None:
    proc = aws_playbook(aws_env, "teardown", "-e", "aws_infra_teardown_confirm=yes", timeout=120)
    assert proc.returncode != 0
    assert "teardown refused: set aws_infra_teardown_confirm=cachedapp-ci" in flat(
        proc.stdout + proc.stderr
    )


# --- the role's CIDR filters -------------------------------------------------------


filters = aws_infra_filters()


@pytest.mark.parametrize(
    ("value", "allow_default", "ok"),
    [
        ("203.0.113.7/32", False, True),
        ("10.0.0.0/8", False, True),
        ("0.0.0.0/0", True, True),
        ("0.0.0.0/0", False, False),
        ("10.0.0.1/8", True, False),
        ("10.0.0.0/33", True, False),
        ("300.0.0.0/8", True, False),
        ("10.0.0.0", True, False),
        (None, True, False),
        (["10.0.0.0/8"], True, False),
    ],
)
def test_cidr_error(value: Any, allow_default: bool, ok: bool) -> None:
    error = filters.cidr_error(value, "x", allow_default=allow_default)
    assert (error == "") is ok
    if not ok:
        assert error.startswith("x ")


def test_cidr_within_and_overlap() -> None:
    assert filters.cidr_within("10.20.1.0/24", "10.20.0.0/16")
    assert not filters.cidr_within("10.21.1.0/24", "10.20.0.0/16")
    assert filters.cidrs_overlap(["10.20.0.0/24", "10.20.0.128/25"])
    assert not filters.cidrs_overlap(["10.20.0.0/24", "10.20.1.0/24", "10.20.10.0/24"])
