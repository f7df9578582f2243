#!/usr/bin/env python3
"""The drift check's verdict and JSON report, computed from ARA's record of the run.

scripts/drift.sh runs `ansible-playbook <playbook> --check --diff` with ARA's callback
recording it (ansible.cfg) and the record's id written to a file; this script then
reads that playbook record back from ARA - the per-host counters and the results
that would change - and

- prints the summary: the verdict, and a line per host and task that would change;
- writes the report as JSON to <report dir>/<UTC time>.json and latest.json;
- labels the ARA record with the verdict (verdict:in-sync|drifted|failed) and
  attaches the report to it (an ARA record named drift_report);
- exits 0 (in sync), 2 (drift) or 1 (the check failed: a task failed, a host was
  unreachable, ansible-playbook exited non-zero, or the run left no ARA record).

ARA is reached the way the callback reached it: the embedded (offline) client and
.ansible/ara/ansible.sqlite by default, an ARA API server when ARA_API_SERVER is set.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ara.clients.http import AraHttpClient  # the offline client is one too
from ara.clients.utils import get_client

PROJECT = Path(__file__).resolve().parents[1]
REPORT_SCHEMA = 1
EXIT = {"in-sync": 0, "drifted": 2, "failed": 1}
# Values never written to the report (the same spirit as ARA's ignored_arguments).
SECRET_OPTIONS = ("-e", "--extra-vars", "--vault-password-file", "--vault-pass-file", "--vault-id")
# ansible-playbook's argparse takes any prefix of a long option that no other option starts
# with ("--ext=...", "--vault-i ..."). These are the shortest prefixes only SECRET_OPTIONS start
# with; "--vault ..." is refused as ambiguous, but drift.sh still reports its command line.
SECRET_ABBREVIATIONS = ("--e", "--va")
# ansible-playbook's short options that take no value: "-vCe VALUE" is "-v -C -e VALUE".
SHORT_FLAGS = "bCDhJKkv"


def ara_settings() -> dict[str, str]:
    """Where the callback sent the run (the same defaults as plugins/callback/ara_default.py)."""
    if not {"ARA_BASE_DIR", "ARA_DATABASE_NAME"} & os.environ.keys():
        os.environ["ARA_BASE_DIR"] = str(PROJECT / ".ansible" / "ara")
    server = os.environ.get("ARA_API_SERVER", "")
    client = os.environ.get("ARA_API_CLIENT") or ("http" if server else "offline")
    if client == "http":
        return {"api_client": "http", "server": server or "http://127.0.0.1:8000"}
    database = os.environ.get("ARA_DATABASE_NAME") or str(
        Path(os.environ["ARA_BASE_DIR"]) / "ansible.sqlite"
    )
    return {"api_client": "offline", "database": database}


def ara_client(settings: dict[str, str]) -> AraHttpClient:
    return get_client(
        client=settings["api_client"],
        endpoint=settings.get("server", "http://127.0.0.1:8000"),
        timeout=int(os.environ.get("ARA_API_TIMEOUT", "30")),
        username=os.environ.get("ARA_API_USERNAME"),
        password=os.environ.get("ARA_API_PASSWORD"),
        verify=os.environ.get("ARA_API_CA") or os.environ.get("ARA_API_INSECURE", "") != "true",
        # The callback's run has already brought the embedded database's schema up to date.
        run_sql_migrations=False,
    )


def ui_url(settings: dict[str, str], playbook_id: int) -> str:
    # `make ara` serves the embedded database on this port (ARA_UI_PORT, default 8855).
    base = settings.get("server") or f"http://127.0.0.1:{os.environ.get('ARA_UI_PORT', '8855')}"
    return f"{base.rstrip('/')}/playbooks/{playbook_id}.html?changed=true"


def item_label(value: Any) -> str:
    """A short, printable name for a loop item."""
    if isinstance(value, dict):
        for key in ("name", "key", "path", "dest", "item"):
            if isinstance(value.get(key), str | int):
                return str(value[key])
        value = json.dumps(value, sort_keys=True)
    text = str(value)
    return text if len(text) <= 60 else text[:57] + "..."


def changed_items(content: dict[str, Any]) -> list[str]:
    """The loop items that would change, from a result's recorded content."""
    items = []
    for sub in content.get("results") or []:
        if isinstance(sub, dict) and sub.get("changed"):
            loop_var = sub.get("ansible_loop_var", "item")
            if loop_var in sub:
                items.append(item_label(sub[loop_var]))
    return items


