"""The load generator of the drills and the day-2 tests: threads doing GET in a loop.

scripts/drill.py runs two of these per phase (one past nginx's edge microcache, one
through it); molecule/day2's tests run one through the balancer while they deploy or
stop a web host. HTTPS is verified the requests way: `verify=` (a CA bundle), or, when
it is not given, REQUESTS_CA_BUNDLE from the environment (the day-2 tests set it).
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from types import TracebackType

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


class LoadLoop:
    """Threads doing GET on a URL in a loop until the block exits; counts responses.

    with LoadLoop(base_url() + "/") as load:
        ...  # the operation under test
    assert load.non_2xx == 0 and load.errors == 0, load.summary()

    Unpaced workers take the CPU an operation under test needs too: pace them
    (pause) where that operation builds or restarts something.
    """

    def __init__(
        self,
        url: str,
        workers: int = 4,
        timeout: float = TIMEOUT,
        pause: float = 0.0,
        headers: dict[str, str] | None = None,
        *,
        verify: bool | str | None = None,
    ) -> None:
        # pause: seconds each worker sleeps after an answer (0: as fast as the stack
        # answers). headers: sent with every request (EDGE_BYPASS: past the edge).
        # verify: requests' verify (a CA bundle's path; None: REQUESTS_CA_BUNDLE).
        self.url = url
        self.workers = workers
        self.timeout = timeout
        self.pause = pause
        self.headers = headers or {}
        self.verify = verify
        self.slowest = 0.0
        self.statuses: Counter[int] = Counter()
        self.cache: Counter[str] = Counter()
        self.edge: Counter[str] = Counter()  # X-Edge-Cache ("-": none)
        self.error_kinds: Counter[str] = Counter()
        self.seconds = 0.0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._start = 0.0

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

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
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
        statuses = ", ".join(f"{s}: {n}" for s, n in sorted(self.statuses.items()))
        cache = ", ".join(f"{k}: {n}" for k, n in sorted(self.cache.items()))
        edge = ", ".join(f"{k}: {n}" for k, n in sorted(self.edge.items()))
        errors = ", ".join(f"{k}: {n}" for k, n in sorted(self.error_kinds.items())) or "none"
        return (
            f"{self.total} responses in {self.seconds:.1f} s: {self.ok} 2xx, "
            f"{self.non_2xx} non-2xx, {self.errors} errors ({errors}); "
            f"status {{{statuses}}}; X-Cache {{{cache}}}; X-Edge-Cache {{{edge}}}; "
            f"slowest {self.slowest * 1000:.0f} ms"
        )
