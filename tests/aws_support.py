"""What the tests/test_aws_*.py files share: loading the role's library and
filter files, emptying moto (conftest.py's fixtures use this too), running a
module or a playbook against moto (conftest.py's aws_env), boto3 clients on
moto, and the fakes the botocore Stubber tests use (a clock that does not
wait, an AnsibleAWSModule stand-in)."""

from __future__ import annotations

import functools
import importlib.util
import json
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar

import boto3
import yaml
from ansible_collections.amazon.aws.plugins.module_utils.retries import (
    RetryingBotoClientWrapper,
)
from botocore.stub import Stubber

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
LIBRARY = ROOT / "roles/aws_infra/library"
TEST_VARS = yaml.safe_load((ROOT / "molecule/aws/vars/test.yml").read_text())
TAGS = {"project": "cachedapp", "env": "ci"}
TAG_LIST = [{"Key": k, "Value": v} for k, v in TAGS.items()]

# elasticache_replication_group: every parameter, with its default unless named
# here, as AnsibleModule passes them.
ERG_PATH = LIBRARY / "elasticache_replication_group.py"
ERG_NAME = "cachedapp-test"
ERG_TOKEN = "unit-test-auth-token-0123456789"
ERG_PARAMS: dict[str, Any] = {
    "replication_group_id": ERG_NAME,
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
    "auth_token": ERG_TOKEN,
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
}


def erg_group(status: str = "available", endpoint: bool = True, **extra: Any) -> dict[str, Any]:
    """A DescribeReplicationGroups entry of ERG_NAME (botocore's shape: Stubber
    checks it): two nodes, transit and at-rest encryption, AUTH."""
    node_group: dict[str, Any] = {
        "NodeGroupId": "0001",
        "NodeGroupMembers": [
            {"CacheClusterId": f"{ERG_NAME}-001"},
            {"CacheClusterId": f"{ERG_NAME}-002"},
        ],
    }
    if endpoint:
        node_group["PrimaryEndpoint"] = {"Address": "master.example", "Port": 6379}
        node_group["ReaderEndpoint"] = {"Address": "replica.example", "Port": 6379}
    return {
        "ReplicationGroupId": ERG_NAME,
        "Description": ERG_NAME,
        "Status": status,
        "ARN": f"arn:aws:elasticache:us-east-1:123456789012:replicationgroup:{ERG_NAME}",
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


def load_module(path: Path, name: str) -> Any:
    """Import the Python file at ``path`` as a fresh module called ``name``."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@functools.cache
def aws_infra_filters() -> Any:
    """roles/aws_infra/filter_plugins/aws_infra_filters.py (pure functions)."""
    return load_module(
        ROOT / "roles/aws_infra/filter_plugins/aws_infra_filters.py", "aws_infra_filters"
    )


def reset_moto(url: str) -> None:
    """Empty a moto server (POST /moto-api/reset)."""
    request = urllib.request.Request(f"{url}/moto-api/reset", method="POST")
    urllib.request.urlopen(request, timeout=10)


def client(env: dict[str, str], service: str) -> Any:
    """A boto3 client on the moto (and with the credentials) of ``env``."""
    return boto3.client(
        service,
        endpoint_url=env["AWS_URL"],
        region_name=env["AWS_REGION"],
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
    )


def own_vpcs(ec2: Any) -> list[dict[str, Any]]:
    """The VPCs an EC2 client sees, but the default one."""
    return [v for v in ec2.describe_vpcs()["Vpcs"] if not v["IsDefault"]]


def run_module(
    path: Path, env: dict[str, str], args: dict[str, Any], timeout: int = 60
) -> subprocess.CompletedProcess[str]:
    """Run a module file the way Ansible does (JSON arguments) against the moto of
    ``env`` (region and endpoint_url from it unless ``args`` name them)."""
    module_args = {"region": env["AWS_REGION"], "endpoint_url": env["AWS_URL"], **args}
    return subprocess.run(
        [sys.executable, str(path), json.dumps({"ANSIBLE_MODULE_ARGS": module_args})],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=timeout,
    )


def module_result(
    path: Path, env: dict[str, str], args: dict[str, Any], timeout: int = 60
) -> dict[str, Any]:
    """run_module()'s parsed result."""
    return json.loads(run_module(path, env, args, timeout).stdout)


def ansible_playbook(
    env: dict[str, str], *args: str, cwd: Path | None = ROOT, timeout: int = 300
) -> subprocess.CompletedProcess[str]:
    """ansible-playbook of this venv with ``args``, its output captured."""
    return subprocess.run(
        [str(VENV_BIN / "ansible-playbook"), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=timeout,
    )


def aws_playbook(
    env: dict[str, str], playbook: str, *args: str, timeout: int = 300
) -> subprocess.CompletedProcess[str]:
    """playbooks/<playbook>.yml with inventory/aws (from the repository root)."""
    return ansible_playbook(
        env, "-i", "inventory/aws", *args, f"playbooks/{playbook}.yml", timeout=timeout
    )


def extra_vars(tmp_path: Path, data: dict[str, Any]) -> str:
    """``data`` written to a file in ``tmp_path``, as an --extra-vars=@file argument."""
    vars_file = tmp_path / "vars.json"
    vars_file.write_text(json.dumps(data))
    return f"--extra-vars=@{vars_file}"


def provision_refused(env: dict[str, str], tmp_path: Path, data: dict[str, Any], *args: str) -> str:
    """Run the provision playbook with ``data`` as its extra vars; return its
    combined output (it must fail)."""
    proc = aws_playbook(env, "provision", extra_vars(tmp_path, data), *args)
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0, f"bad input was accepted:\n{output}"
    return output


def flat(text: str) -> str:
    """``text`` with every run of white space one space (Ansible wraps messages)."""
    return " ".join(text.split())


# --- fakes for the botocore Stubber tests ---------------------------------------------


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
    """What our modules use of AnsibleAWSModule, with a stubbed client: params
    (a subclass's ``defaults`` updated with the keyword arguments), check_mode,
    warn(), client(), and fail_json/fail_json_aws raising Failed."""

    defaults: ClassVar[dict[str, Any]] = {}

    def __init__(self, client: Any = None, **params: Any) -> None:
        self._client = client
        self.check_mode = False
        self.warnings: list[str] = []
        self.params = {**self.defaults, **params}

    def client(self, service: str, retry_decorator: Any = None) -> Any:
        return RetryingBotoClientWrapper(self._client, retry_decorator)

    def warn(self, msg: str) -> None:
        self.warnings.append(msg)

    def fail_json(self, msg: str, **kwargs: Any) -> None:
        raise Failed(msg)

    def fail_json_aws(self, exception: BaseException, msg: str = "", **kwargs: Any) -> None:
        raise Failed(f"{msg}: {exception}")


@contextmanager
def stubbed_client(service: str) -> Iterator[tuple[Any, Stubber]]:
    """A boto3 client that never leaves the process and its active Stubber;
    every queued response must have been used by the end."""
    stubbed = boto3.client(
        service,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    with Stubber(stubbed) as stub:
        yield stubbed, stub
        stub.assert_no_pending_responses()
