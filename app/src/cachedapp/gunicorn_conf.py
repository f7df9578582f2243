"""Gunicorn settings: ``gunicorn -c python:cachedapp.gunicorn_conf cachedapp.wsgi:app``.

Defaults measured on a 2-core host behind nginx (see README, "Benchmark"). Anything
here is overridable on the command line (the unit passes --bind/--workers/--umask) or
with GUNICORN_CMD_ARGS. The config is validated here, in the master, before any
worker starts: a bad setting stops start-up with one line naming it.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from prometheus_client import multiprocess

from cachedapp.config import ConfigError, load_settings

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

try:
    _settings = load_settings()
except ConfigError as _exc:
    sys.exit(f"cachedapp: config error: {_exc}")

bind = "127.0.0.1:8000"
# Measured on 2 cores behind nginx (README, "Benchmark"): gthread with nginx keeping
# upstream connections alive beat sync workers by about 30 % in req/s (no connect/close
# per request on either side). Two threads per worker: the threads of one worker share
# one GIL, so every request in flight beyond the first stretches the others; requests
# waiting in the worker's poller are served in arrival order instead. 2 x 2 gave the
# lowest cached p99 at 16 connections of 2x1, 2x2, 2x3, 2x4, 2x8, 3x1, 3x2, 4x2, 4x4
# (median p99 11.9 ms over 12 runs; 2 x 8: 15-27 ms over 6) and the least CPU per
# request. A thread blocked on the database (a refresh, or fail-open while Redis is
# down) holds no GIL but is not free either: more threads (gunicorn --threads, the
# role's app_threads) buy more concurrent slow requests at the cost of the cached tail.
worker_class = "gthread"
workers = max(2, os.cpu_count() or 2)
threads = 2
preload_app = True  # import once in the master; workers fork with the app loaded
timeout = 30
graceful_timeout = 20
keepalive = 5  # longer than nginx's upstream keepalive_timeout (4 s), so nginx closes first
backlog = 2048
accesslog = None  # nginx logs requests; per-request logging here costs throughput
errorlog = "-"
loglevel = _settings.app.log_level.lower()
proc_name = "cachedapp"
control_socket_disable = True  # gunicorn >= 25.1 would create ~/.gunicorn/gunicorn.ctl
if os.path.isdir("/dev/shm"):
    worker_tmp_dir = "/dev/shm"  # heartbeat file off disk (and off a noexec /tmp)


def _prepare_multiproc_dir() -> None:
    """Prometheus multiprocess mode: start from an empty directory (before the preload).

    Runs when gunicorn reads this module, i.e. once in the master at start.
    """
    path = os.environ.get(MULTIPROC_ENV)
    if not path:
        return
    directory = Path(path)
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    for stale in directory.glob("*.db"):
        stale.unlink(missing_ok=True)


_prepare_multiproc_dir()


# GIL switch interval of each worker, in seconds (CPython's default: 0.005). A thread
# that wants the GIL back after a Redis round trip waits up to a whole interval behind
# a running one (the poller thread included); 0.5 ms cut the cached p99 at 16
# connections from 22-23 ms to 16 ms with 8 threads, and from ~12.8 to ~11.9 ms with 2
# (README "Benchmark").
SWITCH_INTERVAL = 0.0005


def post_fork(server, worker):
    """Each worker builds its own DB pool and Redis client (never the master's)."""
    sys.setswitchinterval(SWITCH_INTERVAL)
    services = getattr(worker.app.wsgi(), "extensions", {}).get("cachedapp")
    if services is not None:
        services.reset()


def child_exit(server, worker):
    """A dead worker's live gauges must not be summed any more."""
    if os.environ.get(MULTIPROC_ENV):
        multiprocess.mark_process_dead(worker.pid)
