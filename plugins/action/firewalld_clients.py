"""firewalld_clients: open one TCP port to its client networks only, where firewalld runs.

The data-tier roles' firewalld step, written once::

    - name: Open the port to its clients where firewalld runs
      firewalld_clients:
        role: redis
        clients: "{{ redis_allowed_clients }}"

It reads the role's <role>_port, <role>_firewalld_mode (auto | required |
disabled) and <role>_firewalld_zone (empty: firewalld's default zone) itself.

One rich rule per client network (plugins/filter/inputs.py: firewalld_rich_rules),
permanent and at once. Rules of that exact form for this port whose source is no
longer a client (in the runtime or the permanent set) are removed, and so is the
port opened to every source (firewall-cmd --add-port), which would undo the
rules; nothing else is opened or closed. ``auto`` skips a host where firewalld
does not run, ``required`` fails there, ``disabled`` never touches firewalld.

The probes (firewall-cmd --state, --list-rich-rules) only read, so they run in
check mode too; every change is an ansible.posix.firewalld call, whose own check
mode and change detection hold.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from typing import Any

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase
from ansible.plugins.loader import filter_loader

# The sets a stale rule may sit in: runtime, then permanent.
LISTINGS: tuple[list[str], ...] = ([], ["--permanent"])


def scope(zone: str) -> list[str]:
    """firewall-cmd's zone arguments (none: the default zone)."""
    return [f"--zone={zone}"] if zone else []


def not_running(role: str, state: Mapping[str, Any]) -> str:
    """The refusal of a host without a running firewalld (mode ``required``)."""
    answer = str(state.get("stdout", "")).strip() or str(state.get("stderr", "")).strip()
    return (
        f'{role} role: {role}_firewalld_mode is "required", but firewalld does not run'
        f" (firewall-cmd --state: {answer or 'no answer'})"
    )


def changes(rules: list[str], stale: list[str], port: int, zone: str) -> list[dict[str, Any]]:
    """The ansible.posix.firewalld calls, in order: each client's rule, the removal
    of each stale rule, then the port closed to every other source."""
    common: dict[str, Any] = {"permanent": True, "immediate": True}
    if zone:
        common["zone"] = zone
    return (
        [{"rich_rule": rule, "state": "enabled", **common} for rule in rules]
        + [{"rich_rule": rule, "state": "disabled", **common} for rule in stale]
        + [{"port": f"{port}/tcp", "state": "disabled", **common}]
    )


class ActionModule(ActionBase):
    TRANSFERS_FILES = False

    def _firewall_cmd(self, *args: str) -> dict[str, Any]:
        return self._low_level_execute_command(shlex.join(["firewall-cmd", *args]))

    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        result = super().run(tmp, task_vars)
        _, args = self.validate_argument_spec(
            argument_spec={
                "role": {"type": "str", "required": True},
                "clients": {"type": "list", "elements": "str", "default": []},
            }
        )
        role, clients = args["role"], args["clients"]
        port, mode, zone = (
            self._templar.resolve_variable_expression(f"{role}_{name}")
            for name in ("port", "firewalld_mode", "firewalld_zone")
        )
        if mode == "disabled":
            return {**result, "changed": False, "skipped": True, "msg": "firewalld mode disabled"}
        state = self._firewall_cmd("--state")
        if state["rc"] != 0:
            if mode == "required":
                raise AnsibleActionFail(not_running(role, state))
            return {**result, "changed": False, "skipped": True, "msg": "firewalld does not run"}

        listed = []
        for extra in LISTINGS:
            listing = self._firewall_cmd(*scope(zone), *extra, "--list-rich-rules")
            if listing["rc"] != 0:
                raise AnsibleActionFail(f"firewall-cmd --list-rich-rules: {listing['stderr']}")
            listed.append(listing)
        rules = filter_loader.get("firewalld_rich_rules").j2_function(clients, port)
        stale = filter_loader.get("firewalld_stale_rules").j2_function(
            {"results": listed}, clients, port
        )
        changed = False  # the remote tmp dir, if any, goes with ActionBase.cleanup()
        for call in changes(rules, stale, port, zone):
            done = self._execute_module("ansible.posix.firewalld", call, task_vars=task_vars)
            if done.get("failed"):
                raise AnsibleActionFail(f"firewalld {call}: {done.get('msg', done)}")
            changed = changed or bool(done.get("changed"))
        result.update(changed=changed, rules=rules, removed=stale)
        return result
