"""The monitoring role's Prometheus files, checked by Prometheus's own promtool.

The role's templates are rendered by Ansible (the template module, the role's defaults
and Debian data), then:

- ``promtool check config`` / ``check rules`` accept them (the role runs the same checks
  on the monitor host before a file replaces the live one);
- ``promtool test rules`` feeds synthetic series to the rules and asserts, per alert,
  that it stays quiet while the stack is healthy and fires (labels and summary exact)
  once the condition has held for ``for:``;
- the drift verdict file (node_exporter textfile) rendered from reports in
  scripts/drift_report.py's format passes ``promtool check metrics`` and says what the
  report says;
- the role's input checks (run on this Debian 12 controller) pass good values and name
  each bad one.

promtool comes from Debian's ``prometheus`` package (PROMTOOL, else PATH, else
/usr/bin/promtool); the test fails, not skips, without it.
"""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
ROLE = REPO / "roles" / "monitoring"
BIN = Path(sys.executable).parent
# The project's ansible.cfg, but facts cached in memory only: the few facts these
# runs gather for localhost must not stand in for another test's full set.
ENV = {**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), "ANSIBLE_CACHE_PLUGIN": "memory"}

# Values the rules are rendered with (the rule tests below count in these units).
RULE_VARS = {
    "monitoring_alert_for": "1m",
    "monitoring_rate_window": "5m",
    "monitoring_hit_ratio_min": 0.8,
    "monitoring_hit_ratio_min_rate": 0.1,
    "monitoring_http_5xx_ratio_max": 0.05,
    "monitoring_drift_report_max_age": 172800,
    "monitoring_web_targets": [
        {"name": "cgc-web-1", "address": "10.230.80.101"},
        {"name": "cgc-web-2", "address": "10.230.80.102"},
    ],
    "monitoring_redis_address": "10.230.80.11:6379",
    "monitoring_postgres_host": "10.230.80.10",
    "monitoring_redis_password": "not-used-here",
    "monitoring_postgres_password": "not-used-here",
}

DRIFTED = {
    "schema": 1,
    "verdict": "drifted",
    "finished": "2026-11-28T21:40:00+00:00",
    "changed_tasks": 3,
    "hosts": {
        "cgc-web-1": {"ok": 20, "changed": 2, "would_change": [{"task": "a"}, {"task": "b"}]},
        "cgc-web-2": {"ok": 20, "changed": 1, "would_change": [{"task": "a"}]},
        "cgc-db": {"ok": 20, "changed": 0, "would_change": []},
    },
}
IN_SYNC = {
    **DRIFTED,
    "verdict": "in-sync",
    "changed_tasks": 0,
    "hosts": {"cgc-db": {"would_change": []}},
}
DRIFT_CASES = {"drifted": DRIFTED, "in_sync": IN_SYNC, "failed": {"verdict": "failed"}, "none": {}}

RENDER_PLAYBOOK = """
- name: Render the monitoring role's Prometheus files
  hosts: localhost
  gather_facts: false
  vars_files: [{defaults}, {vars_main}, {vars_debian}]
  tasks:
    - name: Rules, configuration
      ansible.builtin.template:
        src: "{templates}/{{{{ item.src }}}}"
        dest: "{out}/{{{{ item.dest }}}}"
        mode: "0644"
      loop:
        - {{src: cachedapp.rules.yml.j2, dest: rules.yml}}
        - {{src: prometheus.yml.j2, dest: prometheus.yml}}
    - name: Drift verdicts, as the role's task writes them
      ansible.builtin.copy:
        content: "{drift_content}"
        dest: "{out}/drift-{{{{ item.key }}}}.prom"
        mode: "0644"
      loop: "{{{{ drift_cases | dict2items }}}}"
      vars:
        __monitoring_drift_report: "{{{{ item.value }}}}"
        __monitoring_drift_stat: {{stat: {{exists: true, mtime: 1795902000}}}}
"""


# The content expression of the role's task that publishes the verdict.
DRIFT_CONTENT = next(
    task["ansible.builtin.copy"]["content"]
    for task in yaml.safe_load((ROLE / "tasks/drift_report.yml").read_text())
    if "ansible.builtin.copy" in task
)


def promtool() -> str:
    found = os.environ.get("PROMTOOL") or shutil.which("promtool") or "/usr/bin/promtool"
    if not Path(found).is_file():
        pytest.fail(
            "promtool not found: install Debian's prometheus package (it ships promtool) "
            "or point PROMTOOL at one"
        )
    return found


