"""CPU benchmark of cyroi against onnxruntime and MXNet (issue 3).

    pip install -e ".[bench,plot]"   # onnx, onnxruntime; matplotlib for plot.py
    .ci/legacy_frameworks.sh         # optional: .venv-legacy with MXNet 1.9.1
    python bench/cpu.py [--out bench/results/cpu.json] [--workloads frcnn_head,...]
                        [--mxnet-python .venv-legacy/bin/python]
    python bench/plot.py             # bench/results/cpu_speedup.png

Times cyroi's roi_align (avg, aligned=True, sampling_ratio=2) and roi_pool,
forward and backward, against onnxruntime's RoiAlign (opset 16, half_pixel)
and MaxRoiPool in one process on the same float32 NCHW inputs, at 1 and 2
threads: the median wall time of at least 7 runs after warm-up, end to end
(argument checks and output allocation included on both sides). Beside it,
the ratio of process CPU times: other processes on a shared machine disturb
it less (it is what a call costs; with 2 threads it sums both). onnxruntime
runs inference only, so backward rows have no peer. Outputs are compared
before timing. Extra rows: mode="max", NHWC and float64 against the base
case and roi_pool's backward against its forward, 1 -> 2 thread scaling
(both paired: the two calls of a ratio alternate), the latency of a tiny
call, and achieved taps per second against a machine probe.

MXNet 1.9.1 needs NumPy < 1.24, so its contrib.ROIAlign (forward, and
forward + backward under autograd) and ROIPooling run in bench/mxnet_peer.py
under the legacy venv's python, as a subprocess of this invocation before
cyroi is timed, on the same inputs; their outputs come back as .npy files
and are compared with cyroi's. cyroi's counterpart of MXNet's forward +
backward is the align_fwd_bwd row: roi_align, then roi_align_backward of a
fixed output gradient, timed as one call; ROIPooling (which always computes
its argmax) faces pool_fwd. Without the legacy venv the MXNet columns stay
empty.
"""
import argparse
import json
import os
import platform
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # the checkout's cyroi
import cyroi  # noqa: E402
from cyroi import _cpu_ext as cpu_loops  # noqa: E402
from onnx_peer import VERSION as ORT_VERSION  # noqa: E402
from onnx_peer import Peer, max_roi_pool_model, roi_align_model  # noqa: E402
import mxnet_peer  # noqa: E402  (runs MXNet in another venv; imports no MXNet here)
from probe import machine_probe  # noqa: E402
from timing import median_and_quartiles, paired, timed  # noqa: E402
from workloads import SAMPLING_RATIO, WORKLOADS, align_taps, pool_reads  # noqa: E402

LEGACY_PYTHON = HERE.parent / ".venv-legacy" / "bin" / "python"
THREADS = (1, 2)
# The SIMD target of cyroi's loops, by its registers' bytes.
SIMD_NAMES = {64: "AVX-512", 32: "AVX2", 16: "SSE2"}
TARGET_THREADS = 2
# name -> (layout, dtype, roi_align mode); "base" is the row onnxruntime faces.
VARIANTS = {
    "base": ("NCHW", np.float32, "avg"),
    "max": ("NCHW", np.float32, "max"),
    "nhwc": ("NHWC", np.float32, "avg"),
    "f64": ("NCHW", np.float64, "avg"),
}
# Forward rows are inference calls (no argmax), like onnxruntime's; the
# training forward of roi_pool (with the argmax that backward needs) has its
# own row.
OPS = ("align_fwd", "align_bwd", "pool_fwd", "pool_fwd_argmax", "pool_bwd")
# Issue 3's speedups over MXNet at TARGET_THREADS: op -> at least.
MXNET_TARGETS = {"align_fwd": 10.0, "align_fwd_bwd": 20.0}


def median_ms(fn, **kwargs):
    return timed(fn, **kwargs)[0]


