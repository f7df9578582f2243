"""plugins/filter/drift_metrics.py: the drift report as node_exporter textfile metrics.

tests/test_monitoring_rules.py renders the role's task with it and lints the result
with promtool; these are the edge cases of the report's format.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from aws_support import load_module

ROOT = Path(__file__).resolve().parent.parent
drift_metrics = load_module(ROOT / "plugins/filter/drift_metrics.py", "drift_metrics").drift_metrics
MTIME = 1795902000


def samples(report: Any, mtime: Any = MTIME) -> dict[str, int]:
    text = drift_metrics(report, mtime, "latest.json")
    assert text.startswith(
        "# Published by the monitoring role from latest.json on the controller.\n"
    )
    return {
        line.rsplit(" ", 1)[0]: int(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line and not line.startswith("#")
    }


def verdict(report: Any) -> str:
    found = [k for k, v in samples(report).items() if k.startswith("cgc_drift_verdict") and v]
    assert len(found) == 1, found
    return found[0].split('"')[1]


def test_no_report_publishes_only_its_absence() -> None:
    assert samples({}) == {"cgc_drift_report_present": 0}
    assert samples(None) == {"cgc_drift_report_present": 0}


@pytest.mark.parametrize(
    ("given", "label"),
    [
        ("in-sync", "in_sync"),
        ("in_sync", "in_sync"),
        ("drifted", "drift"),
        ("drift", "drift"),
        ("failed", "failed"),
        ("something else", "failed"),
        (None, "failed"),
    ],
)
def test_each_verdict_spelling_has_its_label(given: Any, label: str) -> None:
    assert verdict({"verdict": given}) == label


def test_a_report_without_a_verdict_is_a_failed_check() -> None:
    assert verdict({"changed_tasks": 1}) == "failed"
    assert verdict(["not", "a", "mapping"]) == "failed"


@pytest.mark.parametrize(
    ("finished", "expected"),
    [
        ("2026-11-28T21:40:00+00:00", 1795902000),
        ("2026-11-28T22:40:00+01:00", 1795902000),
        ("2026-11-28T21:40:00Z", 1795902000),
        ("yesterday", MTIME),
        ("", MTIME),
        (None, MTIME),
    ],
)
def test_the_finished_time_else_the_files_mtime(finished: Any, expected: int) -> None:
    stamp = samples({"verdict": "drift", "finished": finished}, mtime=MTIME)
    assert stamp["cgc_drift_report_timestamp_seconds"] == expected


def test_hosts_changed_counts_hosts_that_would_change() -> None:
    hosts = {"a": {"would_change": [1]}, "b": {"would_change": []}, "c": {}}
    assert samples({"verdict": "drift", "hosts": hosts})["cgc_drift_hosts_changed"] == 1
    assert samples({"verdict": "drift", "hosts": ["a", "b"]})["cgc_drift_hosts_changed"] == 2
    assert samples({"verdict": "drift", "hosts": None})["cgc_drift_hosts_changed"] == 0


@pytest.mark.parametrize(
    ("given", "expected"), [(3, 3), ("4", 4), ("2.0", 2), ("many", 0), (None, 0)]
)
def test_changed_tasks_is_a_whole_number(given: Any, expected: int) -> None:
    assert (
        samples({"verdict": "drift", "changed_tasks": given})["cgc_drift_changed_tasks"] == expected
    )
