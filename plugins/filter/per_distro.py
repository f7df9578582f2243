"""Every host role's per-distro data: the most specific file of its vars/ directory
for the host's facts (docs/CONTRACTS.md, "Per-OS data in the roles").

A host no file matches is refused before any change, with a message that names
the platform and the ones the role supports (its vars files are that list).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ansible.errors import AnsibleFilterError


def candidates(facts: Mapping[str, Any]) -> list[str]:
    """<distribution>-<major>.yml, <os_family>-<major>.yml, <os_family>.yml ("?" when
    the facts were not gathered)."""
    distribution, family = facts.get("distribution", "?"), facts.get("os_family", "?")
    major = facts.get("distribution_major_version", "?")
    return [f"{distribution}-{major}.yml", f"{family}-{major}.yml", f"{family}.yml"]


def per_distro_vars_file(facts: Mapping[str, Any], vars_dir: str, role: str) -> str:
    """The path of the first of the host's candidates found in ``vars_dir``."""
    directory, names = Path(vars_dir), candidates(facts)
    for name in names:
        if (directory / name).is_file():
            return str(directory / name)
    platform = names[0].removesuffix(".yml")
    hint = " (gather the distribution facts)" if "?" in platform else ""
    supported = sorted(p.stem for p in directory.glob("*.yml") if p.name != "main.yml")
    raise AnsibleFilterError(
        f"{role} role: unsupported platform {platform}{hint}; supported: {', '.join(supported)}"
    )


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"per_distro_vars_file": per_distro_vars_file}
