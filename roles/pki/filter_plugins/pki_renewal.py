"""pki's renewal rule, read on the controller in the task's own process (no
module run per certificate: a re-run checks every certificate this way)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography import x509


def pki_renewal_due(path: str, days: int) -> bool:
    """True when the PEM certificate at ``path`` is missing or unreadable, or is no
    longer valid ``days`` from now."""
    try:
        cert = x509.load_pem_x509_certificate(Path(path).read_bytes())
    except (OSError, ValueError):
        return True
    return cert.not_valid_after_utc < datetime.now(UTC) + timedelta(days=int(days))


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"pki_renewal_due": pki_renewal_due}
