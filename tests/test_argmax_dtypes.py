"""Argmax dtypes: roi_pool's int32 as torchvision's (int64 only for planes
past 2^31 - 1 pixels, tests/test_huge_tensors.py); roi_align's (mode "max")
int32 for a fixed sampling_ratio, whose bins' ratio^2 indices fit, int64 for
the adaptive grid. Both backwards take any integer argmax without reading a
value as another one."""
import numpy as np
import pytest

import cyroi
import reference

RNG = np.random.default_rng(11)
X = RNG.standard_normal((2, 5, 9, 11)).astype(np.float32)
ROIS = np.array([[0, 0, 0, 8, 6], [1, 2.4, 1.6, 10, 8], [1, 5, 5, 5, 5], [0, -3, 4, 30, 7]],
                np.float32)


@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
def test_pool_forward_argmax_is_int32(layout):
    x = X if layout == "NCHW" else X.transpose(0, 2, 3, 1)
    _, argmax = cyroi.roi_pool(x, ROIS, (3, 2), 1.0, layout=layout, return_argmax=True)
    assert argmax.dtype == np.int32
    _, want = reference.roi_pool(X, ROIS, (3, 2), 1.0, dtype=np.float32)
    np.testing.assert_array_equal(argmax if layout == "NCHW" else argmax.transpose(0, 3, 1, 2),
                                  want)


@pytest.mark.parametrize("index", [np.int32, np.int64, np.uint16, ">i8", np.int8])
def test_pool_backward_takes_any_integer_argmax(index):
    out, want_argmax = reference.roi_pool(X, ROIS, (3, 2), 1.0, dtype=np.float32)
    g = RNG.standard_normal(out.shape).astype(np.float32)
    want = reference.roi_pool_backward(g, ROIS, X.shape, (3, 2), 1.0, want_argmax,
                                       dtype=np.float32)
    argmax = want_argmax.astype(index)  # -1 wraps in uint16: outside the plane too
    got = cyroi.roi_pool_backward(g, ROIS, argmax, X.shape)
    np.testing.assert_array_equal(got, want.astype(np.float32))


def test_pool_values_past_int32_are_ignored_not_wrapped():
    """2^32 + 5 and -2^32 + 5 are outside the plane; read as int32 they
    would be pixel 5."""
    g = np.ones((1, 1, 1, 1), np.float32)
    rois = np.array([[0, 0, 0, 3, 3]], np.float32)
    for bad in (2**32 + 5, -(2**32) + 5, 2**63 - 1, -(2**63)):
        argmax = np.full((1, 1, 1, 1), bad, np.int64)
        grad = cyroi.roi_pool_backward(g, rois, argmax, (1, 1, 4, 4))
        assert not grad.any(), bad
    argmax = np.full((1, 1, 1, 1), 2**32 + 5, np.uint64)
    assert not cyroi.roi_pool_backward(g, rois, argmax, (1, 1, 4, 4)).any()


@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
@pytest.mark.parametrize("ratio, index", [(2, np.int32), (3, np.int32), (-1, np.int64)])
def test_align_forward_argmax_dtype_follows_the_grid(layout, ratio, index):
    x = X if layout == "NCHW" else X.transpose(0, 2, 3, 1)
    _, argmax = cyroi.roi_align(x, ROIS, (3, 2), 1.0, ratio, True, "max", layout=layout,
                                return_argmax=True)
    assert argmax.dtype == index
    _, want = reference.roi_align(X, ROIS, (3, 2), 1.0, ratio, True, "max", dtype=np.float32)
    np.testing.assert_array_equal(argmax if layout == "NCHW" else argmax.transpose(0, 3, 1, 2),
                                  want)


def test_align_argmax_widens_where_a_fixed_grid_passes_int32():
    """A bin of 46340^2 samples has indices below 2^31 - 1, one of 46341^2
    not. The box lies off the map: every sample reads 0, and the first wins."""
    rois = np.array([[0, 100, 100, 101, 101]], np.float32)
    for ratio, index in ((46340, np.int32), (46341, np.int64)):
        out, argmax = cyroi.roi_align(X, rois, 1, 1.0, ratio, True, "max", return_argmax=True)
        assert argmax.dtype == index and not out.any() and not argmax.any()


@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
@pytest.mark.parametrize("ratio", [2, -1])
@pytest.mark.parametrize("index", [np.int32, np.int64, np.uint16, ">i8", np.int8])
def test_align_backward_takes_any_integer_argmax(index, ratio, layout):
    out, want_argmax = reference.roi_align(X, ROIS, (3, 2), 1.0, ratio, True, "max",
                                           dtype=np.float32)
    g = RNG.standard_normal(out.shape).astype(np.float32)
    want = reference.roi_align_backward(g, ROIS, X.shape, (3, 2), 1.0, ratio, True, "max",
                                        want_argmax, dtype=np.float32)
    nhwc = layout == "NHWC"
    got = cyroi.roi_align_backward(g.transpose(0, 2, 3, 1) if nhwc else g, ROIS,
                                   (2, 9, 11, 5) if nhwc else X.shape, 1.0, ratio, True, "max",
                                   argmax=want_argmax.astype(index).transpose(0, 2, 3, 1) if nhwc
                                   else want_argmax.astype(index), layout=layout)
    np.testing.assert_array_equal(got.transpose(0, 3, 1, 2) if nhwc else got,
                                  want.astype(np.float32))


def test_align_values_past_int32_are_ignored_not_wrapped():
    """The 2 x 2 grid has samples 0..3: 2^32 + 1 read as int32 would be 1."""
    g = np.ones((1, 1, 1, 1), np.float32)
    rois = np.array([[0, 0, 0, 3, 3]], np.float32)
    for bad in (2**32 + 1, -(2**32) + 1, 2**63 - 1):
        argmax = np.full((1, 1, 1, 1), bad, np.int64)
        grad = cyroi.roi_align_backward(g, rois, (1, 1, 4, 4), 1.0, 2, False, "max",
                                        argmax=argmax)
        assert not grad.any(), bad
