"""Session fixtures shared by the day-2 test modules: the drift check runs once.

test_drift (clean check, five drifts at once, heal) and test_history (the same
drifted run's JSON report, ARA record and web UI) read one drift.sh run over the
drifts of support.DRIFTS instead of a run each (about two minutes of CI).

Modules run in file order (test_deploy, test_drift, test_faults, test_history, ...):
test_drift makes the clean check, the drifted check and the heal; test_history then
finds all three made and reads their results. Run on its own, test_history makes
them itself (the heal before its last assertion). If a session injected the drifts
and never healed them (a -k selection), the session's end heals them with site.yml.

The test modules import the load loop from scripts/cgc_load.py (shared with
scripts/drill.py): scripts/ goes on the import path here, before any of them loads.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest
from support import DRIFTS, ROOT, DriftCheck, Run, inject_and_check, run_drift, run_playbook

sys.path.insert(0, str(ROOT / "scripts"))

_healed: list[Run] = []


@pytest.fixture(scope="session")
def clean_check() -> Run:
    """drift.sh on the stack as converged (must be in sync)."""
    run = run_drift()
    print(f"\ndrift.sh on the clean stack: exit {run.rc} in {run.seconds:.1f} s")
    return run


@pytest.fixture(scope="session")
def drift_check(clean_check: Run) -> Iterator[DriftCheck]:
    """Every drift of support.DRIFTS injected, one drift.sh run (--check --diff)."""
    checked = inject_and_check()
    print(
        f"drift.sh with {len(DRIFTS)} drifts: exit {checked.run.rc} in {checked.run.seconds:.1f} s"
    )
    yield checked
    if not _healed and any(d.drifted() for d in DRIFTS):
        run = run_playbook("site.yml")
        print(f"\nhealed the drifts left behind: exit {run.rc}, changed={run.changed}")


@pytest.fixture(scope="session")
def heal_run(drift_check: DriftCheck) -> Run:
    """One plain site.yml run after the drift check: it heals every drift."""
    run = run_playbook("site.yml")
    _healed.append(run)
    print(
        f"healing run: exit {run.rc}, changed={run.changed} in {run.seconds:.1f} s; "
        f"tasks: {', '.join(run.changed_tasks())}"
    )
    return run
