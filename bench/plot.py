"""Speedup chart of bench/cpu.py's JSON: cyroi over onnxruntime (forward)
and, where the bench ran the MXNet peer, over MXNet (forward, and roi_align
forward + backward).

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
# The row's speedup key (JSON from before the MXNet peer has only "speedup").
PEERS = {"onnxruntime": "speedup", "MXNet": "mxnet_speedup"}
LABELS = {("onnxruntime", "align_fwd"): "roi_align vs RoiAlign",
          ("onnxruntime", "pool_fwd"): "roi_pool vs MaxRoiPool",
          ("MXNet", "align_fwd"): "roi_align vs MXNet ROIAlign",
          ("MXNet", "align_fwd_bwd"): "roi_align fwd+bwd vs MXNet ROIAlign",
          ("MXNet", "pool_fwd"): "roi_pool vs MXNet ROIPooling"}


def speedups(result):
    """{(peer, op, threads): [speedup per workload]} for the base float32 NCHW rows."""
    workloads = list(result["workloads"])
    bars = {}
    for row in (row for row in result["rows"] if row["variant"] == "base"):
        for peer, key in PEERS.items():
            if row.get(key):
                bars.setdefault((peer, row["op"], row["threads"]), [0.0] * len(workloads))[
                    workloads.index(row["workload"])] = row[key]
    return workloads, bars


def plot(result, path):
    workloads, bars = speedups(result)
    with_mxnet = any(peer == "MXNet" for peer, _, _ in bars)
    fig, ax = plt.subplots(figsize=(13 if with_mxnet else 10, 4.5))
    width = 0.8 / len(bars)
    order = sorted(bars, key=lambda bar: (list(PEERS).index(bar[0]), bar[1:]))  # peer first
    for i, (peer, op, threads) in enumerate(order):
        values = bars[peer, op, threads]
        xs = [w + (i - (len(bars) - 1) / 2) * width for w in range(len(workloads))]
        drawn = ax.bar(xs, values, width, label=f"{LABELS[peer, op]}, {threads} thread(s)")
        ax.bar_label(drawn, fmt="%.1f", fontsize=6)
    ax.axhline(10, color="gray", linestyle="--", linewidth=1, label="target 10x")
    if with_mxnet:
        ax.axhline(20, color="gray", linestyle=":", linewidth=1,
                   label="target 20x (fwd+bwd vs MXNet)")
    ax.axhline(1, color="black", linewidth=0.8)
    ax.set_yscale("log")
    labels = [f"{w}\n" + result["workloads"][w].replace(" K=", "\nK=") for w in workloads]
    ax.set_xticks(range(len(workloads)), labels, fontsize=7)
    ax.set_ylabel("speedup of cyroi (x)")
    machine = result["machine"]
    mxnet = f" and MXNet {machine['mxnet']}" if with_mxnet else ""
    simd = f" ({machine['simd']})" if machine.get("simd") else ""  # older results lack it
    ax.set_title(f"cyroi {machine['cyroi']} vs onnxruntime {machine['onnxruntime']}{mxnet}, "
                 f"float32 NCHW, {machine['cores']} cores{simd}", fontsize=9)
    # Beside the axes: with a dozen bars per workload there is no empty corner.
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    print(f"wrote {path}")


if __name__ == "__main__":
    source = Path(sys.argv[1]) if len(sys.argv) > 1 else HERE / "results" / "cpu.json"
    target = Path(sys.argv[2]) if len(sys.argv) > 2 else source.with_name("cpu_speedup.png")
    plot(json.loads(source.read_text()), target)
