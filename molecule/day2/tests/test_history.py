"""Run history: a real drift, found by drift.sh, seen in its JSON report and in ARA's web UI.

Every ansible-playbook run of the project is recorded by ARA (ansible.cfg); drift.sh
labels its run and writes a JSON report built from ARA's record. The run read here is
test_drift's drifted check (the session fixture drift_check, conftest.py: one drift.sh
run over five drifts, among them a Redis setting changed at run time on the stack's
cache). It must exit 2, and then:

- the report (.ansible/drift/<stack>/latest.json) says drifted, names the cache host and the
  redis task that would change, and gives the ARA playbook id;
- ARA's API holds that run labelled drift, check:True, target:local, stack:<stack> and
  verdict:drifted, with the changed result on the cache host;
- ARA's web UI - scripts/ara-ui.sh, what `make ara` runs, on a free loopback port -
  opened in Debian's headless Chromium: the runs labelled verdict:drifted include this
  one, and its page, filtered to changed results, shows the cache host and the task.

- ARA's database (.ansible/ara/ansible.sqlite, which keeps task arguments, results
  and --diff output) holds no generated secret (.ansible/secrets/*) and no private key.

The drifts are healed by site.yml (the session fixture heal_run, test_drift's heal);
the last test checks the stack is back as found.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import sqlite3
import subprocess
import tempfile
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from support import (
    CACHE,
    DRIFT_REPORT,
    DRIFTED_POLICY,
    MANAGED_POLICY,
    ROOT,
    SECRETS,
    STACK,
    DriftCheck,
    Run,
    redis_policy,
)

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
TASK = re.compile(r"^redis : .*running settings", re.IGNORECASE)
REPORT = DRIFT_REPORT
SCREENSHOTS = ROOT / ".cache"
ARA_DB = ROOT / ".ansible" / "ara" / "ansible.sqlite"


@dataclass
class Drifted:
    run: Run
    report: dict[str, Any]
    policy_after_check: str

    @property
    def playbook_id(self) -> int:
        return int(self.report["ara"]["playbook_id"])


@pytest.fixture(scope="module")
def drifted(drift_check: DriftCheck) -> Drifted:
    """The session's drifted drift.sh run (test_drift's): its output, report, Redis value."""
    return Drifted(drift_check.run, drift_check.report, drift_check.policy_after_check)


def ara_env() -> dict[str, str]:
    """What `make ara` gets: the venv on PATH, the project's embedded ARA database."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARA_API")}
    env.setdefault("ARA_BASE_DIR", str(ROOT / ".ansible" / "ara"))
    return env


