"""Bitwise regression guard for CPU optimisations.

    python bench/golden.py save /tmp/golden.npz    # with the build to trust
    python bench/golden.py check /tmp/golden.npz   # after a change

Runs every CPU op (roi_align, roi_pool and the rest of the family) forward
and backward, box gradients too, on a fixed set of random cases (both
modes, both layouts, strided views, float32/float64/float16, boxes inside,
across, outside the map, huge, inverted and degenerate, several sampling
ratios and output sizes) at 1, 2 and 4 threads, and saves or compares the
raw bytes. A speed-up must not change a single bit.
"""
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the checkout's cyroi
import cyroi  # noqa: E402

THREADS = (1, 2, 4)


def random_boxes(rng, kind, k, height, width, scale):
    img_h, img_w = height / scale, width / scale
    if kind == "inside":
        x1 = rng.uniform(0, img_w * 0.8, k)
        y1 = rng.uniform(0, img_h * 0.8, k)
        x2 = x1 + rng.uniform(0, img_w * 0.5, k)
        y2 = y1 + rng.uniform(0, img_h * 0.5, k)
    elif kind == "across":
        x1 = rng.uniform(-img_w, img_w * 1.5, k)
        y1 = rng.uniform(-img_h, img_h * 1.5, k)
        x2 = x1 + rng.uniform(-img_w * 0.3, img_w * 2, k)  # some inverted
        y2 = y1 + rng.uniform(-img_h * 0.3, img_h * 2, k)
    elif kind == "outside":
        x1 = rng.uniform(img_w * 1.2, img_w * 3, k)
        y1 = rng.uniform(-img_h * 3, -img_h * 1.2, k)
        x2, y2 = x1 + 5, y1 + 5
    elif kind == "degenerate":
        x1 = np.round(rng.uniform(0, img_w, k))
        y1 = np.round(rng.uniform(0, img_h, k))
        x2, y2 = x1.copy(), y1.copy()
    else:  # huge
        x1 = rng.choice([-1e30, -1e6, -3.0], k)
        y1 = rng.choice([-1e9, -2.5, 0.0], k)
        x2 = rng.choice([1e6, 1e30, img_w * 2], k)
        y2 = rng.choice([1e9, img_h + 0.5, 1e20], k)
    return np.stack([x1, y1, x2, y2], axis=1)


