"""Teardown of the aws target deletes only what is this environment's.

- aws_infra_vpc_cleanup waits out DependencyViolation (botocore Stubber: moto
  never answers it for security groups and subnets whose network interfaces
  linger after a load balancer, database or cache is deleted);
- playbooks/teardown.yml on moto leaves same-named resources without the
  project/env tags (or in another VPC) alone and reports them.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import aws_support
import jinja2
import pytest
import yaml
from ansible_collections.amazon.aws.plugins.module_utils.retries import (
    AWSRetry,
    RetryingBotoClientWrapper,
)
from aws_support import (
    LIBRARY,
    ROOT,
    TAG_LIST,
    TAGS,
    TEST_VARS,
    Failed,
    FakeClock,
    aws_playbook,
    client,
    extra_vars,
    flat,
    load_module,
    stubbed_client,
)
from botocore.stub import ANY, Stubber

cleanup_mod = load_module(LIBRARY / "aws_infra_vpc_cleanup.py", "aws_infra_vpc_cleanup_t")


class FakeModule(aws_support.FakeModule):
    defaults: ClassVar[dict[str, Any]] = {
        "vpc_id": "vpc-1",
        "tags": TAGS,
        "security_groups": [],
        "delete_network": False,
        "wait_timeout": 300,
        "poll_interval": 15,
    }


@pytest.fixture
def ec2(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, Stubber]]:
    monkeypatch.setattr(cleanup_mod, "time", FakeClock())
    with stubbed_client("ec2") as (client, stub):
        yield RetryingBotoClientWrapper(client, AWSRetry.jittered_backoff()), stub


def sg(group_id: str, name: str, tags: list | None = None, refs: bool = False) -> dict:
    perms = (
        [
            {
                "IpProtocol": "tcp",
                "FromPort": 80,
                "ToPort": 80,
                "UserIdGroupPairs": [{"GroupId": "sg-x"}],
            }
        ]
        if refs
        else []
    )
    return {
        "GroupId": group_id,
        "GroupName": name,
        "VpcId": "vpc-1",
        "Tags": TAG_LIST if tags is None else tags,
        "IpPermissions": perms,
    }


def dependency_violation(stub: Stubber, operation: str) -> None:
    stub.add_client_error(
        operation,
        service_error_code="DependencyViolation",
        service_message="resource sg-1 has a dependent object",
        http_status_code=400,
    )


def test_security_group_deletion_waits_out_dependency_violation(ec2: tuple) -> None:
    client, stub = ec2
    stub.add_response(
        "describe_security_groups",
        {"SecurityGroups": [sg("sg-1", "cachedapp-ci-alb", refs=True)]},
        {"Filters": ANY},
    )
    stub.add_response("revoke_security_group_ingress", {"Return": True})
    dependency_violation(stub, "delete_security_group")
    dependency_violation(stub, "delete_security_group")
    stub.add_response("delete_security_group", {}, {"GroupId": "sg-1"})
    module = FakeModule(security_groups=["cachedapp-ci-alb"])
    cleanup = cleanup_mod.Cleanup(module, client)
    cleanup.security_groups(["cachedapp-ci-alb"])
    assert cleanup.deleted == ["security group sg-1 (cachedapp-ci-alb)"]


def test_dependency_violation_past_the_timeout_fails_clearly(ec2: tuple) -> None:
    client, stub = ec2
    stub.add_response(
        "describe_security_groups", {"SecurityGroups": [sg("sg-1", "cachedapp-ci-db")]}
    )
    for _ in range(3):  # t = 0, 15, 30 s; the next try would pass 40 s
        dependency_violation(stub, "delete_security_group")
    cleanup = cleanup_mod.Cleanup(FakeModule(wait_timeout=40), client)
    with pytest.raises(Failed, match=r"still has dependents after 40s \(DependencyViolation\)"):
        cleanup.security_groups(["cachedapp-ci-db"])


def test_subnet_and_vpc_deletion_wait_out_dependency_violation(ec2: tuple) -> None:
    client, stub = ec2
    stub.add_response("describe_vpcs", {"Vpcs": [{"VpcId": "vpc-1", "Tags": TAG_LIST}]})
    stub.add_response("describe_route_tables", {"RouteTables": []})
    stub.add_response("describe_internet_gateways", {"InternetGateways": []})
    stub.add_response(
        "describe_subnets",
        {"Subnets": [{"SubnetId": "subnet-1", "CidrBlock": "10.20.10.0/24", "Tags": TAG_LIST}]},
    )
    dependency_violation(stub, "delete_subnet")
    stub.add_response("delete_subnet", {})
    stub.add_response("describe_security_groups", {"SecurityGroups": [sg("sg-0", "default")]})
    dependency_violation(stub, "delete_vpc")
    stub.add_response("delete_vpc", {})
    cleanup = cleanup_mod.Cleanup(FakeModule(delete_network=True), client)
    cleanup.network()
    assert cleanup.deleted == ["subnet subnet-1 (10.20.10.0/24)", "VPC vpc-1"]


def test_untagged_security_group_and_subnet_are_left_and_the_vpc_kept(ec2: tuple) -> None:
    client, stub = ec2
    stub.add_response(
        "describe_security_groups",
        {"SecurityGroups": [sg("sg-9", "cachedapp-ci-web", tags=[])]},
    )
    stub.add_response("describe_vpcs", {"Vpcs": [{"VpcId": "vpc-1", "Tags": TAG_LIST}]})
    stub.add_response("describe_route_tables", {"RouteTables": []})
    stub.add_response("describe_internet_gateways", {"InternetGateways": []})
    stub.add_response(
        "describe_subnets",
        {"Subnets": [{"SubnetId": "subnet-9", "CidrBlock": "10.20.99.0/24", "Tags": []}]},
    )
    stub.add_response(
        "describe_security_groups",
        {"SecurityGroups": [sg("sg-0", "default"), sg("sg-9", "cachedapp-ci-web", tags=[])]},
    )
    module = FakeModule(delete_network=True)
    cleanup = cleanup_mod.Cleanup(module, client)
    cleanup.security_groups(["cachedapp-ci-web"])
    cleanup.network()
    assert cleanup.deleted == []
    assert cleanup.foreign == [
        "security group sg-9 (cachedapp-ci-web)",
        "subnet subnet-9 (10.20.99.0/24)",
    ]
    assert any("VPC vpc-1 kept" in w for w in module.warnings)


# --- playbooks/teardown.yml on moto ---------------------------------------------------


def clients(env: dict[str, str]) -> dict[str, Any]:
    return {s: client(env, s) for s in ("ec2", "elbv2", "rds", "elasticache", "ssm")}


def teardown(env: dict[str, str], tmp_path: Path) -> tuple[int, str]:
    """playbooks/teardown.yml, confirmed: its return code and flattened output."""
    confirmed = extra_vars(tmp_path, {**TEST_VARS, "aws_infra_teardown_confirm": "cachedapp-ci"})
    proc = aws_playbook(env, "teardown", confirmed)
    return proc.returncode, flat(proc.stdout + proc.stderr)


def test_same_named_resources_of_others_are_left_alone(
    aws_env: dict[str, str], tmp_path: Path
) -> None:
    """Nothing of cachedapp-ci exists; same-named resources without its tags
    (or, for the target group, with its tags but in another VPC) do."""
    c = clients(aws_env)
    ec2 = c["ec2"]
    other_vpc = ec2.create_vpc(CidrBlock="10.99.0.0/16")["Vpc"]["VpcId"]
    subnets = [
        ec2.create_subnet(VpcId=other_vpc, CidrBlock=f"10.99.{i}.0/24", AvailabilityZone=az)[
            "Subnet"
        ]["SubnetId"]
        for i, az in enumerate(("us-east-1a", "us-east-1b"))
    ]
    ec2.create_key_pair(KeyName="cachedapp-ci")
    c["ssm"].put_parameter(Name="/cachedapp/ci/endpoints", Value="{}", Type="String")
    c["rds"].create_db_subnet_group(
        DBSubnetGroupName="cachedapp-ci-db", DBSubnetGroupDescription="x", SubnetIds=subnets
    )
    c["rds"].create_db_instance(
        DBInstanceIdentifier="cachedapp-ci-db",
        DBInstanceClass="db.t4g.micro",
        Engine="postgres",
        MasterUsername="someone",
        MasterUserPassword="someones-password",
        AllocatedStorage=20,
    )
    c["elasticache"].create_replication_group(
        ReplicationGroupId="cachedapp-ci",
        ReplicationGroupDescription="someone else's",
        CacheNodeType="cache.t4g.micro",
        Engine="redis",
    )
    c["elbv2"].create_target_group(
        Name="cachedapp-ci-web",
        Protocol="HTTP",
        Port=80,
        VpcId=other_vpc,
        Tags=TAG_LIST,
    )
    returncode, output = teardown(aws_env, tmp_path)
    assert returncode == 0, output
    assert "changed=0" in output
    for kind, name in [
        ("key_pair", "cachedapp-ci"),
        ("ssm_parameter", "/cachedapp/ci/endpoints"),
        ("db_instance", "cachedapp-ci-db"),
        ("db_subnet_group", "cachedapp-ci-db"),
        ("replication_group", "cachedapp-ci"),
        ("target_group", "cachedapp-ci-web"),
    ]:
        assert f"{kind} {name} is not this environment's" in output, (kind, output[-3000:])
    assert "Left alone (same name, not tagged for this environment)" in output
    # Everything is still there.
    assert [k["KeyName"] for k in ec2.describe_key_pairs()["KeyPairs"]] == ["cachedapp-ci"]
    assert c["ssm"].get_parameter(Name="/cachedapp/ci/endpoints")["Parameter"]["Value"] == "{}"
    assert c["rds"].describe_db_instances()["DBInstances"][0]["DBInstanceStatus"] == "available"
    assert len(c["rds"].describe_db_subnet_groups()["DBSubnetGroups"]) == 1
    groups = c["elasticache"].describe_replication_groups()["ReplicationGroups"]
    assert [(g["ReplicationGroupId"], g["Status"]) for g in groups] == [
        ("cachedapp-ci", "available")
    ]
    assert len(c["elbv2"].describe_target_groups()["TargetGroups"]) == 1


def test_deletion_protected_database_stops_teardown_before_anything(
    aws_env: dict[str, str], tmp_path: Path
) -> None:
    c = clients(aws_env)
    ec2 = c["ec2"]
    tags = [{"Key": "Name", "Value": "cachedapp-ci"}, *TAG_LIST]
    vpc = ec2.create_vpc(
        CidrBlock="10.20.0.0/16",
        TagSpecifications=[{"ResourceType": "vpc", "Tags": tags}],
    )["Vpc"]["VpcId"]
    subnets = [
        ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.20.1{i}.0/24", AvailabilityZone=az)["Subnet"][
            "SubnetId"
        ]
        for i, az in enumerate(("us-east-1a", "us-east-1b"))
    ]
    c["rds"].create_db_subnet_group(
        DBSubnetGroupName="cachedapp-ci-db",
        DBSubnetGroupDescription="x",
        SubnetIds=subnets,
        Tags=TAG_LIST,
    )
    c["rds"].create_db_instance(
        DBInstanceIdentifier="cachedapp-ci-db",
        DBInstanceClass="db.t4g.micro",
        Engine="postgres",
        MasterUsername="cachedapp",
        MasterUserPassword="molecule-db-Passw0rd",
        AllocatedStorage=20,
        DBSubnetGroupName="cachedapp-ci-db",
        DeletionProtection=True,
        Tags=TAG_LIST,
    )
    c["ssm"].put_parameter(Name="/cachedapp/ci/endpoints", Value="{}", Type="String", Tags=TAG_LIST)
    returncode, output = teardown(aws_env, tmp_path)
    assert returncode != 0, output[-3000:]
    assert "RDS instance cachedapp-ci-db has deletion protection on; nothing was deleted" in output
    assert c["ssm"].get_parameter(Name="/cachedapp/ci/endpoints")["Parameter"]["Value"] == "{}"
    assert len(c["rds"].describe_db_instances()["DBInstances"]) == 1


def test_deletion_protection_defaults_on_for_production_only() -> None:
    defaults = yaml.safe_load((ROOT / "roles/aws_infra/defaults/main.yml").read_text())
    template = jinja2.Environment(autoescape=False).from_string(
        defaults["aws_infra_db_deletion_protection"]
    )
    assert template.render(aws_infra_env="production") == "True"
    assert template.render(aws_infra_env="ci") == "False"
