"""Logging setup: one stderr handler (the journal under systemd); secrets are never passed."""

from __future__ import annotations

import logging
import sys


def configure(level: str) -> None:
    root = logging.getLogger("cachedapp")
    root.setLevel(level)
    if not any(getattr(h, "_cachedapp", False) for h in root.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(
            logging.Formatter("%(asctime)s [%(process)d] %(levelname)s %(name)s: %(message)s")
        )
        handler._cachedapp = True  # type: ignore[attr-defined]
        root.addHandler(handler)
        root.propagate = False
