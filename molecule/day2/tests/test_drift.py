"""Drift detection: scripts/drift.sh (site.yml in check+diff mode) against the running stack.

A clean stack is in sync (exit 0). Then five kinds of drift are injected at once, the
way they happen on real hosts - a hand-edited nginx site, a stopped service, a secrets
file made world-readable, a dropped database function, a Redis setting changed at run
time - and one check run must exit 2 and name, for each, the task that would change,
while changing nothing itself. One plain `ansible-playbook site.yml` heals all five;
after it drift.sh exits 0 and another plain run reports changed=0.

Injected all at once (one detection, one heal, one check) to keep CI time low; each
kind is still asserted on its own, by the task it names and by the healed state.
The drifts are support.DRIFTS; the clean check, the drifted check and the heal are
session fixtures (conftest.py) because test_history reads the same drifted run.
"""

from __future__ import annotations

import re

import pytest
import requests
from support import (
    APP_CONFIG,
    DRIFTS,
    HAND_EDIT,
    MANAGED_POLICY,
    WEB_FIRST,
    Drift,
    DriftCheck,
    Run,
    base_url,
    redis_policy,
    run_drift,
    run_playbook,
    sh,
    slow_version_count,
)

IDS = [d.kind for d in DRIFTS]


def summary(run: Run) -> str:
    """drift.sh's verdict section (after the playbook output)."""
    marker = "== drift summary =="
    assert marker in run.output, run.output[-3000:]
    return run.output.split(marker, 1)[1]


def named(run: Run, host: str, task: str) -> bool:
    """Whether the summary lists TASK (regex) as changing on HOST."""
    pattern = re.compile(rf"^\s+{host}\s+{task}", re.MULTILINE | re.IGNORECASE)
    return bool(pattern.search(summary(run)))


# --- the stages, each run once per module -------------------------------------------------


# clean_check, drift_check and heal_run are session fixtures (conftest.py): test_history
# reads the same drifted run.


@pytest.fixture(scope="module")
def drifted(drift_check: DriftCheck) -> tuple[Run, dict[str, bool]]:
    """Every drift injected, drift.sh run once; what is still drifted after the check."""
    print(summary(drift_check.run).strip())
    return drift_check.run, drift_check.still


@pytest.fixture(scope="module")
def healed(heal_run: Run) -> Run:
    return heal_run


@pytest.fixture(scope="module")
def after_heal(healed: Run) -> tuple[Run, Run]:
    check = run_drift()
    rerun = run_playbook("site.yml")
    print(
        f"after the heal: drift.sh exit {check.rc} ({check.seconds:.1f} s); "
        f"plain run changed={rerun.changed} ({rerun.seconds:.1f} s)"
    )
    return check, rerun


# --- the assertions -------------------------------------------------------------------


def test_clean_stack_is_in_sync(clean_check: Run) -> None:
    assert clean_check.rc == 0, summary(clean_check)
    assert "in sync" in summary(clean_check)
    assert clean_check.changed == 0
    assert clean_check.failed == 0


def test_drift_exits_2(drifted: tuple[Run, dict[str, bool]]) -> None:
    run, _ = drifted
    assert run.rc == 2, summary(run)
    assert run.failed == 0, "the check itself must not fail"
    assert run.unreachable == 0
    assert "DRIFT" in summary(run)


@pytest.mark.parametrize("drift", DRIFTS, ids=IDS)
def test_each_drift_is_named(drifted: tuple[Run, dict[str, bool]], drift: Drift) -> None:
    run, _ = drifted
    assert named(run, drift.host, drift.task), (
        f"{drift.kind}: no task matching {drift.task!r} on {drift.host} in\n{summary(run)}"
    )


def test_diff_shows_the_hand_edit(drifted: tuple[Run, dict[str, bool]]) -> None:
    run, _ = drifted
    assert f"-{HAND_EDIT}" in run.output, "--diff should show the line the run would remove"


def test_check_mode_changes_nothing(drifted: tuple[Run, dict[str, bool]]) -> None:
    _, still = drifted
    assert all(still.values()), f"the check run touched the hosts: {still}"


def test_heal_run_succeeds(healed: Run) -> None:
    assert healed.rc == 0, healed.output[-3000:]
    assert healed.failed == 0
    assert healed.changed > 0


@pytest.mark.parametrize("drift", DRIFTS, ids=IDS)
def test_each_drift_is_healed(healed: Run, drift: Drift) -> None:
    assert not drift.drifted(), f"{drift.kind} is still there after a plain run"


def test_healed_values(healed: Run) -> None:
    assert sh(WEB_FIRST, f"stat -c '%a %U %G' {APP_CONFIG}") == "640 root cachedapp"
    assert redis_policy() == MANAGED_POLICY == "allkeys-lru"
    assert slow_version_count() == 1


def test_site_serves_after_the_heal(healed: Run) -> None:
    reply = requests.get(f"{base_url()}/api/version", timeout=30)
    assert reply.status_code == 200, reply.text[:300]
    assert reply.headers.get("X-Cache") in {"HIT", "MISS", "STALE"}


def test_in_sync_after_the_heal(after_heal: tuple[Run, Run]) -> None:
    check, _ = after_heal
    assert check.rc == 0, summary(check)


def test_plain_rerun_changes_nothing(after_heal: tuple[Run, Run]) -> None:
    _, rerun = after_heal
    assert rerun.rc == 0, rerun.output[-3000:]
    assert rerun.failed == 0
    assert rerun.changed == 0, f"changed tasks: {rerun.changed_tasks()}"
