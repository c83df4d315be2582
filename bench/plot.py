"""Speedup chart of bench/cpu.py's JSON: cyroi over onnxruntime, forward.

    python bench/plot.py [bench/results/cpu.json] [bench/results/cpu_speedup.png]

Needs matplotlib (the `plot` extra).
"""
import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

HERE = Path(__file__).resolve().parent
LABELS = {"align_fwd": "roi_align vs RoiAlign", "pool_fwd": "roi_pool vs MaxRoiPool"}


def speedups(result):
    """{(op, threads): [speedup per workload]} for the base float32 NCHW rows."""
    workloads = list(result["workloads"])
    bars = {}
    for row in result["rows"]:
        if row["variant"] == "base" and row["speedup"]:
            key = (row["op"], row["threads"])
            bars.setdefault(key, [0.0] * len(workloads))[workloads.index(row["workload"])] = \
                row["speedup"]
    return workloads, bars


def plot(result, path):
    workloads, bars = speedups(result)
    fig, ax = plt.subplots(figsize=(8, 4.5))
    width = 0.8 / len(bars)
    for i, ((op, threads), values) in enumerate(sorted(bars.items())):
        xs = [w + (i - (len(bars) - 1) / 2) * width for w in range(len(workloads))]
        drawn = ax.bar(xs, values, width, label=f"{LABELS[op]}, {threads} thread(s)")
        ax.bar_label(drawn, fmt="%.1f", fontsize=7)
    ax.axhline(10, color="gray", linestyle="--", linewidth=1, label="target 10x")
    ax.axhline(1, color="black", linewidth=0.8)
    ax.set_yscale("log")
    labels = [f"{w}\n" + result["workloads"][w].replace(" K=", "\nK=") for w in workloads]
    ax.set_xticks(range(len(workloads)), labels, fontsize=7)
    ax.set_ylabel("speedup over onnxruntime (x)")
    machine = result["machine"]
    ax.set_title(f"cyroi {machine['cyroi']} vs onnxruntime {machine['onnxruntime']}, "
                 f"float32 NCHW forward, {machine['cores']} cores", fontsize=9)
    ax.set_ylim(top=ax.get_ylim()[1] * 2.5)  # room for the legend above the bars
    ax.legend(fontsize=7, loc="upper left", ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    print(f"wrote {path}")


if __name__ == "__main__":
    source = Path(sys.argv[1]) if len(sys.argv) > 1 else HERE / "results" / "cpu.json"
    target = Path(sys.argv[2]) if len(sys.argv) > 2 else source.with_name("cpu_speedup.png")
    plot(json.loads(source.read_text()), target)
