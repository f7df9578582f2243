"""The running server's settings from its postmaster.pid.

PostgreSQL writes, one per line: the postmaster's PID, the data directory, the
start time (epoch), the port, the first unix socket directory, the first listen
address, the shared memory key and the postmaster's status (src/include/
miscadmin.h, LOCK_FILE_LINE_*). The handler reads the port the server really
listens on, which a changed postgresql.conf may no longer say until a restart.
"""

from __future__ import annotations

from typing import Any

_PORT_LINE = 4  # LOCK_FILE_LINE_PORT (1-based)


def postmaster_port(text: str) -> int:
    """The port from postmaster.pid's text; ValueError when the file is not one."""
    lines = text.splitlines()
    if len(lines) < _PORT_LINE or not lines[0].strip().isdigit():
        raise ValueError("not a postmaster.pid (too short, or no PID on line 1)")
    port = int(lines[_PORT_LINE - 1])
    if not 0 < port < 65536:
        raise ValueError(f"postmaster.pid names port {port}")
    return port


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"postmaster_port": postmaster_port}