def cyroi_ops(wl, x, rois, variant, lib=cyroi):
    """The timed calls of one variant, on features x in its layout (lib: the
    cyroi module to call, bench/ab.py passes other builds)."""
    layout, _, mode = VARIANTS[variant]
    size, scale = wl.pooled, wl.scale
    _, align_argmax = lib.roi_align(x, rois, size, scale, SAMPLING_RATIO, True, "max",
                                    layout=layout, return_argmax=True)
    out, pool_argmax = lib.roi_pool(x, rois, size, scale, layout=layout, return_argmax=True)
    grad = np.random.default_rng(1).standard_normal(out.shape).astype(x.dtype)
    argmax = align_argmax if mode == "max" else None
    ops = {
        "align_fwd": lambda: lib.roi_align(x, rois, size, scale, SAMPLING_RATIO, True, mode,
                                           layout=layout),
        "align_bwd": lambda: lib.roi_align_backward(grad, rois, x.shape, scale,
                                                    SAMPLING_RATIO, True, mode,
                                                    argmax=argmax, layout=layout),
        "pool_fwd": lambda: lib.roi_pool(x, rois, size, scale, layout=layout),
        "pool_fwd_argmax": lambda: lib.roi_pool(x, rois, size, scale, layout=layout,
                                                return_argmax=True),
        "pool_bwd": lambda: lib.roi_pool_backward(grad, rois, pool_argmax, x.shape,
                                                  layout=layout),
    }
    if variant == "max":  # roi_pool has no mode: the base rows cover it
        del ops["pool_fwd"], ops["pool_fwd_argmax"], ops["pool_bwd"]
    if variant == "base":  # what MXNet's autograd forward + backward does
        ops["align_fwd_bwd"] = lambda: (ops["align_fwd"](), ops["align_bwd"]())
    return ops


def peers(wl, threads):
    return {"align_fwd": Peer(roi_align_model(wl.pooled, wl.scale, SAMPLING_RATIO), threads),
            "pool_fwd": Peer(max_roi_pool_model(wl.pooled, wl.scale), threads)}


def max_abs_diff(a, b):
    return float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64)),
                        initial=0.0))


def agreement(wl, inputs, mxnet_outputs):
    """Max |difference| of outputs that must agree, checked before timing;
    mxnet_outputs: the peer's .npy files of this workload, or {}."""
    x, rois = inputs["base"]
    ort = peers(wl, 1)
    align = cyroi.roi_align(x, rois, wl.pooled, wl.scale, SAMPLING_RATIO, True)
    pool = cyroi.roi_pool(x, rois, wl.pooled, wl.scale)
    x_nhwc, _ = inputs["nhwc"]
    x_f64, rois_f64 = inputs["f64"]
    diffs = {
        "align vs onnxruntime RoiAlign": max_abs_diff(
            align, ort["align_fwd"](ort["align_fwd"].feeds(x, rois))),
        "pool vs onnxruntime MaxRoiPool": max_abs_diff(
            pool, ort["pool_fwd"](ort["pool_fwd"].feeds(x, rois))),
        "align NHWC vs NCHW": max_abs_diff(
            cyroi.roi_align(x_nhwc, rois, wl.pooled, wl.scale, SAMPLING_RATIO, True,
                            layout="NHWC").transpose(0, 3, 1, 2), align),
        "pool NHWC vs NCHW": max_abs_diff(
            cyroi.roi_pool(x_nhwc, rois, wl.pooled, wl.scale,
                           layout="NHWC").transpose(0, 3, 1, 2), pool),
        "align float64 vs float32": max_abs_diff(
            cyroi.roi_align(x_f64, rois_f64, wl.pooled, wl.scale, SAMPLING_RATIO, True),
            align),
    }
    if mxnet_outputs:  # align_grad: the features' gradient of an all-ones output gradient
        ones_grad = cyroi.roi_align_backward(np.ones_like(align), rois, x.shape, wl.scale,
                                             SAMPLING_RATIO, True)
        mine = {"align_fwd": ("align vs MXNet ROIAlign", align),
                "align_grad": ("align gradient vs MXNet ROIAlign", ones_grad),
                "pool_fwd": ("pool vs MXNet ROIPooling", pool)}
        diffs |= {mine[name][0]: max_abs_diff(mine[name][1], np.load(path))
                  for name, path in mxnet_outputs.items()}
    return diffs


