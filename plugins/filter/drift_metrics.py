"""The drift check's report (scripts/drift_report.py's latest.json) as Prometheus
text for node_exporter's textfile collector on the monitor host (role monitoring,
tasks/drift_report.yml; the names and labels are in its README)::

    content: "{{ report | drift_metrics(mtime, 'latest.json') }}"

An empty report publishes only ``cgc_drift_report_present 0``. A verdict it does
not know counts as a failed check; without a "finished" time the report file's
modification time stands in.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

# The report's verdict spellings -> the label value.
VERDICTS = {
    "in-sync": "in_sync",
    "in_sync": "in_sync",
    "drifted": "drift",
    "drift": "drift",
    "failed": "failed",
}
LABELS = ("in_sync", "drift", "failed")


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        try:
            return int(float(value))
        except (TypeError, ValueError):
            return 0


def _timestamp(finished: Any, mtime: Any) -> int:
    """``finished`` (ISO 8601 with a UTC offset) as Unix time, else ``mtime``."""
    try:
        return int(datetime.strptime(str(finished), "%Y-%m-%dT%H:%M:%S%z").timestamp())
    except ValueError:
        return _int(mtime)


def _gauge(name: str, help_text: str, samples: list[tuple[str, int]]) -> list[str]:
    lines = [f"# HELP {name} {help_text}", f"# TYPE {name} gauge"]
    return lines + [f"{name}{labels} {value}" for labels, value in samples]


def drift_metrics(report: Any, mtime: Any = 0, source: str = "") -> str:
    """The gauges cgc_drift_* for ``report`` (a parsed latest.json, {} for none)."""
    lines = [f"# Published by the monitoring role from {source} on the controller."]
    lines += _gauge(
        "cgc_drift_report_present",
        "1 when the controller had a drift report to publish.",
        [("", 1 if report else 0)],
    )
    if not report:
        return "\n".join(lines) + "\n"
    if not isinstance(report, Mapping):
        report = {}
    verdict = VERDICTS.get(str(report.get("verdict", "")), "failed")
    hosts = report.get("hosts") or {}
    if isinstance(hosts, Mapping):
        changed_hosts = sum(1 for host in hosts.values() if host.get("would_change"))
    else:
        changed_hosts = len(hosts)
    lines += _gauge(
        "cgc_drift_verdict",
        "Verdict of the last drift check: 1 for the verdict it gave.",
        [(f'{{verdict="{label}"}}', int(label == verdict)) for label in LABELS],
    )
    lines += _gauge(
        "cgc_drift_report_timestamp_seconds",
        "When the last drift check finished (Unix time).",
        [("", _timestamp(report.get("finished", ""), mtime))],
    )
    lines += _gauge(
        "cgc_drift_hosts_changed",
        "Hosts on which the last drift check found changes.",
        [("", changed_hosts)],
    )
    lines += _gauge(
        "cgc_drift_changed_tasks",
        "Tasks the last drift check found would change.",
        [("", _int(report.get("changed_tasks", 0)))],
    )
    return "\n".join(lines) + "\n"


class FilterModule:
    """Ansible filter plugin entry point."""

    def filters(self) -> dict[str, Any]:
        return {"drift_metrics": drift_metrics}
