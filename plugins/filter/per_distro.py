"""Every host role's per-distro data: the first file of a role's lookup list that
exists in its vars/ directory (docs/CONTRACTS.md, "Per-OS data in the roles").

A host no file matches is refused before any change, with a message that names
the platform and the ones the role supports (its vars files are that list).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ansible.errors import AnsibleFilterError


def per_distro_vars_file(candidates: list[str], vars_dir: str, role: str) -> str:
    """The path of the first of ``candidates`` found in ``vars_dir``."""
    directory = Path(vars_dir)
    for name in candidates:
        if (directory / name).is_file():
            return str(directory / name)
    platform = candidates[0].removesuffix(".yml") if candidates else "?"
    hint = " (gather the distribution facts)" if "?" in platform else ""
    supported = sorted(p.stem for p in directory.glob("*.yml") if p.name != "main.yml")
    raise AnsibleFilterError(
        f"{role} role: unsupported platform {platform}{hint}; supported: {', '.join(supported)}"
    )


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"per_distro_vars_file": per_distro_vars_file}
