#!/usr/bin/env python3
"""Turn on moto's IAM enforcement and create the users the aws scenario runs as.

    iam_user.py CREDENTIALS_FILE [--without ACTION ...]

Against AWS_URL (a moto server): POST /moto-api/reset-auth makes every request
after the next six need a known access key and a policy that allows it; the
six are spent here on two users:
  deployer  docs/aws-iam-policy.json, as moto can check it (actions only:
            moto ignores Resource and Condition, so both become "*"/nothing),
            minus any --without action;
  checker   everything (the scenario's boto3 checks, not part of the policy).
Their keys go to CREDENTIALS_FILE as the profiles "deployer" and "checker".
"""

from __future__ import annotations

import argparse
import configparser
import json
import os
import urllib.request
from pathlib import Path
from typing import Any

import boto3

POLICY = Path(__file__).resolve().parents[2] / "docs/aws-iam-policy.json"
SETUP_CALLS = 6
MOTO_PREFIXES = {"cloudwatch": "monitoring"}  # (CreateUser, PutUserPolicy, CreateAccessKey) x 2


def moto_view(policy: dict[str, Any], without: set[str]) -> dict[str, Any]:
    """The policy with what moto cannot evaluate widened: every Resource "*",
    no Condition; the actions in ``without`` removed; moto's own spelling of
    CloudWatch actions added."""
    statements = []
    for statement in policy["Statement"]:
        actions = statement["Action"]
        actions = [actions] if isinstance(actions, str) else actions
        kept = [a for a in actions if a not in without]
        # moto names CloudWatch's actions after its endpoint ("monitoring:"),
        # AWS after the service ("cloudwatch:"): the moto user gets both.
        kept += [
            MOTO_PREFIXES[a.split(":")[0]] + a[a.index(":") :]
            for a in kept
            if a.split(":")[0] in MOTO_PREFIXES
        ]
        if kept:
            statements.append({"Effect": statement["Effect"], "Action": kept, "Resource": "*"})
    return {"Version": policy["Version"], "Statement": statements}


def enforce(url: str, count: int | str) -> None:
    """Require credentials after ``count`` more requests ("inf": never)."""
    request = urllib.request.Request(
        f"{url}/moto-api/reset-auth",
        data=str(count).encode(),
        headers={"Content-Type": "text/plain"},  # a form body would reach moto empty
        method="POST",
    )
    urllib.request.urlopen(request, timeout=10)


def create_user(iam: Any, name: str, policy: dict[str, Any]) -> dict[str, str]:
    iam.create_user(UserName=name)
    iam.put_user_policy(UserName=name, PolicyName=name, PolicyDocument=json.dumps(policy))
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return {
        "aws_access_key_id": key["AccessKeyId"],
        "aws_secret_access_key": key["SecretAccessKey"],
    }


def setup(url: str, credentials: Path, without: set[str]) -> None:
    # The scenario's AWS_PROFILE names a profile this very call creates.
    os.environ.pop("AWS_PROFILE", None)
    enforce(url, SETUP_CALLS)
    iam = boto3.client(
        "iam",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="setup",
        aws_secret_access_key="setup",
    )
    policy = moto_view(json.loads(POLICY.read_text()), without)
    admin = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
    }
    config = configparser.ConfigParser()
    config["deployer"] = create_user(iam, "cachedapp-deployer", policy)
    config["checker"] = create_user(iam, "cachedapp-checker", admin)
    with credentials.open("w") as out:
        config.write(out)
    credentials.chmod(0o600)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("credentials", type=Path)
    parser.add_argument("--without", action="append", default=[])
    args = parser.parse_args()
    setup(os.environ["AWS_URL"], args.credentials, set(args.without))


if __name__ == "__main__":
    main()
