"""Rolling deploys (playbooks/deploy.yml) through the load balancer, under load.

A broken release stops at the first web host, which ends up serving the release it
had; a good one rolls through both hosts. A load loop runs through the balancer
during every run and counts the responses: not one 5xx, not one connection error.
Each test leaves the stack as site.yml converges it from the repository (the repo's
app/ live on every host), because later test files assert a plain re-run is a no-op.
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from cgc_load import LoadLoop, warm
from support import ROOT, WEB_COUNT, Run, base_url, container, docker_exec, run_playbook

DEPLOY = "playbooks/deploy.yml"
CURRENT = "/opt/cachedapp/current"
RELEASES = "/opt/cachedapp/releases"
# The balancer's upstream servers (role nginx, rendered by the loadbalancer's
# rotation with `down` on the hosts out of rotation).
LB_UPSTREAM = "/etc/nginx/cachedapp-upstream.conf"
EDGE_RELEASE_CONF = "/etc/nginx/edge-release.conf"
WEB = [f"web-{n}" for n in range(1, WEB_COUNT + 1)]  # deploy.yml goes in this order

pytestmark = pytest.mark.skipif(WEB_COUNT < 2, reason="needs two web hosts behind the lb")


def _build_release_module():  # type: ignore[no-untyped-def]
    """roles/app/files/build_release.py, for the release id a source tree gets."""
    path = ROOT / "roles" / "app" / "files" / "build_release.py"
    spec = importlib.util.spec_from_file_location("build_release", path)
    assert spec
    assert spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


BUILD_RELEASE = _build_release_module()


def release_id(source: Path) -> str:
    """<version>-<content hash>: what the app role names the release built from SOURCE."""
    return str(BUILD_RELEASE.release_id(source)[1])


def live_release(member: str) -> str:
    """The release id `current` points at on a web host."""
    out = docker_exec(container(member), "readlink", "-f", CURRENT).stdout.strip()
    return Path(out).name


def releases(member: str) -> list[str]:
    return sorted(docker_exec(container(member), "ls", RELEASES).stdout.split())


def main_pid(member: str) -> str:
    out = docker_exec(
        container(member), "systemctl", "show", "-p", "MainPID", "--value", "cachedapp"
    )
    return out.stdout.strip()


def edge_release(member: str) -> str:
    """The release nginx's edge cache is keyed by on a web host."""
    text = docker_exec(container(member), "cat", EDGE_RELEASE_CONF).stdout
    match = re.search(r'default "([^"]*):";', text)
    assert match, text
    return match.group(1)


def state() -> dict[str, tuple[str, str]]:
    """(live release, gunicorn's main PID) per web host."""
    return {member: (live_release(member), main_pid(member)) for member in WEB}


def lb_config() -> str:
    conf = docker_exec(container("lb"), "cat", LB_UPSTREAM).stdout
    assert conf.count("server ") == WEB_COUNT, conf
    return conf


def served_by(requests_count: int = 20) -> Counter[str]:
    """Which web hosts answer through the balancer (the page's served_by)."""
    hosts: Counter[str] = Counter()
    with requests.Session() as session:
        for _ in range(requests_count):
            reply = session.get(base_url() + "/api/version", timeout=30)
            assert reply.status_code == 200, reply.text[:300]
            hosts[reply.json()["served_by"]] += 1
    return hosts


def app_copy(destination: Path, version: str) -> Path:
    """A copy of what a release is built from (app/), with another version."""
    destination.mkdir(parents=True)
    app = ROOT / "app"
    for name in ("pyproject.toml", "requirements.lock", "README.md", "LICENSE"):
        if (app / name).is_file():
            shutil.copy2(app / name, destination / name)
    shutil.copytree(
        app / "src",
        destination / "src",
        ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"),
    )
    pyproject = destination / "pyproject.toml"
    text = pyproject.read_text()
    current = BUILD_RELEASE.release_id(app)[0]
    assert f'version = "{current}"' in text
    pyproject.write_text(text.replace(f'version = "{current}"', f'version = "{version}"', 1))
    return destination


def deploy_under_load(label: str, *args: str) -> tuple[Run, LoadLoop]:
    """deploy.yml with a load loop through the balancer for the whole run."""
    assert warm(base_url() + "/") == 200
    # Paced: the release build needs the CPU the loop would take.
    with LoadLoop(base_url() + "/", workers=2, pause=0.02) as load:
        run = run_playbook(DEPLOY, *args)
    print(
        f"\n{label}: deploy.yml rc={run.rc} in {run.seconds:.1f} s, "
        f"changed={run.changed}, failed={run.failed}\n{label}: load {load.summary()}"
    )
    return run, load


@pytest.fixture(scope="module")
def repo_release() -> Iterator[str]:
    """The repo's app/ serves on every host before and after these tests."""
    expected = release_id(ROOT / "app")
    assert {live_release(m) for m in WEB} == {expected}, "the stack is not as site.yml left it"
    assert {edge_release(m) for m in WEB} == {expected}, "site.yml keys the edge by the release"
    yield expected
    if {live_release(m) for m in WEB} != {expected}:
        run, _ = deploy_under_load("restore the repo's app/")
        assert run.rc == 0, run.output[-3000:]
        assert {live_release(m) for m in WEB} == {expected}


ROTATION_PLAY = """
- name: The loadbalancer role's rotation entry point, on its own
  hosts: {host}
  become: true
  gather_facts: false
  tasks:
    - name: Take the host out of rotation, or put it back
      ansible.builtin.include_role:
        name: loadbalancer
        tasks_from: rotation
      vars:
        loadbalancer_rotation: {rotation}
"""


