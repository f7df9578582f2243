"""systemd_sandbox: the strict sandbox every service of the project runs in,
written once (nginx's drop-in, PostgreSQL's drop-in, the app's unit).

Each unit passes only what differs from the strict profile, and says why::

    [Service]
    {{ {'capabilities': ['CAP_NET_BIND_SERVICE'],
        'writable_paths': __nginx_writable_paths,
        'syscalls': ['@chown'],
        'umask': '0027'} | systemd_sandbox }}

- ``capabilities``: the bounding set (none by default: then no ambient ones
  either);
- ``writable_paths``: writable under ProtectSystem=strict, each optional
  (``-``: a missing one is skipped);
- ``address_families``: beyond AF_UNIX, AF_INET and AF_INET6;
- ``syscalls``: allowed again after ``~@privileged @resources``;
- ``umask``: of the service's files (0077 by default).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from ansible.errors import AnsibleFilterError

ADDRESS_FAMILIES = ("AF_UNIX", "AF_INET", "AF_INET6")
# Directives every unit gets as they are, in this order, after the capability
# and file-system lines.
STRICT = (
    ("ProtectHome", "yes"),
    ("PrivateTmp", "yes"),
    ("PrivateDevices", "yes"),
    ("ProtectKernelTunables", "yes"),
    ("ProtectKernelModules", "yes"),
    ("ProtectKernelLogs", "yes"),
    ("ProtectControlGroups", "yes"),
    ("ProtectClock", "yes"),
    ("ProtectHostname", "yes"),
    ("ProtectProc", "invisible"),
    ("ProcSubset", "pid"),
)
RESTRICT = (
    ("RestrictNamespaces", "yes"),
    ("RestrictRealtime", "yes"),
    ("RestrictSUIDSGID", "yes"),
    ("LockPersonality", "yes"),
    ("SystemCallArchitectures", "native"),
    ("SystemCallFilter", "@system-service"),
    ("SystemCallFilter", "~@privileged @resources"),
)
OPTIONS = {"capabilities", "writable_paths", "address_families", "syscalls", "umask"}


def _words(options: Mapping[str, Any], name: str) -> list[str]:
    value = options.get(name) or []
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise AnsibleFilterError(f"systemd_sandbox: {name} must be a list, got {value!r}")
    words = [str(word) for word in value]
    if any(not word or re.search(r"\s", word) for word in words):
        raise AnsibleFilterError(f"systemd_sandbox: {name} has an empty or spaced entry")
    return words


def sandbox_directives(options: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The profile with ``options`` applied, as (directive, value) pairs in order."""
    if not isinstance(options, Mapping):
        raise AnsibleFilterError(f"systemd_sandbox: expected a mapping, got {options!r}")
    unknown = sorted(set(options) - OPTIONS)
    if unknown:
        raise AnsibleFilterError(f"systemd_sandbox: unknown options {', '.join(unknown)}")
    umask = str(options.get("umask", "0077"))
    if not re.fullmatch(r"0[0-7]{3}", umask):
        raise AnsibleFilterError(f"systemd_sandbox: umask {umask!r} is not 0NNN octal")
    capabilities = _words(options, "capabilities")
    paths = _words(options, "writable_paths")
    syscalls = _words(options, "syscalls")
    families = [*ADDRESS_FAMILIES, *_words(options, "address_families")]

    directives = [("NoNewPrivileges", "yes"), ("CapabilityBoundingSet", " ".join(capabilities))]
    if not capabilities:
        directives.append(("AmbientCapabilities", ""))
    directives.append(("ProtectSystem", "strict"))
    if paths:
        directives.append(("ReadWritePaths", " ".join("-" + path for path in paths)))
    directives += [*STRICT, ("RestrictAddressFamilies", " ".join(families)), *RESTRICT]
    if syscalls:
        directives.append(("SystemCallFilter", " ".join(syscalls)))
    directives.append(("UMask", umask))
    return directives


def systemd_sandbox(options: Mapping[str, Any]) -> str:
    """The sandbox's lines for a unit's [Service] section (no trailing newline)."""
    return "\n".join(f"{name}={value}" for name, value in sandbox_directives(options))


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"systemd_sandbox": systemd_sandbox}
