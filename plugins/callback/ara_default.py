"""ARA's callback, found through the project's ansible.cfg (no venv path in it).

ansible.cfg lists this directory in `callback_plugins` (a path relative to the
file) and enables `ara_default`, so every `ansible-playbook` that reads the
project's ansible.cfg is recorded: site.yml, deploy, drift checks, teardowns,
the day2 scenario's runs. The recording itself is ARA's own callback
(ara.plugins.callback.ara_default, imported from whichever Python runs
Ansible); this file only adds the project's defaults:

- the embedded SQLite database lives in the project's run-state directory,
  `.ansible/ara/ansible.sqlite` (git-ignored), unless ARA_BASE_DIR or
  ARA_DATABASE_NAME say otherwise;
- ARA_API_SERVER alone sends the runs to that ARA API server (the http client),
  without also setting ARA_API_CLIENT=http;
- when ARA cannot take the run (an unreachable API server), one warning and
  the run goes on unrecorded;
- with CGC_ARA_PLAYBOOK_ID_FILE set, the id of the run's ARA playbook record is
  written to that file when the run starts (scripts/drift.sh reads it back).

When the Python that runs Ansible has no `ara` package, the callback disables
itself with a warning and the run goes on unrecorded.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
from pathlib import Path

_PROJECT = Path(__file__).resolve().parents[2]

if not {"ARA_BASE_DIR", "ARA_DATABASE_NAME"} & os.environ.keys():
    os.environ["ARA_BASE_DIR"] = str(_PROJECT / ".ansible" / "ara")
if os.environ.get("ARA_API_SERVER") and not os.environ.get("ARA_API_CLIENT"):
    os.environ["ARA_API_CLIENT"] = "http"

try:
    # Ansible reads the options (api_client, default_labels, ...) from DOCUMENTATION.
    from ara.plugins.callback.ara_default import DOCUMENTATION
    from ara.plugins.callback.ara_default import CallbackModule as _AraCallback

    _MISSING = ""
except ImportError as exc:
    from ansible.plugins.callback import CallbackBase as _AraCallback

    DOCUMENTATION = """
name: ara_default
type: notification
short_description: ARA's callback (ara is not installed for this Python; nothing recorded)
description: [Stands in for ARA's callback when the ara package cannot be imported.]
"""
    _MISSING = str(exc)


class CallbackModule(_AraCallback):
    """ARA's callback, enabled by name in ansible.cfg; reports its playbook id on request."""

    CALLBACK_NAME = "ara_default"
    CALLBACK_NEEDS_ENABLED = True
    CALLBACK_TYPE = "notification"
    CALLBACK_VERSION = 2.0

    def __init__(self) -> None:
        super().__init__()
        if _MISSING:
            self._display.warning(
                f"ARA cannot be imported by {sys.executable} ({_MISSING}): this run is not "
                "recorded. The project's venv has it (make venv; PATH=$PWD/.venv/bin:$PATH)."
            )
            self.disabled = True

    def set_options(self, task_keys=None, var_options=None, direct=None):  # type: ignore[no-untyped-def]
        # The embedded client brings the database schema up to date on start and
        # Django prints its migration report to stdout; keep it out of the run's output.
        with contextlib.redirect_stdout(io.StringIO()):
            super().set_options(task_keys=task_keys, var_options=var_options, direct=direct)

    def v2_playbook_on_start(self, playbook):  # type: ignore[no-untyped-def]
        try:
            record = super().v2_playbook_on_start(playbook)
        except Exception as exc:  # any client error: the run must go on
            # An unreachable or refusing ARA API server: one warning, not one per event.
            self._display.warning(f"ARA could not record this run ({exc}); it goes on unrecorded.")
            self.disabled = True
            return None
        id_file = os.environ.get("CGC_ARA_PLAYBOOK_ID_FILE")
        if id_file:
            Path(id_file).write_text(f"{self.playbook['id']}\n", encoding="utf-8")
        return record
