#!/usr/bin/python
# Copyright: the cachedapp project authors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The CloudWatch alarms of one environment, as a set."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: aws_infra_alarms
short_description: Keep an environment's CloudWatch metric alarms exactly as listed
description:
  - Creates or updates every alarm in O(alarms) (named O(prefix) + the alarm's
    name), tagged with O(tags), notifying O(topic_arn) on ALARM and OK.
  - Deletes the alarms whose names start with O(prefix) and that carry every tag
    of O(tags) but are not listed (a web host or the load balancer that went
    away). With O(state=absent), deletes all of those.
  - Alarms with the prefix but without the tags are not touched (reported).
  - Compares only the settings it manages, so a re-run changes nothing.
    Supports check mode.
version_added: 1.0.0
author:
  - cachedapp project
options:
  state:
    description: V(present) keeps exactly O(alarms); V(absent) deletes the environment's alarms.
    type: str
    choices: [present, absent]
    default: present
  prefix:
    description: Name prefix of the environment's alarms, for example V(cachedapp-production-).
    type: str
    required: true
  tags:
    description: Tags that mark an alarm as the environment's.
    type: dict
    required: true
  topic_arn:
    description: SNS topic notified on ALARM and OK. Required with O(state=present).
    type: str
  alarms:
    description: The alarms.
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: Name after O(prefix).
        type: str
        required: true
      namespace:
        description: Metric namespace, for example V(AWS/RDS).
        type: str
        required: true
      metric:
        description: Metric name.
        type: str
        required: true
      dimensions:
        description: Dimension name to value.
        type: dict
        required: true
      statistic:
        description: Statistic.
        type: str
        default: Average
        choices: [Average, Sum, Minimum, Maximum, SampleCount]
      comparison:
        description: Comparison operator.
        type: str
        default: GreaterThanOrEqualToThreshold
        choices:
          - GreaterThanOrEqualToThreshold
          - GreaterThanThreshold
          - LessThanThreshold
          - LessThanOrEqualToThreshold
      threshold:
        description: Threshold.
        type: float
        required: true
      period:
        description: Seconds per datapoint.
        type: int
        default: 300
      evaluation_periods:
        description: Datapoints that must breach.
        type: int
        default: 1
      treat_missing_data:
        description: How missing datapoints count.
        type: str
        default: notBreaching
        choices: [breaching, notBreaching, ignore, missing]
      description:
        description: What the alarm means.
        type: str
        default: ""
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
"""

EXAMPLES = r"""
- name: RDS CPU
  aws_infra_alarms:
    prefix: cachedapp-production-
    tags: {project: cachedapp, env: production}
    topic_arn: arn:aws:sns:eu-west-1:123456789012:cachedapp-production-alarms
    alarms:
      - name: db-cpu
        namespace: AWS/RDS
        metric: CPUUtilization
        dimensions: {DBInstanceIdentifier: cachedapp-production-db}
        threshold: 80
"""

RETURN = r"""
created:
  description: Names of the alarms created.
  returned: always
  type: list
  elements: str
updated:
  description: Names of the alarms updated.
  returned: always
  type: list
  elements: str
deleted:
  description: Names of the alarms deleted.
  returned: always
  type: list
  elements: str
foreign:
  description: Alarms with the prefix but without the tags, left alone.
  returned: always
  type: list
  elements: str
