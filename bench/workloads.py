"""The benchmark workloads (issue 3): detector heads as they run on the CPU.

Boxes have sides drawn log-uniformly in [16, 400] image pixels and lie inside
the image, like region proposals of a two-stage detector.
"""
from dataclasses import dataclass

import numpy as np

# roi_align's sampling_ratio in every timed call, of cyroi and of its peers.
SAMPLING_RATIO = 2


@dataclass(frozen=True)
class Workload:
    name: str
    n: int
    c: int
    h: int
    w: int
    k: int
    pooled: int
    scale: float
    image: tuple  # (height, width) in pixels

    def describe(self):
        return (f"N={self.n} C={self.c} H={self.h} W={self.w} K={self.k} "
                f"{self.pooled}x{self.pooled} scale=1/{round(1 / self.scale)}")

    def features(self, rng, dtype=np.float32, layout="NCHW"):
        shape = (self.n, self.c, self.h, self.w)
        x = rng.standard_normal(shape, dtype=np.float32).astype(dtype)
        return x if layout == "NCHW" else np.ascontiguousarray(x.transpose(0, 2, 3, 1))

    def inputs(self):
        """(features, rois) of the benchmark: float32 NCHW, drawn from one
        seed so that every peer (in any venv) times the same arrays."""
        rng = np.random.default_rng(0)
        x = self.features(rng)
        return x, self.rois(rng)

    def rois(self, rng, dtype=np.float32):
        """(K, 5) [batch_index, x1, y1, x2, y2]."""
        sides = np.exp(rng.uniform(np.log(16), np.log(400), (self.k, 2)))
        img_h, img_w = self.image
        x1 = rng.uniform(0, img_w - sides[:, 0])
        y1 = rng.uniform(0, img_h - sides[:, 1])
        batch = rng.integers(0, self.n, self.k)
        return np.column_stack([batch, x1, y1, x1 + sides[:, 0], y1 + sides[:, 1]]).astype(dtype)


WORKLOADS = (
    Workload("frcnn_head", n=2, c=256, h=50, w=68, k=512, pooled=7, scale=1 / 16,
             image=(800, 1088)),
    Workload("mask_head", n=2, c=256, h=200, w=272, k=256, pooled=14, scale=1 / 4,
             image=(800, 1088)),
    Workload("many_rois", n=1, c=256, h=100, w=100, k=2000, pooled=7, scale=1 / 16,
             image=(1600, 1600)),
)


def _sample_coords(start, size, pooled, grid):
    """(K, pooled * grid) sample coordinates along one axis (SPEC roi_align)."""
    bins = np.arange(pooled)[:, None]
    offsets = (np.arange(grid)[None, :] + 0.5) / grid
    return start[:, None] + ((bins + offsets) * (size / pooled)[:, None, None]).reshape(
        len(start), -1)


def align_taps(wl, rois, sampling_ratio=SAMPLING_RATIO):
    """Bilinear taps of roi_align(aligned=True) over all channels: 4 per
    sample that lands in [-1, size] on both axes, as counted by the SPEC."""
    r = rois.astype(np.float64) * np.array([1, wl.scale, wl.scale, wl.scale, wl.scale])
    sx, sy, ex, ey = (r[:, i] - 0.5 for i in range(1, 5))
    xs = _sample_coords(sx, ex - sx, wl.pooled, sampling_ratio)
    ys = _sample_coords(sy, ey - sy, wl.pooled, sampling_ratio)
    inside_x = ((xs >= -1) & (xs <= wl.w)).sum(axis=1)
    inside_y = ((ys >= -1) & (ys <= wl.h)).sum(axis=1)
    return int(4 * (inside_x * inside_y).sum() * wl.c)


def pool_reads(wl, rois):
    """Feature elements that roi_pool compares, over all channels."""
    r = rois.astype(np.float64)[:, 1:] * wl.scale
    start = np.where(r >= 0, np.floor(r + 0.5), np.ceil(r - 0.5)).astype(np.int64)
    total = np.ones(len(rois), dtype=np.int64)
    for lo, hi, limit in ((start[:, 0], start[:, 2], wl.w), (start[:, 1], start[:, 3], wl.h)):
        bin_size = np.maximum(hi - lo + 1, 1) / wl.pooled
        p = np.arange(wl.pooled)[None, :]
        a = np.clip(np.floor(p * bin_size[:, None]).astype(np.int64) + lo[:, None], 0, limit)
        b = np.clip(np.ceil((p + 1) * bin_size[:, None]).astype(np.int64) + lo[:, None], 0,
                    limit)
        total *= np.maximum(b - a, 0).sum(axis=1)
    return int(total.sum() * wl.c)
