"""Tensors past 2^31 elements: 64-bit indexing end to end, and correct values
at the far end (torchvision crashed there on the CPU and returned empty
output on the GPU).

The arrays are 8 GiB of address space but cost little memory: np.zeros maps
untouched pages to the kernel's zero page, so only the far corner this test
writes, and what the op writes, becomes resident. Values there are checked
against tests/reference.py run on a small copy of that corner, with the RoIs
moved by whole pixels and the sample grid chosen so every coordinate is
exact in float32 (moving them then changes no rounding)."""
import numpy as np
import pytest

import cyroi
import reference

pytestmark = pytest.mark.slow

ELEMENTS = 2**31 + 2**20  # the far 8x8 corner of either shape lies past 2^31
GiB = 2**30


def rss():
    """Resident memory of this process in bytes (Linux)."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * 4096


@pytest.fixture(autouse=True)
def linux_only():
    try:
        rss()
    except OSError:
        pytest.skip("needs /proc/self/statm to watch resident memory")


# RoIs inside an 8x8 corner, in its own coordinates: 6 px wide for 3 bins,
# 4 or 6 px tall for 2, and 2 samples per bin side put every sample on a
# multiple of 1/4 px, exact at any offset below 2^21.
CORNER_ROIS = np.array([[0, 0.5, 0.5, 6.5, 4.5], [0, 1.0, 2.0, 7.0, 8.0],
                        [0, 1.5, 3.5, 7.5, 7.5]])
ALIGN = dict(output_size=(2, 3), spatial_scale=1.0, sampling_ratio=2, aligned=False)


def corner_reference(corner, mode):
    return reference.roi_align(corner[None, None], CORNER_ROIS, (2, 3), 1.0, 2, False, mode,
                               dtype=np.float32)


def test_last_image_of_a_batch_past_2_31_elements():
    """features (N, 1, 64, 64) with N * 4096 > 2^31: the last image starts
    past element 2^31; forward and backward of every op read and write it."""
    side = 64
    N = ELEMENTS // (side * side)
    before = rss()
    features = np.zeros((N, 1, side, side), np.float32)
    corner = np.random.default_rng(0).standard_normal((8, 8)).astype(np.float32)
    features[N - 1, 0, -8:, -8:] = corner
    rois = CORNER_ROIS.copy()
    rois[:, 0] = N - 1
    rois[:, 1:] += side - 8  # into the far corner
    for mode in ("avg", "max"):
        out, argmax = cyroi.roi_align(features, rois, **ALIGN, mode=mode, return_argmax=True) \
            if mode == "max" else (cyroi.roi_align(features, rois, **ALIGN), None)
        want, want_argmax = corner_reference(corner, mode)
        np.testing.assert_array_equal(out, want.astype(np.float32))
        if mode == "max":
            np.testing.assert_array_equal(argmax, want_argmax)
    g = np.random.default_rng(1).standard_normal(out.shape).astype(np.float32)
    grad = cyroi.roi_align_backward(g, rois, features.shape, 1.0, 2, False)
    want_grad = reference.roi_align_backward(g, CORNER_ROIS, (1, 1, 8, 8), (2, 3), 1.0, 2,
                                             False, dtype=np.float32)
    np.testing.assert_allclose(grad[N - 1, 0, -8:, -8:], want_grad[0, 0], rtol=1e-6, atol=1e-6)
    assert np.count_nonzero(grad) == np.count_nonzero(want_grad)  # nothing written elsewhere
    out, argmax = cyroi.roi_pool(features, rois, 2, return_argmax=True)
    want, want_argmax = reference.roi_pool(corner[None, None], CORNER_ROIS, (2, 2), 1.0,
                                           dtype=np.float32)
    np.testing.assert_array_equal(out, want.astype(np.float32))
    rows, cols = np.divmod(want_argmax, 8)
    np.testing.assert_array_equal(argmax, (rows + side - 8) * side + cols + side - 8)
    assert rss() - before < GiB


def test_argmax_past_2_31_in_one_plane():
    """One (H, W) plane of more than 2^31 elements: roi_pool's argmax h*W + w
    passes 2^31 and must come back exact as int64, and the backward must add
    the gradient there."""
    W = 2**16
    H = ELEMENTS // W
    before = rss()
    features = np.zeros((1, 1, H, W), np.float32)
    corner = np.random.default_rng(2).standard_normal((8, 8)).astype(np.float32)
    features[0, 0, -8:, -8:] = corner
    rois = CORNER_ROIS.copy()
    rois[:, 1] += W - 8
    rois[:, 3] += W - 8
    rois[:, 2] += H - 8
    rois[:, 4] += H - 8
    out, argmax = cyroi.roi_pool(features, rois, 2, return_argmax=True)
    want, want_argmax = reference.roi_pool(corner[None, None], CORNER_ROIS, (2, 2), 1.0,
                                           dtype=np.float32)
    np.testing.assert_array_equal(out, want.astype(np.float32))
    rows, cols = np.divmod(want_argmax, 8)
    expected = (rows + H - 8) * W + cols + W - 8
    assert expected.min() > 2**31
    np.testing.assert_array_equal(argmax, expected)
    g = np.arange(1, out.size + 1, dtype=np.float32).reshape(out.shape)
    grad = cyroi.roi_pool_backward(g, rois, argmax, features.shape)
    want_grad = reference.roi_pool_backward(g, CORNER_ROIS, (1, 1, 8, 8), (2, 2), 1.0,
                                            want_argmax, dtype=np.float32)
    np.testing.assert_array_equal(grad[0, 0, -8:, -8:], want_grad[0, 0])
    out = cyroi.roi_align(features, rois, **ALIGN)
    np.testing.assert_array_equal(out, corner_reference(corner, "avg")[0].astype(np.float32))
    assert rss() - before < GiB
