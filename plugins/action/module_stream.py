"""module_stream: on EL, a server package from the AppStream module stream the data names.

The data-tier roles' stream step, written once::

    - name: Take the server package from its module stream (EL9)
      module_stream:
        role: redis
        package: "{{ __redis_packages[0] }}"
        stream: "{{ __redis_module_stream }}"   # e.g. redis:7; empty: nothing to do
        other_stream_hint: switch it first (...)

A package built for a stream carries its label (rpm's MODULARITYLABEL,
"name:stream:version:context"; "(none)" otherwise), so one rpm query decides:
not installed -> `dnf module enable` (it changes no package; the installation
that follows takes the stream's packages), installed from the stream -> nothing
to do, installed from elsewhere -> fail before any change, with the hint. A
command: no module of the bundled collections enables a stream without
installing a profile. The query runs in check mode too; the enable does not.
"""

from __future__ import annotations

import shlex
from typing import Any

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase


def decide(stream: str, installed: bool, label: str) -> str:
    """``skip`` (no stream), ``enable`` (not installed) or ``ok`` (from the stream);
    ValueError for a package installed from elsewhere."""
    if not stream:
        return "skip"
    if not installed:
        return "enable"
    if label.startswith(f"{stream}:"):
        return "ok"
    raise ValueError(label)


def other_stream(role: str, package: str, stream: str, label: str, hint: str) -> str:
    return (
        f"{role} role: {package} is installed, but not from the module stream {stream}"
        f" (its label: {label}); {hint}"
    )


class ActionModule(ActionBase):
    TRANSFERS_FILES = False

    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        result = super().run(tmp, task_vars)
        _, args = self.validate_argument_spec(
            argument_spec={
                "role": {"type": "str", "required": True},
                "package": {"type": "str", "required": True},
                "stream": {"type": "str", "default": ""},
                "other_stream_hint": {"type": "str", "required": True},
            }
        )
        role, package, stream = args["role"], args["package"], args["stream"]
        installed, label = False, ""
        if stream:
            probe = self._low_level_execute_command(
                shlex.join(["rpm", "-q", "--queryformat", "%{MODULARITYLABEL}", package])
            )
            installed, label = probe["rc"] == 0, probe["stdout"].strip()
        try:
            decision = decide(stream, installed, label)
        except ValueError:
            raise AnsibleActionFail(
                other_stream(role, package, stream, label, args["other_stream_hint"])
            ) from None
        if decision != "enable":
            return {**result, "changed": False, "skipped": decision == "skip", "msg": decision}
        if self._task.check_mode:
            return {**result, "changed": False, "skipped": True, "msg": "check mode"}
        enable = self._low_level_execute_command(
            shlex.join(["dnf", "-y", "module", "enable", stream])
        )
        if enable["rc"] != 0:
            raise AnsibleActionFail(f"dnf module enable {stream}: {enable['stderr'].strip()}")
        result.update(changed="Nothing to do" not in enable["stdout"], msg=f"enabled {stream}")
        return result
