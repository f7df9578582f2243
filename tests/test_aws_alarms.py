"""roles/aws_infra/library/aws_infra_alarms.py against moto: created, a re-run
changes nothing, an alarm no longer listed is deleted, a same-prefixed alarm
without the environment's tags is left alone, state=absent removes the rest.
And the alarm list the role hands it (filter aws_infra_alarm_specs)."""

from __future__ import annotations

from typing import Any

import yaml
from aws_support import LIBRARY, ROOT, TAGS, aws_infra_filters, client, module_result

MODULE = LIBRARY / "aws_infra_alarms.py"
TOPIC = "arn:aws:sns:us-east-1:123456789012:cachedapp-ci-alarms"
ALARMS = [
    {
        "name": "db-cpu",
        "namespace": "AWS/RDS",
        "metric": "CPUUtilization",
        "dimensions": {"DBInstanceIdentifier": "cachedapp-ci-db"},
        "threshold": 80,
        "evaluation_periods": 2,
    },
    {
        "name": "db-free-storage",
        "namespace": "AWS/RDS",
        "metric": "FreeStorageSpace",
        "statistic": "Minimum",
        "comparison": "LessThanOrEqualToThreshold",
        "dimensions": {"DBInstanceIdentifier": "cachedapp-ci-db"},
        "threshold": 2147483648,
    },
    {
        "name": "web-i-0123-status-check",
        "namespace": "AWS/EC2",
        "metric": "StatusCheckFailed",
        "statistic": "Maximum",
        "dimensions": {"InstanceId": "i-0123"},
        "threshold": 1,
        "period": 60,
        "evaluation_periods": 2,
    },
]


def run(env: dict[str, str], check: bool = False, **args: Any) -> dict[str, Any]:
    module_args = {
        "prefix": "cachedapp-ci-",
        "tags": TAGS,
        "topic_arn": TOPIC,
        "_ansible_check_mode": check,
        **args,
    }
    return module_result(MODULE, env, module_args)


def names(env: dict[str, str]) -> list[str]:
    cw = client(env, "cloudwatch")
    return sorted(a["AlarmName"] for a in cw.describe_alarms()["MetricAlarms"])


def test_alarms_created_idempotent_pruned_and_removed(aws_env: dict[str, str]) -> None:
    planned = run(aws_env, check=True, alarms=ALARMS)
    assert planned["changed"] is True
    assert names(aws_env) == []
    created = run(aws_env, alarms=ALARMS)
    assert created["changed"] is True
    assert sorted(created["created"]) == [f"cachedapp-ci-{a['name']}" for a in ALARMS]
    assert run(aws_env, alarms=ALARMS)["changed"] is False
    assert run(aws_env, check=True, alarms=ALARMS)["changed"] is False
    changed = [{**ALARMS[0], "threshold": 90}, *ALARMS[1:]]
    assert run(aws_env, alarms=changed)["updated"] == ["cachedapp-ci-db-cpu"]
    # Somebody else's alarm with the same prefix (no tags).
    cw = client(aws_env, "cloudwatch")
    cw.put_metric_alarm(
        AlarmName="cachedapp-ci-theirs",
        Namespace="AWS/EC2",
        MetricName="CPUUtilization",
        Statistic="Average",
        Period=300,
        EvaluationPeriods=1,
        Threshold=1.0,
        ComparisonOperator="GreaterThanThreshold",
    )
    pruned = run(aws_env, alarms=changed[:2])  # the web host went away
    assert pruned["deleted"] == ["cachedapp-ci-web-i-0123-status-check"]
    assert pruned["foreign"] == ["cachedapp-ci-theirs"]
    gone = run(aws_env, state="absent", topic_arn=None)
    assert sorted(gone["deleted"]) == ["cachedapp-ci-db-cpu", "cachedapp-ci-db-free-storage"]
    assert names(aws_env) == ["cachedapp-ci-theirs"]
    assert run(aws_env, state="absent", topic_arn=None)["changed"] is False


# --- the alarm list of the current shape (aws_infra_alarm_specs) ---------------------

alarm_specs = aws_infra_filters().alarm_specs
THRESHOLDS = yaml.safe_load((ROOT / "roles/aws_infra/vars/main.yml").read_text())[
    "__aws_infra_alarm_threshold_defaults"
]
LB = "arn:aws:elasticloadbalancing:us-east-1:1:loadbalancer/app/cachedapp-ci-alb/abc"
TG = "arn:aws:elasticloadbalancing:us-east-1:1:targetgroup/cachedapp-ci-web/def"


def test_alarm_specs_of_a_load_balanced_shape() -> None:
    alarms = alarm_specs(
        THRESHOLDS,
        "cachedapp-ci",
        cache_nodes=["cachedapp-ci-001", "cachedapp-ci-002"],
        lb_arn=LB,
        tg_arn=TG,
        web_ids=["i-b", "i-a"],
    )
    by_name = {a["name"]: a for a in alarms}
    assert len(by_name) == len(alarms) == 4 * 2 + 3 + 4 + 2
    assert by_name["cache-001-evictions"]["dimensions"] == {"CacheClusterId": "cachedapp-ci-001"}
    assert by_name["cache-002-engine-cpu"]["threshold"] == 80
    assert by_name["db-free-storage"]["comparison"] == "LessThanOrEqualToThreshold"
    assert by_name["db-cpu"]["dimensions"] == {"DBInstanceIdentifier": "cachedapp-ci-db"}
    assert by_name["alb-unhealthy-hosts"]["dimensions"] == {
        "LoadBalancer": "app/cachedapp-ci-alb/abc",
        "TargetGroup": "targetgroup/cachedapp-ci-web/def",
    }
    assert by_name["alb-5xx"]["dimensions"] == {"LoadBalancer": "app/cachedapp-ci-alb/abc"}
    webs = [a["name"] for a in alarms if a["namespace"] == "AWS/EC2"]
    assert webs == ["web-i-a-status-check", "web-i-b-status-check"]


def test_alarm_specs_without_a_load_balancer_or_cache_nodes() -> None:
    thresholds = {**THRESHOLDS, "db_cpu_percent": 95}
    alarms = alarm_specs(thresholds, "cachedapp-ci", lb_arn=LB, web_ids=["i-z"])
    assert [a["name"] for a in alarms] == [
        "db-cpu",
        "db-free-storage",
        "db-connections",
        "web-i-z-status-check",
    ]  # no target group ARN: no ALB alarms
    assert alarms[0]["threshold"] == 95