"""

import contextlib
from typing import Any

with contextlib.suppress(ImportError):  # AnsibleAWSModule reports a missing botocore
    from botocore.exceptions import BotoCoreError, ClientError

from ansible_collections.amazon.aws.plugins.module_utils.botocore import (
    paginated_query_with_retries,
)
from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule
from ansible_collections.amazon.aws.plugins.module_utils.retries import AWSRetry
from ansible_collections.amazon.aws.plugins.module_utils.tagging import (
    ansible_dict_to_boto3_tag_list,
    boto3_tag_list_to_ansible_dict,
    compare_aws_tags,
)


def wanted_request(prefix: str, alarm: dict[str, Any], topic: str) -> dict[str, Any]:
    """PutMetricAlarm parameters for one listed alarm."""
    return {
        "AlarmName": prefix + alarm["name"],
        # Every optional key has its default from the argument spec (main()).
        "AlarmDescription": alarm["description"],
        "Namespace": alarm["namespace"],
        "MetricName": alarm["metric"],
        "Dimensions": [
            {"Name": str(k), "Value": str(v)} for k, v in sorted(alarm["dimensions"].items())
        ],
        "Statistic": alarm["statistic"],
        "ComparisonOperator": alarm["comparison"],
        "Threshold": float(alarm["threshold"]),
        "Period": alarm["period"],
        "EvaluationPeriods": alarm["evaluation_periods"],
        "TreatMissingData": alarm["treat_missing_data"],
        "ActionsEnabled": True,
        "AlarmActions": [topic],
        "OKActions": [topic],
    }


def differs(want: dict[str, Any], have: dict[str, Any]) -> list[str]:
    """The managed settings in which the described alarm differs."""
    changed = []
    for key, wanted in want.items():
        current, value = have.get(key), wanted
        if key == "Dimensions":
            current = sorted(current or [], key=lambda d: d["Name"])
        if key in ("AlarmActions", "OKActions"):
            current, value = sorted(current or []), sorted(wanted)
        if key == "Threshold":
            current = float(current) if current is not None else None
        if key == "AlarmDescription":
            current = current or ""
        if current != value:
            changed.append(key)
    return changed


class Alarms:
    def __init__(self, module: AnsibleAWSModule) -> None:
        self.module = module
        self.retry = AWSRetry.jittered_backoff()
        self.cw = module.client("cloudwatch", retry_decorator=self.retry)
        self.prefix = module.params["prefix"]
        self.tags = module.params["tags"]
        self.created: list[str] = []
        self.updated: list[str] = []
        self.deleted: list[str] = []
        self.foreign: list[str] = []

    def sync(self) -> None:
        """Put the listed alarms, delete the environment's unlisted ones."""
        p = self.module.params
        have = self.existing()
        listed = p["alarms"] if p["state"] == "present" else []
        requests = [wanted_request(self.prefix, alarm, p["topic_arn"]) for alarm in listed]
        wanted = {request["AlarmName"]: request for request in requests}
        for name, request in wanted.items():
            if name in have and not self.is_ours(have[name]):
                self.foreign.append(name)
            elif name not in have:
                self.created.append(name)
                self.put({**request, "Tags": ansible_dict_to_boto3_tag_list(self.tags)})
            elif differs(request, have[name]):
                self.updated.append(name)
                self.put(request)
        for name, alarm in have.items():
            if name not in wanted:
                (self.deleted if self.is_ours(alarm) else self.foreign).append(name)
        if not self.module.check_mode:
            for start in range(0, len(self.deleted), 100):  # DeleteAlarms takes 100 names at most
                chunk = self.deleted[start : start + 100]
                self.cw.delete_alarms(AlarmNames=chunk, aws_retry=True)

    def put(self, request: dict[str, Any]) -> None:
        if not self.module.check_mode:
            self.cw.put_metric_alarm(aws_retry=True, **request)

    def existing(self) -> dict[str, dict[str, Any]]:
        described = paginated_query_with_retries(
            self.cw,
            "describe_alarms",
            self.retry,
            AlarmNamePrefix=self.prefix,
            AlarmTypes=["MetricAlarm"],
        )
        return {alarm["AlarmName"]: alarm for alarm in described.get("MetricAlarms", [])}

    def is_ours(self, alarm: dict[str, Any]) -> bool:
        listed = self.cw.list_tags_for_resource(ResourceARN=alarm["AlarmArn"], aws_retry=True)
        tags = boto3_tag_list_to_ansible_dict(listed.get("Tags"))
        missing, _ = compare_aws_tags(tags, self.tags, purge_tags=False)
        return not missing


def main() -> None:
    alarm_options = {
        "name": {"type": "str", "required": True},
        "namespace": {"type": "str", "required": True},
        "metric": {"type": "str", "required": True},
        "dimensions": {"type": "dict", "required": True},
        "statistic": {
            "type": "str",
            "default": "Average",
            "choices": ["Average", "Sum", "Minimum", "Maximum", "SampleCount"],
        },
        "comparison": {
            "type": "str",
            "default": "GreaterThanOrEqualToThreshold",
            "choices": [
                "GreaterThanOrEqualToThreshold",
                "GreaterThanThreshold",
                "LessThanThreshold",
                "LessThanOrEqualToThreshold",
            ],
        },
        "threshold": {"type": "float", "required": True},
        "period": {"type": "int", "default": 300},
        "evaluation_periods": {"type": "int", "default": 1},
        "treat_missing_data": {
            "type": "str",
            "default": "notBreaching",
            "choices": ["breaching", "notBreaching", "ignore", "missing"],
        },
        "description": {"type": "str", "default": ""},
    }
    module = AnsibleAWSModule(
        argument_spec={
            "state": {"type": "str", "choices": ["present", "absent"], "default": "present"},
            "prefix": {"type": "str", "required": True},
            "tags": {"type": "dict", "required": True},
            "topic_arn": {"type": "str"},
            "alarms": {
                "type": "list",
                "elements": "dict",
                "default": [],
                "options": alarm_options,
            },
        },
        required_if=[("state", "present", ["topic_arn"])],
        supports_check_mode=True,
    )
    if not module.params["prefix"]:
        module.fail_json(msg="prefix must not be empty")
    manager = Alarms(module)
    try:
        manager.sync()
    except (ClientError, BotoCoreError) as e:
        module.fail_json_aws(e, msg=f"Cannot manage the alarms {module.params['prefix']}*")
    for name in manager.foreign:
        module.warn(f"alarm {name} lacks the environment's tags: left alone")
    module.exit_json(
        changed=bool(manager.created or manager.updated or manager.deleted),
        created=manager.created,
        updated=manager.updated,
        deleted=manager.deleted,
        foreign=manager.foreign,
    )


if __name__ == "__main__":
    main()