def workload_inputs(wl):
    x, rois = wl.inputs()
    return {"base": (x, rois), "max": (x, rois),
            "nhwc": (np.ascontiguousarray(x.transpose(0, 2, 3, 1)), rois),
            "f64": (x.astype(np.float64), rois.astype(np.float64))}


def time_workload(wl, inputs, mxnet_times):
    """mxnet_times: {(workload, op, threads): the peer's row}, maybe empty."""
    rows = []
    for threads in THREADS:
        cyroi.set_num_threads(threads)
        ort = peers(wl, threads)
        variants = VARIANTS if threads == TARGET_THREADS else ("base",)
        for variant in variants:
            x, rois = inputs[variant]
            for op, call in cyroi_ops(wl, x, rois, variant).items():
                row = {"workload": wl.name, "op": op, "variant": variant, "threads": threads,
                       "onnxruntime_ms": None, "speedup": None, "cpu_speedup": None,
                       "mxnet_ms": None, "mxnet_speedup": None, "mxnet_cpu_speedup": None}
                row["cyroi_ms"], row["cyroi_min_ms"], row["cyroi_cpu_ms"] = timed(call)
                if variant == "base" and op in ort:
                    feeds = ort[op].feeds(x, rois)
                    (row["onnxruntime_ms"], row["onnxruntime_min_ms"],
                     row["onnxruntime_cpu_ms"]) = timed(lambda: ort[op](feeds))
                    row["speedup"] = row["onnxruntime_ms"] / row["cyroi_ms"]
                    row["cpu_speedup"] = row["onnxruntime_cpu_ms"] / row["cyroi_cpu_ms"]
                mxnet = mxnet_times.get((wl.name, op, threads)) if variant == "base" else None
                if mxnet:
                    row["mxnet_ms"], row["mxnet_min_ms"], row["mxnet_cpu_ms"] = (
                        mxnet["ms"], mxnet["min_ms"], mxnet["cpu_ms"])
                    row["mxnet_speedup"] = mxnet["ms"] / row["cyroi_ms"]
                    row["mxnet_cpu_speedup"] = mxnet["cpu_ms"] / row["cyroi_cpu_ms"]
                rows.append(row)
                print_row(row)
    cyroi.set_num_threads(None)
    return rows


def thread_scaling(wl, inputs, pairs=8):
    """1 -> 2 thread speedup of each base op, paired (timing.paired): calls
    at one and at two threads alternate, so that a slow spell of the shared
    machine falls on both sides of a ratio, where rows timed seconds apart
    each catch their own."""
    x, rois = inputs["base"]
    rows = []
    for op, call in cyroi_ops(wl, x, rois, "base").items():
        def at(threads, call=call):
            def run():
                cyroi.set_num_threads(threads)
                call()
            return run
        speedup, quartiles = median_and_quartiles(paired(at(TARGET_THREADS), at(1), pairs)[2])
        rows.append({"workload": wl.name, "op": op, "speedup": speedup, "quartiles": quartiles})
    cyroi.set_num_threads(None)
    return rows


# Ratios of two cyroi calls that issue 3 bounds, at TARGET_THREADS:
# (name, (variant, op) of the numerator, (variant, op) of the denominator, at most).
def _within_cyroi():
    ratios = [(f"pool_bwd / {forward} time", ("base", "pool_bwd"), ("base", forward), 1.0)
              for forward in ("pool_fwd", "pool_fwd_argmax")]
    for variant, limit in (("max", 1.5), ("nhwc", 1.0), ("f64", 2.5)):
        ratios += [(f"{op} {variant} / base time", (variant, op), ("base", op), limit)
                   for op in OPS]
    return ratios


