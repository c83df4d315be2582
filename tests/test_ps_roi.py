"""ps_roi_align and ps_roi_pool (R-FCN) against tests/reference.py (bit for
bit: same formulas, same order of operations), known answers, gradients."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import cyroi
import reference
from gradcheck import assert_directional
from strategies import from_layout, roi_problem, to_layout

DTYPES = [np.float32, np.float64]
LAYOUTS = ["NCHW", "NHWC"]


def assert_same(actual, expected):
    np.testing.assert_array_equal(np.asarray(actual, np.float64), expected)


def ps_features(features, size, dtype):
    """Fresh features with C * PH * PW channels, the shape ps ops need."""
    n, c, h, w = features.shape
    rng = np.random.default_rng(n * c * h * w)
    return rng.standard_normal((n, c * size[0] * size[1], h, w)).astype(dtype)


@settings(max_examples=120, deadline=None)
@given(problem=roi_problem(), ratio=st.sampled_from([-1, 1, 2, 3]),
       dtype=st.sampled_from(DTYPES), layout=st.sampled_from(LAYOUTS))
def test_ps_roi_align_matches_reference(problem, ratio, dtype, layout):
    features, rois, scale, size = problem
    x, r = ps_features(features, size, dtype), rois.astype(dtype)
    expected = reference.ps_roi_align(x, r, size, scale, ratio, dtype=dtype)
    out = cyroi.ps_roi_align(to_layout(x, layout), r, size, scale, ratio, layout=layout)
    assert out.dtype == dtype
    assert_same(from_layout(out, layout), expected)

    g = np.random.default_rng(len(rois)).standard_normal(expected.shape).astype(dtype)
    grad = cyroi.ps_roi_align_backward(to_layout(g, layout), r, to_layout(x, layout).shape,
                                       scale, ratio, layout=layout)
    assert_same(from_layout(grad, layout),
                reference.ps_roi_align_backward(g, r, x.shape, size, scale, ratio, dtype=dtype))


@settings(max_examples=120, deadline=None)
@given(problem=roi_problem(), dtype=st.sampled_from(DTYPES), layout=st.sampled_from(LAYOUTS))
def test_ps_roi_pool_matches_reference(problem, dtype, layout):
    features, rois, scale, size = problem
    x, r = ps_features(features, size, dtype), rois.astype(dtype)
    expected = reference.ps_roi_pool(x, r, size, scale, dtype=dtype)
    out = cyroi.ps_roi_pool(to_layout(x, layout), r, size, scale, layout=layout)
    assert out.dtype == dtype
    assert_same(from_layout(out, layout), expected)

    g = np.random.default_rng(len(rois)).standard_normal(expected.shape).astype(dtype)
    grad = cyroi.ps_roi_pool_backward(to_layout(g, layout), r, to_layout(x, layout).shape, scale,
                                      layout=layout)
    assert_same(from_layout(grad, layout),
                reference.ps_roi_pool_backward(g, r, x.shape, size, scale, dtype=dtype))


@settings(max_examples=30, deadline=None)
@given(problem=roi_problem(max_side=6), ratio=st.sampled_from([-1, 2]))
def test_gradients_are_the_derivatives(problem, ratio):
    """Both ops are linear in the features: backward must equal differences
    of the forward (for ps_roi_pool, unlike torchvision's backward, also at
    the last row and column)."""
    features, rois, scale, size = problem
    x = ps_features(features, size, np.float64)
    g = np.random.default_rng(3).standard_normal((len(rois), features.shape[1], *size))
    assert_directional(lambda f: float((cyroi.ps_roi_align(f, rois, size, scale, ratio) * g).sum()),
                       x, cyroi.ps_roi_align_backward(g, rois, x.shape, scale, ratio))
    assert_directional(lambda f: float((cyroi.ps_roi_pool(f, rois, size, scale) * g).sum()),
                       x, cyroi.ps_roi_pool_backward(g, rois, x.shape, scale))


def test_gradients_element_by_element():
    x = np.random.default_rng(8).standard_normal((1, 8, 5, 6))
    rois = np.array([[0, 0.3, 0.6, 5.9, 4.7], [0, -1.2, 2.1, 3.3, 6.5]])
    g = np.random.default_rng(9).standard_normal((2, 2, 2, 2))
    for op, backward in [(cyroi.ps_roi_align, cyroi.ps_roi_align_backward),
                         (cyroi.ps_roi_pool, cyroi.ps_roi_pool_backward)]:
        numeric = reference.numeric_grad(lambda f: float((op(f, rois, 2) * g).sum()), x)
        np.testing.assert_allclose(backward(g, rois, x.shape), numeric, atol=1e-8)


def constant_planes(size, out_channels=2, h=6, w=7):
    """Input channel j holds the value j everywhere."""
    channels = out_channels * size[0] * size[1]
    return np.broadcast_to(np.arange(channels, dtype=np.float64)[None, :, None, None],
                           (1, channels, h, w)).copy()


@pytest.mark.parametrize("op", [cyroi.ps_roi_align, cyroi.ps_roi_pool])
def test_each_bin_reads_its_own_channel(op):
    size = (2, 3)
    out = op(constant_planes(size), np.array([[0, 0.5, 0.5, 5.5, 4.5]]), size)
    expected = np.arange(12, dtype=np.float64).reshape(1, 2, 2, 3)  # (c*PH + ph)*PW + pw
    np.testing.assert_allclose(out, expected, rtol=1e-15)


def test_ps_roi_pool_never_reads_the_last_row_and_column():
    # Bins are clipped to [0, H-1] x [0, W-1] (torchvision's forward): only
    # the last row and column are non-zero, so every bin averages zeros, and
    # the true gradient sends nothing there.
    f = np.zeros((1, 4, 5, 5))
    f[:, :, -1, :] = f[:, :, :, -1] = 1.0
    rois = np.array([[0, 0, 0, 5, 5]])
    np.testing.assert_array_equal(cyroi.ps_roi_pool(f, rois, 2), 0)
    grad = cyroi.ps_roi_pool_backward(np.ones((1, 1, 2, 2)), rois, f.shape)
    assert grad[:, :, -1, :].sum() == 0 and grad[:, :, :, -1].sum() == 0
    # bins [0, 3) and [2, 4) per axis: rw = 5, bin 2.5, the second clipped at 4
    np.testing.assert_allclose(grad[0, 0, :3, :3], 1 / 9)
    np.testing.assert_allclose(grad[0, 3, 2:4, 2:4], 0.25)


def test_empty_sample_grid_gives_zero():
    # A point box with adaptive sampling has no samples (torchvision: 0/0).
    out = cyroi.ps_roi_align(np.ones((1, 4, 5, 5)), np.array([[0, 2, 2, 2, 2]]), 2)
    np.testing.assert_array_equal(out, 0)


@pytest.mark.parametrize("op", [cyroi.ps_roi_align, cyroi.ps_roi_pool])
def test_rois_forms_agree(op):
    x = np.random.default_rng(2).standard_normal((2, 8, 7, 6)).astype(np.float32)
    rois = np.array([[0, 1, 1, 5, 4], [1, 0.5, 2, 6, 6.5], [1, 2, 0, 3, 5]], np.float32)
    expected = op(x, rois, 2, 0.9)
    np.testing.assert_array_equal(op(x, [rois[:1, 1:], rois[1:, 1:]], 2, 0.9), expected)
    np.testing.assert_array_equal(
        op(x, rois[:, 1:], 2, 0.9, batch_indices=np.array([0, 1, 1])), expected)


@pytest.mark.parametrize("op", [cyroi.ps_roi_align, cyroi.ps_roi_pool])
def test_float16_computes_in_float32(op):
    x = np.random.default_rng(4).standard_normal((1, 4, 6, 6))
    rois = np.array([[0, 0.5, 1, 4.5, 5]])
    out = op(x.astype(np.float16), rois, 2)
    assert out.dtype == np.float16
    np.testing.assert_array_equal(out, op(x.astype(np.float16).astype(np.float32), rois,
                                          2).astype(np.float16))


@pytest.mark.parametrize("op", [cyroi.ps_roi_align, cyroi.ps_roi_pool])
def test_channels_not_divisible_by_bins(op):
    with pytest.raises(ValueError, match=r"features must have C divisible by PH\*PW = 4.*C=6"):
        op(np.zeros((1, 6, 4, 4)), np.zeros((1, 5)), 2)


@pytest.mark.parametrize("backward", [cyroi.ps_roi_align_backward, cyroi.ps_roi_pool_backward])
def test_backward_shapes_are_checked(backward):
    with pytest.raises(ValueError, match=r"input_shape must have C divisible by PH\*PW = 4"):
        backward(np.zeros((1, 1, 2, 2)), np.zeros((1, 5)), (1, 6, 4, 4))
    with pytest.raises(ValueError, match=r"grad_output must have shape \(1, 2, 2, 2\)"):
        backward(np.zeros((1, 3, 2, 2)), np.zeros((1, 5)), (1, 8, 4, 4))


@pytest.mark.parametrize("cls, function, backward", [
    (cyroi.PSRoIAlign, cyroi.ps_roi_align, cyroi.ps_roi_align_backward),
    (cyroi.PSRoIPool, cyroi.ps_roi_pool, cyroi.ps_roi_pool_backward)])
def test_object_form(cls, function, backward):
    x = np.random.default_rng(6).standard_normal((2, 9, 7, 6))
    rois = np.array([[0, 1, 1, 5, 4], [1, 0.5, 2, 6, 6.5]])
    op = cls(3, 0.8)
    out = op.forward(x, rois)
    g = np.random.default_rng(7).standard_normal(out.shape)
    np.testing.assert_array_equal(out, function(x, rois, 3, 0.8))
    np.testing.assert_array_equal(op.backward(g), backward(g, rois, x.shape, 0.8))
    assert repr(op).startswith(f"{cls.__name__}(output_size=3, spatial_scale=0.8")
