"""The strict systemd sandbox, written once (plugins/filter/systemd_sandbox.py).

The three units that use it (nginx's and PostgreSQL's drop-ins, the app's
unit) are rendered with Ansible's own template lookup and compared, directive
for directive, with what they rendered before the profile was shared: the
same directives with the same values, a repeated one (SystemCallFilter,
Environment) in the same order. The molecule scenarios check the scores.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
from ansible.errors import AnsibleFilterError
from aws_support import load_module
from json_playbook import run_json_playbook

ROOT = Path(__file__).resolve().parent.parent


SANDBOX_PY = ROOT / "plugins" / "filter" / "systemd_sandbox.py"
systemd_sandbox = load_module(SANDBOX_PY, "cgc_systemd_sandbox")

TEMPLATES = {
    "nginx": "roles/nginx/templates/hardening.conf.j2",
    "postgresql": "roles/postgresql/templates/hardening.conf.j2",
    "app": "roles/app/templates/cachedapp.service.j2",
}
VARIABLES = {
    "__nginx_writable_paths": [
        "/var/log/nginx",
        "/var/lib/nginx",
        "/var/cache/nginx",
        "/run",
        "/srv/edge",
    ],
    "__postgresql_writable_paths": [
        "/var/lib/postgresql",
        "/var/run/postgresql",
        "/var/log/postgresql",
    ],
    "app_service_name": "cachedapp",
    "app_user": "cachedapp",
    "app_group": "cachedapp",
    "__app_socket_group": "www-data",
    "__app_runtime_dir": "/run/cachedapp",
    "app_config_path": "/etc/cachedapp/config.toml",
    "__app_current_link": "/opt/cachedapp/current",
    "app_socket_path": "/run/cachedapp/gunicorn.sock",
    "app_workers": 2,
    "app_threads": 0,
}

# What each template rendered before the profile was shared (comments dropped).
BEFORE = {
    "nginx": """
[Service]
NoNewPrivileges=yes
CapabilityBoundingSet=CAP_NET_BIND_SERVICE CAP_SETUID CAP_SETGID CAP_CHOWN CAP_DAC_OVERRIDE
ProtectSystem=strict
ReadWritePaths=-/var/log/nginx -/var/lib/nginx -/var/cache/nginx -/run -/srv/edge
ProtectHome=yes
PrivateTmp=yes
PrivateDevices=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
ProtectProc=invisible
ProcSubset=pid
RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6
RestrictNamespaces=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
LockPersonality=yes
SystemCallArchitectures=native
SystemCallFilter=@system-service
SystemCallFilter=~@privileged @resources
SystemCallFilter=setuid setgid setgroups @chown
UMask=0027
""",
    "postgresql": """
[Service]
User=postgres
Group=postgres
NoNewPrivileges=yes
CapabilityBoundingSet=
AmbientCapabilities=
ProtectSystem=strict
ReadWritePaths=-/var/lib/postgresql -/var/run/postgresql -/var/log/postgresql
ProtectHome=yes
PrivateTmp=yes
PrivateDevices=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
ProtectProc=invisible
ProcSubset=pid
RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK
RestrictNamespaces=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
LockPersonality=yes
SystemCallArchitectures=native
SystemCallFilter=@system-service
SystemCallFilter=~@privileged @resources
UMask=0077
""",
    "app": r"""
[Unit]
Description=cachedapp (gunicorn, Redis-cached slow PostgreSQL query)
After=network-online.target
Wants=network-online.target
[Service]
Type=notify
NotifyAccess=main
User=cachedapp
Group=www-data
SupplementaryGroups=cachedapp
RuntimeDirectory=cachedapp
RuntimeDirectoryMode=0750
Environment=CACHEDAPP_CONFIG=/etc/cachedapp/config.toml
Environment=PROMETHEUS_MULTIPROC_DIR=/run/cachedapp/metrics
Environment=PYTHONDONTWRITEBYTECODE=1
Environment=PYTHONUNBUFFERED=1
ExecStart=/opt/cachedapp/current/venv/bin/gunicorn \
    --config python:cachedapp.gunicorn_conf \
    --bind unix:/run/cachedapp/gunicorn.sock \
    --workers 2 \
    --umask 007 \
    cachedapp.wsgi:app
ExecReload=/bin/kill -s HUP $MAINPID
KillMode=mixed
TimeoutStartSec=60
TimeoutStopSec=25
Restart=on-failure
RestartSec=2
NoNewPrivileges=yes
CapabilityBoundingSet=
AmbientCapabilities=
ProtectSystem=strict
ProtectHome=yes
PrivateTmp=yes
PrivateDevices=yes
PrivateMounts=yes
DevicePolicy=closed
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
ProtectProc=invisible
ProcSubset=pid
RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6
RestrictNamespaces=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
LockPersonality=yes
MemoryDenyWriteExecute=yes
RemoveIPC=yes
KeyringMode=private
SystemCallArchitectures=native
SystemCallFilter=@system-service
SystemCallFilter=~@privileged @resources
SystemCallFilter=@chown
SystemCallErrorNumber=EPERM
UMask=0077
[Install]
WantedBy=multi-user.target
""",
}

PLAY = """
- name: Render the sandboxed units with Ansible's template lookup
  hosts: all
  gather_facts: false
  tasks:
    - name: Render
      ansible.builtin.debug:
        msg: "{{ lookup('ansible.builtin.template', root ~ '/' ~ item.value) }}"
      loop: "{{ templates | dict2items }}"