WITHIN_CYROI = _within_cyroi()


def paired_ratios(wl, inputs, pairs=8):
    """WITHIN_CYROI's ratios, paired (timing.paired) as thread_scaling's are:
    two rows timed seconds apart each catch their own spell of a shared
    machine, and their quotient moved by 20-40% between runs."""
    cyroi.set_num_threads(TARGET_THREADS)
    calls = {variant: cyroi_ops(wl, *inputs[variant], variant) for variant in VARIANTS}
    rows = []
    for name, (top_variant, top_op), (bottom_variant, bottom_op), limit in WITHIN_CYROI:
        top, bottom = calls[top_variant].get(top_op), calls[bottom_variant].get(bottom_op)
        if top is None or bottom is None:
            continue
        value, quartiles = median_and_quartiles(paired(bottom, top, pairs)[2])
        rows.append({"workload": wl.name, "ratio": name, "value": value,
                     "quartiles": quartiles, "limit": limit})
    cyroi.set_num_threads(None)
    return rows


def small_call_latency():
    """Microseconds per end-to-end call with K=1, C=1, 7x7 (checks included)."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((1, 1, 32, 32), dtype=np.float32)
    rois = np.array([[0, 2.5, 3.0, 20.0, 25.5]], dtype=np.float32)
    out, argmax = cyroi.roi_pool(x, rois, 7, return_argmax=True)
    calls = {
        "roi_align": lambda: cyroi.roi_align(x, rois, 7, 1.0, SAMPLING_RATIO, True),
        "roi_align_backward": lambda: cyroi.roi_align_backward(out, rois, x.shape, 1.0,
                                                               SAMPLING_RATIO, True),
        "roi_pool": lambda: cyroi.roi_pool(x, rois, 7),
        "roi_pool_backward": lambda: cyroi.roi_pool_backward(out, rois, argmax, x.shape),
    }
    results = []
    for threads in THREADS:
        cyroi.set_num_threads(threads)
        ort = {"roi_align": Peer(roi_align_model(7, 1.0, SAMPLING_RATIO), threads),
               "roi_pool": Peer(max_roi_pool_model(7, 1.0), threads)}
        for name, call in calls.items():
            row = {"op": name, "threads": threads, "cyroi_us": per_call_us(call),
                   "onnxruntime_us": None}
            if name in ort:
                feeds = ort[name].feeds(x, rois)
                row["onnxruntime_us"] = per_call_us(lambda: ort[name](feeds))
            results.append(row)
    cyroi.set_num_threads(None)
    return results


def per_call_us(call, batch=200):
    def many():
        for _ in range(batch):
            call()
    return median_ms(many, min_runs=9, min_seconds=0.2) * 1e3 / batch


def rates(wl, inputs, rows, probe):
    """Taps (and roi_pool reads) per second against the machine probe."""
    _, rois = inputs["base"]
    counts = {"align_fwd": align_taps(wl, rois, SAMPLING_RATIO), "pool_fwd": pool_reads(wl, rois)}
    out = []
    for row in rows:
        if row["workload"] == wl.name and row["variant"] == "base" and row["op"] in counts:
            per_s = counts[row["op"]] / (row["cyroi_ms"] * 1e-3)
            peak = probe["muladds_per_s"][str(row["threads"])]
            out.append({"workload": wl.name, "op": row["op"], "threads": row["threads"],
                        "count": counts[row["op"]], "per_s": per_s,
                        "of_probe_muladds": per_s / peak,
                        "gather_bytes_per_s": per_s * 4})
    return out


def find(rows, workload, op, variant="base", threads=TARGET_THREADS):
    for row in rows:
        if (row["workload"], row["op"], row["variant"], row["threads"]) == (
                workload, op, variant, threads):
            return row
    return None


def targets(rows, small, scaling, within):
    """Issue 3's targets at 2 threads, float32: (name, value, limit, met)."""
    checks = []

    def check(name, value, limit, at_least):
        checks.append({"target": name, "value": value, "limit": limit,
                       "met": value >= limit if at_least else value <= limit})

    for wl in {row["workload"] for row in rows}:
        base = {op: find(rows, wl, op) for op in OPS}
        if None in base.values():
            continue
        for op in ("align_fwd", "pool_fwd"):
            check(f"{wl} {op} speedup vs onnxruntime", base[op]["speedup"], 10.0, True)
        for op, limit in MXNET_TARGETS.items():
            row = find(rows, wl, op)
            if row and row["mxnet_speedup"]:
                check(f"{wl} {op} speedup vs MXNet", row["mxnet_speedup"], limit, True)
    for row in within:
        check(f"{row['workload']} {row['ratio']} (paired)", row["value"], row["limit"], False)
    for row in scaling:
        if row["op"] in OPS:
            check(f"{row['workload']} {row['op']} 1->2 thread scaling (paired)", row["speedup"],
                  1.8, True)
    for row in small:
        check(f"small call {row['op']} ({row['threads']} threads) us", row["cyroi_us"], 20.0,
              False)
    return checks


