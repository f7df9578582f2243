#!/usr/bin/python
# Copyright: the cachedapp project authors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Manage an Amazon ElastiCache (Redis OSS / Valkey) replication group."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: elasticache_replication_group
short_description: Manage an Amazon ElastiCache Redis OSS or Valkey replication group
description:
  - Create, update and delete an ElastiCache replication group (cluster mode
    disabled or enabled) with TLS in transit, an AUTH token, at-rest encryption
    and automatic failover. Written because the bundled collections have no
    replication-group module.
  - Idempotent; supports check mode and diff mode. The AUTH token is write-only
    (AWS never returns it), so it is only sent on creation unless
    O(auth_token_update=always).
  - Settings AWS cannot change in place (cluster mode, shard and replica counts,
    port, subnet group, engine, encryption) make the module fail with a message
    naming each of them.
version_added: 1.0.0
author:
  - cachedapp project
options:
  replication_group_id:
    description: The identifier (1-40 lowercase letters, digits or hyphens, starting with a letter).
    type: str
    required: true
    aliases: [name]
  state:
    description: V(present) creates or updates the group, V(absent) deletes it.
    type: str
    choices: [present, absent]
    default: present
  description:
    description: Free-text description. Defaults to the identifier on creation.
    type: str
  engine:
    description: Cache engine.
    type: str
    choices: [redis, valkey]
    default: redis
  engine_version:
    description:
      - Engine version, for example V(7.1). Omit for the AWS default.
      - V(7.1) matches a running V(7.1.0).
    type: str
  node_type:
    description: Node type, for example V(cache.t4g.micro). Required to create.
    type: str
  cluster_mode:
    description: Enable cluster mode (data sharded over O(num_node_groups) shards; clients use
      the configuration endpoint).
    type: bool
    default: false
  num_node_groups:
    description: Number of shards. Must be 1 when O(cluster_mode=false).
    type: int
    default: 1
  replicas_per_node_group:
    description: Read replicas per shard (0-5).
    type: int
    default: 1
  automatic_failover:
    description: Automatic failover to a replica. Defaults to V(true) when there is a replica or
      O(cluster_mode=true) (which requires it). Without cluster mode it needs a replica.
    type: bool
  multi_az:
    description: Place replicas in other Availability Zones than the primary. Needs automatic
      failover and a replica; defaults to V(true) when both are there.
    type: bool
  port:
    description: TCP port the nodes listen on.
    type: int
    default: 6379
  subnet_group:
    description: Name of the cache subnet group. Required to create in a VPC.
    type: str
  security_group_ids:
    description: VPC security group IDs attached to the nodes.
    type: list
    elements: str
  parameter_group:
    description: Cache parameter group name. Cluster mode needs one with C(cluster-enabled yes),
      for example V(default.redis7.cluster.on).
    type: str
  transit_encryption:
    description: Encrypt traffic in transit (TLS). Required for an AUTH token.
    type: bool
    default: true
  at_rest_encryption:
    description: Encrypt data at rest.
    type: bool
    default: true
  kms_key_id:
    description: KMS key for at-rest encryption (default AWS-managed key).
    type: str
  auth_token:
    description: "The AUTH token, 16-128 characters: letters, digits and C(! & # $ ^ < > -)
      only (what AWS accepts). Requires O(transit_encryption=true)."
    type: str
  auth_token_update:
    description: V(on_create) sends the token only on creation or when the group has none yet.
      V(always) sends it on every run (always reports a change, AWS cannot tell whether it
      differs).
    type: str
    choices: [on_create, always]
    default: on_create
  auth_token_update_strategy:
    description: V(rotate) keeps the old token valid next to the new one; V(set) makes only the
      new one valid.
    type: str
    choices: [rotate, set]
    default: rotate
  snapshot_retention_limit:
    description: Days automatic snapshots are kept (0 disables them).
    type: int
  snapshot_window:
    description: Daily UTC time range for snapshots, for example V(05:00-06:00).
    type: str
  maintenance_window:
    description: Weekly UTC maintenance window, for example V(sun:06:00-sun:07:00). Only used on
      creation.
    type: str
  apply_immediately:
    description: Apply modifications now instead of in the next maintenance window.
    type: bool
    default: true
  final_snapshot_identifier:
    description: With O(state=absent), name of a final snapshot taken before deletion.
    type: str
  wait:
    description: Wait until the group is V(available) (present) or gone (absent).
    type: bool
    default: true
  wait_timeout:
    description: Seconds to wait before failing.
    type: int
    default: 1800
  poll_interval:
    description: Seconds between two status checks while waiting.
    type: int
    default: 15
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.tags
  - amazon.aws.boto3
