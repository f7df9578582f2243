"""Drift detection: scripts/drift.sh (site.yml in check+diff mode) against the running stack.

A clean stack is in sync (exit 0). Then five kinds of drift are injected at once, the
way they happen on real hosts - a hand-edited nginx site, a stopped service, a secrets
file made world-readable, a dropped database function, a Redis setting changed at run
time - and one check run must exit 2 and name, for each, the task that would change,
while changing nothing itself. One plain `ansible-playbook site.yml` heals all five;
after it drift.sh exits 0 and another plain run reports changed=0.

Injected all at once (one detection, one heal, one check) to keep CI time low; each
kind is still asserted on its own, by the task it names and by the healed state.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import pytest
import requests
from support import (
    WEB_COUNT,
    Run,
    base_url,
    container,
    docker_exec,
    psql,
    redis_cli,
    run_drift,
    run_playbook,
)

WEB_FIRST = container("web-1")
# The stopped service goes on the last web host: with two or more, its detection is
# independent of the config-mode drift on web-1 (which restarts the app there too).
WEB_LAST = container(f"web-{WEB_COUNT}")
CACHE = container("cache")

APP_CONFIG = "/etc/cachedapp/config.toml"
APP_UNIT = "cachedapp"
HAND_EDIT = "# edited by hand during an incident (drift test)"
# What the drift sets; the redis role manages allkeys-lru.
DRIFTED_POLICY = "noeviction"


def sh(name: str, script: str, check: bool = True) -> str:
    """A shell script in container NAME; its stdout, stripped."""
    return docker_exec(name, "sh", "-c", script, check=check).stdout.strip()


def nginx_site_file() -> str:
    """The nginx file that holds the app's site (the nginx role templates it)."""
    found = sh(WEB_FIRST, "grep -rl 'proxy_pass http://cachedapp' /etc/nginx | sort | head -n 1")
    assert found, "no nginx file on web-1 proxies to the app"
    return found


def redis_policy() -> str:
    return redis_cli("CONFIG", "GET", "maxmemory-policy").splitlines()[-1]


def slow_version_count() -> int:
    return int(psql("SELECT count(*) FROM pg_proc WHERE proname = 'slow_version'"))


@dataclass
class Drift:
    """One kind of drift: how to inject it, how to see it, which task must name it."""

    kind: str
    host: str  # regex on the inventory host (= container name) the task runs on
    task: str  # regex on "role : task name" in drift.sh's summary
    inject: Callable[[], None]
    drifted: Callable[[], bool]


_site: dict[str, str] = {}


def edit_site() -> None:
    _site["path"] = nginx_site_file()
    sh(WEB_FIRST, f"printf '%s\\n' '{HAND_EDIT}' >> {_site['path']}")


def stop_app() -> None:
    sh(WEB_LAST, f"systemctl stop {APP_UNIT}")


def open_config() -> None:
    sh(WEB_FIRST, f"chmod 0644 {APP_CONFIG}")


def drop_function() -> None:
    psql("DROP FUNCTION slow_version()")


def set_policy() -> None:
    redis_cli("CONFIG", "SET", "maxmemory-policy", DRIFTED_POLICY)


DRIFTS = [
    Drift(
        "edited nginx site",
        re.escape(WEB_FIRST),
        r"nginx : .*(nginx\.conf|site)",
        edit_site,
        lambda: HAND_EDIT in sh(WEB_FIRST, f"cat {_site['path']}"),
    ),
    Drift(
        "stopped service",
        re.escape(WEB_LAST),
        r"app : .*(start|run)",
        stop_app,
        lambda: sh(WEB_LAST, f"systemctl is-active {APP_UNIT}", check=False) != "active",
    ),
    Drift(
        "wrong file mode",
        re.escape(WEB_FIRST),
        r"app : .*config",
        open_config,
        lambda: sh(WEB_FIRST, f"stat -c %a {APP_CONFIG}") == "644",
    ),
    Drift(
        "dropped slow_version()",
        # The schema tasks run once, on whichever web host comes first.
        re.escape(container("web-")) + r"\d+",
        r"app : .*slow_version",
        drop_function,
        lambda: slow_version_count() == 0,
    ),
    Drift(
        "changed Redis setting",
        re.escape(CACHE),
        r"redis : .*running settings",
        set_policy,
        lambda: redis_policy() == DRIFTED_POLICY,
    ),
]
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


@pytest.fixture(scope="module")
def clean_check() -> Run:
    run = run_drift()
    print(f"\ndrift.sh on the clean stack: exit {run.rc} in {run.seconds:.1f} s")
    return run


@pytest.fixture(scope="module")
def drifted(clean_check: Run) -> tuple[Run, dict[str, bool]]:
    """Inject every drift, run drift.sh once; what is still drifted after the check."""
    originals = {"policy": redis_policy(), "functions": str(slow_version_count())}
    assert originals == {"policy": "allkeys-lru", "functions": "1"}, originals
    for drift in DRIFTS:
        drift.inject()
    assert all(d.drifted() for d in DRIFTS), "an injection did not take"
    run = run_drift()
    still = {d.kind: d.drifted() for d in DRIFTS}
    print(f"drift.sh with {len(DRIFTS)} drifts: exit {run.rc} in {run.seconds:.1f} s")
    print(summary(run).strip())
    return run, still


@pytest.fixture(scope="module")
def healed(drifted: tuple[Run, dict[str, bool]]) -> Run:
    run = run_playbook("site.yml")
    print(
        f"healing run: exit {run.rc}, changed={run.changed} in {run.seconds:.1f} s; "
        f"tasks: {', '.join(run.changed_tasks())}"
    )
    return run


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
    assert redis_policy() == "allkeys-lru"
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
