#!/usr/bin/python
# Copyright: the cachedapp project authors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Delete an environment's security groups (and its network), waiting out DependencyViolation."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: aws_infra_vpc_cleanup
short_description: Delete an environment's security groups and network, retrying DependencyViolation
description:
  - Deletes the named security groups of O(vpc_id) that carry every tag of
    O(tags); with O(delete_network=true) also the VPC's tagged route tables,
    internet gateways and subnets, then the VPC.
  - AWS refuses these deletions (C(DependencyViolation)) for minutes after a
    load balancer, database or cache that used them is deleted, while its
    network interfaces are released. Every deletion is retried until it
    succeeds or O(wait_timeout) passes.
  - Security groups first lose their ingress rules that refer to other groups,
    so the order of deletion does not matter.
  - Same-named resources without the tags, or anything else left in the VPC,
    are not touched; they are reported as warnings, and the VPC is kept.
  - Check mode reports what would be deleted.
version_added: 1.0.0
author:
  - cachedapp project
options:
  vpc_id:
    description: The VPC (must carry O(tags) when O(delete_network=true)).
    type: str
    required: true
  tags:
    description: Tags every deleted resource must carry.
    type: dict
    required: true
  security_groups:
    description: Names of the security groups to delete.
    type: list
    elements: str
    default: []
  delete_network:
    description: Also delete route tables, internet gateways, subnets and the VPC.
    type: bool
    default: false
  wait_timeout:
    description: Seconds to keep retrying a deletion refused with DependencyViolation.
    type: int
    default: 900
  poll_interval:
    description: Seconds between two attempts.
    type: int
    default: 15
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
"""

EXAMPLES = r"""
- name: Delete the load balancer's security group once the ALB is gone
  aws_infra_vpc_cleanup:
    vpc_id: "{{ vpc_id }}"
    tags: {project: cachedapp, env: production}
    security_groups: [cachedapp-production-alb]
"""

RETURN = r"""
deleted:
  description: What was (or, in check mode, would be) deleted, as "kind id (name)".
  returned: always
  type: list
  elements: str
foreign:
  description: What was left alone because it lacks the tags.
  returned: always
  type: list
  elements: str
