"""Known answers from SPEC.md and the issue, independent of any oracle."""
import numpy as np
import pytest

import cyroi


def arange_map(dtype=np.float32):
    return np.arange(16, dtype=dtype).reshape(1, 1, 4, 4)


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_roi_pool_spec_example(dtype):
    rois = np.array([[0, 0, 0, 2, 2], [0, 0, 1, 3, 3]], dtype=np.float32)
    out, argmax = cyroi.roi_pool(arange_map(dtype), rois, 2, 1.0, return_argmax=True)
    assert out.dtype == dtype
    np.testing.assert_array_equal(out[:, 0], [[[5, 6], [9, 10]], [[9, 11], [13, 15]]])
    np.testing.assert_array_equal(argmax[:, 0], [[[5, 6], [9, 10]], [[9, 11], [13, 15]]])
    assert argmax.dtype == np.int32  # torchvision's


def seven_by_seven():
    f = np.zeros((1, 1, 7, 7), np.float32)
    f[0, 0, 0] = [0.5663671, 0.2577112, 0.20066682, 0.0127351, 0.07388048, 0.38410962,
                  0.2822853]
    f[0, 0, 1, 0], f[0, 0, 1, 6] = 0.3358975, 0.07561569
    f[0, 0, 2, 0], f[0, 0, 2, 6] = 0.23596162, 0.04612046
    f[0, 0, 5, 5], f[0, 0, 6, 5] = 0.18630868, 0.00289604
    return f


@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
def test_roi_align_worked_example(layout):
    f = seven_by_seven()
    if layout == "NHWC":
        f = np.ascontiguousarray(f.transpose(0, 2, 3, 1))
    roi = np.array([[0, 2.2821481, 0.3001726, 4.5996323, 5.5888910]], np.float32)
    out = cyroi.roi_align(f, roi, 2, 1.0, -1, False, layout=layout)
    assert out.shape == ((1, 1, 2, 2) if layout == "NCHW" else (1, 2, 2, 1))
    assert 0.004973 <= float(out[0, 0, 0, 0]) < 0.004974  # the 0.004973...


def test_roi_pool_backward_adds_at_argmax():
    rois = np.array([[0, 0, 0, 2, 2], [0, 0, 1, 3, 3]], np.float64)
    out, argmax = cyroi.roi_pool(arange_map(np.float64), rois, 2, return_argmax=True)
    grad = cyroi.roi_pool_backward(np.ones_like(out), rois, argmax, (1, 1, 4, 4))
    expected = np.zeros(16)
    for index in [5, 6, 9, 10, 9, 11, 13, 15]:
        expected[index] += 1
    np.testing.assert_array_equal(grad.reshape(-1), expected)


def test_roi_align_single_sample_is_bilinear():
    # One sample per bin at the bin centre: a 1x1 output of the box
    # [0.5, 0.5, 1.5, 1.5] (aligned=False) samples (1.0, 1.0) exactly.
    f = np.arange(9, dtype=np.float64).reshape(1, 1, 3, 3)
    out = cyroi.roi_align(f, np.array([[0, 0.5, 0.5, 1.5, 1.5]]), 1, 1.0, 1, False)
    assert out[0, 0, 0, 0] == 4.0
    # sample at (0.75, 1.25): bilinear of rows 0/1, cols 1/2
    out = cyroi.roi_align(f, np.array([[0, 0.75, 0.25, 1.75, 1.25]]), 1, 1.0, 1, False)
    assert out[0, 0, 0, 0] == pytest.approx(0.75 * 3 + 1.25)


def test_empty_roi_pool_bin_is_zero_with_argmax_minus_one():
    f = np.ones((1, 1, 4, 4), np.float32)
    out, argmax = cyroi.roi_pool(f, np.array([[0, 10, 10, 12, 12]], np.float32), 2,
                                 return_argmax=True)
    np.testing.assert_array_equal(out, 0)
    np.testing.assert_array_equal(argmax, -1)


@pytest.mark.parametrize("op", ["roi_pool", "roi_align"])
def test_zero_rois_give_empty_output(op):
    f = np.ones((2, 3, 5, 5), np.float32)
    out = getattr(cyroi, op)(f, np.zeros((0, 5), np.float32), (2, 3))
    assert out.shape == (0, 3, 2, 3) and out.dtype == np.float32
    out = getattr(cyroi, op)(f, np.zeros((0, 5)), (2, 3), layout="NCHW")
    assert out.shape == (0, 3, 2, 3)
