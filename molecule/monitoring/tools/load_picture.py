"""Draw the cache's hit ratio, latency and request rate over a short load run.

Drives load through the stack's published HTTPS front for --seconds (a few worker
threads, verifying the front's certificate against the project's CA,
.ansible/pki/ca.crt), stops Redis for --outage seconds in the middle (``systemctl stop`` in the
stack's cache container) so the picture shows what the alerts watch, then reads the
series back from Prometheus's HTTP API (query_range) and draws them with matplotlib:

    python molecule/monitoring/tools/load_picture.py --out docs/monitoring-load.png

Needs matplotlib and requests, a running local stack with its monitor host
(CGC_LOCAL_STACK, CGC_LOCAL_HTTPS_PORT, CGC_LOCAL_PROMETHEUS_PORT as in molecule.yml),
and Prometheus scraping every few seconds (CGC_MONITOR_INTERVAL=2s). When most of the
load's requests fail (an error or a non-2xx answer), it draws nothing and exits 1.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import matplotlib as mpl

mpl.use("Agg")
import matplotlib.pyplot as plt
import requests

ROOT = Path(os.environ.get("MOLECULE_PROJECT_DIRECTORY", Path(__file__).resolve().parents[3]))
STACK = os.environ.get("CGC_LOCAL_STACK", "cgc")
FRONT = f"https://127.0.0.1:{os.environ.get('CGC_LOCAL_HTTPS_PORT', '8443')}/"
# The stack's private CA (role pki): the front's certificate is verified against it.
CA_FILE = ROOT / ".ansible" / "pki" / "ca.crt"
PROMETHEUS = f"http://127.0.0.1:{os.environ.get('CGC_LOCAL_PROMETHEUS_PORT', '9090')}"
W = "[10s]"
QUERIES = {
    "hit": f'sum(rate(cachedapp_cache_results_total{{result="hit"}}{W}))',
    "all": f"sum(rate(cachedapp_cache_results_total{W}))",
    "p50": "histogram_quantile(0.5, sum by (le) "
    f'(rate(cachedapp_request_duration_seconds_bucket{{route="/"}}{W})))',
    "p99": "histogram_quantile(0.99, sum by (le) "
    f'(rate(cachedapp_request_duration_seconds_bucket{{route="/"}}{W})))',
    "rps": f'sum(rate(cachedapp_request_duration_seconds_count{{route="/"}}{W}))',
}


class Tally:
    """What the load's requests got: 2xx, other statuses, errors (by exception)."""

    def __init__(self) -> None:
        self.outcomes: Counter[str] = Counter()
        self._lock = threading.Lock()

    def add(self, outcome: str) -> None:
        with self._lock:
            self.outcomes[outcome] += 1

    @property
    def total(self) -> int:
        return sum(self.outcomes.values())

    @property
    def failed(self) -> int:
        return self.total - self.outcomes["2xx"]

    def summary(self) -> str:
        kinds = ", ".join(f"{k}: {n}" for k, n in sorted(self.outcomes.items()))
        return f"{self.total} requests, {self.failed} failed ({kinds or 'none'})"


def load(stop: threading.Event, pause: float, tally: Tally) -> None:
    with requests.Session() as session:
        session.verify = str(CA_FILE)
        while not stop.is_set():
            try:
                answer = session.get(FRONT, timeout=15)
            except requests.RequestException as exc:
                tally.add(type(exc).__name__)
            else:
                ok = 200 <= answer.status_code < 300
                tally.add("2xx" if ok else f"status {answer.status_code}")
            time.sleep(pause)


def redis(action: str) -> None:
    subprocess.run(
        ["docker", "exec", f"{STACK}-cache", "systemctl", action, "redis-server"], check=True
    )


def series(expr: str, start: float, end: float) -> tuple[list[float], list[float]]:
    answer = requests.get(
        f"{PROMETHEUS}/api/v1/query_range",
        params={"query": expr, "start": str(start), "end": str(end), "step": "2s"},
        timeout=30,
    )
    answer.raise_for_status()
    result = answer.json()["data"]["result"]
    if not result:
        return [], []
    points = [(float(t) - start, float(v)) for t, v in result[0]["values"]]
    return [t for t, _ in points], [v for _, v in points]


def run_load(opts: argparse.Namespace) -> tuple[Tally, float]:
    """The load for opts.seconds, Redis stopped in the middle; the tally, start time."""
    stop = threading.Event()
    tally = Tally()
    workers = [
        threading.Thread(target=load, args=(stop, opts.pause, tally), daemon=True)
        for _ in range(opts.workers)
    ]
    start = time.time()
    for worker in workers:
        worker.start()
    try:
        time.sleep(opts.outage_at)
        redis("stop")
        time.sleep(opts.outage)
    finally:
        redis("start")
    time.sleep(max(0, opts.seconds - (time.time() - start)))
    stop.set()
    for worker in workers:
        worker.join()
    return tally, start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs/monitoring-load.png"))
    parser.add_argument("--seconds", type=int, default=120)
    parser.add_argument("--outage-at", type=int, default=45)
    parser.add_argument("--outage", type=int, default=20)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--pause", type=float, default=0.02)
    opts = parser.parse_args()
    if not CA_FILE.is_file():
        sys.exit(f"no CA certificate at {CA_FILE}: converge the stack first (role pki)")

    tally, start = run_load(opts)
    print(f"load on {FRONT}: {tally.summary()}")
    if tally.failed * 2 > tally.total:
        sys.exit(f"most requests failed ({tally.summary()}): no picture drawn")
    time.sleep(4)  # the last scrape
    end = time.time()

    data = {name: series(expr, start, end) for name, expr in QUERIES.items()}
    hit_t, hit = data["hit"]
    _, total = data["all"]
    ratio = [h / a if a else float("nan") for h, a in zip(hit, total, strict=False)]

    fig, (top, middle, bottom) = plt.subplots(3, 1, sharex=True, figsize=(9, 7.5))
    fig.suptitle("cachedapp under load (Prometheus query_range, 2 s scrapes, 10 s windows)")
    for axis in (top, middle, bottom):
        axis.axvspan(opts.outage_at, opts.outage_at + opts.outage, color="tab:red", alpha=0.12)
        axis.grid(alpha=0.3)
    top.plot(hit_t[: len(ratio)], ratio, color="tab:green")
    top.set_ylabel("cache hit ratio")
    top.set_ylim(-0.05, 1.05)
    top.text(opts.outage_at + 1, 0.5, "Redis stopped", color="tab:red")
    for name, color in (("p50", "tab:blue"), ("p99", "tab:orange")):
        t, v = data[name]
        middle.plot(t, [x * 1000 for x in v], label=name, color=color)
    middle.set_yscale("log")
    middle.set_ylabel("latency of / (ms)")
    middle.legend(loc="upper left")
    t, v = data["rps"]
    bottom.plot(t, v, color="tab:gray")
    bottom.set_ylabel("requests/s")
    bottom.set_xlabel("seconds since the load started")
    fig.tight_layout()
    opts.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(opts.out, dpi=110)
    print(f"wrote {opts.out}")


if __name__ == "__main__":
    main()
