"""The load generator of the drills and the day-2 tests: threads doing GET in a loop.

scripts/drill.py and molecule/day2's tests use it. HTTPS is verified the requests way:
`verify=` (a CA bundle), or, when it is not given, REQUESTS_CA_BUNDLE from the
environment (the day-2 tests set it).
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, field

import requests

# The web hosts' nginx answers /, /app and /api/version from its edge microcache
# (X-Edge-Cache; the balancer passes it on); a Cookie header takes a request past it
# to the app (X-Edge-Cache: BYPASS), for checks of the app's own cache (X-Cache).
EDGE_BYPASS = {"Cookie": "cgc-verify=edge-bypass"}

# Per-request timeout of the load loops: above a MISS (the slow query's 5 s plus a
# waiter's wait), so a cold answer counts as slow, not as an error.
TIMEOUT = 15.0


def warm(url: str) -> int:
    """One GET that may be a MISS (seconds), so a load loop starts on a warm cache."""
    return requests.get(url, timeout=TIMEOUT * 2).status_code


def _listed(counter: Counter[int] | Counter[str]) -> str:
    return ", ".join(f"{k}: {n}" for k, n in sorted(counter.items()))


@dataclass(eq=False)
class LoadLoop:
    """Threads doing GET on a URL in a loop until the block exits; counts responses.

    with LoadLoop(base_url() + "/") as load:
        ...  # the operation under test
    assert load.non_2xx == 0 and load.errors == 0, load.summary()

    Unpaced workers take the CPU an operation under test needs too: pace them
    (pause) where that operation builds or restarts something.
    """

    url: str
    workers: int = 4
    timeout: float = TIMEOUT
    pause: float = 0.0  # seconds each worker sleeps after an answer
    headers: dict[str, str] | None = None  # sent with every request (EDGE_BYPASS: past the edge)
    verify: bool | str | None = None  # a CA bundle's path; None: REQUESTS_CA_BUNDLE
    statuses: Counter[int] = field(default_factory=Counter, init=False)
    cache: Counter[str] = field(default_factory=Counter, init=False)  # X-Cache ("-": none)
    edge: Counter[str] = field(default_factory=Counter, init=False)  # X-Edge-Cache ("-": none)
    error_kinds: Counter[str] = field(default_factory=Counter, init=False)
    slowest: float = field(default=0.0, init=False)
    seconds: float = field(default=0.0, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)
    _stop: threading.Event = field(default_factory=threading.Event, init=False)
    _threads: list[threading.Thread] = field(default_factory=list, init=False)
    _start: float = field(default=0.0, init=False)

    def _worker(self) -> None:
        with requests.Session() as session:
            while not self._stop.is_set():
                start = time.perf_counter()
                try:
                    reply = session.get(
                        self.url, timeout=self.timeout, headers=self.headers, verify=self.verify
                    )
                except requests.RequestException as exc:
                    with self._lock:
                        self.error_kinds[type(exc).__name__] += 1
                    time.sleep(0.05)
                    continue
                seconds = time.perf_counter() - start
                with self._lock:
                    self.statuses[reply.status_code] += 1
                    self.cache[reply.headers.get("X-Cache", "-")] += 1
                    self.edge[reply.headers.get("X-Edge-Cache", "-")] += 1
                    self.slowest = max(self.slowest, seconds)
                if self.pause:
                    time.sleep(self.pause)

    def __enter__(self) -> LoadLoop:
        self._start = time.perf_counter()
        for n in range(self.workers):
            thread = threading.Thread(target=self._worker, name=f"load-{n}", daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(self.timeout + 1)
        self.seconds = time.perf_counter() - self._start

    @property
    def ok(self) -> int:
        return sum(n for status, n in self.statuses.items() if 200 <= status < 300)

    @property
    def total(self) -> int:
        return sum(self.statuses.values()) + self.errors

    @property
    def non_2xx(self) -> int:
        return sum(self.statuses.values()) - self.ok

    @property
    def errors(self) -> int:
        return sum(self.error_kinds.values())

    def summary(self) -> str:
        errors = _listed(self.error_kinds) or "none"
        return (
            f"{self.total} responses in {self.seconds:.1f} s: {self.ok} 2xx, "
            f"{self.non_2xx} non-2xx, {self.errors} errors ({errors}); "
            f"status {{{_listed(self.statuses)}}}; X-Cache {{{_listed(self.cache)}}}; "
            f"X-Edge-Cache {{{_listed(self.edge)}}}; slowest {self.slowest * 1000:.0f} ms"
        )