def run(*argv: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, input=stdin, capture_output=True, text=True, check=False)


def render(out: Path, values: dict[str, Any]) -> Path:
    """The role's Prometheus files and drift verdicts, rendered into ``out``."""
    playbook = out / "render.yml"
    playbook.write_text(
        RENDER_PLAYBOOK.format(
            defaults=ROLE / "defaults/main.yml",
            vars_main=ROLE / "vars/main.yml",
            vars_debian=ROLE / "vars/Debian-12.yml",
            templates=ROLE / "templates",
            out=out,
            drift_content=DRIFT_CONTENT.strip(),
        )
    )
    extra = {
        **values,
        "ansible_python_interpreter": sys.executable,
        "drift_cases": DRIFT_CASES,
        "monitoring_drift_report_file": "/x/latest.json",
        # promtool resolves the rule file the configuration names.
        "__monitoring_rules_file": str(out / "rules.yml"),
    }
    proc = subprocess.run(
        [str(BIN / "ansible-playbook"), "-i", "localhost,", "-c", "local", str(playbook),
         "-e", json.dumps(extra)],
        capture_output=True, text=True, cwd=REPO, env=ENV, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return out


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return render(tmp_path_factory.mktemp("monitoring"), RULE_VARS)


def test_promtool_accepts_the_rules_and_the_configuration(rendered: Path) -> None:
    rules = run(promtool(), "check", "rules", str(rendered / "rules.yml"))
    assert rules.returncode == 0, rules.stdout + rules.stderr
    config = run(promtool(), "check", "config", str(rendered / "prometheus.yml"))
    assert config.returncode == 0, config.stdout + config.stderr


# The alerts the role's rules define (roles/monitoring/README.md lists them).
ALERT_NAMES = [
    "CachedappHostDown",
    "RedisDown",
    "PostgresDown",
    "CacheHitRatioLow",
    "StaleAnswersServed",
    "DatabaseErrors",
    "RedisErrorsInApp",
    "Http5xxRateHigh",
    "DriftDetected",
    "DriftCheckFailed",
    "DriftCheckStale",
]


def test_the_rules_are_the_expected_alerts(rendered: Path) -> None:
    rules = yaml.safe_load((rendered / "rules.yml").read_text())
    alerts = [r["alert"] for g in rules["groups"] for r in g["rules"]]
    assert sorted(alerts) == sorted(ALERT_NAMES)
    assert len(alerts) == len(set(alerts)), "an alert is defined twice"


def test_per_distro_data_is_complete_and_used() -> None:
    """Each per-distro vars file defines the keys preflight requires, no more; each of
    them is read somewhere in the role (tasks, handlers, templates)."""
    required = set(yaml.safe_load((ROLE / "vars/main.yml").read_text())["__monitoring_distro_keys"])
    distro_files = [p for p in sorted((ROLE / "vars").glob("*.yml")) if p.name != "main.yml"]
    assert distro_files
    for path in distro_files:
        assert set(yaml.safe_load(path.read_text())) == required, path.name
    users = [
        p.read_text()
        for part in ("tasks", "handlers", "templates")
        for p in sorted((ROLE / part).rglob("*"))
        if p.is_file()
    ]
    unused = sorted(key for key in required if not any(key in text for text in users))
    assert unused == [], "per-distro keys nothing reads"


def test_each_service_has_its_settings_template_and_restart_handler() -> None:
    """configure.yml writes /etc/default/<unit> from `<key>.default.j2` and notifies
    `monitoring restart <key>` for each key of __monitoring_services: a name that does
    not match would only show when that file changes on a live host."""
    handlers = yaml.safe_load((ROLE / "handlers/main.yml").read_text())
    listened = {handler.get("listen") for handler in handlers}
    for path in sorted((ROLE / "vars").glob("*.yml")):
        services = (yaml.safe_load(path.read_text()) or {}).get("__monitoring_services")
        if services is None:
            continue
        for key in services:
            assert (ROLE / "templates" / f"{key}.default.j2").is_file(), (path.name, key)
            assert f"monitoring restart {key}" in listened, (path.name, key)


APP_METRICS = REPO / "app" / "src" / "cachedapp" / "metrics.py"
# The series names prometheus_client exposes for a metric of each kind.
SERIES = {
    "Counter": lambda name: {name.removesuffix("_total") + "_total"},
    "Gauge": lambda name: {name},
    "Histogram": lambda name: {f"{name}_bucket", f"{name}_count", f"{name}_sum"},
    "Summary": lambda name: {f"{name}_count", f"{name}_sum", name},
}


def app_series() -> set[str]:
    """Series the app registers: metrics.py's Counter(...)/Histogram(...) calls, parsed."""
    series: set[str] = set()
    for node in ast.walk(ast.parse(APP_METRICS.read_text())):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in SERIES
            and node.args
            and isinstance(node.args[0], ast.Constant)
        ):
            series |= SERIES[node.func.id](node.args[0].value)
    return series


