"""The scheduled drift check: the units the drift_timer role installs, and their command.

PID 1 here is not systemd, so the timer cannot fire. Instead the role renders the
service and timer for a tiny target (a local-connection host whose playbook manages
one file), `systemd-analyze verify` checks them, and the service's own command line
- ExecStart, in its WorkingDirectory, with only its Environment= lines, as systemd
would start it - is run three times: on the converged host (exit 0), after the file
was edited by hand (exit 2), and with a directory in the file's place (exit 1). Each run
must leave the JSON report the timer exists for, and ARA must hold the labelled run.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
UNIT = "cgc-drift-test"
MANAGED = "managed by the drift fixture\n"


@dataclass
class Target:
    """The tiny drift target and where the scheduled check puts its output."""

    base: Path
    inventory: Path
    playbook: Path
    managed: Path
    units: Path
    reports: Path
    ara: Path

    def env(self) -> dict[str, str]:
        """Environment of the test's own ansible runs (not the service's)."""
        return {
            **os.environ,
            "PATH": f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}",
            "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
            "ANSIBLE_NOCOLOR": "1",
            "ARA_BASE_DIR": str(self.ara),
        }


@dataclass
class Unit:
    """The parts of a unit file's [Service] section that decide what runs."""

    exec_start: list[str]
    working_directory: Path
    environment: dict[str, str] = field(default_factory=dict)
    success_exit_status: list[str] = field(default_factory=list)


def parse_service(path: Path) -> Unit:
    """ExecStart, WorkingDirectory and Environment= of a service file, unquoted as systemd does."""
    section, values = "", {}
    environment: dict[str, str] = {}
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        if section != "Service":
            continue
        words = [w.replace("%%", "%").replace("$$", "$") for w in shlex.split(value)]
        if key == "Environment":
            environment.update(w.split("=", 1) for w in words)  # type: ignore[arg-type]
        else:
            values[key] = words
    return Unit(
        exec_start=values["ExecStart"],
        working_directory=Path(values["WorkingDirectory"][0]),
        environment=environment,
        success_exit_status=values.get("SuccessExitStatus", []),
    )


