"""Runtime drift of Redis: the running settings (CONFIG GET *) against the managed ones.

A setting changed at run time (CONFIG SET) is drift the files do not show; the
role reports it and heals it with a restart from the managed files.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


def redis_config_drift(lines: Sequence[str], expected: Mapping[str, Any]) -> list[str]:
    """``name is 'running', managed 'expected'`` for each managed setting whose
    running value differs, by name; ``lines`` alternate names and values."""
    running = dict(zip(lines[0::2], lines[1::2], strict=False))
    return [
        f"{name} is '{running.get(name, '?')}', managed '{value}'"
        for name, value in sorted(expected.items())
        if running.get(name) != str(value)
    ]


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"redis_config_drift": redis_config_drift}
