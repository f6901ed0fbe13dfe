#!/usr/bin/env python3
"""Charts of the latest benchmark results: bench/results/{dataplane,controlplane}.png.

    .venv/bin/python bench/chart.py [--out bench/results]

Reads the JSON that dataplane.py and controlplane.py wrote; needs matplotlib
(bench/requirements.txt, which `make bench` installs into the venv).
"""

from __future__ import annotations

import argparse
import json
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def dataplane_chart(doc, path):
    results = doc["results"]
    names = [r["backend"] for r in results]
    base = results[0]
    figure, axes = plt.subplots(1, 3, figsize=(13, 4))
    for ax, key, title in ((axes[0], "tcp1_bps", "TCP, 1 stream"),
                           (axes[1], "tcp4_bps", "TCP, 4 streams"),
                           (axes[2], "udp64_pps", "UDP, 64-byte datagrams")):
        values = [(r.get(key) or 0) / (1e9 if key.endswith("bps") else 1e3) for r in results]
        bars = ax.bar(names, values, color=["#888888", "#4c72b0", "#55a868", "#c44e52"])
        for bar, r in zip(bars, results):
            # The table's ratios: TCP against the underlay runs paired with the backend's.
            ref = r.get(key.replace("_bps", "_underlay_bps")) or base.get(key)
            if r.get(key) and ref:
                ax.annotate("%.2fx" % (r[key] / ref), (bar.get_x() + bar.get_width() / 2,
                                                      bar.get_height()),
                            ha="center", va="bottom", fontsize=9)
        ax.set_title(title)
        ax.set_ylabel("Gbit/s" if key.endswith("bps") else "kpackets/s")
    figure.suptitle("weft data plane vs the underlay (%s, %s)" % (doc["date"], doc["machine"]),
                    fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=90)


def controlplane_chart(doc, path):
    results = doc["results"]
    hosts = [r["hosts"] for r in results]
    figure, ax = plt.subplots(figsize=(7, 4))
    ax.plot(hosts, [r["empty_s"] for r in results], "o-", label="site.yml from empty hosts")
    ax.plot(hosts, [r["rerun_s"] for r in results], "o-", label="no-change re-run")
    ax.plot(hosts, [r["baseline_s"] for r in results], "o--", label="baseline: 1 module per host")
    ax.axhline(30, color="#c44e52", linestyle=":", label="target: re-run of 16 hosts <= 30 s")
    ax.set_xlabel("lab nodes")
    ax.set_ylabel("seconds")
    ax.set_xticks(hosts)
    ax.legend(fontsize=8)
    info = doc["machine"]
    ax.set_title("weft control plane (%s CPUs, %s)" % (info["cpus"], info["ansible"]), fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=90)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=os.path.join(ROOT, "bench", "results"))
    args = parser.parse_args()
    for name, draw in (("dataplane", dataplane_chart), ("controlplane", controlplane_chart)):
        source = os.path.join(args.out, name + ".json")
        if os.path.exists(source):
            with open(source) as handle:
                draw(json.load(handle), os.path.join(args.out, name + ".png"))
            print("wrote %s" % os.path.join(args.out, name + ".png"))


if __name__ == "__main__":
    main()