def cases():
    rng = np.random.default_rng(2024)
    kinds = ("inside", "across", "outside", "degenerate", "huge")
    for index in range(48):
        dtype = (np.float32, np.float64, np.float16)[index % 3]
        layout = ("NCHW", "NHWC")[(index // 3) % 2]
        strided = index % 7 == 3
        n = int(rng.integers(1, 4))
        c = int(rng.choice([1, 3, 8, 33, 70]))
        h, w = int(rng.integers(1, 40)), int(rng.integers(1, 40))
        scale = float(rng.choice([1.0, 0.5, 0.25, 1 / 16]))
        k = int(rng.integers(0, 25))
        boxes = np.concatenate([random_boxes(rng, kind, k, h, w, scale) for kind in kinds])
        batch = rng.integers(0, n, len(boxes))
        rois = np.column_stack([batch, boxes]).astype(np.float64)
        c_full = 2 * c if strided else c
        shape = (n, c_full, h, w) if layout == "NCHW" else (n, h, w, c_full)
        f = rng.standard_normal(shape).astype(dtype)
        if index % 5 == 0:  # ties for the max modes
            f = np.round(f).astype(dtype)
        if strided:
            f = f[:, ::2] if layout == "NCHW" else f[..., ::2]
        size = [(1, 1), (7, 7), (3, 5), (14, 14)][index % 4]
        ratio = [-1, 1, 2, 3][(index // 4) % 4]
        aligned = bool(index % 2)
        yield index, f, rois, size, scale, ratio, aligned, layout


def outputs_of(f, rois, size, scale, ratio, aligned, layout):
    rng = np.random.default_rng(5)
    shape = tuple(f.shape)
    results = {}
    avg = cyroi.roi_align(f, rois, size, scale, ratio, aligned, layout=layout)
    g = rng.standard_normal(avg.shape).astype(f.dtype)
    results["align_avg"] = avg
    results["align_avg_grad"] = cyroi.roi_align_backward(g, rois, shape, scale, ratio, aligned,
                                                         layout=layout)
    top, where = cyroi.roi_align(f, rois, size, scale, ratio, aligned, "max", layout=layout,
                                 return_argmax=True)
    results["align_max"], results["align_max_argmax"] = top, where
    results["align_max_grad"] = cyroi.roi_align_backward(g, rois, shape, scale, ratio, aligned,
                                                         "max", argmax=where, layout=layout)
    pooled, where = cyroi.roi_pool(f, rois, size, scale, layout=layout, return_argmax=True)
    results["pool"], results["pool_argmax"] = pooled, where
    results["pool_grad"] = cyroi.roi_pool_backward(g, rois, where, shape, layout=layout)
    _, results["align_rois_grad"] = cyroi.roi_align_backward(
        g, rois, shape, scale, ratio, aligned, layout=layout, need_rois_grad=True, features=f)
    results.update(family_outputs_of(f, rois, size, scale, ratio, aligned, layout))
    return results


def channels_axis(layout):
    return 1 if layout == "NCHW" else 3


def family_outputs_of(f, rois, size, scale, ratio, aligned, layout):
    """The rest of the family on the same case: rotated boxes turned from the
    axis-aligned ones, position-sensitive ops on a map with PH*PW*2 channels,
    and a two-level pyramid (the map and its every other row and column)."""
    rng = np.random.default_rng(7)
    shape = tuple(f.shape)
    results = {}

    def grad_like(out):
        return rng.standard_normal(out.shape).astype(out.dtype)

    out = cyroi.precise_roi_pool(f, rois, size, scale, layout=layout)
    results["precise"] = out
    results["precise_grad"], results["precise_rois_grad"] = cyroi.precise_roi_pool_backward(
        grad_like(out), rois, f, scale, layout=layout)

    x1, y1, x2, y2 = rois[:, 1:].T
    angle = rng.uniform(-180, 180, len(rois))
    rotated = np.column_stack([rois[:, 0], (x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1,
                               angle])
    clockwise = bool(rng.integers(2))
    out = cyroi.roi_align_rotated(f, rotated, size, scale, ratio, aligned, clockwise,
                                  layout=layout)
    results["rotated"] = out
    results["rotated_grad"], results["rotated_rois_grad"] = cyroi.roi_align_rotated_backward(
        grad_like(out), rotated, shape, scale, ratio, aligned, clockwise, layout=layout,
        need_rois_grad=True, features=f)

    ps_shape = list(shape)
    ps_shape[channels_axis(layout)] = size[0] * size[1] * 2
    f_ps = rng.standard_normal(ps_shape).astype(f.dtype)
    out = cyroi.ps_roi_align(f_ps, rois, size, scale, ratio, layout=layout)
    results["ps_align"] = out
    results["ps_align_grad"] = cyroi.ps_roi_align_backward(grad_like(out), rois, tuple(ps_shape),
                                                           scale, ratio, layout=layout)
    out = cyroi.ps_roi_pool(f_ps, rois, size, scale, layout=layout)
    results["ps_pool"] = out
    results["ps_pool_grad"] = cyroi.ps_roi_pool_backward(grad_like(out), rois, tuple(ps_shape),
                                                         scale, layout=layout)

    coarse = f[:, :, ::2, ::2] if layout == "NCHW" else f[:, ::2, ::2]
    levels = [f, coarse]
    scales = [scale, scale / 2]
    out = cyroi.multiscale_roi_align(levels, rois, size, scales, ratio, aligned,
                                     canonical_scale=16, canonical_level=2, layout=layout)
    results["multiscale"] = out
    grads = cyroi.multiscale_roi_align_backward(
        grad_like(out), rois, [tuple(level.shape) for level in levels], scales, ratio, aligned,
        canonical_scale=16, canonical_level=2, layout=layout)
    results.update({f"multiscale_grad{i}": grad for i, grad in enumerate(grads)})
    return results


def run_all():
    arrays = {}
    for index, *args in cases():
        for threads in THREADS:
            cyroi.set_num_threads(threads)
            for name, value in outputs_of(*args).items():
                arrays[f"{index}/{name}/t{threads}"] = np.ascontiguousarray(value)
    cyroi.set_num_threads(None)
    return arrays


def main(command, path):
    arrays = run_all()
    if command == "save":
        np.savez_compressed(path, **arrays)
        print(f"saved {len(arrays)} arrays to {path}")
        return 0
    saved = np.load(path)
    bad = [key for key in saved.files
           if key not in arrays or saved[key].dtype != arrays[key].dtype
           or saved[key].shape != arrays[key].shape
           or saved[key].tobytes() != arrays[key].tobytes()]
    bad += [key for key in arrays if key not in saved.files]
    print(f"{len(saved.files) - len(bad)} of {len(saved.files)} arrays bit-identical")
    for key in bad[:20]:
        print("  differs:", key)
    return 1 if bad else 0


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("save", "check"):
        sys.exit(__doc__)
    sys.exit(main(sys.argv[1], sys.argv[2]))
