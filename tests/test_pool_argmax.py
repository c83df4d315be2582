"""roi_pool's argmax: int32 as torchvision's (int64 only for planes past
2^31 - 1 pixels, tests/test_huge_tensors.py), and a backward that takes any
integer argmax without reading a value as another one."""
import numpy as np
import pytest

import cyroi
import reference

RNG = np.random.default_rng(11)
X = RNG.standard_normal((2, 5, 9, 11)).astype(np.float32)
ROIS = np.array([[0, 0, 0, 8, 6], [1, 2.4, 1.6, 10, 8], [1, 5, 5, 5, 5], [0, -3, 4, 30, 7]],
                np.float32)


@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
def test_forward_argmax_is_int32(layout):
    x = X if layout == "NCHW" else X.transpose(0, 2, 3, 1)
    _, argmax = cyroi.roi_pool(x, ROIS, (3, 2), 1.0, layout=layout, return_argmax=True)
    assert argmax.dtype == np.int32
    _, want = reference.roi_pool(X, ROIS, (3, 2), 1.0, dtype=np.float32)
    np.testing.assert_array_equal(argmax if layout == "NCHW" else argmax.transpose(0, 3, 1, 2),
                                  want)


@pytest.mark.parametrize("index", [np.int32, np.int64, np.uint16, ">i8", np.int8])
def test_backward_takes_any_integer_argmax(index):
    out, want_argmax = reference.roi_pool(X, ROIS, (3, 2), 1.0, dtype=np.float32)
    g = RNG.standard_normal(out.shape).astype(np.float32)
    want = reference.roi_pool_backward(g, ROIS, X.shape, (3, 2), 1.0, want_argmax,
                                       dtype=np.float32)
    argmax = want_argmax.astype(index)  # -1 wraps in uint16: outside the plane too
    got = cyroi.roi_pool_backward(g, ROIS, argmax, X.shape)
    np.testing.assert_array_equal(got, want.astype(np.float32))


def test_values_past_int32_are_ignored_not_wrapped():
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