"""

import contextlib
import time
from collections.abc import Callable
from typing import Any

with contextlib.suppress(ImportError):  # AnsibleAWSModule reports a missing botocore
    from botocore.exceptions import BotoCoreError, ClientError

from ansible_collections.amazon.aws.plugins.module_utils.botocore import is_boto3_error_code
from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule
from ansible_collections.amazon.aws.plugins.module_utils.retries import AWSRetry
from ansible_collections.amazon.aws.plugins.module_utils.tagging import (
    boto3_tag_list_to_ansible_dict,
    compare_aws_tags,
)

GONE = (
    "InvalidGroup.NotFound",
    "InvalidSubnetID.NotFound",
    "InvalidRouteTableID.NotFound",
    "InvalidInternetGatewayID.NotFound",
    "InvalidVpcID.NotFound",
    "Gateway.NotAttached",
    "InvalidPermission.NotFound",
)


class Cleanup:
    """The deletions, each retried on DependencyViolation until the deadline."""

    def __init__(self, module: Any, client: Any) -> None:
        self.module = module
        self.ec2 = client
        self.vpc = module.params["vpc_id"]
        self.deadline = time.monotonic() + module.params["wait_timeout"]
        self.interval = max(module.params["poll_interval"], 1)
        self.deleted: list[str] = []
        self.foreign: list[str] = []

    def ours(self, resource: dict[str, Any], label: str) -> bool:
        """Whether ``resource`` carries every tag; if not, it is recorded as foreign."""
        tags = boto3_tag_list_to_ansible_dict(resource.get("Tags"))
        missing, _ = compare_aws_tags(tags, self.module.params["tags"], purge_tags=False)
        if missing:
            self.foreign.append(label)
        return not missing

    def delete(self, what: str, operation: Callable[..., Any], **kwargs: Any) -> None:
        """Call ``operation``; wait out DependencyViolation; a gone resource is fine."""
        if self.module.check_mode:
            self.deleted.append(what)
            return
        while True:
            try:
                operation(aws_retry=True, **kwargs)
                self.deleted.append(what)
                return
            except is_boto3_error_code(GONE):
                return
            except is_boto3_error_code("DependencyViolation") as e:  # pylint: disable=duplicate-except
                if time.monotonic() + self.interval > self.deadline:
                    timeout = self.module.params["wait_timeout"]
                    msg = f"{what} still has dependents after {timeout}s (DependencyViolation)"
                    self.module.fail_json_aws(e, msg=msg, deleted=self.deleted)
                time.sleep(self.interval)
            except (ClientError, BotoCoreError) as e:  # pylint: disable=duplicate-except
                self.module.fail_json_aws(e, msg=f"Cannot delete {what}", deleted=self.deleted)

    def in_vpc(
        self, describe: str, key: str, vpc_filter: str = "vpc-id", extra: tuple = ()
    ) -> list[dict]:
        filters = [{"Name": vpc_filter, "Values": [self.vpc]}, *extra]
        return getattr(self.ec2, describe)(Filters=filters, aws_retry=True)[key]

    def security_groups(self, names: list[str]) -> None:
        if not names:
            return
        name_filter = {"Name": "group-name", "Values": names}
        found = self.in_vpc("describe_security_groups", "SecurityGroups", extra=(name_filter,))
        mine = []
        for group in found:
            label = f"security group {group['GroupId']} ({group['GroupName']})"
            if self.ours(group, label):
                mine.append((group, label))
        # Rules that name another group would make the order matter.
        for group, _ in mine:
            refs = [p for p in group.get("IpPermissions", []) if p.get("UserIdGroupPairs")]
            if refs and not self.module.check_mode:
                with contextlib.suppress(ClientError):
                    self.ec2.revoke_security_group_ingress(
                        GroupId=group["GroupId"], IpPermissions=refs, aws_retry=True
                    )
        for group, label in mine:
            self.delete(label, self.ec2.delete_security_group, GroupId=group["GroupId"])

    def network(self) -> None:
        vpc = self.ec2.describe_vpcs(VpcIds=[self.vpc], aws_retry=True)["Vpcs"][0]
        if not self.ours(vpc, f"VPC {self.vpc}"):
            return
        self.route_tables()
        self.internet_gateways()
        for subnet in self.in_vpc("describe_subnets", "Subnets"):
            label = f"subnet {subnet['SubnetId']} ({subnet['CidrBlock']})"
            if self.ours(subnet, label):
                self.delete(label, self.ec2.delete_subnet, SubnetId=subnet["SubnetId"])
        if not self.module.check_mode:
            for g in self.in_vpc("describe_security_groups", "SecurityGroups"):
                label = f"security group {g['GroupId']} ({g['GroupName']})"
                if g["GroupName"] != "default" and label not in self.foreign:
                    self.foreign.append(label)
        if self.foreign:
            self.module.warn(f"VPC {self.vpc} kept: it still holds {', '.join(self.foreign)}")
            return
        self.delete(f"VPC {self.vpc}", self.ec2.delete_vpc, VpcId=self.vpc)

    def route_tables(self) -> None:
        for table in self.in_vpc("describe_route_tables", "RouteTables"):
            if any(a.get("Main") for a in table.get("Associations", [])):
                continue  # goes with the VPC
            label = f"route table {table['RouteTableId']}"
            if not self.ours(table, label):
                continue
            for assoc in table.get("Associations", []):
                if not self.module.check_mode:
                    with contextlib.suppress(ClientError):
                        self.ec2.disassociate_route_table(
                            AssociationId=assoc["RouteTableAssociationId"], aws_retry=True
                        )
            self.delete(label, self.ec2.delete_route_table, RouteTableId=table["RouteTableId"])

    def internet_gateways(self) -> None:
        igws = self.in_vpc("describe_internet_gateways", "InternetGateways", "attachment.vpc-id")
        for igw in igws:
            gid = igw["InternetGatewayId"]
            label = f"internet gateway {gid}"
            if not self.ours(igw, label):
                continue
            self.delete(
                f"{label} attachment",
                self.ec2.detach_internet_gateway,
                InternetGatewayId=gid,
                VpcId=self.vpc,
            )
            self.delete(label, self.ec2.delete_internet_gateway, InternetGatewayId=gid)


def main() -> None:
    module = AnsibleAWSModule(
        argument_spec={
            "vpc_id": {"type": "str", "required": True},
            "tags": {"type": "dict", "required": True},
            "security_groups": {"type": "list", "elements": "str", "default": []},
            "delete_network": {"type": "bool", "default": False},
            "wait_timeout": {"type": "int", "default": 900},
            "poll_interval": {"type": "int", "default": 15},
        },
        supports_check_mode=True,
    )
    client = module.client("ec2", retry_decorator=AWSRetry.jittered_backoff())
    cleanup = Cleanup(module, client)
    try:
        cleanup.security_groups(module.params["security_groups"])
        if module.params["delete_network"]:
            cleanup.network()
    except is_boto3_error_code("InvalidVpcID.NotFound"):
        pass
    except (ClientError, BotoCoreError) as e:  # pylint: disable=duplicate-except
        module.fail_json_aws(e, msg=f"Cannot read VPC {module.params['vpc_id']}")
    for label in cleanup.foreign:
        if "VPC " not in label:
            module.warn(f"{label} is not this environment's (tags): left alone")
    module.exit_json(
        changed=bool(cleanup.deleted), deleted=cleanup.deleted, foreign=cleanup.foreign
    )


if __name__ == "__main__":
    main()
