"""scripts/drift_report.py's own logic: verdicts, the summary lines, items, redaction, files.

The end-to-end path (a real ansible-playbook run recorded by ARA, read back) is in
test_drift_timer.py; these cover the branches a real run rarely takes.
"""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from ansible.cli.playbook import PlaybookCLI

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def report_mod() -> ModuleType:
    spec = importlib.util.spec_from_file_location("drift_report", ROOT / "scripts/drift_report.py")
    assert spec
    assert spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["drift_report"] = module
    spec.loader.exec_module(module)
    return module


def host(*changes: dict[str, Any], failed: int = 0, unreachable: int = 0) -> dict[str, Any]:
    return {"ok": 3, "changed": len(changes), "failed": failed, "unreachable": unreachable} | {
        "would_change": list(changes)
    }


def change(task: str, items: list[str] | None = None, handler: bool = False) -> dict[str, Any]:
    return {
        "task": task,
        "action": "ansible.builtin.template",
        "handler": handler,
        "items": items or [],
        "result_id": 1,
    }


COMPLETED = {"id": 7, "status": "completed", "labels": []}


@pytest.mark.parametrize(
    ("rc", "playbook", "hosts", "verdict"),
    [
        (0, COMPLETED, {"web-1": host()}, "in-sync"),
        (0, COMPLETED, {"web-1": host(), "web-2": host(change("app : Start"))}, "drifted"),
        (0, COMPLETED, {"web-1": host(change("app : Start"), failed=1)}, "failed"),
        (4, COMPLETED, {"web-1": host(unreachable=1)}, "failed"),
        (2, COMPLETED, {"web-1": host()}, "failed"),
        (0, None, {}, "failed"),  # no ARA record
        (0, {**COMPLETED, "status": "expired"}, {"web-1": host()}, "failed"),  # interrupted
    ],
    ids=["in-sync", "drift", "task-failed", "unreachable", "rc2", "no-record", "expired"],
)
def test_verdict(
    report_mod: ModuleType, rc: int, playbook: Any, hosts: dict[str, Any], verdict: str
) -> None:
    assert report_mod.verdict_of(rc, playbook, hosts) == verdict
    # The verdict's exit code is the one drift.sh's header documents for it.
    assert DOCUMENTED_EXIT[report_mod.EXIT[verdict]].startswith(DOCUMENTED_AS[verdict])


# drift.sh's header: "#   exit 0  the hosts match the code (...)" and so on.
DOCUMENTED_EXIT = {
    int(code): text
    for code, text in re.findall(
        r"^#\s+exit (\d)\s+(.+)$", (ROOT / "scripts/drift.sh").read_text(), re.M
    )
}
DOCUMENTED_AS = {
    "in-sync": "the hosts match the code",
    "drifted": "drift: something would change",
    "failed": "the check itself failed",
}


def test_drift_sh_documents_three_distinct_exit_codes(report_mod: ModuleType) -> None:
    assert sorted(DOCUMENTED_EXIT) == [0, 1, 2], DOCUMENTED_EXIT
    assert sorted(report_mod.EXIT.values()) == sorted(DOCUMENTED_EXIT)
    assert report_mod.EXIT["in-sync"] == 0, "only an in-sync check may exit 0"


