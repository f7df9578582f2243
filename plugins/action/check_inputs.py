"""check_inputs: a role's input check, written once for every role.

meta/argument_specs.yml checks types and choices; this action checks what a
spec cannot express (ranges, formats, certificates, cross-field rules), on
the controller, before anything changes on a host::

    - name: Check the values argument specs cannot express
      check_inputs:
        role: redis
        inputs:                 # variable -> type (plugins/filter/inputs.py)
          redis_port: port
          redis_maxmemory: redis_size
        rules:                  # message -> condition that must hold
          "redis_x needs redis_y": "{{ redis_x | length == 0 or redis_y }}"

``rules`` may also be a list of ``{msg, ok}``, for messages that show values
(mapping keys are not templated)::

        rules:
          - msg: "bad names: {{ names | reject('match', '^[A-Z_]+$') | join(', ') }}"
            ok: "{{ names | reject('match', '^[A-Z_]+$') | list | length == 0 }}"

It reads each named variable itself and fails with one message listing every
bad input ("redis role: invalid input: a; b"), never showing a secret.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase
from ansible.plugins.loader import filter_loader


class ActionModule(ActionBase):
    _requires_connection = False
    TRANSFERS_FILES = False

    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        result = super().run(tmp, task_vars)
        _, args = self.validate_argument_spec(
            argument_spec={
                "role": {"type": "str", "required": True},
                "inputs": {"type": "dict", "default": {}},
                "rules": {"type": "raw", "default": {}},
            }
        )
        inputs: Mapping[str, Any] = args["inputs"]
        values = {name: self._templar.resolve_variable_expression(name) for name in inputs}
        errors = list(filter_loader.get("input_errors").j2_function(inputs, values))
        rules = args["rules"]
        if isinstance(rules, Mapping):
            rules = [{"msg": message, "ok": holds} for message, holds in rules.items()]
        for rule in rules:
            if not (isinstance(rule, Mapping) and {"msg", "ok"} <= rule.keys()):
                raise AnsibleActionFail(f"check_inputs: a rule is not {{msg, ok}}: {rule!r}")
            message, holds = rule["msg"], rule["ok"]
            if not isinstance(holds, bool):
                raise AnsibleActionFail(f"check_inputs: rule {message!r} is not a boolean")
            if not holds:
                errors.append(message)
        if errors:
            raise AnsibleActionFail(f"{args['role']} role: invalid input: {'; '.join(errors)}")
        result.update(changed=False, msg=f"{len(inputs)} inputs, {len(rules)} rules: all hold")
        return result