def test_rotation_marks_only_that_host_down_and_back(tmp_path: Path) -> None:
    """rotation out: web-1's upstream server (and only it) is `down` on the lb, the
    others keep serving; rotation in: the balancer is as site.yml leaves it."""
    before = lb_config()
    assert " down;" not in before
    address = docker_exec(container("web-1"), "hostname", "-I").stdout.split()[0]
    for rotation in ("out", "in"):
        play = tmp_path / f"rotation-{rotation}.yml"
        play.write_text(ROTATION_PLAY.format(host=container("web-1"), rotation=rotation))
        run = run_playbook(str(play))
        assert run.rc == 0, run.output[-3000:]
        downs = [ln for ln in lb_config().splitlines() if ln.endswith(" down;")]
        if rotation == "out":
            assert len(downs) == 1, downs
            assert f" {address}:" in downs[0], downs
            assert set(served_by()) == set(WEB) - {"web-1"}
        else:
            assert downs == []
    assert lb_config() == before
    assert set(served_by()) == set(WEB)


def test_a_batch_as_large_as_the_web_group_is_refused(repo_release: str) -> None:
    """All web hosts out of rotation at once would be an outage: refused up front."""
    before = state()
    run = run_playbook(DEPLOY, "-e", f"deploy_serial={WEB_COUNT}")
    assert run.rc != 0, run.output[-2000:]
    assert "use a smaller batch" in run.output
    assert run.changed == 0, run.recap
    assert state() == before
    assert " down;" not in lb_config()


def test_broken_release_stops_at_the_first_host_which_serves_the_previous_one(
    repo_release: str, tmp_path: Path
) -> None:
    source = app_copy(tmp_path / "app", "1.0.99")
    web = source / "src" / "cachedapp" / "web.py"
    text = web.read_text()
    ready = 'ready = checks["database"]["ok"]'
    assert text.count(ready) == 1, "the app's /readyz changed; update this test"
    web.write_text(text.replace(ready, "ready = False  # broken on purpose"))
    broken = release_id(source)
    first, rest = WEB[0], WEB[1:]
    before = state()
    releases_before = {m: releases(m) for m in rest}

    run, load = deploy_under_load(
        "broken release",
        "-e",
        f"app_source_dir={source}",
        "-e",
        f"app_build_dir={tmp_path / 'build'}",
        # /readyz never turns 200: 3 tries instead of the default 20 (seconds).
        "-e",
        "app_healthcheck_retries=3",
    )

    assert run.rc != 0, run.output[-3000:]
    assert f"Release {broken} failed" in run.output
    assert "Rolled back" in run.output
    # The first host: rolled back to what it had, restarted, back in rotation.
    assert live_release(first) == repo_release
    assert edge_release(first) == repo_release, "the edge cache was re-keyed for a failed release"
    assert main_pid(first) != before[first][1], "the broken release never started"
    assert broken in releases(first)
    assert " down;" not in lb_config(), "the host was not put back in rotation"
    # The run stopped there: the other hosts were not touched at all.
    assert set(run.recap) == {container(first)}, run.recap
    for member in rest:
        assert state()[member] == before[member]
        assert releases(member) == releases_before[member]
    # Every web host answers through the balancer again.
    assert set(served_by()) == set(WEB)
    assert load.total > 0
    assert load.non_2xx == 0, load.summary()
    assert load.errors == 0, load.summary()


def test_good_release_rolls_through_every_host(repo_release: str, tmp_path: Path) -> None:
    source = app_copy(tmp_path / "app", "1.0.100")
    good = release_id(source)
    before = state()
    build = ["-e", f"app_source_dir={source}", "-e", f"app_build_dir={tmp_path / 'build'}"]

    # Check mode first (one host is enough): it reports the changes and makes none.
    check = run_playbook(DEPLOY, "--check", "--limit", container(WEB[0]), *build)
    assert check.rc == 0, check.output[-3000:]
    assert check.changed > 0
    assert state() == before
    assert " down;" not in lb_config()

    run, load = deploy_under_load("good release", *build)
    assert run.rc == 0, run.output[-3000:]
    after = state()
    for member in WEB:
        assert after[member][0] == good, after
        assert after[member][1] != before[member][1], f"{member} was not restarted"
        # Its edge cache was re-keyed for the new release (no old page from it).
        assert edge_release(member) == good
    assert " down;" not in lb_config()
    assert set(served_by()) == set(WEB)
    assert load.total > 0
    assert load.non_2xx == 0, load.summary()
    assert load.errors == 0, load.summary()

    # The same release again (one host is enough): nothing to do, no reload.
    again = run_playbook(DEPLOY, "--limit", container(WEB[0]), *build)
    assert again.rc == 0, again.output[-3000:]
    assert again.changed == 0, again.changed_tasks()
    assert state() == after

    # Back to the repo's app/ - a rolling deploy of an already installed release.
    start = time.perf_counter()
    back, back_load = deploy_under_load("back to the repo's app/")
    assert back.rc == 0, back.output[-3000:]
    assert {live_release(m) for m in WEB} == {repo_release}
    assert {edge_release(m) for m in WEB} == {repo_release}
    assert back_load.non_2xx == 0, back_load.summary()
    assert back_load.errors == 0, back_load.summary()
    print(f"rollback by redeploy of an installed release: {time.perf_counter() - start:.1f} s")
    # app_keep_releases (3) per host: the live one and the newest others.
    for member in WEB:
        assert len(releases(member)) <= 3, releases(member)