def test_main_without_an_ara_record_exits_with_the_failed_code(
    report_mod: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """No playbook id (the run was not recorded): verdict failed, its exit code, a report."""
    id_file = tmp_path / "id"
    id_file.write_text("")
    argv = [
        "--ansible-rc",
        "0",
        "--id-file",
        str(id_file),
        "--started",
        "2026-01-01T00:00:00+00:00",
    ]
    rc = report_mod.main([*argv, "--report-dir", str(tmp_path / "reports")])
    report = json.loads((tmp_path / "reports" / "latest.json").read_text())
    assert rc == report_mod.EXIT["failed"] == report["exit_code"] == 1
    assert report["verdict"] == "failed"
    assert "no ARA record" in report["problem"]
    assert "no ARA record" in capsys.readouterr().out


def test_summary_lines_keep_the_host_task_format(report_mod: ModuleType) -> None:
    """molecule/day2's drift test reads "  <host>  <role : task>" lines after the marker."""
    hosts = {
        "cgc-web-1": host(
            change("nginx : Template the site"), change("nginx : Reload", handler=True)
        ),
        "cgc-cache": host(change("redis : Compare the running settings with the managed ones")),
        # A loop: the items that would change follow the task's name.
        "cgc-monitor": host(
            change("monitoring : Enable and start Prometheus and the exporters", items=["redis"])
        ),
    }
    lines = report_mod.summary("drifted", 0, hosts, "ansible-playbook site.yml")
    text = "\n".join(lines)
    assert "== drift summary ==" in lines
    assert "DRIFT: 4 task result(s) would change:" in text
    assert re.search(r"^\s+cgc-web-1\s+nginx : Template the site$", text, re.M)
    assert re.search(r"^\s+cgc-web-1\s+nginx : Reload  \(handler\)$", text, re.M)
    assert re.search(
        r"^\s+cgc-cache\s+redis : Compare the running settings with the managed ones$", text, re.M
    )
    assert re.search(
        r"^\s+cgc-monitor\s+monitoring : Enable and start Prometheus and the exporters \[redis\]$",
        text,
        re.M,
    )
    assert lines[-1] == "heal with: ansible-playbook site.yml"


def test_summary_of_a_failed_check_counts_failures(report_mod: ModuleType) -> None:
    lines = report_mod.summary("failed", 4, {"a": host(unreachable=1), "b": host(failed=2)}, "")
    assert "check FAILED: failed=2 unreachable=1 (ansible-playbook exit 4)" in lines


def test_changed_items_from_recorded_loop_results(report_mod: ModuleType) -> None:
    content = {
        "results": [
            {"changed": True, "item": "a", "ansible_loop_var": "item"},
            {"changed": False, "item": "b", "ansible_loop_var": "item"},
            {
                "changed": True,
                "setting": {"name": "maxmemory", "value": 1},
                "ansible_loop_var": "setting",
            },
            {"changed": True, "item": {"x": "y" * 80}},
        ]
    }
    items = report_mod.changed_items(content)
    assert items[:2] == ["a", "maxmemory"]
    assert len(items[2]) == 60
    assert items[2].endswith("...")
    assert report_mod.changed_items({"changed": True}) == []


# Spellings ansible-playbook (argparse) takes for the secret options: attached short options,
# short flags run together, abbreviations of long options; and what redact() makes of them.
SECRET_SPELLINGS = [
    (["-epw=hunter2"], ["-e<not saved>"]),
    (["-e=pw=hunter2"], ["-e=<not saved>"]),
    (["-vepw=hunter2"], ["-ve<not saved>"]),
    (["-vCDe", "pw=hunter2"], ["-vCDe", "<not saved>"]),
    (["--extra-vars", "pw=hunter2"], ["--extra-vars", "<not saved>"]),
    (["--extra=pw=hunter2"], ["--extra=<not saved>"]),
    (["--extra", "pw=hunter2"], ["--extra", "<not saved>"]),
    (["--extra-v=pw=hunter2"], ["--extra-v=<not saved>"]),
    (["--e", "@/run/hunter2.yml"], ["--e", "<not saved>"]),
    (["--vault-password-file=/run/hunter2"], ["--vault-password-file=<not saved>"]),
    (["--vault-pass-file", "/run/hunter2"], ["--vault-pass-file", "<not saved>"]),
    (["--vault-passw=/run/hunter2"], ["--vault-passw=<not saved>"]),
    (["--vault-pass-", "/run/hunter2"], ["--vault-pass-", "<not saved>"]),
    (["--vault-id", "prod@/run/hunter2"], ["--vault-id", "<not saved>"]),
    (["--vault-i=prod@/run/hunter2"], ["--vault-i=<not saved>"]),
    # ambiguous between secret options only: refused, but the command line is still reported
    (["--vault", "/run/hunter2"], ["--vault", "<not saved>"]),
    (["--vault-pass=/run/hunter2"], ["--vault-pass=<not saved>"]),
]
AMBIGUOUS = {"--vault", "--vault-pass"}


def test_secret_options_are_not_saved(report_mod: ModuleType) -> None:
    args = ["-i", "inventory/aws", "-e", "db_password=hunter2", "--extra-vars=token=abc", "-v"]
    redacted = report_mod.redact(args)
    assert redacted == [
        "-i",
        "inventory/aws",
        "-e",
        "<not saved>",
        "--extra-vars=<not saved>",
        "-v",
    ]
    assert "hunter2" not in json.dumps(redacted)


@pytest.mark.parametrize(
    ("spelled", "redacted_as"), SECRET_SPELLINGS, ids=[" ".join(s) for s, _ in SECRET_SPELLINGS]
)
def test_secret_options_are_not_saved_however_spelled(
    report_mod: ModuleType, spelled: list[str], redacted_as: list[str]
) -> None:
    redacted = report_mod.redact(["-i", "inventory/aws", *spelled, "-v", "site.yml"])
    assert redacted == ["-i", "inventory/aws", *redacted_as, "-v", "site.yml"]
    assert "hunter2" not in json.dumps(redacted)


@pytest.mark.parametrize(
    "args",
    [
        ["-ihunter2", "-l", "web", "-vvv", "--check", "-CD"],
        ["--v", "site.yml"],  # --verbose or --version, or a vault option: ambiguous
        ["--ask-vault-pass", "--skip-tags", "x", "--become-method=sudo", "--"],
        ["--extravars", "typo"],  # not an option ansible-playbook takes
    ],
)
def test_other_options_are_saved(report_mod: ModuleType, args: list[str]) -> None:
    assert report_mod.redact(args) == args


def test_secret_spellings_are_ansible_playbooks(report_mod: ModuleType) -> None:
    """The spellings above, and the abbreviations redact() takes, are what ansible-playbook's
    own argument parser makes of the secret options."""
    cli = PlaybookCLI(["ansible-playbook", "site.yml"])
    cli.init_parser()
    secret = {"extra_vars", "vault_ids", "vault_password_files"}
    dest = {o: a.dest for a in cli.parser._actions for o in a.option_strings}
    for spelled, _ in SECRET_SPELLINGS:
        if spelled[0].partition("=")[0] not in AMBIGUOUS:
            parsed = vars(cli.parser.parse_args([*spelled, "site.yml"]))
            assert any("hunter2" in str(parsed[d]) for d in secret), spelled
    flags = [a.option_strings for a in cli.parser._actions if a.nargs == 0]
    assert set(report_mod.SHORT_FLAGS) == {o[1] for os in flags for o in os if len(o) == 2}
    for option in (o for o in dest if o.startswith("--")):
        for prefix in (option[:end] for end in range(3, len(option) + 1)):
            could_be = {d for o, d in dest.items() if o.startswith(prefix)}
            means = {dest[prefix]} if prefix in dest else could_be
            assert (report_mod.split_secret(prefix) is not None) == (means <= secret), prefix


def test_reports_are_kept_and_latest_replaced(report_mod: ModuleType, tmp_path: Path) -> None:
    first = report_mod.write_report({"verdict": "in-sync"}, tmp_path, "20260101T000000Z")
    second = report_mod.write_report({"verdict": "drifted"}, tmp_path, "20260101T000000Z")
    assert first != second, "a report written in the same second must not overwrite another"
    assert json.loads(first.read_text())["verdict"] == "in-sync"
    assert json.loads((tmp_path / "latest.json").read_text())["verdict"] == "drifted"
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "20260101T000000Z-1.json",
        "20260101T000000Z.json",
        "latest.json",
    ]


def test_default_database_is_the_projects(
    report_mod: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    clean = {k: v for k, v in report_mod.os.environ.items() if not k.startswith("ARA_")}
    monkeypatch.setattr(report_mod.os, "environ", clean)  # restored after the test
    settings = report_mod.ara_settings()
    assert settings == {
        "api_client": "offline",
        "database": str(ROOT / ".ansible" / "ara" / "ansible.sqlite"),
    }


def test_ara_api_server_alone_selects_the_http_client(
    report_mod: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    clean = {k: v for k, v in report_mod.os.environ.items() if not k.startswith("ARA_")}
    monkeypatch.setattr(
        report_mod.os, "environ", clean | {"ARA_API_SERVER": "http://127.0.0.1:8000"}
    )
    settings = report_mod.ara_settings()
    assert settings == {"api_client": "http", "server": "http://127.0.0.1:8000"}
    assert report_mod.ui_url(settings, 5) == "http://127.0.0.1:8000/playbooks/5.html?changed=true"
