"""roles/aws_infra/library/elasticache_replication_group.py.

Unit tests of its planning functions, then the module itself run against
moto's standalone server (conftest.py): idempotence, check mode, diff mode,
in-place changes, refused changes, tags, cluster mode, deletion, waits with a
timeout, and errors that read as one message.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from aws_support import (
    ERG_PARAMS,
    ERG_PATH,
    ansible_playbook,
    client,
    erg_group,
    load_module,
    run_module,
)
from aws_support import ERG_TOKEN as TOKEN

MODULE_PATH = ERG_PATH
rg = load_module(MODULE_PATH, "elasticache_replication_group")


def params(**overrides: Any) -> dict[str, Any]:
    """The module's parameters with its defaults, as AnsibleModule would pass them."""
    return {**ERG_PARAMS, **overrides}


# --- planning functions (no AWS) ---------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"replication_group_id": "9starts-with-digit"}, "replication_group_id"),
        ({"replication_group_id": "double--hyphen"}, "replication_group_id"),
        ({"replication_group_id": "x" * 41}, "replication_group_id"),
        ({"num_node_groups": 2}, "num_node_groups must be 1"),
        ({"replicas_per_node_group": 6}, "between 0 and 5"),
        ({"replicas_per_node_group": 0, "automatic_failover": True}, "needs replicas"),
        ({"cluster_mode": True, "num_node_groups": 2, "automatic_failover": False}, "requires"),
        ({"replicas_per_node_group": 0, "multi_az": True}, "multi_az"),
        ({"auth_token": "short"}, "16 to 128"),
        ({"auth_token": "x" * 20 + "@"}, "only letters, digits"),
        ({"auth_token": "x" * 20 + "\n"}, "only letters, digits"),
        # token_urlsafe() yields these; AWS answers "Invalid AuthToken".
        ({"auth_token": "x" * 20 + "_"}, "only letters, digits"),
        ({"auth_token": "x" * 20 + "%"}, "only letters, digits"),
        ({"auth_token": "x" * 20 + "."}, "only letters, digits"),
        ({"transit_encryption": False}, "auth_token requires transit_encryption"),
    ],
)
def test_validate_params_rejects(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(rg.ParameterError, match=message):
        rg.validate_params(params(**overrides))


def test_validate_params_accepts_defaults_and_ignores_absent() -> None:
    rg.validate_params(params())
    rg.validate_params(params(auth_token="Ab1!&#$^<>-" + "z" * 5))  # every character AWS takes
    rg.validate_params(params(auth_token="a" * 128))
    rg.validate_params(params(replication_group_id="9bad", state="absent"))


def test_failover_and_multi_az_follow_the_replicas() -> None:
    with_replica = rg.desired_state(params())
    assert with_replica["automatic_failover"] is True
    assert with_replica["multi_az"] is True
    alone = rg.desired_state(params(replicas_per_node_group=0))
    assert alone["automatic_failover"] is False
    assert alone["multi_az"] is False
    sharded = rg.desired_state(params(cluster_mode=True, replicas_per_node_group=0))
    assert sharded["automatic_failover"] is True
    assert sharded["multi_az"] is False


def test_create_parameters_cluster_mode_disabled() -> None:
    request = rg.create_parameters(params(subnet_group="sg", tags={"env": "ci"}))
    assert request["NumNodeGroups"] == 1
    assert request["ReplicasPerNodeGroup"] == 1
    assert request["ClusterMode"] == "disabled"
    assert request["TransitEncryptionEnabled"] is True
    assert request["AtRestEncryptionEnabled"] is True
    assert request["AuthToken"] == TOKEN
    assert request["CacheSubnetGroupName"] == "sg"
    assert request["Tags"] == [{"Key": "env", "Value": "ci"}]
    assert None not in request.values()
    assert "EngineVersion" not in request


def test_create_parameters_cluster_mode_enabled() -> None:
    request = rg.create_parameters(
        params(cluster_mode=True, num_node_groups=3, parameter_group="default.redis7.cluster.on")
    )
    assert request["ClusterMode"] == "enabled"
    assert request["NumNodeGroups"] == 3
    assert request["AutomaticFailoverEnabled"] is True
    assert request["CacheParameterGroupName"] == "default.redis7.cluster.on"


def _described(**overrides: Any) -> dict[str, Any]:
    return erg_group(
        Engine="redis", SnapshotRetentionLimit=0, SnapshotWindow="05:00-06:00", **overrides
    )


def test_current_state_normalises_a_description() -> None:
    members = [
        {
            "EngineVersion": "7.1.0",
            "CacheSubnetGroupName": "sg",
            "SecurityGroups": [{"SecurityGroupId": "sg-2"}, {"SecurityGroupId": "sg-1"}],
        }
    ]
    have = rg.current_state(_described(), members)
    assert have["replicas_per_node_group"] == 1
    assert have["num_node_groups"] == 1
    assert have["port"] == 6379
    assert have["security_group_ids"] == ["sg-1", "sg-2"]
    assert have["engine_version"] == "7.1.0"
    assert have["auth_token_enabled"] is True


def test_plan_changes_matches_an_unchanged_group() -> None:
    want = rg.desired_state(params(engine_version="7.1", security_group_ids=["sg-1"]))
    have = rg.current_state(_described(), [])  # members unknown (as on moto)
    modify, immutable = rg.plan_changes(want, have)
    assert modify == {}
    assert immutable == []


def test_plan_changes_modifiable_and_immutable() -> None:
    members = [{"EngineVersion": "7.0.7", "SecurityGroups": [{"SecurityGroupId": "sg-old"}]}]
    have = rg.current_state(_described(), members)
    want = rg.desired_state(
        params(
            node_type="cache.t4g.small",
            engine_version="7.1",
            security_group_ids=["sg-new"],
            replicas_per_node_group=2,
            port=6380,
        )
    )
    modify, immutable = rg.plan_changes(want, have)
    assert modify == {
        "CacheNodeType": "cache.t4g.small",
        "EngineVersion": "7.1",
        "SecurityGroupIds": ["sg-new"],
    }
    assert any(item.startswith("replicas_per_node_group (is 1, wanted 2)") for item in immutable)
    assert any(item.startswith("port (is 6379, wanted 6380)") for item in immutable)


def test_engine_version_prefix_is_equal() -> None:
    have = rg.current_state(_described(), [{"EngineVersion": "7.1.0"}])
    assert rg.plan_changes(rg.desired_state(params(engine_version="7.1")), have) == ({}, [])
    assert rg.plan_changes(rg.desired_state(params(engine_version="7")), have) == ({}, [])


def test_endpoints_standalone_and_cluster() -> None:
    endpoint, reader, url = rg.endpoints(_described())
    assert endpoint == {"address": "master.example", "port": 6379}
    assert reader == {"address": "replica.example", "port": 6379}
    assert url == "rediss://master.example:6379/0"
    cluster = _described(ConfigurationEndpoint={"Address": "clustercfg.example", "Port": 6379})
    assert rg.endpoints(cluster)[2] == "rediss://clustercfg.example:6379"
    plain = _described(TransitEncryptionEnabled=False)
    assert rg.endpoints(plain)[2] == "redis://master.example:6379/0"
    assert rg.endpoints({}) == ({}, {}, "")


def test_documentation_parses_and_matches_the_argument_spec() -> None:
    doc = yaml.safe_load(rg.DOCUMENTATION)
    yaml.safe_load(rg.EXAMPLES)
    returned = yaml.safe_load(rg.RETURN)
    assert doc["module"] == "elasticache_replication_group"
    assert {"endpoint", "url", "replication_group"} <= set(returned)
    source = MODULE_PATH.read_text()
    for option in doc["options"]:
        assert f'"{option}":' in source, f"documented option {option} not in the argument spec"


def test_ansible_doc_renders_the_module() -> None:
    result = subprocess.run(
        [
            str(Path(sys.executable).parent / "ansible-doc"),
            "-M",
            str(MODULE_PATH.parent),
            "elasticache_replication_group",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "auth_token" in result.stdout


# --- the module against moto ---------------------------------------------------


def run(
    env: dict[str, str], check: bool = False, diff: bool = False, **args: Any
) -> dict[str, Any]:
    """Run the module file the way Ansible does (JSON arguments) and parse its result."""
    module_args = {
        "name": "cachedapp-test",
        "node_type": "cache.t4g.micro",
        "auth_token": TOKEN,
        "poll_interval": 1,
        "_ansible_check_mode": check,
        "_ansible_diff": diff,
        **args,
    }
    proc = run_module(MODULE_PATH, env, module_args, timeout=120)
    assert TOKEN not in proc.stdout + proc.stderr, "the AUTH token leaked into the output"
    result = json.loads(proc.stdout)
    result["rc"] = proc.returncode
    return result


def describe(env: dict[str, str], name: str = "cachedapp-test") -> dict[str, Any] | None:
    groups = client(env, "elasticache").describe_replication_groups()["ReplicationGroups"]
    return next((g for g in groups if g["ReplicationGroupId"] == name), None)


def test_create_then_nothing_to_do(aws_env: dict[str, str]) -> None:
    created = run(aws_env, tags={"env": "ci"})
    assert created["changed"] is True
    assert created["url"].startswith("rediss://master.cachedapp-test.")
    assert created["url"].endswith(":6379/0")
    assert created["tags"] == {"env": "ci"}
    group = describe(aws_env)
    assert group is not None
    assert group["TransitEncryptionEnabled"] is True
    assert group["AuthTokenEnabled"] is True
    assert group["AtRestEncryptionEnabled"] is True
    assert group["AutomaticFailover"] == "enabled"
    assert group["MultiAZ"] == "enabled"
    assert len(group["NodeGroups"][0]["NodeGroupMembers"]) == 2
    again = run(aws_env, tags={"env": "ci"})
    assert again["changed"] is False
    assert again["url"] == created["url"]


def test_check_mode_creates_nothing(aws_env: dict[str, str]) -> None:
    result = run(aws_env, check=True, diff=True)
    assert result["changed"] is True
    assert result["diff"]["before"] == {}
    assert result["diff"]["after"]["node_type"] == "cache.t4g.micro"
    assert describe(aws_env) is None


def test_diff_and_check_mode_of_a_modification(aws_env: dict[str, str]) -> None:
    run(aws_env)
    planned = run(aws_env, check=True, diff=True, node_type="cache.t4g.small")
    assert planned["changed"] is True
    assert planned["diff"]["before"]["node_type"] == "cache.t4g.micro"
    assert planned["diff"]["after"]["node_type"] == "cache.t4g.small"
    assert describe(aws_env)["CacheNodeType"] == "cache.t4g.micro"
    applied = run(aws_env, node_type="cache.t4g.small")
    assert applied["changed"] is True
    assert describe(aws_env)["CacheNodeType"] == "cache.t4g.small"
    assert run(aws_env, node_type="cache.t4g.small")["changed"] is False


def test_settings_aws_cannot_change_in_place_are_refused(aws_env: dict[str, str]) -> None:
    run(aws_env)
    refused = run(aws_env, replicas_per_node_group=2, at_rest_encryption=False)
    assert refused["rc"] == 1
    assert refused["failed"] is True
    assert "replicas_per_node_group (is 1, wanted 2)" in refused["msg"]
    assert "at_rest_encryption (is True, wanted False)" in refused["msg"]
    assert len(describe(aws_env)["NodeGroups"][0]["NodeGroupMembers"]) == 2


def test_tags_are_added_and_purged(aws_env: dict[str, str]) -> None:
    run(aws_env, tags={"env": "ci", "old": "yes"})
    result = run(aws_env, tags={"env": "ci", "team": "web"})
    assert result["changed"] is True
    assert result["tags"] == {"env": "ci", "team": "web"}
    kept = run(aws_env, tags={"extra": "1"}, purge_tags=False)
    assert kept["tags"] == {"env": "ci", "team": "web", "extra": "1"}


def test_cluster_mode_uses_the_configuration_endpoint(aws_env: dict[str, str]) -> None:
    result = run(
        aws_env,
        cluster_mode=True,
        num_node_groups=2,
        parameter_group="default.redis7.cluster.on",
    )
    assert result["changed"] is True
    assert result["url"].startswith("rediss://clustercfg.cachedapp-test.")
    assert result["url"].endswith(":6379")
    group = describe(aws_env)
    assert group["ClusterEnabled"] is True
    assert len(group["NodeGroups"]) == 2
    again = run(
        aws_env, cluster_mode=True, num_node_groups=2, parameter_group="default.redis7.cluster.on"
    )
    assert again["changed"] is False


def test_delete_is_idempotent_and_waits_with_a_timeout(aws_env: dict[str, str]) -> None:
    run(aws_env)
    planned = run(aws_env, check=True, state="absent")
    assert planned["changed"] is True
    assert describe(aws_env)["Status"] == "available"
    deleted = run(aws_env, state="absent", wait=False)
    assert deleted["changed"] is True
    # moto never finishes a deletion: the group stays "deleting".
    assert describe(aws_env)["Status"] == "deleting"
    assert run(aws_env, state="absent", wait=False)["changed"] is False
    timed_out = run(aws_env, state="absent", wait=True, wait_timeout=2)
    assert timed_out["failed"] is True
    assert "Timed out after 2s" in timed_out["msg"]
    assert "status: deleting" in timed_out["msg"]
    busy = run(aws_env)
    assert busy["failed"] is True
    assert "is being deleted" in busy["msg"]


def test_bad_parameters_fail_before_any_aws_call(aws_env: dict[str, str]) -> None:
    dead = {**aws_env, "AWS_URL": "http://127.0.0.1:9"}
    result = run(dead, auth_token="too-short")
    assert result["failed"] is True
    assert result["msg"] == (
        "elasticache_replication_group: auth_token must be 16 to 128 characters long"
    )


def test_an_unreachable_endpoint_is_one_clear_message(
    aws_env: dict[str, str], tmp_path: Path
) -> None:
    """What a user sees in ansible-playbook's output: the message, no traceback."""
    playbook = tmp_path / "play.yml"
    playbook.write_text(
        yaml.safe_dump(
            [
                {
                    "name": "Unreachable endpoint",
                    "hosts": "localhost",
                    "connection": "local",
                    "gather_facts": False,
                    "tasks": [
                        {
                            "name": "Replication group",
                            "elasticache_replication_group": {
                                "name": "cachedapp-test",
                                "node_type": "cache.t4g.micro",
                                "region": "us-east-1",
                                "endpoint_url": "http://127.0.0.1:9",
                            },
                        }
                    ],
                }
            ]
        )
    )
    env = {**aws_env, "ANSIBLE_LIBRARY": str(MODULE_PATH.parent), "AWS_MAX_ATTEMPTS": "1"}
    proc = ansible_playbook(
        env,
        *("-i", "localhost,", "-e", f"ansible_python_interpreter={sys.executable}"),
        str(playbook),
        cwd=None,
        timeout=180,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 2, output
    assert "Cannot describe replication group cachedapp-test" in output
    assert "Could not connect to the endpoint URL" in output
    assert "Traceback" not in output