def collect(client: AraHttpClient, playbook_id: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """The playbook record and, per host, its counters and the changes it would get."""

    def listed(endpoint: str, **params: Any) -> list[dict[str, Any]]:
        return client.get(endpoint, playbook=playbook_id, limit=10000, **params)["results"]

    playbook = client.get(f"/api/v1/playbooks/{playbook_id}")
    hosts = listed("/api/v1/hosts")
    tasks = {t["id"]: t for t in listed("/api/v1/tasks")}
    changed = listed("/api/v1/results", changed=True, order="id")

    report_hosts: dict[str, Any] = {}
    names = {}
    for host in sorted(hosts, key=lambda h: h["name"]):
        names[host["id"]] = host["name"]
        report_hosts[host["name"]] = {
            key: host.get(key) or 0 for key in ("ok", "changed", "failed", "unreachable", "skipped")
        } | {"would_change": []}
    for result in changed:
        task = tasks.get(result["task"], {})
        content = client.get(f"/api/v1/results/{result['id']}").get("content") or {}
        host = names.get(result["host"], str(result["host"]))
        entry = report_hosts.setdefault(host, {"would_change": []})
        entry["would_change"].append(
            {
                "task": task.get("name") or "?",
                "action": task.get("action") or "?",
                "handler": bool(task.get("handler")),
                "items": changed_items(content),
                "result_id": result["id"],
            }
        )
    return playbook, report_hosts


def verdict_of(ansible_rc: int, playbook: dict[str, Any] | None, hosts: dict[str, Any]) -> str:
    if playbook is None or ansible_rc != 0 or playbook.get("status") != "completed":
        return "failed"
    if any(h.get("failed") or h.get("unreachable") for h in hosts.values()):
        return "failed"
    if any(h["would_change"] for h in hosts.values()):
        return "drifted"
    return "in-sync"


def split_secret(arg: str) -> tuple[str, str | None] | None:
    """(the secret option, the value written with it) in arg, read as ansible-playbook reads it.

    The value is None when it is the next argument; the result is None if arg is no secret option.
    """
    if arg.startswith("--"):  # --extra-vars, --extra-vars=VALUE, --extra VALUE, --ext=VALUE
        option, equals, value = arg.partition("=")
        if option.startswith(SECRET_ABBREVIATIONS) and any(
            secret.startswith(option) for secret in SECRET_OPTIONS
        ):
            return (option + equals, value) if equals else (option, None)
    elif arg.startswith("-"):  # -e, -eVALUE, -e=VALUE, -vCe VALUE, -vCeVALUE
        rest = arg[1:].lstrip(SHORT_FLAGS)
        if rest.startswith("e"):
            option, value = arg[: len(arg) - len(rest) + 1], rest[1:]
            if value.startswith("="):
                return option + "=", value[1:]
            return option, value or None
    return None


def redact(args: list[str]) -> list[str]:
    """Command-line arguments with the values of SECRET_OPTIONS left out, however spelled."""
    out: list[str] = []
    value_next = False
    for arg in args:
        secret = split_secret(arg)
        if secret is not None:
            option, value = secret
            out.append(arg if value is None else f"{option}<not saved>")
            value_next = value is None
        elif value_next:  # the value of the option before it
            out.append("<not saved>")
            value_next = False
        else:
            out.append(arg)
    return out


def write_report(report: dict[str, Any], report_dir: Path, stamp: str) -> Path:
    """<stamp>.json (never overwritten) and latest.json (replaced atomically)."""
    report_dir.mkdir(parents=True, exist_ok=True)
    text = json.dumps(report, indent=2) + "\n"
    path = report_dir / f"{stamp}.json"
    for n in range(1, 1000):
        try:
            with path.open("x", encoding="utf-8") as handle:
                handle.write(text)
            break
        except FileExistsError:
            path = report_dir / f"{stamp}-{n}.json"
    fd, tmp = tempfile.mkstemp(dir=report_dir, prefix=".latest.", suffix=".json")
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.chmod(tmp, 0o644)
    os.replace(tmp, report_dir / "latest.json")
    return path


def label(
    client: AraHttpClient, playbook: dict[str, Any], verdict: str, report: dict[str, Any]
) -> None:
    """verdict:<verdict> on the ARA record, and the report attached to it (as an ARA record)."""
    labels = [
        lb["name"] for lb in playbook.get("labels", []) if not lb["name"].startswith("verdict:")
    ]
    labels.append(f"verdict:{verdict}")
    report["ara"]["labels"] = labels
    client.patch(f"/api/v1/playbooks/{playbook['id']}", labels=labels)
    client.post(
        "/api/v1/records", playbook=playbook["id"], key="drift_report", value=report, type="json"
    )


def change_line(host: str, change: dict[str, Any]) -> str:
    items = f" [{', '.join(change['items'])}]" if change["items"] else ""
    handler = "  (handler)" if change["handler"] else ""
    return f"  {host:<24} {change['task']}{items}{handler}"


def summary(verdict: str, ansible_rc: int, hosts: dict[str, Any], heal: str) -> list[str]:
    """drift.sh's verdict section; molecule/day2 reads its "  <host>  <task>" lines."""
    lines = ["", "== drift summary =="]
    if verdict == "failed":
        failed = sum(h.get("failed", 0) for h in hosts.values())
        unreachable = sum(h.get("unreachable", 0) for h in hosts.values())
        lines.append(
            f"check FAILED: failed={failed} unreachable={unreachable} "
            f"(ansible-playbook exit {ansible_rc})"
        )
    elif verdict == "in-sync":
        lines.append("in sync: the hosts match the code (changed=0)")
    else:
        changes = [(host, c) for host, h in hosts.items() for c in h["would_change"]]
        lines.append(f"DRIFT: {len(changes)} task result(s) would change:")
        lines += [change_line(host, change) for host, change in changes]
        lines.append(f"heal with: {heal}")
    return lines


def where_to_look(settings: dict[str, str], playbook_id: int, labels: list[str]) -> list[str]:
    """The lines that say where this run is in ARA."""
    url = ui_url(settings, playbook_id)
    if settings["api_client"] == "http":
        where, env = "", ""
    else:
        where, env = "`make ara`, then ", f"ARA_DATABASE_NAME={settings['database']} "
    return [
        f"ARA: playbook {playbook_id}, labels {', '.join(labels) or '-'}",
        f"  this run:      {where}{url}",
        f"  drifted runs:  {url.split('/playbooks/')[0]}/?label=verdict:drifted",
        f"  on the CLI:    {env}ara result list --playbook {playbook_id} --changed --resolve",
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ansible-rc", type=int, required=True)
    parser.add_argument("--id-file", type=Path, required=True, help="ARA playbook id of the run")
    parser.add_argument("--playbook", default="site.yml")
    parser.add_argument("--target", default="local")
    parser.add_argument("--started", required=True, help="UTC, ISO 8601")
    parser.add_argument("--report-dir", type=Path, default=PROJECT / ".ansible" / "drift")
    parser.add_argument("args", nargs="*", help="the ansible-playbook arguments drift.sh got")
    opts = parser.parse_args(argv)

    settings = ara_settings()
    finished = datetime.now(UTC)
    stamp = finished.strftime("%Y%m%dT%H%M%SZ")
    args = redact(opts.args)
    heal = " ".join(["ansible-playbook", opts.playbook, *args])

    playbook_id: int | None = None
    playbook: dict[str, Any] | None = None
    hosts: dict[str, Any] = {}
    problem = ""
    client: AraHttpClient | None = None
    try:
        playbook_id = int(opts.id_file.read_text().strip())
    except (OSError, ValueError):
        problem = "the run left no ARA record (see the warnings above)"
    else:
        try:
            client = ara_client(settings)
            playbook, hosts = collect(client, playbook_id)
        except Exception as exc:  # the client raises plain exceptions on HTTP errors
            problem = f"ARA could not be read ({type(exc).__name__}: {exc})"
    verdict = verdict_of(opts.ansible_rc, playbook, hosts)

    report: dict[str, Any] = {
        "schema": REPORT_SCHEMA,
        "verdict": verdict,
        "exit_code": EXIT[verdict],
        "started": opts.started,
        "finished": finished.isoformat(timespec="seconds"),
        "target": opts.target,
        "playbook": opts.playbook,
        "command": ["ansible-playbook", opts.playbook, "--check", "--diff", *args],
        "ansible_exit_code": opts.ansible_rc,
        "problem": problem or None,
        "changed_tasks": sum(len(h["would_change"]) for h in hosts.values()),
        "hosts": hosts,
        "heal": heal if verdict == "drifted" else None,
        "ara": {
            **settings,
            "playbook_id": playbook_id,
            "status": playbook.get("status") if playbook else None,
            "labels": [],
            "ui": ui_url(settings, playbook_id) if playbook_id is not None else None,
        },
    }
    if client is not None and playbook is not None:
        try:
            label(client, playbook, verdict, report)
        except Exception as exc:  # same as above
            report["problem"] = f"the verdict could not be recorded in ARA ({exc})"
    path = write_report(report, opts.report_dir, stamp)

    lines = summary(verdict, opts.ansible_rc, hosts, heal)
    if report["problem"]:
        lines.append(f"  ({report['problem']})")
    lines += ["", f"report: {path} (and {opts.report_dir / 'latest.json'})"]
    if playbook_id is not None:
        lines += where_to_look(settings, playbook_id, report["ara"]["labels"])
    print("\n".join(lines))
    return EXIT[verdict]


if __name__ == "__main__":
    sys.exit(main())
