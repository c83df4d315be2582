"""Object form: forward keeps what backward needs; same numbers as the
stateless functions."""
import numpy as np
import pytest

import cyroi

RNG = np.random.default_rng(1)
F = RNG.standard_normal((2, 3, 9, 7))
ROIS = np.array([[0, 1, 1, 5, 6], [1, 0, 2, 6, 8]], np.float64)


@pytest.mark.parametrize("mode", ["avg", "max"])
def test_roi_align_object(mode):
    op = cyroi.RoIAlign((2, 3), 0.5, 2, True, mode)
    out = op.forward(F, ROIS)
    g = RNG.standard_normal(out.shape)
    grad = op.backward(g)
    if mode == "max":
        expected, argmax = cyroi.roi_align(F, ROIS, (2, 3), 0.5, 2, True, mode,
                                           return_argmax=True)
    else:
        expected, argmax = cyroi.roi_align(F, ROIS, (2, 3), 0.5, 2, True, mode), None
    np.testing.assert_array_equal(out, expected)
    np.testing.assert_array_equal(grad, cyroi.roi_align_backward(
        g, ROIS, F.shape, 0.5, 2, True, mode, argmax=argmax))
    assert "RoIAlign(output_size=(2, 3)" in repr(op)


def test_roi_pool_object_nhwc():
    op = cyroi.RoIPool(3, 1.0)
    x = np.ascontiguousarray(F.transpose(0, 2, 3, 1))
    out = op.forward(x, ROIS, layout="NHWC")
    assert out.shape == (2, 3, 3, 3)
    grad = op.backward(np.ones_like(out))
    assert grad.shape == x.shape
    ref_out, argmax = cyroi.roi_pool(F, ROIS, 3, return_argmax=True)
    np.testing.assert_array_equal(out.transpose(0, 3, 1, 2), ref_out)
    np.testing.assert_array_equal(
        grad.transpose(0, 3, 1, 2),
        cyroi.roi_pool_backward(np.ones_like(ref_out), ROIS, argmax, F.shape))


def test_backward_before_forward():
    with pytest.raises(RuntimeError, match="backward called before forward"):
        cyroi.RoIPool(2).backward(np.zeros((1, 1, 2, 2)))
