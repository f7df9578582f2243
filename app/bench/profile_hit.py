"""Profile the cached hit path: where a gunicorn worker spends a hit's CPU.

One gunicorn worker (gthread, 2 threads) per variant behind the bench's nginx, wrk at
16 connections on the page, py-spy sampling the worker; the samples are summed by
layer (gunicorn, Flask/Werkzeug, cachedapp, redis-py, Jinja, prometheus-client, ...)
and by function. Run with the servers up (as bench.sh does):

    app/scripts/servers.sh start && set -a && . "$(app/scripts/servers.sh run-dir)/env" \
      && set +a && .venv/bin/python app/bench/profile_hit.py [--seconds 8]
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import run_bench as rb

LAYERS = [  # py-spy names a frame "function (package/module.py:line)"
    ("redis-py", "(redis/"),
    ("jinja2/markupsafe", "(jinja2/"),
    ("jinja2/markupsafe", "(markupsafe/"),
    ("prometheus-client", "(prometheus_client/"),
    ("flask", "(flask/"),
    ("werkzeug", "(werkzeug/"),
    ("gunicorn", "(gunicorn/"),
    ("cachedapp", "(cachedapp/"),
    ("json", "(json/"),
]


def layer_of(frame: str) -> str:
    for name, marker in LAYERS:
        if marker in frame:
            return name
    return "stdlib/other"


def summarize(raw: Path, top: int) -> str:
    """py-spy raw (collapsed) stacks -> self time per layer and per function."""
    by_layer: collections.Counter[str] = collections.Counter()
    by_func: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        n = int(count)
        frames = stack.split(";")
        leaf = frames[-1]
        total += n
        # self time goes to the innermost frame that is not the stdlib, if any
        owner = next((f for f in reversed(frames) if layer_of(f) != "stdlib/other"), leaf)
        by_layer[layer_of(owner)] += n
        by_func[leaf] += n
        for frame in set(frames):
            inclusive[frame] += n
    lines = [f"{total} samples of the thread holding the GIL", "", "by layer (self time):"]
    lines += [f"  {100 * n / total:5.1f}%  {name}" for name, n in by_layer.most_common()]
    lines += ["", f"top {top} functions (self time):"]
    lines += [f"  {100 * n / total:5.1f}%  {name}" for name, n in by_func.most_common(top)]
    lines += ["", f"top {top} cachedapp/flask/redis frames (inclusive):"]
    keep = [
        (f, n)
        for f, n in inclusive.most_common()
        if layer_of(f) in ("cachedapp", "flask", "redis-py", "werkzeug", "jinja2/markupsafe")
    ]
    lines += [f"  {100 * n / total:5.1f}%  {f}" for f, n in keep[:top]]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--conns", type=int, default=16)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--variants", default="app-nolocal,app")
    parser.add_argument("--out", default=str(rb.HERE.parent / ".cache" / "profile"))
    args = parser.parse_args()
    pyspy = shutil.which("py-spy") or str(rb.BIN / "py-spy")
    work = Path(f"/dev/shm/cachedapp-profile-{os.getuid()}")
    rb.end_leftovers(work)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    work.chmod(0o711)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    config = work / "config.toml"
    rb.write_config(config)
    env = rb.app_env(config)
    os.environ["BENCH_GUNICORN_ARGS"] = "--workers 1"
    names = args.variants.split(",")
    variants = [v for v in rb.VARIANTS if v.upstream in names and v.path != "/edge/"]
    stack = rb.Stack(work, env)
    try:
        targets = rb.start(stack, variants, cold=False)
        for v in variants:
            master = int((work / f"{v.upstream}.pid").read_text())
            children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
            worker = int(children[0])
            raw = out / f"{v.upstream}.raw"
            load = subprocess.Popen(
                ["wrk", "-t2", f"-c{args.conns}", f"-d{args.seconds + 2}s", targets[v.name]],
                stdout=subprocess.PIPE,
                text=True,
            )
            time.sleep(1)
            cpu_before = rb.cpu_seconds(worker)
            subprocess.run(
                [
                    pyspy,
                    "record",
                    "-p",
                    str(worker),
                    "-d",
                    str(args.seconds),
                    "-r",
                    "250",
                    "--nonblocking",
                    "-f",
                    "raw",
                    "-o",
                    str(raw),
                ],
                check=True,
                capture_output=True,
            )
            cpu = rb.cpu_seconds(worker) - cpu_before
            wrk_out, _ = load.communicate()
            rps = float(re.search(r"Requests/sec:\s+([\d.]+)", wrk_out).group(1))
            per_request = 1e6 * cpu / (rps * args.seconds)
            text = (
                f"worker CPU per request ~{per_request:.0f} us ({rps:.0f} req/s under py-spy)\n"
                + summarize(raw, args.top)
            )
            (out / f"{v.upstream}.txt").write_text(text + "\n")
            print(f"=== {v.name} (worker {worker}, {args.conns} connections)\n{text}\n")
    finally:
        stack.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
