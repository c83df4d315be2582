"""multiscale_roi_align (one parallel pass over all RoIs) against the usual
composition: FPN level assignment in NumPy, then roi_align per level on the
gathered RoIs and a scatter of the results back into input order (what
torchvision's MultiScaleRoIAlign does around its roi_align calls).

    python bench/multiscale.py [--out bench/results/multiscale.json] [--quick]

Workloads: a Mask R-CNN FPN head, float32 NCHW, P2-P5 of an 800 x 1216
image pair (C = 256), RoIs of sizes spread over the four levels, 7 x 7
output, sampling_ratio 2, aligned=False: "train" with 512 RoIs per image,
"infer" with 50. Forward and backward, at 1 and 2 threads; the fastest of 7
runs after a warm-up, the two sides alternating (on a shared machine the
fastest run is the least disturbed). Both sides give the same bits, checked
before timing.
"""
import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the checkout's cyroi
import cyroi  # noqa: E402

SCALES = [1 / 4, 1 / 8, 1 / 16, 1 / 32]
SIZE = (7, 7)
RATIO = 2


def workload(channels, rois_per_image, seed=0):
    rng = np.random.default_rng(seed)
    height, width, images = 800, 1216, 2
    features = [rng.standard_normal((images, channels, int(height * s), int(width * s)),
                                    dtype=np.float32) for s in SCALES]
    k = images * rois_per_image
    sides = np.exp(rng.uniform(np.log(24), np.log(800), (k, 2)))
    corners = rng.uniform(0, 1, (k, 2)) * ([width, height] - sides)
    rois = np.column_stack([np.repeat(np.arange(images), rois_per_image), corners,
                            corners + sides]).astype(np.float32)
    return features, rois


def fpn_levels(rois):
    """torchvision's LevelMapper in NumPy (float32, like the boxes)."""
    area = (rois[:, 3] - rois[:, 1]) * (rois[:, 4] - rois[:, 2])
    k = np.floor(np.float32(4) + np.log2(np.sqrt(area) / np.float32(224)) + np.float32(1e-6))
    return (np.clip(k, 2, 5) - 2).astype(np.int64)


def per_level_forward(features, rois):
    levels = fpn_levels(rois)
    out = np.zeros((len(rois), features[0].shape[1], *SIZE), np.float32)
    for level, (f, scale) in enumerate(zip(features, SCALES)):
        index = np.flatnonzero(levels == level)
        if index.size:
            out[index] = cyroi.roi_align(f, rois[index], SIZE, scale, RATIO)
    return out


def per_level_backward(grad, rois, shapes):
    levels = fpn_levels(rois)
    grads = []
    for level, (shape, scale) in enumerate(zip(shapes, SCALES)):
        index = np.flatnonzero(levels == level)
        grads.append(cyroi.roi_align_backward(grad[index], rois[index], shape, scale, RATIO))
    return grads


WORKLOADS = {"train": 512, "infer": 50}


def fastest_ms(fns, runs=7):
    """The fastest run of each function, alternating them run by run."""
    for fn in fns:
        fn()
    best = [float("inf")] * len(fns)
    for _ in range(runs):
        for i, fn in enumerate(fns):
            start = time.perf_counter()
            fn()
            best[i] = min(best[i], (time.perf_counter() - start) * 1e3)
    return best


def measure(channels, per_image):
    features, rois = workload(channels, per_image)
    shapes = [f.shape for f in features]
    grad = np.random.default_rng(1).standard_normal((len(rois), channels, *SIZE),
                                                   dtype=np.float32)

    def fused_forward():
        return cyroi.multiscale_roi_align(features, rois, SIZE, SCALES, RATIO)

    def fused_backward():
        return cyroi.multiscale_roi_align_backward(grad, rois, shapes, SCALES, RATIO)

    assert np.array_equal(fused_forward(), per_level_forward(features, rois))
    for a, b in zip(fused_backward(), per_level_backward(grad, rois, shapes)):
        assert np.array_equal(a, b)
    rows = []
    for threads in (1, 2):
        cyroi.set_num_threads(threads)
        for op, fused, composed in [
                ("forward", fused_forward, lambda: per_level_forward(features, rois)),
                ("backward", fused_backward, lambda: per_level_backward(grad, rois, shapes))]:
            fused_ms, composed_ms = fastest_ms([fused, composed])
            rows.append(dict(op=op, threads=threads, multiscale_ms=round(fused_ms, 3),
                             per_level_ms=round(composed_ms, 3),
                             speedup=round(composed_ms / fused_ms, 2)))
    cyroi.set_num_threads(None)
    return dict(channels=channels, rois=len(rois),
                rois_per_level=np.bincount(fpn_levels(rois), minlength=4).tolist(), rows=rows)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", help="write the results as JSON here")
    parser.add_argument("--quick", action="store_true", help="C = 64 instead of 256")
    args = parser.parse_args()
    channels = 64 if args.quick else 256
    results = {name: measure(channels, per_image) for name, per_image in WORKLOADS.items()}
    print(f"multiscale_roi_align vs roi_align per level (float32 NCHW, C={channels}, "
          f"output {SIZE}, sampling_ratio {RATIO})")
    print(f"{'workload':<14} {'op':<9} {'threads':>7} {'multiscale ms':>14} {'per level ms':>13} "
          f"{'speed-up':>9}")
    for name, result in results.items():
        label = f"{name} K={result['rois']}"
        for r in result["rows"]:
            print(f"{label:<14} {r['op']:<9} {r['threads']:>7} {r['multiscale_ms']:>14.2f} "
                  f"{r['per_level_ms']:>13.2f} {r['speedup']:>8.2f}x")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(dict(
            machine=platform.processor() or platform.machine(), output_size=SIZE,
            sampling_ratio=RATIO, workloads=results), indent=2) + "\n")


if __name__ == "__main__":
    main()
