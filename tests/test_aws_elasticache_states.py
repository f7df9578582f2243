"""elasticache_replication_group against states and errors moto never produces,
with botocore's Stubber: a group that is busy (InvalidReplicationGroupState),
still being created (no endpoint yet), or still reading "available" with the
old values right after a modify."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from ansible_collections.amazon.aws.plugins.module_utils.retries import (
    AWSRetry,
    RetryingBotoClientWrapper,
)
from botocore.stub import Stubber

MODULE_PATH = (
    Path(__file__).resolve().parent.parent
    / "roles/aws_infra/library/elasticache_replication_group.py"
)
NAME = "cachedapp-test"
TOKEN = "unit-test-auth-token-0123456789"


def _load() -> Any:
    spec = importlib.util.spec_from_file_location("erg_states", MODULE_PATH)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


rg = _load()


class Failed(Exception):
    """fail_json / fail_json_aws were called."""


class FakeClock:
    """time.monotonic/sleep without waiting: sleeping advances the clock."""

    def __init__(self) -> None:
        self.now = 0.0

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


class FakeModule:
    """What the manager uses of AnsibleAWSModule, with a stubbed client."""

    def __init__(self, client: Any, **params: Any) -> None:
        self._client = client
        self.check_mode = False
        self.params = {
            "replication_group_id": NAME,
            "state": "present",
            "description": None,
            "engine": "redis",
            "engine_version": None,
            "node_type": "cache.t4g.micro",
            "cluster_mode": False,
            "num_node_groups": 1,
            "replicas_per_node_group": 1,
            "automatic_failover": None,
            "multi_az": None,
            "port": 6379,
            "subnet_group": None,
            "security_group_ids": None,
            "parameter_group": None,
            "transit_encryption": True,
            "at_rest_encryption": True,
            "kms_key_id": None,
            "auth_token": TOKEN,
            "auth_token_update": "on_create",
            "auth_token_update_strategy": "rotate",
            "snapshot_retention_limit": None,
            "snapshot_window": None,
            "maintenance_window": None,
            "apply_immediately": True,
            "final_snapshot_identifier": None,
            "tags": None,
            "purge_tags": True,
            "wait": True,
            "wait_timeout": 600,
            "poll_interval": 15,
            **params,
        }

    def client(self, service: str, retry_decorator: Any = None) -> Any:
        return RetryingBotoClientWrapper(self._client, retry_decorator)

    def fail_json(self, msg: str, **kwargs: Any) -> None:
        raise Failed(msg)

    def fail_json_aws(self, exception: BaseException, msg: str = "", **kwargs: Any) -> None:
        raise Failed(f"{msg}: {exception}")


@pytest.fixture
def stubbed(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, Stubber]]:
    clock = FakeClock()
    monkeypatch.setattr(rg, "time", clock)
    # No real backoff sleeps either (throttling is not what these tests are about).
    monkeypatch.setattr(rg, "AWSRetry", AWSRetry)
    client = boto3.client(
        "elasticache",
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    with Stubber(client) as stub:
        yield client, stub
        stub.assert_no_pending_responses()


def group(status: str = "available", endpoint: bool = True, **extra: Any) -> dict[str, Any]:
    node_group: dict[str, Any] = {
        "NodeGroupId": "0001",
        "NodeGroupMembers": [{"CacheClusterId": f"{NAME}-001"}, {"CacheClusterId": f"{NAME}-002"}],
    }
    if endpoint:
        node_group["PrimaryEndpoint"] = {"Address": "master.example", "Port": 6379}
        node_group["ReaderEndpoint"] = {"Address": "replica.example", "Port": 6379}
    return {
        "ReplicationGroupId": NAME,
        "Description": NAME,
        "Status": status,
        "ARN": f"arn:aws:elasticache:us-east-1:123456789012:replicationgroup:{NAME}",
        "CacheNodeType": "cache.t4g.micro",
        "ClusterEnabled": False,
        "AutomaticFailover": "enabled",
        "MultiAZ": "enabled",
        "TransitEncryptionEnabled": True,
        "AtRestEncryptionEnabled": True,
        "AuthTokenEnabled": True,
        "MemberClusters": [],
        "NodeGroups": [node_group],
        **extra,
    }


def describes(stub: Stubber, *groups: dict[str, Any]) -> None:
    for g in groups:
        stub.add_response(
            "describe_replication_groups",
            {"ReplicationGroups": [g]},
            {"ReplicationGroupId": NAME},
        )


def no_tags(stub: Stubber, times: int = 1) -> None:
    for _ in range(times):
        stub.add_response("list_tags_for_resource", {"TagList": []})


def busy(stub: Stubber, operation: str) -> None:
    stub.add_client_error(
        operation,
        service_error_code="InvalidReplicationGroupState",
        service_message=f"Replication group {NAME} is not in available state.",
        http_status_code=400,
    )


def test_delete_while_busy_waits_and_retries(stubbed: tuple[Any, Stubber]) -> None:
    client, stub = stubbed
    busy(stub, "delete_replication_group")
    describes(stub, group("snapshotting"), group("available"))
    stub.add_response(
        "delete_replication_group",
        {"ReplicationGroup": group("deleting")},
        {"ReplicationGroupId": NAME},
    )
    manager = rg.ReplicationGroupManager(FakeModule(client, state="absent", wait=False))
    result = rg.ensure_absent(manager, group("snapshotting"))
    assert result["changed"] is True


def test_delete_refused_until_the_timeout_fails_clearly(stubbed: tuple[Any, Stubber]) -> None:
    client, stub = stubbed
    busy(stub, "delete_replication_group")
    describes(stub, *[group("modifying")] * 3)  # t=0, 15, 30 s
    manager = rg.ReplicationGroupManager(
        FakeModule(client, state="absent", wait=False, wait_timeout=30)
    )
    with pytest.raises(Failed, match=r"Timed out after 30s .*\(status: modifying\)"):
        rg.ensure_absent(manager, group("modifying"))


def test_modify_while_busy_waits_and_retries(stubbed: tuple[Any, Stubber]) -> None:
    client, stub = stubbed
    no_tags(stub)
    busy(stub, "modify_replication_group")
    describes(stub, group("snapshotting"), group("available"))
    stub.add_response("modify_replication_group", {"ReplicationGroup": group("modifying")})
    describes(stub, group("available", CacheNodeType="cache.t4g.small"))
    no_tags(stub)
    manager = rg.ReplicationGroupManager(FakeModule(client, node_type="cache.t4g.small", wait=True))
    # wait=True but the group reads available when the run starts.
    result = rg.ensure_present(manager, group("available"))
    assert result["changed"] is True
    assert result["replication_group"]["cache_node_type"] == "cache.t4g.small"


def test_available_right_after_a_modify_is_not_done(stubbed: tuple[Any, Stubber]) -> None:
    """AWS may describe the group as available, old values and all, just after
    ModifyReplicationGroup: the module waits until the new value shows."""
    client, stub = stubbed
    no_tags(stub)
    stub.add_response("modify_replication_group", {"ReplicationGroup": group("modifying")})
    describes(
        stub,
        group("available"),  # not yet: still the old node type
        group("available", PendingModifiedValues={"AutomaticFailoverStatus": "enabled"}),
        group("modifying"),
        group("available", CacheNodeType="cache.t4g.small"),
    )
    no_tags(stub)
    manager = rg.ReplicationGroupManager(FakeModule(client, node_type="cache.t4g.small"))
    result = rg.ensure_present(manager, group("available"))
    assert result["replication_group"]["cache_node_type"] == "cache.t4g.small"
    assert result["replication_group"]["status"] == "available"


def test_rerun_during_creation_waits_for_the_endpoint(stubbed: tuple[Any, Stubber]) -> None:
    """A re-run while the group is being created must not report an empty
    endpoint (the role would publish "pending")."""
    client, stub = stubbed
    describes(stub, group("creating", endpoint=False), group("available"))
    no_tags(stub, 2)
    manager = rg.ReplicationGroupManager(FakeModule(client))
    result = rg.ensure_present(manager, group("creating", endpoint=False))
    assert result["changed"] is False
    assert result["url"] == "rediss://master.example:6379/0"


def test_settled_needs_available_nothing_pending_and_the_new_values() -> None:
    assert rg.settled(group("available"), {})
    assert not rg.settled(group("modifying"), {})
    assert not rg.settled(
        group("available", PendingModifiedValues={"AuthTokenStatus": "ROTATING"}), {}
    )
    assert rg.settled(group("available", PendingModifiedValues={}), {})
    assert not rg.settled(group("available"), {"CacheNodeType": "cache.t4g.small"})
    assert not rg.settled(group("available"), {"MultiAZEnabled": False})
    assert rg.settled(group("available"), {"MultiAZEnabled": True, "SecurityGroupIds": ["sg-1"]})