notes:
  - Security groups and the engine version are compared using the member
    clusters' descriptions; when the endpoint returns none (some emulators),
    they are not compared.
"""

EXAMPLES = r"""
- name: Redis with TLS, AUTH and one replica (automatic failover, Multi-AZ)
  elasticache_replication_group:
    name: cachedapp-production
    node_type: cache.t4g.micro
    engine_version: "7.1"
    replicas_per_node_group: 1
    subnet_group: cachedapp-production-cache
    security_group_ids: [sg-0123456789abcdef0]
    auth_token: "{{ vault_redis_auth_token }}"
    tags:
      env: production
  register: cache

- name: Cluster mode with three shards
  elasticache_replication_group:
    name: cachedapp-sharded
    node_type: cache.r7g.large
    cluster_mode: true
    num_node_groups: 3
    replicas_per_node_group: 1
    parameter_group: default.redis7.cluster.on
    subnet_group: cachedapp-production-cache
    security_group_ids: [sg-0123456789abcdef0]
    auth_token: "{{ vault_redis_auth_token }}"

- name: Delete without waiting
  elasticache_replication_group:
    name: cachedapp-sharded
    state: absent
    wait: false
"""

RETURN = r"""
replication_group:
  description: The replication group as described by AWS (keys in snake_case); empty when absent.
  returned: always
  type: dict
  sample: {replication_group_id: cachedapp-production, status: available, cluster_enabled: false}
endpoint:
  description: Where clients connect (the configuration endpoint in cluster mode, else the
    primary endpoint); empty when absent.
  returned: always
  type: dict
  sample: {address: master.cachedapp-production.abc123.euw1.cache.amazonaws.com, port: 6379}
reader_endpoint:
  description: The reader endpoint (cluster mode disabled only), else empty.
  returned: always
  type: dict
  sample: {address: replica.cachedapp-production.abc123.euw1.cache.amazonaws.com, port: 6379}
