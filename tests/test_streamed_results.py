"""NCHW forward results over 32 MB are written with non-temporal stores
through an ordering buffer (cpu_common.h store_bins); NHWC ones of that size
go out from the bin loops' registers as smaller ones do. Those calls must
give the same bits as the reference on the RoIs checked, and as the same
RoIs asked for in calls too small to stream; channel counts and bin counts
are picked so the NCHW ordering buffer takes several chunks and NHWC rows
start off 16-byte boundaries."""
import numpy as np
import pytest

import cyroi
import reference

STREAMED_BYTES = 32 << 20
SPLIT = 64  # RoIs per small call: far below the streaming size


def problem(channels, rois, dtype, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((2, channels, 24, 28)).astype(dtype)
    boxes = rng.uniform(-4, 30, (rois, 4))
    r = np.column_stack([rng.integers(0, 2, rois), np.minimum(boxes[:, :2], boxes[:, 2:]),
                         np.maximum(boxes[:, :2], boxes[:, 2:])]).astype(dtype)
    return x, r


def roi_count(channels, bins, itemsize):
    return STREAMED_BYTES // (channels * bins * itemsize) + 1


def call(op, x, rois, size, layout, validate=True):
    feats = x if layout == "NCHW" else np.ascontiguousarray(x.transpose(0, 2, 3, 1))
    if op == "pool":
        return cyroi.roi_pool(feats, rois, size, 0.5, layout=layout, return_argmax=True,
                              validate=validate)
    mode = "max" if op == "align_max" else "avg"
    return cyroi.roi_align(feats, rois, size, 0.5, 2, True, mode, layout=layout,
                           return_argmax=mode == "max", validate=validate)


def nchw(a, layout):
    return a if layout == "NCHW" else a.transpose(0, 3, 1, 2)


def expected(op, x, rois, size):
    if op == "pool":
        return reference.roi_pool(x, rois, size, 0.5, dtype=x.dtype)
    mode = "max" if op == "align_max" else "avg"
    return reference.roi_align(x, rois, size, 0.5, 2, True, mode, dtype=x.dtype)


@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
@pytest.mark.parametrize("op", ["align", "align_max", "pool"])
@pytest.mark.parametrize("dtype,channels,size", [(np.float32, 96, (7, 7)),
                                                 (np.float32, 61, (5, 3)),
                                                 (np.float64, 50, (7, 7))])
def test_streamed_results_equal_small_calls_and_the_reference(op, layout, dtype, channels, size):
    bins = size[0] * size[1]
    x, rois = problem(channels, roi_count(channels, bins, np.dtype(dtype).itemsize), dtype)
    results = call(op, x, rois, size, layout)
    results = results if isinstance(results, tuple) else (results,)
    assert results[0].nbytes > STREAMED_BYTES
    for start in range(0, len(rois), SPLIT):
        pieces = call(op, x, rois[start:start + SPLIT], size, layout)
        pieces = pieces if isinstance(pieces, tuple) else (pieces,)
        for whole, piece in zip(results, pieces):
            np.testing.assert_array_equal(whole[start:start + SPLIT], piece)
    checked = np.r_[0:3, len(rois) // 2, len(rois) - 3:len(rois)]
    want = expected(op, x, rois[checked], size)
    np.testing.assert_array_equal(nchw(results[0][checked], layout).astype(np.float64), want[0])
    if len(results) > 1:
        np.testing.assert_array_equal(nchw(results[1][checked], layout), want[1])