def print_row(row):
    def peer(ms, speedup, cpu_speedup):
        if not row[speedup]:
            return " " * 28
        return f"{row[ms]:10.2f} {row[speedup]:7.1f}x {row[cpu_speedup]:7.1f}x"

    print(f"{row['workload']:10s} {row['op']:15s} {row['variant']:4s} {row['threads']:2d} "
          f"{row['cyroi_ms']:9.2f} {row['cyroi_cpu_ms']:9.2f} "
          f"{peer('onnxruntime_ms', 'speedup', 'cpu_speedup')} "
          f"{peer('mxnet_ms', 'mxnet_speedup', 'mxnet_cpu_speedup')}", flush=True)


def mxnet_results(python, workloads, folder):
    """bench/mxnet_peer.py's JSON under the legacy venv's python, or None
    without one; its outputs go to folder."""
    if python is None:
        print(f"MXNet peer: no {LEGACY_PYTHON.relative_to(HERE.parent)} (.ci/legacy_frameworks.sh "
              "builds it; or pass --mxnet-python): no MXNet rows")
        return None
    print(f"MXNet peer: timing {','.join(wl.name for wl in workloads)} under {python} ...",
          flush=True)
    return mxnet_peer.run(python, [wl.name for wl in workloads], THREADS, folder)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=str(HERE / "results" / "cpu.json"))
    parser.add_argument("--workloads", default=",".join(wl.name for wl in WORKLOADS))
    parser.add_argument("--mxnet-python", type=Path,
                        default=LEGACY_PYTHON if LEGACY_PYTHON.exists() else None,
                        help="python of a venv with MXNet 1.9.1 (default: the checkout's "
                             ".venv-legacy, if there is one)")
    args = parser.parse_args()
    chosen = [wl for wl in WORKLOADS if wl.name in args.workloads.split(",")]

    probe = machine_probe(THREADS)
    simd = SIMD_NAMES[cpu_loops.simd_bytes()]
    copy = probe["copy_bytes_per_s"]
    print(f"probe: GEMM multiply-adds/s {probe['muladds_per_s']}, copy GB/s "
          f"{ {t: round(b / 1e9, 1) for t, b in copy.items()} } by 1 and {TARGET_THREADS} "
          f"processes at once; cyroi's loops run {simd}")
    load_at_start = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="cyroi-mxnet-") as folder:
        # Before cyroi's timing, not beside it: the peers take turns on the cores.
        mxnet = mxnet_results(args.mxnet_python, chosen, folder) or {"rows": [], "outputs": {}}
        result = {"machine": {"cpu": _cpu_model(), "cores": os.cpu_count(),
                              "simd": simd,
                              "load_average_at_start": load_at_start,
                              "python": platform.python_version(),
                              "numpy": np.__version__, "onnxruntime": ORT_VERSION,
                              "mxnet": mxnet.get("mxnet"), "cyroi": cyroi.__version__},
                  "probe": probe, "workloads": {}, "agreement": {}, "rows": [], "rates": [],
                  "thread_scaling": [], "paired_ratios": []}
        mxnet_times = {(r["workload"], r["op"], r["threads"]): r for r in mxnet["rows"]}
        print(f"{'workload':10s} {'op':15s} {'var':4s} th {'cyroi ms':>9s} {'cyroi cpu':>9s} "
              f"{'onnxrt ms':>10s} {'speedup':>8s} {'cpu-time':>8s} "
              f"{'mxnet ms':>10s} {'speedup':>8s} {'cpu-time':>8s}")
        for wl in chosen:
            inputs = workload_inputs(wl)
            result["workloads"][wl.name] = wl.describe()
            result["agreement"][wl.name] = agreement(wl, inputs,
                                                     mxnet["outputs"].get(wl.name, {}))
            for name, diff in result["agreement"][wl.name].items():
                print(f"{wl.name:11s} max |diff| {name}: {diff:.3g}")
            rows = time_workload(wl, inputs, mxnet_times)
            result["rows"] += rows
            result["rates"] += rates(wl, inputs, rows, probe)
            result["thread_scaling"] += thread_scaling(wl, inputs)
            result["paired_ratios"] += paired_ratios(wl, inputs)
    result["small_call_us"] = small_call_latency()
    result["targets"] = targets(result["rows"], result["small_call_us"],
                                result["thread_scaling"], result["paired_ratios"])
    result["machine"]["load_average_at_end"] = os.getloadavg()
    report(result)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1))
    print(f"wrote {args.out}")


