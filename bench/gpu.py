"""GPU benchmark of cyroi against torchvision's CUDA ops (issue 4).

    python bench/gpu.py [--out bench/results/gpu.json] [--workloads frcnn_head,...]
                        [--runs 50]

On torch CUDA tensors (float32, NCHW) of the workloads of bench/workloads.py
and a 4x batch of each, times cyroi and torchvision.ops: roi_align (avg,
aligned=True, sampling_ratio=2) and roi_pool, forward and backward; for
cyroi also validate=False, deterministic=True backward, NHWC and float16.
Each figure is the median over --runs calls of the GPU time between two
CUDA events around the call, after warm-up runs (kernel compilation, memory
pools) that are not counted. Outputs are compared with torchvision's before
timing. Needs an NVIDIA GPU, CuPy, and torch + torchvision built with CUDA.
"""
import argparse
import dataclasses
import json
import platform
import statistics
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # the checkout's cyroi
import cyroi  # noqa: E402
from workloads import SAMPLING_RATIO, WORKLOADS  # noqa: E402

WARMUP = 3


def require_gpu():
    """torch, torchvision and CuPy on a visible GPU, or a clear exit."""
    try:
        import cupy
        import torch
        import torchvision
    except ImportError as error:
        sys.exit(f"bench/gpu.py needs CuPy, torch and torchvision: {error}")
    if not torch.cuda.is_available():
        sys.exit("bench/gpu.py needs an NVIDIA GPU: torch sees no CUDA device")
    try:
        cupy.cuda.runtime.getDeviceCount()
    except Exception as error:  # noqa: BLE001 - any CUDA runtime failure means no GPU
        sys.exit(f"bench/gpu.py needs an NVIDIA GPU: CuPy sees none ({error})")
    return cupy, torch, torchvision


def gpu_median_ms(torch, fn, runs):
    """Median GPU time of fn() between CUDA events, warm-up excluded."""
    for _ in range(WARMUP):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(runs):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


def workloads(names):
    chosen = [wl for wl in WORKLOADS if names is None or wl.name in names]
    return [variant for wl in chosen
            for variant in (wl, dataclasses.replace(wl, name=wl.name + "_x4", n=4 * wl.n,
                                                    k=4 * wl.k))]


def inputs(torch, wl, seed=0):
    import numpy as np
    rng = np.random.default_rng(seed)
    x = torch.as_tensor(wl.features(rng), device="cuda")
    rois = torch.as_tensor(wl.rois(rng), device="cuda")
    return x, rois


def torchvision_calls(torch, tv, wl, x, rois, grad):
    size, scale = (wl.pooled, wl.pooled), wl.scale
    n, c, h, w = x.shape
    _, argmax = torch.ops.torchvision.roi_pool(x, rois, scale, *size)
    return {
        "align_fwd": lambda: tv.ops.roi_align(x, rois, size, scale, SAMPLING_RATIO, True),
        "align_bwd": lambda: torch.ops.torchvision._roi_align_backward(
            grad, rois, scale, *size, n, c, h, w, SAMPLING_RATIO, True),
        "pool_fwd": lambda: torch.ops.torchvision.roi_pool(x, rois, scale, *size),
        "pool_bwd": lambda: torch.ops.torchvision._roi_pool_backward(
            grad, rois, argmax, scale, *size, n, c, h, w),
    }


def cyroi_calls(wl, x, rois, grad, **options):
    """The same four calls through cyroi; options: validate, deterministic,
    layout (x, grad already in it)."""
    size, scale = wl.pooled, wl.scale
    layout = options.get("layout", "NCHW")
    common = dict(layout=layout, validate=options.get("validate", True))
    backward = dict(common, deterministic=options.get("deterministic", False))
    shape = tuple(x.shape)
    _, argmax = cyroi.roi_pool(x, rois, size, scale, return_argmax=True, **common)
    return {
        "align_fwd": lambda: cyroi.roi_align(x, rois, size, scale, SAMPLING_RATIO, True,
                                             **common),
        "align_bwd": lambda: cyroi.roi_align_backward(grad, rois, shape, scale, SAMPLING_RATIO,
                                                      True, **backward),
        "pool_fwd": lambda: cyroi.roi_pool(x, rois, size, scale, return_argmax=True, **common),
        "pool_bwd": lambda: cyroi.roi_pool_backward(grad, rois, argmax, shape, **backward),
    }


def check_agreement(torch, ours, theirs):
    """cyroi's outputs against torchvision's (NCHW float32 calls)."""
    for op in ("align_fwd", "align_bwd", "pool_fwd"):
        a, b = ours[op](), theirs[op]()
        a, b = (a[0] if isinstance(a, tuple) else a), (b[0] if isinstance(b, tuple) else b)
        if not torch.allclose(a, b, rtol=1e-4, atol=1e-4):
            sys.exit(f"{op}: cyroi and torchvision disagree (max |diff| "
                     f"{(a - b).abs().max().item():.3g})")


def bench_workload(torch, tv, wl, runs):
    x, rois = inputs(torch, wl)
    out = tv.ops.roi_align(x, rois, wl.pooled, wl.scale, SAMPLING_RATIO, True)
    grad = torch.randn_like(out)
    theirs = torchvision_calls(torch, tv, wl, x, rois, grad)
    variants = {
        "cyroi": cyroi_calls(wl, x, rois, grad),
        "cyroi_novalidate": cyroi_calls(wl, x, rois, grad, validate=False),
        "cyroi_deterministic": {op: fn for op, fn in cyroi_calls(
            wl, x, rois, grad, deterministic=True).items() if op.endswith("bwd")},
        "cyroi_nhwc": cyroi_calls(wl, x.permute(0, 2, 3, 1).contiguous(), rois,
                                  grad.permute(0, 2, 3, 1).contiguous(), layout="NHWC"),
        "cyroi_float16": cyroi_calls(wl, x.half(), rois, grad.half()),
    }
    check_agreement(torch, variants["cyroi"], theirs)
    rows = {}
    for op, fn in theirs.items():
        row = {"torchvision_ms": gpu_median_ms(torch, fn, runs)}
        for name, calls in variants.items():
            if op in calls:
                row[f"{name}_ms"] = gpu_median_ms(torch, calls[op], runs)
        row["speedup_vs_torchvision"] = row["torchvision_ms"] / row["cyroi_ms"]
        rows[op] = row
        print(f"{wl.name:16s} {op:9s} " + " ".join(f"{k}={v:.4g}" for k, v in row.items()),
              flush=True)
    return {"workload": dataclasses.asdict(wl), "ops": rows}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE / "results" / "gpu.json")
    parser.add_argument("--workloads", help="comma-separated names (default: all)")
    parser.add_argument("--runs", type=int, default=50)
    args = parser.parse_args()
    cupy, torch, tv = require_gpu()
    names = set(args.workloads.split(",")) if args.workloads else None
    results = [bench_workload(torch, tv, wl, args.runs) for wl in workloads(names)]
    report = {
        "device": torch.cuda.get_device_name(),
        "versions": {"cupy": cupy.__version__, "torch": torch.__version__,
                     "torchvision": tv.__version__, "cuda_runtime":
                     cupy.cuda.runtime.runtimeGetVersion(), "python": platform.python_version()},
        "method": f"median of {args.runs} CUDA-event timings per call after {WARMUP} warm-up "
                  f"calls; float32 NCHW unless the column says otherwise; roi_align avg, "
                  f"aligned=True, sampling_ratio={SAMPLING_RATIO}",
        "results": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
