"""support.LoadLoop with a pause between a worker's requests, and the slowest answer.

Unpaced, the loop's workers saturate this 2-core machine (about 350 requests/s through
the balancer) and a rolling deploy, whose release build competes with them for the
CPU, takes three times as long. A 20 ms pause still sends about 80 requests/s, so a
window of failed answers as short as a few tens of milliseconds is seen.
"""

from __future__ import annotations

import requests
from support import LoadLoop

# Above a MISS (the slow query's 5 s plus a waiter's wait): a cold answer is slow by
# design, not an error.
TIMEOUT = 15.0


class PacedLoadLoop(LoadLoop):
    """LoadLoop with two workers that pause 20 ms after each answer."""

    def __init__(
        self, url: str, workers: int = 2, timeout: float = TIMEOUT, pause: float = 0.02
    ) -> None:
        super().__init__(url, workers=workers, timeout=timeout, pause=pause)


def warm(url: str) -> int:
    """One GET that may be a MISS (seconds), so the loop starts on a warm cache."""
    return requests.get(url, timeout=TIMEOUT * 2).status_code