url:
  description: A client URL for the endpoint, C(rediss://) with TLS, C(redis://) without;
    database 0 in cluster mode disabled, none in cluster mode. Holds no credentials. Empty when
    absent.
  returned: always
  type: str
  sample: rediss://master.cachedapp-production.abc123.euw1.cache.amazonaws.com:6379/0
tags:
  description: Tags of the group.
  returned: when present
  type: dict
  sample: {env: production}
"""

import contextlib
import string
import time
from typing import Any

with contextlib.suppress(ImportError):  # AnsibleAWSModule reports a missing botocore
    from botocore.exceptions import BotoCoreError, ClientError

from ansible.module_utils.common.dict_transformations import camel_dict_to_snake_dict
from ansible_collections.amazon.aws.plugins.module_utils.botocore import is_boto3_error_code
from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule
from ansible_collections.amazon.aws.plugins.module_utils.retries import AWSRetry
from ansible_collections.amazon.aws.plugins.module_utils.tagging import (
    ansible_dict_to_boto3_tag_list,
    boto3_tag_list_to_ansible_dict,
    compare_aws_tags,
)
from ansible_collections.amazon.aws.plugins.module_utils.transformation import (
    scrub_none_parameters,
)

# Settings AWS cannot change on an existing group (without resharding calls).
IMMUTABLE = (
    "engine",
    "cluster_mode",
    "num_node_groups",
    "replicas_per_node_group",
    "port",
    "subnet_group",
    "transit_encryption",
    "at_rest_encryption",
)
# Settings ModifyReplicationGroup changes: our name -> API parameter.
MODIFIABLE = {
    "description": "ReplicationGroupDescription",
    "node_type": "CacheNodeType",
    "automatic_failover": "AutomaticFailoverEnabled",
    "multi_az": "MultiAZEnabled",
    "snapshot_retention_limit": "SnapshotRetentionLimit",
    "snapshot_window": "SnapshotWindow",
    "security_group_ids": "SecurityGroupIds",
    "engine_version": "EngineVersion",
}
# What AWS accepts in an AUTH token (CreateReplicationGroup, AuthToken).
TOKEN_CHARS = frozenset(string.ascii_letters + string.digits + "!&#$^<>-")


class ParameterError(Exception):
    """A combination of parameters AWS would reject."""


def validate_name(name: str) -> None:
    """AWS's identifier rules, checked before any call."""
    if not (
        1 <= len(name) <= 40
        and name[0].isalpha()
        and all(c.isalnum() or c == "-" for c in name)
        and not name.endswith("-")
        and "--" not in name
    ):
        raise ParameterError(
            f"replication_group_id {name!r} is invalid: 1-40 letters, digits or hyphens, "
            "starting with a letter, no trailing or double hyphen"
        )


def validate_params(params: dict[str, Any]) -> None:
    """Reject parameter combinations before any AWS call."""
    if params["state"] == "absent":
        return
    validate_name(params["replication_group_id"])
    if not params["cluster_mode"] and params["num_node_groups"] != 1:
        raise ParameterError("num_node_groups must be 1 when cluster_mode is false")
    if params["num_node_groups"] < 1:
        raise ParameterError("num_node_groups must be at least 1")
    if not 0 <= params["replicas_per_node_group"] <= 5:
        raise ParameterError("replicas_per_node_group must be between 0 and 5")
    failover = desired_failover(params)
    if failover and params["replicas_per_node_group"] < 1 and not params["cluster_mode"]:
        raise ParameterError("automatic_failover needs replicas_per_node_group >= 1")
    if params["cluster_mode"] and not failover:
        raise ParameterError("cluster_mode requires automatic_failover")
    if desired_multi_az(params) and not failover:
        raise ParameterError("multi_az requires automatic_failover")
    if desired_multi_az(params) and params["replicas_per_node_group"] < 1:
        raise ParameterError("multi_az needs replicas_per_node_group >= 1")
    token = params["auth_token"]
    if token is not None:
        if not params["transit_encryption"]:
            raise ParameterError("auth_token requires transit_encryption")
        if not 16 <= len(token) <= 128:
            raise ParameterError("auth_token must be 16 to 128 characters long")
        if not set(token) <= TOKEN_CHARS:
            raise ParameterError(
                "auth_token may hold only letters, digits and ! & # $ ^ < > - "
                "(AWS refuses the rest)"
            )


def desired_failover(params: dict[str, Any]) -> bool:
    """Automatic failover: explicit value, else on when there is a replica."""
    if params["automatic_failover"] is not None:
        return bool(params["automatic_failover"])
    return params["replicas_per_node_group"] > 0 or params["cluster_mode"]


def desired_multi_az(params: dict[str, Any]) -> bool:
    """Multi-AZ: explicit value, else on with automatic failover and a replica."""
    if params["multi_az"] is not None:
        return bool(params["multi_az"])
    return desired_failover(params) and params["replicas_per_node_group"] > 0


def desired_state(params: dict[str, Any]) -> dict[str, Any]:
    """The comparable settings the task asks for (None = not managed)."""
    failover = desired_failover(params)
    group_ids = params["security_group_ids"]
    return {
        "description": params["description"] or params["replication_group_id"],
        "engine": params["engine"],
        "engine_version": params["engine_version"],
        "node_type": params["node_type"],
        "cluster_mode": params["cluster_mode"],
        "num_node_groups": params["num_node_groups"],
        "replicas_per_node_group": params["replicas_per_node_group"],
        "automatic_failover": failover,
        "multi_az": desired_multi_az(params),
        "port": params["port"],
        "subnet_group": params["subnet_group"],
        "security_group_ids": sorted(group_ids) if group_ids is not None else None,
        "transit_encryption": params["transit_encryption"],
        "at_rest_encryption": params["at_rest_encryption"],
        "auth_token_enabled": params["auth_token"] is not None,
        "snapshot_retention_limit": params["snapshot_retention_limit"],
        "snapshot_window": params["snapshot_window"],
    }


def current_state(group: dict[str, Any], members: list[dict[str, Any]]) -> dict[str, Any]:
    """Normalise a DescribeReplicationGroups entry (+ its member clusters)."""
    node_groups = group.get("NodeGroups") or []
    members_per_group = [len(ng.get("NodeGroupMembers") or []) for ng in node_groups]
    replicas = max(members_per_group[0] - 1, 0) if members_per_group else 0
    first = members[0] if members else {}
    group_ids = None  # unknown when the endpoint describes no member cluster
    if first.get("SecurityGroups") is not None:
        group_ids = sorted(sg["SecurityGroupId"] for sg in first["SecurityGroups"])
    return {
        "description": group.get("Description"),
        "engine": group.get("Engine") or first.get("Engine") or "redis",
        "engine_version": first.get("EngineVersion"),
        "node_type": group.get("CacheNodeType"),
        "cluster_mode": bool(group.get("ClusterEnabled")),
        "num_node_groups": len(node_groups),
        "replicas_per_node_group": replicas,
        "automatic_failover": group.get("AutomaticFailover") in ("enabled", "enabling"),
        "multi_az": group.get("MultiAZ") == "enabled",
        "port": endpoints(group)[0].get("port"),
        "subnet_group": first.get("CacheSubnetGroupName"),
        "security_group_ids": group_ids,
        "transit_encryption": bool(group.get("TransitEncryptionEnabled")),
        "at_rest_encryption": bool(group.get("AtRestEncryptionEnabled")),
        "auth_token_enabled": bool(group.get("AuthTokenEnabled")),
        "snapshot_retention_limit": group.get("SnapshotRetentionLimit"),
        "snapshot_window": group.get("SnapshotWindow"),
    }


def _differs(key: str, want: Any, have: Any) -> bool:
    if want is None:
        return False  # not managed by this task
    if have is None and key in ("security_group_ids", "engine_version", "subnet_group"):
        return False  # the endpoint did not tell us; cannot compare
    if key == "engine_version":
        return not (have == want or str(have).startswith(f"{want}."))
    return want != have


def plan_changes(want: dict[str, Any], have: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """Return (ModifyReplicationGroup parameters, immutable settings that differ)."""
    immutable = [
        f"{key} (is {have[key]!r}, wanted {want[key]!r})"
        for key in IMMUTABLE
        if _differs(key, want[key], have[key])
    ]
    modify = {
        api: want[key] for key, api in MODIFIABLE.items() if _differs(key, want[key], have[key])
    }
    return modify, immutable


def create_parameters(params: dict[str, Any]) -> dict[str, Any]:
    """CreateReplicationGroup parameters for the task's settings (None left out)."""
    want = desired_state(params)
    request: dict[str, Any] = {
        "ReplicationGroupId": params["replication_group_id"],
        "ReplicationGroupDescription": want["description"],
        "Engine": want["engine"],
        "CacheNodeType": want["node_type"],
        # One API shape for both modes: cluster mode disabled is one node group.
        "NumNodeGroups": want["num_node_groups"],
        "ReplicasPerNodeGroup": want["replicas_per_node_group"],
        "AutomaticFailoverEnabled": want["automatic_failover"],
        "MultiAZEnabled": want["multi_az"],
        "Port": want["port"],
        "TransitEncryptionEnabled": want["transit_encryption"],
        "AtRestEncryptionEnabled": want["at_rest_encryption"],
        "ClusterMode": "enabled" if want["cluster_mode"] else "disabled",
        "EngineVersion": params["engine_version"],
        "CacheSubnetGroupName": params["subnet_group"],
        "SecurityGroupIds": params["security_group_ids"],
        "CacheParameterGroupName": params["parameter_group"],
        "KmsKeyId": params["kms_key_id"],
        "AuthToken": params["auth_token"],
        "SnapshotRetentionLimit": params["snapshot_retention_limit"],
        "SnapshotWindow": params["snapshot_window"],
        "PreferredMaintenanceWindow": params["maintenance_window"],
    }
    if params["tags"]:
        request["Tags"] = ansible_dict_to_boto3_tag_list(params["tags"])
    return scrub_none_parameters(request)


def endpoints(group: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any], str]:
    """(client endpoint, reader endpoint, client URL) of a described group."""
    scheme = "rediss" if group.get("TransitEncryptionEnabled") else "redis"
    config = group.get("ConfigurationEndpoint")
    if config:
        endpoint = {"address": config["Address"], "port": config["Port"]}
        return endpoint, {}, f"{scheme}://{endpoint['address']}:{endpoint['port']}"
    node_group = (group.get("NodeGroups") or [{}])[0]
    primary = node_group.get("PrimaryEndpoint") or {}
    reader = node_group.get("ReaderEndpoint") or {}
    endpoint = {"address": primary.get("Address"), "port": primary.get("Port")}
    reader_endpoint = (
        {"address": reader.get("Address"), "port": reader.get("Port")} if reader else {}
    )
    if not endpoint["address"]:
        return {}, reader_endpoint, ""
    url = f"{scheme}://{endpoint['address']}:{endpoint['port']}/0"
    return endpoint, reader_endpoint, url


class ReplicationGroupManager:
    """The AWS calls, with retries, waits and error reporting."""

    def __init__(self, module: AnsibleAWSModule) -> None:
        self.module = module
        self.client = module.client("elasticache", retry_decorator=AWSRetry.jittered_backoff())
        self.name = module.params["replication_group_id"]

    def call(self, operation: str, msg: str, missing: str = "", **kwargs: Any) -> Any:
        """One API call with retries: None when it answers the error code
        ``missing``, any other error fails the module with ``msg``."""
        try:
            return getattr(self.client, operation)(aws_retry=True, **kwargs)
        except is_boto3_error_code(missing):
            return None
        except (ClientError, BotoCoreError) as e:  # pylint: disable=duplicate-except
            self.module.fail_json_aws(e, msg=msg)

    def describe(self) -> dict[str, Any] | None:
        result = self.call(
            "describe_replication_groups",
            f"Cannot describe replication group {self.name}",
            "ReplicationGroupNotFoundFault",
            ReplicationGroupId=self.name,
        )
        return result["ReplicationGroups"][0] if result else None

    def members(self, group: dict[str, Any]) -> list[dict[str, Any]]:
        """Describe the member clusters (security groups, subnet group, version)."""
        found = []
        for cluster_id in group.get("MemberClusters") or []:
            result = self.call(
                "describe_cache_clusters",
                f"Cannot describe cache cluster {cluster_id}",
                "CacheClusterNotFound",
                CacheClusterId=cluster_id,
            )
            if result:
                found.extend(result["CacheClusters"])
        return found

    def tags(self, group: dict[str, Any]) -> dict[str, str]:
        msg = f"Cannot list tags of {self.name}"
        result = self.call("list_tags_for_resource", msg, ResourceName=group["ARN"])
        return boto3_tag_list_to_ansible_dict(result.get("TagList"))

    def update_tags(self, group: dict[str, Any], current: dict[str, str]) -> bool:
        wanted = self.module.params["tags"]
        if wanted is None:
            return False
        to_add, to_remove = compare_aws_tags(current, wanted, self.module.params["purge_tags"])
        if self.module.check_mode:
            return bool(to_add or to_remove)
        msg = f"Cannot update tags of {self.name}"
        if to_remove:
            self.call(
                "remove_tags_from_resource", msg, ResourceName=group["ARN"], TagKeys=to_remove
            )
        if to_add:
            tags = ansible_dict_to_boto3_tag_list(to_add)
            self.call("add_tags_to_resource", msg, ResourceName=group["ARN"], Tags=tags)
        return bool(to_add or to_remove)

    def call_when_ready(self, operation: str, **kwargs: Any) -> None:
        """Call a delete or modify; while AWS refuses it because the group is
        busy (InvalidReplicationGroupState), wait for the group to be available
        and try again, up to wait_timeout."""
        deadline = time.monotonic() + self.module.params["wait_timeout"]
        while True:
            try:
                getattr(self.client, operation)(aws_retry=True, **kwargs)
                return
            except is_boto3_error_code("InvalidReplicationGroupState") as e:
                if time.monotonic() >= deadline:
                    msg = f"{operation} refused for {self.name} until the timeout"
                    self.module.fail_json_aws(e, msg=msg)
                self.wait(gone=False, deadline=deadline)
            except (ClientError, BotoCoreError) as e:  # pylint: disable=duplicate-except
                self.module.fail_json_aws(e, msg=f"{operation} failed for {self.name}")

    def wait(
        self, gone: bool, deadline: float | None = None, expect: dict[str, Any] | None = None
    ) -> dict[str, Any] | None:
        """Poll until settled() with ``expect`` (or, with gone=True, until not found)."""
        timeout = self.module.params["wait_timeout"]
        interval = max(self.module.params["poll_interval"], 1)
        if deadline is None:
            deadline = time.monotonic() + timeout
        while True:
            group = self.describe()
            if group is None and gone:
                return None
            if group is None:
                self.module.fail_json(msg=f"Replication group {self.name} disappeared")
            status = group.get("Status", "unknown")
            if not gone and settled(group, expect or {}):
                return group
            if not gone and status in ("create-failed", "deleting"):
                self.module.fail_json(
                    msg=f"Replication group {self.name} is {status}, not becoming available"
                )
            if time.monotonic() + interval > deadline:
                goal = "deleted" if gone else "available"
                waited = f"Timed out after {timeout}s waiting for replication group {self.name}"
                self.module.fail_json(msg=f"{waited} to be {goal} (status: {status})")
            time.sleep(interval)


# ModifyReplicationGroup parameters that DescribeReplicationGroups shows at
# the group level once applied: API name -> (description key, value mapping).
VISIBLE_AFTER_MODIFY = {
    "CacheNodeType": ("CacheNodeType", lambda v: v),
    "ReplicationGroupDescription": ("Description", lambda v: v),
    "AutomaticFailoverEnabled": ("AutomaticFailover", lambda v: "enabled" if v else "disabled"),
    "MultiAZEnabled": ("MultiAZ", lambda v: "enabled" if v else "disabled"),
    "SnapshotRetentionLimit": ("SnapshotRetentionLimit", lambda v: v),
    "SnapshotWindow": ("SnapshotWindow", lambda v: v),
}


def settled(group: dict[str, Any], expect: dict[str, Any]) -> bool:
    """True when the group is available with nothing pending and shows ``expect``."""
    if group.get("Status") != "available":
        return False
    if any((group.get("PendingModifiedValues") or {}).values()):
        return False
    for api, value in expect.items():
        if api in VISIBLE_AFTER_MODIFY:
            key, convert = VISIBLE_AFTER_MODIFY[api]
            if group.get(key) != convert(value):
                return False
    return True


def ensure_absent(manager: ReplicationGroupManager, group: dict[str, Any] | None) -> dict:
    module = manager.module
    changed = group is not None and group.get("Status") != "deleting"
    if changed and not module.check_mode:
        request = {"ReplicationGroupId": manager.name}
        if module.params["final_snapshot_identifier"]:
            request["FinalSnapshotIdentifier"] = module.params["final_snapshot_identifier"]
        manager.call_when_ready("delete_replication_group", **request)
    if group is not None and module.params["wait"] and not module.check_mode:
        manager.wait(gone=True)
    before = current_state(group, []) if group else {}
    return result_for(manager, None, changed, before, {})


def ensure_present(manager: ReplicationGroupManager, group: dict[str, Any] | None) -> dict:
    module = manager.module
    params = module.params
    want = desired_state(params)
    if group is None:
        if not params["node_type"]:
            module.fail_json(msg="node_type is required to create a replication group")
        if not module.check_mode:
            manager.call(
                "create_replication_group",
                f"create_replication_group failed for {manager.name}",
                **create_parameters(params),
            )
            group = manager.wait(gone=False) if params["wait"] else manager.describe()
        return result_for(manager, group, True, {}, want)

    if group.get("Status") == "deleting":
        module.fail_json(
            msg=f"Replication group {manager.name} is being deleted; run again once it is gone"
        )
    # A re-run while the group is still being created (or modified) has no
    # endpoint to report yet: wait for it rather than return an empty one.
    if params["wait"] and not module.check_mode and not settled(group, {}):
        group = manager.wait(gone=False)
    have = current_state(group, manager.members(group))
    modify, immutable = plan_changes(want, have)
    if immutable:
        module.fail_json(
            msg=(
                f"Replication group {manager.name} cannot change in place: "
                + "; ".join(immutable)
                + ". Delete and re-create it, or keep the current values."
            )
        )
    token = params["auth_token"]
    send_token = params["auth_token_update"] == "always" or not have["auth_token_enabled"]
    if token is not None and send_token:
        modify["AuthToken"] = token
        modify["AuthTokenUpdateStrategy"] = params["auth_token_update_strategy"].upper()
    tags_changed = manager.update_tags(group, manager.tags(group))
    after = dict(have)
    after.update({key: want[key] for key in MODIFIABLE if _differs(key, want[key], have[key])})
    if "AuthToken" in modify:
        after["auth_token_enabled"] = True
    if modify and not module.check_mode:
        manager.call_when_ready(
            "modify_replication_group",
            ReplicationGroupId=manager.name,
            ApplyImmediately=params["apply_immediately"],
            **modify,
        )
        expect = modify if params["apply_immediately"] else {}
        group = manager.wait(gone=False, expect=expect) if params["wait"] else manager.describe()
    elif tags_changed and not module.check_mode:
        group = manager.describe()
    return result_for(manager, group, bool(modify) or tags_changed, have, after)


def result_for(
    manager: ReplicationGroupManager,
    group: dict[str, Any] | None,
    changed: bool,
    before: dict[str, Any],
    after: dict[str, Any],
) -> dict[str, Any]:
    """The module's result; without a group (absent) its endpoints are empty."""
    group = group or {}
    endpoint, reader, url = endpoints(group)
    result = {
        "changed": changed,
        "replication_group": camel_dict_to_snake_dict(group),
        "endpoint": endpoint,
        "reader_endpoint": reader,
        "url": url,
        # Settings neither side manages (None) are left out, for a readable diff.
        "diff": {"before": scrub_none_parameters(before), "after": scrub_none_parameters(after)},
    }
    params = manager.module.params
    if params["state"] == "absent":
        return result  # tags are returned when present only
    if manager.module.check_mode and params["tags"] is not None:
        result["tags"] = dict(params["tags"])
    else:
        result["tags"] = manager.tags(group) if group.get("ARN") else {}
    return result


def main() -> None:
    argument_spec = {
        "replication_group_id": {"type": "str", "required": True, "aliases": ["name"]},
        "state": {"type": "str", "choices": ["present", "absent"], "default": "present"},
        "description": {"type": "str"},
        "engine": {"type": "str", "choices": ["redis", "valkey"], "default": "redis"},
        "engine_version": {"type": "str"},
        "node_type": {"type": "str"},
        "cluster_mode": {"type": "bool", "default": False},
        "num_node_groups": {"type": "int", "default": 1},
        "replicas_per_node_group": {"type": "int", "default": 1},
        "automatic_failover": {"type": "bool"},
        "multi_az": {"type": "bool"},
        "port": {"type": "int", "default": 6379},
        "subnet_group": {"type": "str"},
        "security_group_ids": {"type": "list", "elements": "str"},
        "parameter_group": {"type": "str"},
        "transit_encryption": {"type": "bool", "default": True},
        "at_rest_encryption": {"type": "bool", "default": True},
        "kms_key_id": {"type": "str"},
        "auth_token": {"type": "str", "no_log": True},
        "auth_token_update": {
            "type": "str",
            "choices": ["on_create", "always"],
            "default": "on_create",
            "no_log": False,
        },
        "auth_token_update_strategy": {
            "type": "str",
            "choices": ["rotate", "set"],
            "default": "rotate",
            "no_log": False,
        },
        "snapshot_retention_limit": {"type": "int"},
        "snapshot_window": {"type": "str"},
        "maintenance_window": {"type": "str"},
        "apply_immediately": {"type": "bool", "default": True},
        "final_snapshot_identifier": {"type": "str"},
        "tags": {"type": "dict", "aliases": ["resource_tags"]},
        "purge_tags": {"type": "bool", "default": True},
        "wait": {"type": "bool", "default": True},
        "wait_timeout": {"type": "int", "default": 1800},
        "poll_interval": {"type": "int", "default": 15},
    }
    module = AnsibleAWSModule(argument_spec=argument_spec, supports_check_mode=True)
    try:
        validate_params(module.params)
    except ParameterError as e:
        module.fail_json(msg=f"elasticache_replication_group: {e}")

    manager = ReplicationGroupManager(module)
    group = manager.describe()
    if module.params["state"] == "absent":
        result = ensure_absent(manager, group)
    else:
        result = ensure_present(manager, group)
    if not module._diff:
        result.pop("diff", None)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
