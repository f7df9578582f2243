"""The benchmark's picture: req/s and p99 per variant against concurrency (matplotlib).

python app/bench/plot.py bench.json bench.png   # redraw from a results file
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, no display

import matplotlib.pyplot as plt

STYLE = {  # variant -> (colour, line style, marker)
    "static nginx": ("#444444", "--", "s"),
    "app, edge cache on": ("#1b7837", "-", "o"),
    "app": ("#2166ac", "-", "o"),
    "app, Redis TLS": ("#2166ac", ":", "o"),
    "app, no local tier": ("#67a9cf", "-", "^"),
    "app, no local tier, Redis TLS": ("#67a9cf", ":", "^"),
    "peer style": ("#b2182b", "-", "D"),
    "peer style, Redis TLS": ("#b2182b", ":", "D"),
    "original style": ("#e08214", "-", "v"),
}


def draw(doc: dict[str, Any], path: Path) -> None:
    rows = doc["medians"]
    names = list(dict.fromkeys(row["variant"] for row in rows))
    fig, (ax_rps, ax_p99) = plt.subplots(1, 2, figsize=(13, 6), layout="constrained")
    for name in names:
        mine = sorted((r for r in rows if r["variant"] == name), key=lambda r: r["conns"])
        conns = [r["conns"] for r in mine]
        colour, line, marker = STYLE.get(name, (None, "-", "."))
        kwargs = {"color": colour, "linestyle": line, "marker": marker, "label": name}
        ax_rps.plot(conns, [r["rps"] for r in mine], **kwargs)
        ax_p99.plot(conns, [r["p99_ms"] for r in mine], **kwargs)
    for ax, title, unit in (
        (ax_rps, "Throughput (cached page)", "requests/s (median)"),
        (ax_p99, "Tail latency", "p99 latency, ms (median)"),
    ):
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("concurrent connections (wrk)")
        ax.set_ylabel(unit)
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
        ax.set_xticks(doc["meta"]["conns"], [str(c) for c in doc["meta"]["conns"]])
    handles, labels = ax_rps.get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=5, fontsize=8)
    meta = doc["meta"]
    fig.suptitle(
        f"make bench, {meta['date']} ({meta['cpus']} CPUs, {meta['rounds']} interleaved "
        f"rounds, commit {meta['commit']})",
        fontsize=10,
    )
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: plot.py RESULTS.json OUT.png")
    draw(json.loads(Path(sys.argv[1]).read_text()), Path(sys.argv[2]))
