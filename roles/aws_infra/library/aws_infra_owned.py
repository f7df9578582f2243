#!/usr/bin/python
# Copyright: the cachedapp project authors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which of the named resources belong to this project and environment."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: aws_infra_owned
short_description: Tell the resources this environment owns from same-named ones it does not
description:
  - For each named resource, reads its tags (and its VPC where it has one) and
    sorts it into RV(owned) (carries every tag of O(tags), and lies in O(vpc_id)
    when it has a VPC), RV(foreign) (exists but fails that test; left alone and
    reported as a warning) or RV(absent).
  - A resource type that cannot carry tags through the collections' modules
    (cache subnet groups) is owned when it lies in O(vpc_id).
  - Read-only; the same in check mode.
version_added: 1.0.0
author:
  - cachedapp project
options:
  tags:
    description: Tags a resource must carry to be owned (for example project and env).
    type: dict
    required: true
  vpc_id:
    description: The environment's VPC; empty when it does not exist (then nothing with a VPC
      can be owned).
    type: str
    default: ""
  resources:
    description: The resources to look at.
    type: list
    elements: dict
    required: true
    suboptions:
      kind:
        description: Resource type.
        type: str
        required: true
        choices: [ssm_parameter, load_balancer, target_group, db_instance, db_subnet_group,
                  replication_group, cache_subnet_group, key_pair, sns_topic]
      name:
        description: Its name (the topic's name for V(sns_topic)).
        type: str
        required: true
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
"""

EXAMPLES = r"""
- name: What may teardown delete?
  aws_infra_owned:
    tags: {project: cachedapp, env: production}
    vpc_id: vpc-0123456789abcdef0
    resources:
      - {kind: db_instance, name: cachedapp-production-db}
      - {kind: key_pair, name: cachedapp-production}
  register: owned   # owned.owned.db_instance == ['cachedapp-production-db']
"""

RETURN = r"""
owned:
  description: Per kind, the names this environment owns.
  returned: always
  type: dict
  sample: {db_instance: [cachedapp-production-db], key_pair: []}
foreign:
  description: Same-named resources left alone, with the reason.
  returned: always
  type: list
  elements: dict
  sample: [{kind: key_pair, name: cachedapp-production, reason: "tags {} lack project=cachedapp"}]
absent:
  description: Per kind, the names that do not exist.
  returned: always
  type: dict
details:
  description: Per kind and name, what was read (ARN, VPC, deletion protection, status).
  returned: always
  type: dict
"""

import contextlib
from typing import Any

with contextlib.suppress(ImportError):  # AnsibleAWSModule reports a missing botocore
    from botocore.exceptions import BotoCoreError, ClientError

from ansible_collections.amazon.aws.plugins.module_utils.botocore import (
    is_boto3_error_code,
    paginated_query_with_retries,
)
from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule
from ansible_collections.amazon.aws.plugins.module_utils.retries import AWSRetry
from ansible_collections.amazon.aws.plugins.module_utils.tagging import (
    boto3_tag_list_to_ansible_dict,
    compare_aws_tags,
)

KINDS = (
    "ssm_parameter",
    "load_balancer",
    "target_group",
    "db_instance",
    "db_subnet_group",
    "replication_group",
    "cache_subnet_group",
    "key_pair",
    "sns_topic",
)
# Not found, by kind: the error codes AWS answers for a missing name.
NOT_FOUND = (
    "ParameterNotFound",
    "InvalidResourceId",
    "LoadBalancerNotFound",
    "TargetGroupNotFound",
    "DBInstanceNotFound",
    "DBSubnetGroupNotFoundFault",
    "ReplicationGroupNotFoundFault",
    "CacheSubnetGroupNotFoundFault",
    "InvalidKeyPair.NotFound",
    "NotFound",
    "NotFoundException",
)
# Kinds whose modules cannot tag them: ownership by VPC alone.
UNTAGGABLE = ("cache_subnet_group",)


class Reader:
    """One method per kind: (tags, VPC ID or None, details), or None (or a
    NOT_FOUND error) when the resource does not exist."""

    def __init__(self, module: AnsibleAWSModule) -> None:
        self.module = module
        self.retry = AWSRetry.jittered_backoff()
        self.clients: dict[str, Any] = {}

    def client(self, service: str) -> Any:
        if service not in self.clients:
            self.clients[service] = self.module.client(service, retry_decorator=self.retry)
        return self.clients[service]

    def ssm_parameter(self, name: str) -> tuple | None:
        ssm = self.client("ssm")
        found = ssm.describe_parameters(
            ParameterFilters=[{"Key": "Name", "Option": "Equals", "Values": [name]}],
            aws_retry=True,
        )["Parameters"]
        if not found:
            return None
        tags = ssm.list_tags_for_resource(
            ResourceType="Parameter", ResourceId=name, aws_retry=True
        )["TagList"]
        return boto3_tag_list_to_ansible_dict(tags), None, {}

    def _elbv2(self, operation: str, key: str, arn_key: str, name: str) -> tuple:
        """A load balancer or target group, with its tags from DescribeTags."""
        elbv2 = self.client("elbv2")
        found = getattr(elbv2, operation)(Names=[name], aws_retry=True)[key][0]
        arn = found[arn_key]
        described = elbv2.describe_tags(ResourceArns=[arn], aws_retry=True)
        tags = boto3_tag_list_to_ansible_dict(described["TagDescriptions"][0].get("Tags"))
        return tags, found.get("VpcId"), {"arn": arn}

    def load_balancer(self, name: str) -> tuple | None:
        return self._elbv2("describe_load_balancers", "LoadBalancers", "LoadBalancerArn", name)

    def target_group(self, name: str) -> tuple | None:
        return self._elbv2("describe_target_groups", "TargetGroups", "TargetGroupArn", name)

    def db_instance(self, name: str) -> tuple | None:
        rds = self.client("rds")
        db = rds.describe_db_instances(DBInstanceIdentifier=name, aws_retry=True)["DBInstances"][0]
        details = {
            "arn": db.get("DBInstanceArn"),
            "deletion_protection": bool(db.get("DeletionProtection")),
            "status": db.get("DBInstanceStatus"),
        }
        tags = boto3_tag_list_to_ansible_dict(db.get("TagList"))
        return tags, (db.get("DBSubnetGroup") or {}).get("VpcId"), details

    def db_subnet_group(self, name: str) -> tuple | None:
        rds = self.client("rds")
        group = rds.describe_db_subnet_groups(DBSubnetGroupName=name, aws_retry=True)[
            "DBSubnetGroups"
        ][0]
        arn = group["DBSubnetGroupArn"]
        tags = rds.list_tags_for_resource(ResourceName=arn, aws_retry=True)["TagList"]
        return boto3_tag_list_to_ansible_dict(tags), group.get("VpcId"), {"arn": arn}

    def replication_group(self, name: str) -> tuple | None:
        cache = self.client("elasticache")
        group = cache.describe_replication_groups(ReplicationGroupId=name, aws_retry=True)[
            "ReplicationGroups"
        ][0]
        arn = group["ARN"]
        tags = cache.list_tags_for_resource(ResourceName=arn, aws_retry=True)["TagList"]
        details = {"arn": arn, "status": group.get("Status")}
        return boto3_tag_list_to_ansible_dict(tags), None, details

    def cache_subnet_group(self, name: str) -> tuple | None:
        group = self.client("elasticache").describe_cache_subnet_groups(
            CacheSubnetGroupName=name, aws_retry=True
        )["CacheSubnetGroups"][0]
        return None, group.get("VpcId"), {"arn": group.get("ARN")}

    def key_pair(self, name: str) -> tuple | None:
        keys = self.client("ec2").describe_key_pairs(KeyNames=[name], aws_retry=True)["KeyPairs"]
        key = keys[0]
        details = {"fingerprint": key.get("KeyFingerprint"), "id": key.get("KeyPairId")}
        return boto3_tag_list_to_ansible_dict(key.get("Tags")), None, details

    def sns_topic(self, name: str) -> tuple | None:
        sns = self.client("sns")
        topics = paginated_query_with_retries(sns, "list_topics", self.retry)
        arns = [t["TopicArn"] for t in topics.get("Topics", [])]
        arn = next((a for a in arns if a.rsplit(":", 1)[-1] == name), None)
        if arn is None:
            return None
        tags = sns.list_tags_for_resource(ResourceArn=arn, aws_retry=True)["Tags"]
        return boto3_tag_list_to_ansible_dict(tags), None, {"arn": arn}


def verdict(
    kind: str, tags: dict[str, str] | None, vpc: str | None, want: dict[str, str], our_vpc: str
) -> str:
    """'' when owned, else why not."""
    if vpc is not None and vpc != our_vpc:
        where = f"VPC {vpc}" if vpc else "no VPC"
        return f"in {where}, not this environment's VPC ({our_vpc or 'none found'})"
    if kind in UNTAGGABLE and tags is None:
        return "" if vpc is not None else "no VPC to tell by"
    missing, _ = compare_aws_tags(tags or {}, want, purge_tags=False)
    if missing:
        lacking = ", ".join(f"{k}={v}" for k, v in sorted(missing.items()))
        return f"tags {tags or {}} lack {lacking}"
    return ""


def main() -> None:
    module = AnsibleAWSModule(
        argument_spec={
            "tags": {"type": "dict", "required": True},
            "vpc_id": {"type": "str", "default": ""},
            "resources": {
                "type": "list",
                "elements": "dict",
                "required": True,
                "options": {
                    "kind": {"type": "str", "required": True, "choices": list(KINDS)},
                    "name": {"type": "str", "required": True},
                },
            },
        },
        supports_check_mode=True,
    )
    reader = Reader(module)
    owned: dict[str, list[str]] = {kind: [] for kind in KINDS}
    absent: dict[str, list[str]] = {kind: [] for kind in KINDS}
    foreign: list[dict[str, str]] = []
    details: dict[str, dict[str, Any]] = {kind: {} for kind in KINDS}
    for item in module.params["resources"]:
        kind, name = item["kind"], item["name"]
        try:
            found = getattr(reader, kind)(name)
        except is_boto3_error_code(NOT_FOUND):
            found = None
        except (ClientError, BotoCoreError) as e:  # pylint: disable=duplicate-except
            module.fail_json_aws(e, msg=f"Cannot read {kind} {name}")
        if found is None:
            absent[kind].append(name)
            continue
        tags, vpc, info = found
        details[kind][name] = {**info, "vpc_id": vpc, "tags": tags}
        reason = verdict(kind, tags, vpc, module.params["tags"], module.params["vpc_id"])
        if reason:
            foreign.append({"kind": kind, "name": name, "reason": reason})
            module.warn(f"{kind} {name} is not this environment's ({reason}): left alone")
        else:
            owned[kind].append(name)
    module.exit_json(changed=False, owned=owned, absent=absent, foreign=foreign, details=details)


if __name__ == "__main__":
    main()