def ansible(target: Target, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["ansible-playbook", *args],
        cwd=ROOT,
        env=target.env(),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def recap_changed(output: str) -> int:
    recap = output.rsplit("PLAY RECAP", maxsplit=1)[-1]
    return sum(int(n) for n in re.findall(r"\bchanged=(\d+)", recap))


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Target:
    base = tmp_path_factory.mktemp("drift-timer")
    t = Target(
        base=base,
        inventory=base / "inventory.yml",
        playbook=base / "fixture.yml",
        managed=base / "etc" / "app.conf",
        units=base / "units",
        reports=base / "reports",
        ara=base / "ara",
    )
    t.inventory.write_text(
        "all:\n  hosts:\n    drifthost:\n      ansible_connection: local\n"
        '      ansible_python_interpreter: "{{ ansible_playbook_python }}"\n'
        "    localhost:\n      ansible_connection: local\n"
        '      ansible_python_interpreter: "{{ ansible_playbook_python }}"\n'
    )
    t.playbook.write_text(
        f"""---
- name: The drift fixture
  hosts: drifthost
  gather_facts: false
  tasks:
    - name: Manage the fixture's config file
      ansible.builtin.copy:
        content: {json.dumps(MANAGED)}
        dest: {t.managed}
        mode: "0644"
"""
    )
    t.units.mkdir()
    t.managed.parent.mkdir()
    return t


@pytest.fixture(scope="module")
def installed(target: Target) -> dict[str, subprocess.CompletedProcess[str]]:
    """playbooks/drift_timer.yml in --check, for real, and again (must change nothing)."""
    variables = {
        "drift_timer_unit_name": UNIT,
        "drift_timer_unit_dir": str(target.units),
        "drift_timer_venv_bin": str(VENV_BIN),
        "drift_timer_args": ["--limit", "drifthost", "-i", str(target.inventory)],
        "drift_timer_report_dir": str(target.reports),
        "drift_timer_environment": {
            "DRIFT_PLAYBOOK": str(target.playbook),
            "ARA_BASE_DIR": str(target.ara),
            # No monitor host here: drift.sh skips publishing the verdict.
            "CGC_DRIFT_NO_PUBLISH": "1",
        },
    }
    extra = target.base / "timer-vars.json"
    extra.write_text(json.dumps(variables))
    args = ["-i", str(target.inventory), "playbooks/drift_timer.yml", "-e", f"@{extra}"]
    runs = {"check": ansible(target, *args, "--check")}
    runs["units_after_check"] = sorted(p.name for p in target.units.iterdir())  # type: ignore[assignment]
    runs["first"] = ansible(target, *args)
    runs["second"] = ansible(target, *args)
    return runs


@pytest.fixture(scope="module")
def service(installed: dict[str, Any], target: Target) -> Unit:
    assert installed["first"].returncode == 0, installed["first"].stdout[-3000:]
    return parse_service(target.units / f"{UNIT}.service")


@dataclass
class Check:
    rc: int
    output: str
    report: dict[str, Any]
    reports: list[str]


def run_service(unit: Unit, target: Target) -> Check:
    """The service's ExecStart, as systemd starts it: its directory, only its environment."""
    env = {
        "HOME": os.environ.get("HOME", "/root"),
        "LANG": "C.UTF-8",
        **unit.environment,
    }
    proc = subprocess.run(
        unit.exec_start,
        cwd=unit.working_directory,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    latest = target.reports / "latest.json"
    report = json.loads(latest.read_text()) if latest.exists() else {}
    reports = sorted(p.name for p in target.reports.glob("*.json"))
    return Check(proc.returncode, proc.stdout + proc.stderr, report, reports)


@pytest.fixture(scope="module")
def checks(service: Unit, target: Target) -> dict[str, Check]:
    """The service run on a converged host, after a hand edit, and with a dir in its way."""
    converge = ansible(target, "-i", str(target.inventory), str(target.playbook))
    assert converge.returncode == 0, converge.stdout[-3000:]
    runs = {"in sync": run_service(service, target)}
    target.managed.write_text(MANAGED + "# edited by hand\n")
    runs["drifted"] = run_service(service, target)
    runs["drifted"].output += f"\n[file after the check] {target.managed.read_text()!r}"
    # A directory where the file should be: the copy task fails, in --check too.
    target.managed.unlink()
    target.managed.mkdir()
    runs["failed"] = run_service(service, target)
    for name, run in runs.items():
        print(f"\nservice command, {name}: exit {run.rc}, verdict {run.report.get('verdict')}")
    return runs


def ara_json(target: Target, *args: str) -> Any:
    proc = subprocess.run(
        [str(VENV_BIN / "ara"), *args, "-f", "json"],
        env=target.env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return json.loads(proc.stdout)


# --- the units ------------------------------------------------------------------------


def test_check_mode_writes_no_unit(installed: dict[str, Any]) -> None:
    assert installed["check"].returncode == 0, installed["check"].stdout[-3000:]
    assert installed["units_after_check"] == []


def test_second_install_changes_nothing(installed: dict[str, Any]) -> None:
    assert installed["second"].returncode == 0, installed["second"].stdout[-3000:]
    assert recap_changed(installed["second"].stdout) == 0, installed["second"].stdout[-3000:]


def test_units_pass_systemd_analyze_verify(service: Unit, target: Target) -> None:
    units = [target.units / f"{UNIT}.service", target.units / f"{UNIT}.timer"]
    proc = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", *map(str, units)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert UNIT not in proc.stderr, proc.stderr


def test_verify_rejects_a_broken_service(service: Unit, target: Target, tmp_path: Path) -> None:
    """The control: the same check fails when ExecStart names no executable."""
    broken = tmp_path / f"{UNIT}.service"
    text = (target.units / broken.name).read_text()
    broken.write_text(text.replace("/scripts/drift.sh", "/scripts/no-such-script.sh"))
    proc = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", str(broken)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode != 0, proc.stderr


def test_timer_schedule_and_unit(target: Target) -> None:
    timer = (target.units / f"{UNIT}.timer").read_text()
    assert re.search(r"^OnCalendar=daily$", timer, re.MULTILINE)
    assert re.search(rf"^Unit={UNIT}\.service$", timer, re.MULTILINE)
    assert re.search(r"^WantedBy=timers\.target$", timer, re.MULTILINE)


def test_service_runs_drift_sh_from_the_project(service: Unit, target: Target) -> None:
    assert service.exec_start[0] == str(ROOT / "scripts" / "drift.sh")
    assert service.exec_start[1:] == ["--limit", "drifthost", "-i", str(target.inventory)]
    assert service.working_directory == ROOT
    assert service.environment["PATH"].split(":")[0] == str(VENV_BIN)
    assert service.environment["DRIFT_REPORT_DIR"] == str(target.reports)
    assert service.environment["CGC_DRIFT_NO_PUBLISH"] == "1"
    assert service.success_exit_status == ["2"], "drift is a finding, not a failed unit"


# --- what the service's command does ----------------------------------------------------


def test_in_sync_exits_0_with_a_report(checks: dict[str, Check]) -> None:
    run = checks["in sync"]
    assert run.rc == 0, run.output[-3000:]
    assert run.report["verdict"] == "in-sync"
    assert run.report["exit_code"] == 0
    assert run.report["changed_tasks"] == 0
    assert run.report["hosts"]["drifthost"]["would_change"] == []
    assert isinstance(run.report["ara"]["playbook_id"], int)


def test_drift_exits_2_and_the_report_names_the_task(checks: dict[str, Check]) -> None:
    run = checks["drifted"]
    assert run.rc == 2, run.output[-3000:]
    assert run.report["verdict"] == "drifted"
    assert run.report["exit_code"] == 2
    changes = run.report["hosts"]["drifthost"]["would_change"]
    assert [c["task"] for c in changes] == ["Manage the fixture's config file"]
    assert changes[0]["action"] == "ansible.builtin.copy"
    assert "edited by hand" in run.output.split("[file after the check]")[1], (
        "the check must not change the host"
    )
    assert re.search(r"^\s+drifthost\s+Manage the fixture's config file$", run.output, re.M)


def test_failed_check_exits_1(checks: dict[str, Check]) -> None:
    run = checks["failed"]
    assert run.rc == 1, run.output[-3000:]
    assert run.report["verdict"] == "failed"
    assert run.report["hosts"]["drifthost"]["failed"] == 1
    assert "check FAILED" in run.output


def test_each_run_keeps_its_own_report(checks: dict[str, Check]) -> None:
    stamped = [name for name in checks["failed"].reports if name != "latest.json"]
    assert len(stamped) == 3, checks["failed"].reports


def test_ara_holds_the_labelled_drift_run(checks: dict[str, Check], target: Target) -> None:
    playbook_id = checks["drifted"].report["ara"]["playbook_id"]
    playbook = ara_json(target, "playbook", "show", str(playbook_id))
    labels = {label["name"] for label in playbook["labels"]}
    assert {"drift", "check:True", "target:inventory", "verdict:drifted"} <= labels, labels
    results = ara_json(
        target, "result", "list", "--playbook", str(playbook_id), "--changed", "--resolve"
    )
    # --resolve gives "(id) name"
    named = [(r["host"].split(") ", 1)[1], r["task"].split(") ", 1)[1]) for r in results]
    assert named == [("drifthost", "Manage the fixture's config file")]
    drifted = ara_json(target, "playbook", "list", "--label", "verdict:drifted")
    assert [p["id"] for p in drifted] == [playbook_id]


def test_publishing_the_verdict_is_not_recorded(
    checks: dict[str, Check], service: Unit, target: Target
) -> None:
    """Without CGC_DRIFT_NO_PUBLISH drift.sh also runs playbooks/monitoring.yml (tag
    drift_report; no monitor host here, so it has nothing to do): ARA gets only the check."""
    before = {p["id"] for p in ara_json(target, "playbook", "list")}
    publishing = Unit(
        service.exec_start,
        service.working_directory,
        {k: v for k, v in service.environment.items() if k != "CGC_DRIFT_NO_PUBLISH"},
    )
    run = run_service(publishing, target)
    assert run.rc == 1, run.output[-3000:]  # the directory is still in the file's place
    assert "not published" not in run.output, run.output[-3000:]
    new = [p for p in ara_json(target, "playbook", "list") if p["id"] not in before]
    assert [p["id"] for p in new] == [run.report["ara"]["playbook_id"]], new
    assert new[0]["path"].endswith("fixture.yml"), new