def test_every_app_metric_the_rules_use_is_registered_by_the_app(rendered: Path) -> None:
    rules = yaml.safe_load((rendered / "rules.yml").read_text())
    exprs = [r["expr"] for g in rules["groups"] for r in g["rules"]]
    used = {m for expr in exprs for m in re.findall(r"\bcachedapp_[a-z0-9_]+", expr)}
    registered = app_series()
    assert "cachedapp_request_duration_seconds_bucket" in registered, registered
    assert used, "the rules use no cachedapp_* metric"
    assert used <= registered, f"not registered by the app: {sorted(used - registered)}"


def test_the_role_readme_lists_every_alert() -> None:
    text = (ROLE / "README.md").read_text()
    table = text.split("## Alert rules", 1)[1].split("\n\n", 2)[1]
    first_cells = [row.split("|")[1] for row in table.splitlines() if row.startswith("| `")]
    listed = [name for cell in first_cells for name in re.findall(r"`(\w+)`", cell)]
    assert sorted(listed) == sorted(ALERT_NAMES)


def test_every_web_host_and_exporter_is_scraped(rendered: Path) -> None:
    config = yaml.safe_load((rendered / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert set(jobs) == {"prometheus", "node", "cachedapp", "nginx_log", "redis", "postgres"}
    app = [(s["labels"]["host"], s["targets"]) for s in jobs["cachedapp"]["static_configs"]]
    assert app == [("cgc-web-1", ["10.230.80.101:80"]), ("cgc-web-2", ["10.230.80.102:80"])]
    assert jobs["redis"]["static_configs"][0]["labels"]["host"] == "10.230.80.11"
    assert jobs["node"]["static_configs"] == [
        {"targets": ["127.0.0.1:9100"], "labels": {"host": "localhost"}}
    ]


def test_only_the_switched_on_jobs_are_scraped(tmp_path: Path) -> None:
    out = render(
        tmp_path,
        {
            **RULE_VARS,
            "monitoring_web_targets": [],
            "monitoring_web_log_metrics": False,
            "monitoring_nginx_exporter_enabled": True,
            "monitoring_redis_enabled": False,
            "monitoring_scrape_timeout": "5s",
        },
    )
    check = run(promtool(), "check", "config", str(out / "prometheus.yml"))
    assert check.returncode == 0, check.stdout + check.stderr
    config = yaml.safe_load((out / "prometheus.yml").read_text())
    assert config["global"]["scrape_timeout"] == "5s"
    jobs = {job["job_name"]: job["static_configs"] for job in config["scrape_configs"]}
    assert set(jobs) == {"prometheus", "node", "postgres", "cachedapp", "nginx"}
    assert jobs["cachedapp"] == jobs["nginx"] == []
    assert jobs["postgres"] == [{"targets": ["127.0.0.1:9187"], "labels": {"host": "10.230.80.10"}}]


# Alert tests: series sampled every minute; `for: 1m`, rates over 5m.
WEB1 = 'host="cgc-web-1", instance="10.230.80.101:80", job="cachedapp"'
RULE_TESTS: dict[str, Any] = {
    "evaluation_interval": "1m",
    "tests": [
        {
            "interval": "1m",
            "input_series": [
                # web-1 stops answering at minute 3; web-2 keeps answering.
                {"series": f"up{{{WEB1}}}", "values": "1 1 1 0 0 0 0 0"},
                {
                    "series": 'up{host="cgc-web-2", instance="10.230.80.102:80", job="cachedapp"}',
                    "values": "1x8",
                },
                # Redis goes down at minute 3 (the exporter stays up).
                {"series": 'redis_up{host="cache", job="redis"}', "values": "1 1 1 0 0 0 0 0"},
                {"series": 'up{host="cache", job="redis"}', "values": "1x8"},
                # The PostgreSQL exporter itself disappears at minute 3.
                {"series": 'pg_up{host="db", job="postgres"}', "values": "1x8"},
                {"series": 'up{host="db", job="postgres"}', "values": "1 1 1 0 0 0 0 0"},
            ],
            "alert_rule_test": [
                {"eval_time": "3m", "alertname": "CachedappHostDown", "exp_alerts": []},
                {
                    "eval_time": "5m",
                    "alertname": "CachedappHostDown",
                    "exp_alerts": [
                        {
                            "exp_labels": {
                                "severity": "critical",
                                "host": "cgc-web-1",
                                "instance": "10.230.80.101:80",
                                "job": "cachedapp",
                            },
                            "exp_annotations": {
                                "summary": "web host cgc-web-1 does not answer /metrics"
                                " through nginx"
                            },
                        }
                    ],
                },
                {"eval_time": "2m", "alertname": "RedisDown", "exp_alerts": []},
                {
                    "eval_time": "5m",
                    "alertname": "RedisDown",
                    "exp_alerts": [
                        {
                            "exp_labels": {"severity": "critical", "host": "cache", "job": "redis"},
                            "exp_annotations": {
                                "summary": "Redis cache is down: the app answers from the database"
                                " (fail-open)"
                            },
                        }
                    ],
                },
                {
                    "eval_time": "5m",
                    "alertname": "PostgresDown",
                    "exp_alerts": [
                        {
                            "exp_labels": {"severity": "critical", "host": "db", "job": "postgres"},
                            "exp_annotations": {
                                "summary": "PostgreSQL db is down: cold keys answer 503,"
                                " warm ones stale"
                            },
                        }
                    ],
                },
            ],
        },
        {
            # The app: 90 % hits for 10 minutes, then 30 %; stale answers, database
            # timeouts and Redis errors from minute 10; nginx 503s from minute 10.
            "interval": "1m",
            "input_series": [
                {
                    "series": f'cachedapp_cache_results_total{{{WEB1}, result="hit"}}',
                    "values": "0+90x10 930+30x19",
                },
                {
                    "series": f'cachedapp_cache_results_total{{{WEB1}, result="miss"}}',
                    "values": "0+10x10 170+70x19",
                },
                {
                    "series": f'cachedapp_cache_results_total{{{WEB1}, result="stale"}}',
                    "values": "0x10 1+1x19",
                },
                {
                    "series": f'cachedapp_db_errors_total{{{WEB1}, kind="timeout"}}',
                    "values": "0x10 1+1x19",
                },
                {
                    "series": f'cachedapp_redis_errors_total{{{WEB1}, kind="connection"}}',
                    "values": "0x10 1+1x19",
                },
                {
                    "series": 'nginx_http_responses_total{host="cgc-web-1", status="200"}',
                    "values": "0+100x30",
                },
                {
                    "series": 'nginx_http_responses_total{host="cgc-web-1", status="503"}',
                    "values": "0x10 20+20x19",
                },
            ],
            "alert_rule_test": [
                *(
                    {"eval_time": "9m", "alertname": name, "exp_alerts": []}
                    for name in (
                        "CacheHitRatioLow",
                        "StaleAnswersServed",
                        "DatabaseErrors",
                        "RedisErrorsInApp",
                        "Http5xxRateHigh",
                    )
                ),
                {
                    # 30 hits of 101 lookups a minute (stale answers count as lookups).
                    "eval_time": "20m",
                    "alertname": "CacheHitRatioLow",
                    "exp_alerts": [
                        {
                            "exp_labels": {"severity": "warning"},
                            "exp_annotations": {"summary": "cache hit ratio 29.7% is below 80.0 %"},
                        }
                    ],
                },
                {
                    "eval_time": "20m",
                    "alertname": "StaleAnswersServed",
                    "exp_alerts": [
                        {
                            "exp_labels": {"severity": "warning", "host": "cgc-web-1"},
                            "exp_annotations": {"summary": "cgc-web-1 serves stale answers"},
                        }
                    ],
                },
                {
                    "eval_time": "20m",
                    "alertname": "DatabaseErrors",
                    "exp_alerts": [
                        {
                            "exp_labels": {
                                "severity": "critical",
                                "host": "cgc-web-1",
                                "kind": "timeout",
                            },
                            "exp_annotations": {"summary": "cgc-web-1: database timeout errors"},
                        }
                    ],
                },
                {
                    "eval_time": "20m",
                    "alertname": "RedisErrorsInApp",
                    "exp_alerts": [
                        {
                            "exp_labels": {
                                "severity": "warning",
                                "host": "cgc-web-1",
                                "kind": "connection",
                            },
                            "exp_annotations": {
                                "summary": "cgc-web-1: Redis connection errors in the app"
                                " (it answered from the database)"
                            },
                        }
                    ],
                },
                {
                    "eval_time": "20m",
                    "alertname": "Http5xxRateHigh",
                    "exp_alerts": [
                        {
                            "exp_labels": {"severity": "critical", "host": "cgc-web-1"},
                            "exp_annotations": {
                                "summary": "cgc-web-1 answers 16.67% of requests with 5xx"
                            },
                        }
                    ],
                },
            ],
        },
        {
            # Drift verdicts as the monitor host's node_exporter publishes them.
            "interval": "1m",
            "input_series": [
                {"series": 'cgc_drift_verdict{verdict="in_sync"}', "values": "1 1 0 0 0 0"},
                {"series": 'cgc_drift_verdict{verdict="drift"}', "values": "0 0 1 1 1 1"},
                {"series": 'cgc_drift_verdict{verdict="failed"}', "values": "0x6"},
                {"series": "cgc_drift_report_timestamp_seconds", "values": "0 0 -200000x4"},
            ],
            "alert_rule_test": [
                {"eval_time": "1m", "alertname": "DriftDetected", "exp_alerts": []},
                {"eval_time": "1m", "alertname": "DriftCheckStale", "exp_alerts": []},
                {
                    "eval_time": "4m",
                    "alertname": "DriftDetected",
                    "exp_alerts": [
                        {
                            "exp_labels": {"severity": "warning", "verdict": "drift"},
                            "exp_annotations": {
                                "summary": "the last drift check found drift: run site.yml to heal"
                                " it (ARA and .ansible/drift/<stack>/latest.json name the tasks)"
                            },
                        }
                    ],
                },
                {"eval_time": "4m", "alertname": "DriftCheckFailed", "exp_alerts": []},
                {
                    "eval_time": "4m",
                    "alertname": "DriftCheckStale",
                    "exp_alerts": [
                        {
                            "exp_labels": {"severity": "warning"},
                            "exp_annotations": {
                                "summary": "no drift check has reported for 2d 7h 37m 20s"
                            },
                        }
                    ],
                },
            ],
        },
    ],
}


def test_each_alert_is_quiet_when_healthy_and_fires_when_its_condition_holds(
    rendered: Path,
) -> None:
    tests = rendered / "rules.test.yml"
    tests.write_text(yaml.safe_dump({"rule_files": ["rules.yml"], **RULE_TESTS}))
    proc = run(promtool(), "test", "rules", str(tests))
    assert proc.returncode == 0, proc.stdout + proc.stderr


def metrics(text: str) -> dict[str, float]:
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            samples[name] = float(value)
    return samples


def test_drift_verdicts_become_valid_metrics(rendered: Path) -> None:
    for case in DRIFT_CASES:
        text = (rendered / f"drift-{case}.prom").read_text()
        lint = run(promtool(), "check", "metrics", stdin=text)
        assert lint.returncode == 0, f"{case}: {lint.stdout}{lint.stderr}"

    drifted = metrics((rendered / "drift-drifted.prom").read_text())
    assert drifted == {
        "cgc_drift_report_present": 1,
        'cgc_drift_verdict{verdict="in_sync"}': 0,
        'cgc_drift_verdict{verdict="drift"}': 1,
        'cgc_drift_verdict{verdict="failed"}': 0,
        "cgc_drift_report_timestamp_seconds": 1795902000,  # 2026-11-28T21:40:00Z
        "cgc_drift_hosts_changed": 2,
        "cgc_drift_changed_tasks": 3,
    }
    in_sync = metrics((rendered / "drift-in_sync.prom").read_text())
    assert in_sync['cgc_drift_verdict{verdict="in_sync"}'] == 1
    assert in_sync["cgc_drift_hosts_changed"] == 0
    failed = metrics((rendered / "drift-failed.prom").read_text())
    assert failed['cgc_drift_verdict{verdict="failed"}'] == 1
    # No finished time in the report: the report file's modification time.
    assert failed["cgc_drift_report_timestamp_seconds"] == 1795902000
    assert metrics((rendered / "drift-none.prom").read_text()) == {"cgc_drift_report_present": 0}


VALIDATE_PLAYBOOK = """
- name: The monitoring role's input checks on this (Debian 12) controller
  hosts: localhost
  gather_facts: true
  gather_subset: ["!all", "!min", distribution]
  tasks:
    - name: Preflight (per-distro data)
      ansible.builtin.include_role:
        name: monitoring
        tasks_from: preflight
    - name: Validate
      ansible.builtin.include_role:
        name: monitoring
        tasks_from: validate
"""


def validate(tmp_path: Path, values: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    playbook = tmp_path / "validate.yml"
    playbook.write_text(VALIDATE_PLAYBOOK)
    extra = {**values, "ansible_python_interpreter": sys.executable}
    return subprocess.run(
        [str(BIN / "ansible-playbook"), "-i", "localhost,", "-c", "local", str(playbook),
         "-e", json.dumps(extra)],
        capture_output=True, text=True, cwd=REPO, env=ENV, check=False,
    )  # fmt: skip


def test_good_inputs_pass_the_checks(tmp_path: Path) -> None:
    proc = validate(tmp_path, RULE_VARS)
    assert proc.returncode == 0, proc.stdout[-3000:]


def test_bad_inputs_are_refused_by_name(tmp_path: Path) -> None:
    proc = validate(
        tmp_path,
        {
            **RULE_VARS,
            "monitoring_scrape_interval": "15",
            "monitoring_hit_ratio_min": 1.5,
            "monitoring_redis_address": "10.0.0.1",
            "monitoring_postgres_password": "",
            "monitoring_postgres_sslmode": "verify-full",
        },
    )
    assert proc.returncode != 0
    message = proc.stdout[proc.stdout.index("monitoring role: invalid input:") :]
    for name in (
        "monitoring_scrape_interval",
        "monitoring_hit_ratio_min",
        "monitoring_redis_address",
        "monitoring_postgres_password",
        "monitoring_postgres_sslmode",
    ):
        assert name in message, name
    assert "monitoring_retention" not in message


def test_exporters_switched_off_need_no_address_nor_password(tmp_path: Path) -> None:
    values = {
        **RULE_VARS,
        "monitoring_redis_enabled": False,
        "monitoring_postgres_enabled": False,
        "monitoring_redis_address": "",
        "monitoring_postgres_host": "",
    }
    del values["monitoring_redis_password"], values["monitoring_postgres_password"]
    proc = validate(tmp_path, values)
    assert proc.returncode == 0, proc.stdout[-3000:]
    values["monitoring_redis_enabled"] = True
    proc = validate(tmp_path, values)
    assert proc.returncode != 0
    message = proc.stdout[proc.stdout.index("monitoring role: invalid input:") :]
    assert "monitoring_redis_address" in message
    assert "monitoring_redis_password must be set" in message
    assert "monitoring_postgres" not in message.splitlines()[0]


WEB_PLAYBOOK = """
- name: The monitoring role's web entry point, exporters off (checks only)
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Web
      ansible.builtin.include_role:
        name: monitoring
        tasks_from: web
"""


def test_the_web_entry_point_refuses_bad_inputs_by_name(tmp_path: Path) -> None:
    playbook = tmp_path / "web.yml"
    playbook.write_text(WEB_PLAYBOOK)
    extra = {
        "ansible_python_interpreter": sys.executable,
        "monitoring_web_log_metrics": False,
        "monitoring_nginx_exporter_enabled": False,
    }

    def web(values: dict[str, Any]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(BIN / "ansible-playbook"), "-i", "localhost,", "-c", "local", str(playbook),
             "-e", json.dumps({**extra, **values})],
            capture_output=True, text=True, cwd=REPO, env=ENV, check=False,
        )  # fmt: skip

    good = web({})
    assert good.returncode == 0, good.stdout[-3000:]
    bad = web(
        {
            "monitoring_mtail_port": 0,
            "monitoring_web_access_logs": ["/var/log/nginx/access.log", "relative.log", "/a b"],
            "monitoring_nginx_stub_status_url": "ftp://127.0.0.1/stub_status",
        }
    )
    assert bad.returncode != 0
    message = bad.stdout[bad.stdout.index("monitoring role: invalid input:") :].splitlines()[0]
    for name in (
        "monitoring_mtail_port",
        "monitoring_web_access_logs[1]",
        "monitoring_web_access_logs[2]",
        "monitoring_nginx_stub_status_url",
    ):
        assert name in message, name
    assert "monitoring_web_access_logs[0]" not in message