def ara_json(*args: str) -> Any:
    proc = subprocess.run(
        ["ara", *args, "-f", "json"],
        env=ara_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return json.loads(proc.stdout)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_ui(url: str, proc: subprocess.Popen[bytes], log: Any) -> None:
    deadline = time.monotonic() + 90
    while True:
        try:
            if requests.get(f"{url}/robots.txt", timeout=5).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            log.seek(0)
            pytest.fail(f"ARA's UI did not come up on {url}:\n{log.read().decode()[-2000:]}")
        time.sleep(0.5)


@pytest.fixture(scope="module")
def ara_ui(drifted: Drifted) -> Iterator[str]:
    """scripts/ara-ui.sh (make ara) on a free loopback port; its base URL."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(
            [str(ROOT / "scripts" / "ara-ui.sh")],
            cwd=ROOT,
            env={**ara_env(), "ARA_UI_PORT": str(port)},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_for_ui(url, proc, log)
            yield url
        finally:
            proc.terminate()
            proc.wait(timeout=30)


@pytest.fixture(scope="module")
def browser() -> Iterator[webdriver.Chrome]:
    for path in (CHROMIUM, CHROMEDRIVER):
        assert Path(path).exists(), f"{path} missing: `make browser` installs it"
    profile = tempfile.mkdtemp(prefix="cgc-ara-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--window-size=1400,900",
        f"--user-data-dir={profile}",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


# --- the drift check and its report ---------------------------------------------------


def test_drift_check_exits_2(drifted: Drifted) -> None:
    assert drifted.run.rc == 2, drifted.run.output[-3000:]
    assert drifted.policy_after_check == DRIFTED_POLICY, "the check must change nothing"


def test_report_names_the_cache_task(drifted: Drifted) -> None:
    report = drifted.report
    assert report["verdict"] == "drifted"
    assert report["exit_code"] == 2
    assert report["target"] == "local"
    changes = report["hosts"][CACHE]["would_change"]
    assert any(TASK.search(c["task"]) for c in changes), changes
    assert isinstance(report["ara"]["playbook_id"], int)


def test_make_drift_output_says_where_to_look(drifted: Drifted) -> None:
    summary = drifted.run.output.split("== drift summary ==")[1]
    assert f"ARA: playbook {drifted.playbook_id}," in summary
    assert f"/playbooks/{drifted.playbook_id}.html?changed=true" in summary
    assert "make ara" in summary
    assert str(REPORT.parent) in summary or ".ansible/drift/" in summary


# --- ARA's record ---------------------------------------------------------------------


def test_ara_labels_the_run(drifted: Drifted) -> None:
    playbook = ara_json("playbook", "show", str(drifted.playbook_id))
    labels = {label["name"] for label in playbook["labels"]}
    expected = {"drift", "check:True", "target:local", f"stack:{STACK}", "verdict:drifted"}
    assert expected <= labels, labels
    assert playbook["status"] == "completed"


def test_ara_lists_the_changed_task_on_the_cache(drifted: Drifted) -> None:
    results = ara_json(
        "result", "list", "--playbook", str(drifted.playbook_id), "--changed", "--resolve"
    )
    # --resolve gives "(id) name"
    named = [(r["host"].split(") ", 1)[1], r["task"].split(") ", 1)[1]) for r in results]
    assert any(host == CACHE and TASK.search(task) for host, task in named), named


# --- ARA's web UI, in a browser -------------------------------------------------------


def test_ui_lists_the_run_among_drifted_checks(
    drifted: Drifted, ara_ui: str, browser: webdriver.Chrome
) -> None:
    browser.get(f"{ara_ui}/?label=verdict:drifted")
    table = browser.find_element(By.ID, "playbooks")
    links = {a.get_attribute("href") for a in table.find_elements(By.TAG_NAME, "a")}
    assert f"{ara_ui}/playbooks/{drifted.playbook_id}.html" in links, sorted(links)[:20]
    labels = {a.text for a in browser.find_elements(By.CSS_SELECTOR, "a.ara-label")}
    assert "verdict:drifted" in labels, labels


def test_ui_shows_the_changed_task_on_the_cache(
    drifted: Drifted, ara_ui: str, browser: webdriver.Chrome
) -> None:
    browser.get(f"{ara_ui}/playbooks/{drifted.playbook_id}.html?changed=true")
    rows = browser.find_elements(By.CSS_SELECTOR, "table#results tbody tr")
    seen = []
    for row in rows:
        cells = [td.text.strip() for td in row.find_elements(By.TAG_NAME, "td")]
        # Report, Status, Date, Duration, Host, Action, Task, Tags, Notes
        seen.append((cells[1], cells[4], cells[6]))
    SCREENSHOTS.mkdir(exist_ok=True)
    # Bootstrap scrolls smoothly: jump, so the picture shows the results table.
    browser.execute_script(
        "document.querySelector('table#results').scrollIntoView({behavior: 'instant'})"
    )
    browser.save_screenshot(str(SCREENSHOTS / "ara-drift-run.png"))
    assert seen, "the page lists no changed result"
    assert all(status == "CHANGED" for status, _, _ in seen), seen
    assert any(host == CACHE and TASK.search(task) for _, host, task in seen), seen


# --- what ARA keeps: no secrets ---------------------------------------------------------


def as_text(value: object) -> str | None:
    """A database value as text: blobs inflated when zlib-compressed, then decoded."""
    if isinstance(value, bytes):
        try:
            return zlib.decompress(value).decode("utf-8", "replace")
        except zlib.error:  # not compressed: the bytes as they are
            return value.decode("utf-8", "replace")
    return value if isinstance(value, str) else None


def ara_texts(db: Path) -> Iterator[tuple[str, str]]:
    """(table.column, text) of every text or blob value in ARA's SQLite database;
    ARA stores results, files and diffs zlib-compressed: blobs are inflated."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        for table in tables:
            cursor = conn.execute(f'SELECT * FROM "{table}"')
            columns = [d[0] for d in cursor.description]
            for row in cursor:
                for column, value in zip(columns, row, strict=True):
                    text = as_text(value)
                    if text is not None:
                        yield f"{table}.{column}", text


def test_ara_database_holds_no_secret(drifted: Drifted) -> None:
    """After the --diff drift run: no generated secret, no private key in ARA's record."""
    assert ARA_DB.is_file(), ARA_DB
    secrets = {
        path.name: path.read_text().strip() for path in sorted(SECRETS.iterdir()) if path.is_file()
    }
    assert secrets, f"no generated secrets in {SECRETS}"
    assert all(len(value) >= 8 for value in secrets.values()), "a secret too short to search"
    needles = {f"secret {name}": value for name, value in secrets.items()}
    needles["a private key"] = "PRIVATE KEY"
    found, values = set(), 0
    for where, text in ara_texts(ARA_DB):
        values += 1
        found |= {(what, where) for what, needle in needles.items() if needle in text}
    print(f"\nARA database: {values} values searched for {len(needles)} needles")
    # The search reads the drift run's record: the drifted playbook's diff is there.
    assert values > 0
    assert not found, sorted(found)


def test_stack_is_back_as_found(drifted: Drifted, heal_run: Run) -> None:
    assert redis_policy() == MANAGED_POLICY