def _cpu_model():
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def report(result):
    print("\nrates (base variant, forward):")
    for r in result["rates"]:
        print(f"  {r['workload']:11s} {r['op']:9s} {r['threads']} threads: "
              f"{r['per_s'] / 1e9:6.2f} G/s = {100 * r['of_probe_muladds']:5.1f}% of GEMM "
              f"multiply-adds, gathers {r['gather_bytes_per_s'] / 1e9:6.1f} GB/s")
    copy = result["probe"]["copy_bytes_per_s"]
    print("1 -> 2 thread speedup, paired (median of per-pair ratios, quartiles); the "
          f"machine's own for a memory-bound copy: {copy[str(TARGET_THREADS)] / copy['1']:.2f}:")
    for r in result["thread_scaling"]:
        low, high = r["quartiles"]
        print(f"  {r['workload']:11s} {r['op']:15s} {r['speedup']:5.2f} ({low:.2f}-{high:.2f})")
    print(f"cyroi against cyroi at {TARGET_THREADS} threads, paired (median of per-pair "
          "ratios, quartiles):")
    for r in result["paired_ratios"]:
        low, high = r["quartiles"]
        print(f"  {r['workload']:11s} {r['ratio']:32s} {r['value']:5.2f} ({low:.2f}-{high:.2f})")
    print("small call K=1, C=1, 7x7 (microseconds per call, checks included):")
    for r in result["small_call_us"]:
        ort = f"  onnxruntime {r['onnxruntime_us']:7.1f}" if r["onnxruntime_us"] else ""
        print(f"  {r['op']:19s} {r['threads']} threads: cyroi {r['cyroi_us']:7.1f}{ort}")
    machine = result["machine"]
    print(f"load average {machine['load_average_at_start']} -> {machine['load_average_at_end']} "
          f"on {machine['cores']} cores (other processes share the machine: thread scaling "
          "and ms are only as good as the quiet)")
    print("targets (2 threads, float32 unless named):")
    for t in result["targets"]:
        print(f"  {'ok  ' if t['met'] else 'MISS'} {t['target']:56s} {t['value']:8.2f} "
              f"(limit {t['limit']})")


if __name__ == "__main__":
    main()
