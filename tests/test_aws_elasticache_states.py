"""elasticache_replication_group against states and errors moto never produces,
with botocore's Stubber: a group that is busy (InvalidReplicationGroupState),
still being created (no endpoint yet), or still reading "available" with the
old values right after a modify."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar

import aws_support
import pytest
from aws_support import ERG_NAME as NAME
from aws_support import ERG_PARAMS, ERG_PATH, Failed, FakeClock, load_module, stubbed_client
from aws_support import erg_group as group
from botocore.stub import Stubber

rg = load_module(ERG_PATH, "erg_states")


class FakeModule(aws_support.FakeModule):
    """The manager's AnsibleAWSModule: every parameter, defaults but for a
    node type and AUTH token."""

    defaults: ClassVar[dict[str, Any]] = ERG_PARAMS


@pytest.fixture
def stubbed(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, Stubber]]:
    clock = FakeClock()
    monkeypatch.setattr(rg, "time", clock)
    with stubbed_client("elasticache") as (client, stub):
        yield client, stub


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
