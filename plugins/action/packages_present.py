"""packages_present: install packages, asking the package database first.

    - name: Install nginx
      packages_present:
        name: "{{ __nginx_packages }}"
        install_recommends: false   # apt only; default: apt's own default
      register: __nginx_install     # changed: installed (in --check: would be)

One read-only query of the package database (dpkg-query or rpm); the package
manager's module (apt, dnf, dnf5) runs only when something is missing. apt
opens its whole cache (about 4 s a call in the test containers) even when
there is nothing to do, which made it the slowest part of a no-change re-run.
Before an apt install the package index is refreshed when it is missing or
older than ``cache_valid_time``, also in --check (package metadata is not
managed state), so a check run on a fresh host can tell what it would install.
"""

from __future__ import annotations

import shlex
from typing import Any

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase

# One line per package, "ii <name>" when installed; non-zero when one is unknown.
RPM_QUERY = ["rpm", "--query", "--queryformat=ii %{NAME}\\n"]
QUERIES = {
    "apt": ["dpkg-query", "--show", "--showformat=${db:Status-Abbrev}${binary:Package}\\n"],
    "dnf": RPM_QUERY,
    "dnf5": RPM_QUERY,
    "yum": RPM_QUERY,
}
# ansible-core's yum is dnf.
MODULES = {
    "apt": "ansible.legacy.apt",
    "dnf": "ansible.legacy.dnf",
    "dnf5": "ansible.legacy.dnf5",
    "yum": "ansible.legacy.dnf",
}


def all_installed(rc: int, stdout: str) -> bool:
    """Whether the package query says every package is installed."""
    lines = stdout.splitlines()
    return rc == 0 and bool(lines) and all(line.startswith("ii ") for line in lines)


class ActionModule(ActionBase):
    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        result = super().run(tmp, task_vars)
        _, args = self.validate_argument_spec(
            argument_spec={
                "name": {"type": "list", "elements": "str", "required": True},
                "install_recommends": {"type": "bool"},
                "cache_valid_time": {"type": "int", "default": 3600},
            }
        )
        manager = (task_vars or {}).get("ansible_facts", {}).get("pkg_mgr", "")
        if manager not in MODULES:
            raise AnsibleActionFail(
                f"packages_present: package manager {manager or '(unknown: gather facts)'!r} "
                f"is not one of {', '.join(MODULES)}"
            )
        query = self._low_level_execute_command(shlex.join(QUERIES[manager] + args["name"]))
        if all_installed(query["rc"], query["stdout"]):
            result.update(changed=False, msg=f"installed: {', '.join(args['name'])}")
            return result

        install: dict[str, Any] = {"name": args["name"], "state": "present"}
        if manager == "apt":
            lists = self._low_level_execute_command(
                "find /var/lib/apt/lists -maxdepth 1 -name '*_Packages*' -print -quit"
            )
            refresh = self._module(
                "ansible.legacy.apt",
                {
                    "update_cache": True,
                    "cache_valid_time": args["cache_valid_time"] if lists["stdout"].strip() else 0,
                },
                task_vars,
                check_mode=False,
            )
            if refresh.get("failed"):
                return {**result, **refresh}
            if args["install_recommends"] is not None:
                install["install_recommends"] = args["install_recommends"]
        outcome = self._module(MODULES[manager], install, task_vars)
        result.update(outcome)
        return result

    def _module(
        self, name: str, args: dict[str, Any], task_vars: Any, check_mode: bool | None = None
    ) -> dict[str, Any]:
        """Run a module; ``check_mode=False`` runs it for real even in --check."""
        saved = self._task.check_mode
        if check_mode is not None:
            self._task.check_mode = check_mode
        try:
            return self._execute_module(module_name=name, module_args=args, task_vars=task_vars)
        finally:
            self._task.check_mode = saved