"""


def directives(text: str) -> dict[tuple[str | None, str], list[str]]:
    """(section, directive) -> its values in order; continuation lines joined."""
    found: dict[tuple[str | None, str], list[str]] = defaultdict(list)
    section = None
    for raw in re.sub(r"\\\n\s*", " ", text).splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            section = line
            continue
        name, _, value = line.partition("=")
        found[(section, name)].append(value)
    return dict(found)


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    work = tmp_path_factory.mktemp("sandbox")
    host = VARIABLES | {
        "ansible_connection": "local",
        "root": str(ROOT),
        "templates": TEMPLATES,
    }
    proc = run_json_playbook(work, {"localhost": host}, PLAY)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (task,) = json.loads(proc.stdout)["plays"][0]["tasks"]
    results = task["hosts"]["localhost"]["results"]
    return {result["item"]["key"]: result["msg"] for result in results}


@pytest.mark.parametrize("unit", list(TEMPLATES))
def test_units_keep_every_directive(rendered: dict[str, str], unit: str) -> None:
    assert directives(rendered[unit]) == directives(BEFORE[unit])


@pytest.mark.parametrize("unit", list(TEMPLATES))
def test_every_unit_uses_the_shared_profile(unit: str) -> None:
    text = (ROOT / TEMPLATES[unit]).read_text()
    assert "| systemd_sandbox }}" in text
    # The profile's own lines are written nowhere else.
    for name, _ in systemd_sandbox.STRICT + systemd_sandbox.RESTRICT:
        assert not re.search(rf"^{name}=", text, re.MULTILINE), (unit, name)


def test_default_profile_has_no_capability_and_a_private_umask() -> None:
    lines = systemd_sandbox.systemd_sandbox({}).splitlines()
    assert lines[:4] == [
        "NoNewPrivileges=yes",
        "CapabilityBoundingSet=",
        "AmbientCapabilities=",
        "ProtectSystem=strict",
    ]
    assert "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6" in lines
    assert not [line for line in lines if line.startswith("ReadWritePaths")]
    assert lines[-3:] == [
        "SystemCallFilter=@system-service",
        "SystemCallFilter=~@privileged @resources",
        "UMask=0077",
    ]


def test_options_change_only_their_lines() -> None:
    base = systemd_sandbox.sandbox_directives({})
    unit = systemd_sandbox.sandbox_directives(
        {
            "capabilities": ["CAP_CHOWN"],
            "writable_paths": ["/var/lib/x", "/run"],
            "address_families": ["AF_NETLINK"],
            "syscalls": ["@chown"],
            "umask": "0027",
        }
    )
    assert ("CapabilityBoundingSet", "CAP_CHOWN") in unit
    assert ("AmbientCapabilities", "") not in unit  # only with no capability at all
    assert unit[unit.index(("ProtectSystem", "strict")) + 1] == (
        "ReadWritePaths",
        "-/var/lib/x -/run",
    )
    assert ("RestrictAddressFamilies", "AF_UNIX AF_INET AF_INET6 AF_NETLINK") in unit
    # Allowed again only after the deny list (systemd applies them in order).
    filters = [value for name, value in unit if name == "SystemCallFilter"]
    assert filters == ["@system-service", "~@privileged @resources", "@chown"]
    assert unit[-1] == ("UMask", "0027")
    changed = {"CapabilityBoundingSet", "AmbientCapabilities", "ReadWritePaths"}
    changed |= {"RestrictAddressFamilies", "SystemCallFilter", "UMask"}
    assert [d for d in base if d[0] not in changed] == [d for d in unit if d[0] not in changed]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ([], "expected a mapping"),
        ({"capability": ["CAP_CHOWN"]}, "unknown options capability"),
        ({"syscalls": "@chown"}, "syscalls must be a list"),
        ({"writable_paths": ["/a b"]}, "writable_paths has an empty or spaced entry"),
        ({"capabilities": [""]}, "capabilities has an empty or spaced entry"),
        ({"umask": "27"}, "umask '27' is not 0NNN octal"),
    ],
)
def test_bad_options_are_refused(options: Any, message: str) -> None:
    with pytest.raises(AnsibleFilterError, match=re.escape(message)):
        systemd_sandbox.systemd_sandbox(options)


def test_filter_is_registered() -> None:
    filters = systemd_sandbox.FilterModule().filters()
    assert filters["systemd_sandbox"] is systemd_sandbox.systemd_sandbox
