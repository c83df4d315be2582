"""precise_roi_pool (PrRoI Pooling) against tests/reference.py, known
integrals, and its gradients for features and box coordinates."""
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
# The reference integrates in float64 from the dtype's box geometry; cyroi
# integrates in the dtype, so float32 agrees to float32 rounding.
TOLERANCE = {np.float32: dict(rtol=2e-5, atol=2e-5), np.float64: dict(rtol=1e-11, atol=1e-12)}


@settings(max_examples=150, deadline=None)
@given(problem=roi_problem(), dtype=st.sampled_from(DTYPES), layout=st.sampled_from(LAYOUTS))
def test_matches_reference(problem, dtype, layout):
    features, rois, scale, size = problem
    x, r = features.astype(dtype), rois.astype(dtype)
    expected = reference.precise_roi_pool(x, r, size, scale, dtype=dtype)
    out = cyroi.precise_roi_pool(to_layout(x, layout), r, size, scale, layout=layout)
    assert out.dtype == dtype
    np.testing.assert_allclose(from_layout(out, layout), expected, **TOLERANCE[dtype])

    g = np.random.default_rng(len(rois)).standard_normal(expected.shape).astype(dtype)
    grad, grad_rois = cyroi.precise_roi_pool_backward(to_layout(g, layout), r,
                                                      to_layout(x, layout), scale, layout=layout)
    expected_grad, expected_rois = reference.precise_roi_pool_backward(g, x, r, size, scale,
                                                                       dtype=dtype)
    np.testing.assert_allclose(from_layout(grad, layout), expected_grad, **TOLERANCE[dtype])
    assert np.all(np.abs(grad_rois - expected_rois) <= box_grad_tolerance(x, r, size, scale))


def box_grad_tolerance(x, rois, size, scale):
    """Box gradients sum over channels and bins; and where rounding makes a
    window's length differ from its bin size by an ulp, the edge
    derivatives, ~ mean / bin, move by ~ ulp * mean / bin."""
    eps = float(np.finfo(x.dtype).eps)
    terms = x.shape[1] * size[0] * size[1] * max(1.0, float(np.abs(x).max()))
    bins = np.abs(np.column_stack([(rois[:, 3] - rois[:, 1]) / size[1],
                                   (rois[:, 4] - rois[:, 2]) / size[0]])) * scale
    smallest = np.where(bins > 0, bins, np.inf).min(axis=1, initial=np.inf)
    per_roi = terms * eps * (64 + 16 / np.minimum(1.0, smallest))
    return np.column_stack([np.zeros(len(rois))] + [per_roi] * 4)


@pytest.mark.parametrize("features, message", [
    (np.zeros((1, 1, 0, 4)), "features must have H >= 1"),
    (np.zeros((1, 1, 4)), "features must be 4-D"),
    (np.zeros((1, 1, 4, 4), np.int32), "features must be floating")])
def test_backward_reports_bad_features_as_features(features, message):
    """precise_roi_pool_backward takes features, not input_shape; a map with
    no rows was reported as a bad "input_shape" (found by fuzzing)."""
    with pytest.raises((TypeError, ValueError), match=message):
        cyroi.precise_roi_pool_backward(np.zeros((1, 1, 2, 2)), np.zeros((1, 5)), features)


def test_linear_map_gives_the_bin_centre():
    # f = 2y + 3x + 1 is its own interpolant inside the map: a bin's mean is
    # f at the bin's centre.
    rows, cols = np.mgrid[0:8, 0:9]
    x = (2.0 * rows + 3.0 * cols + 1.0)[None, None]
    box = np.array([[0, 1.0, 2.0, 7.0, 5.0]])  # x1, y1, x2, y2
    out = cyroi.precise_roi_pool(x, box, (3, 2))
    centres_y, centres_x = 2.0 + 0.5 + np.arange(3), 1.0 + 1.5 + 3.0 * np.arange(2)
    expected = 2 * centres_y[:, None] + 3 * centres_x[None, :] + 1
    np.testing.assert_allclose(out[0, 0], expected, rtol=1e-14)


def test_one_cell_hat_integrates_to_one():
    # A 1x1 map of value 5: the interpolant is 5*hat(y)*hat(x), whose
    # integral is 5; over the window [-1, 1]^2 of area 4 the mean is 5/4,
    # over [0, 1]^2 it is 5/4 too (a quarter of the mass on a quarter area).
    x = np.full((1, 1, 1, 1), 5.0)
    out = cyroi.precise_roi_pool(x, np.array([[0, -1, -1, 1, 1], [0, 0, 0, 1, 1]]), 1)
    np.testing.assert_allclose(out.ravel(), [1.25, 1.25], rtol=1e-15)


def test_zero_area_bins_give_zero_and_no_gradient():
    x = np.random.default_rng(1).standard_normal((1, 2, 5, 5))
    rois = np.array([[0, 3, 1, 1, 4], [0, 2, 2, 2, 2]])  # inverted in x; a point
    out = cyroi.precise_roi_pool(x, rois, 2)
    np.testing.assert_array_equal(out, 0)
    grad, grad_rois = cyroi.precise_roi_pool_backward(np.ones_like(out), rois, x)
    np.testing.assert_array_equal(grad, 0)
    np.testing.assert_array_equal(grad_rois, 0)


@pytest.mark.parametrize("dtype", DTYPES)
def test_needle_thin_bins_keep_value_and_gradient(dtype):
    # A window 1e-39 px wide at x = 0 on the map 5*(1-y)(1-x) (a 1x1 map of 5):
    # its mean over y in [0, 0.5] is 5*0.75, dO/dx = -5*0.75 (the slope is
    # -5*0.75 in x; each edge carries half of it), dO/dy at the top edge
    # is (O - L(0))/0.5 = (3.75 - 5)/0.5 and at the bottom (L(0.5) - O)/0.5 = (2.5 - 3.75)/0.5.
    x = np.full((1, 1, 1, 1), 5.0, dtype)
    rois = np.array([[0, 0, 0, 1e-39, 0.5]], dtype)
    out = cyroi.precise_roi_pool(x, rois, 1)
    np.testing.assert_allclose(out.ravel(), [3.75], rtol=1e-6)
    _, grad_rois = cyroi.precise_roi_pool_backward(np.ones_like(out), rois, x)
    np.testing.assert_allclose(grad_rois[0, 1:], [-1.875, -2.5, -1.875, -2.5], rtol=1e-5)


def random_rois(rng, count, height, width):
    x1 = rng.uniform(-2, width + 1, count)
    y1 = rng.uniform(-2, height + 1, count)
    return np.column_stack([rng.integers(0, 2, count), x1, y1,
                            x1 + rng.uniform(0.3, 7, count), y1 + rng.uniform(0.3, 7, count)])


@pytest.mark.parametrize("scale", [1.0, 0.6])
def test_gradients_are_the_derivatives(scale):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 3, 7, 8))
    rois = random_rois(rng, 6, 7, 8) / [1, scale, scale, scale, scale]
    size = (2, 3)
    g = rng.standard_normal((6, 3, *size))
    grad, grad_rois = cyroi.precise_roi_pool_backward(g, rois, x, scale)
    assert grad_rois.shape == (6, 5) and not grad_rois[:, 0].any()
    assert_directional(lambda f: float((cyroi.precise_roi_pool(f, rois, size, scale) * g).sum()),
                       x, grad)

    want = reference.numeric_box_grad(
        lambda r: reference.precise_roi_pool(x, r, size, scale) * g, rois)
    np.testing.assert_allclose(grad_rois[:, 1:], want, rtol=1e-6, atol=1e-6)


def test_gradient_in_the_form_of_the_rois():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 2, 6, 7)).astype(np.float32)
    rois = random_rois(rng, 3, 6, 7).astype(np.float32)
    rois[:, 0] = [0, 1, 1]
    g = rng.standard_normal((3, 2, 2, 2)).astype(np.float32)
    grad, table = cyroi.precise_roi_pool_backward(g, rois, x)
    assert grad.dtype == table.dtype == np.float32
    grad_list, per_image = cyroi.precise_roi_pool_backward(g, [rois[:1, 1:], rois[1:, 1:]], x)
    np.testing.assert_array_equal(grad_list, grad)
    np.testing.assert_array_equal(np.concatenate(per_image), table[:, 1:])
    _, boxes = cyroi.precise_roi_pool_backward(g, rois[:, 1:], x,
                                               batch_indices=np.array([0, 1, 1]))
    np.testing.assert_array_equal(boxes, table[:, 1:])


def test_object_form():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 3, 8, 9))
    rois = random_rois(rng, 4, 8, 9)
    op = cyroi.PreciseRoIPool((2, 3), 0.5)
    out = op.forward(x, rois)
    g = rng.standard_normal(out.shape)
    np.testing.assert_array_equal(out, cyroi.precise_roi_pool(x, rois, (2, 3), 0.5))
    for got, want in zip(op.backward(g), cyroi.precise_roi_pool_backward(g, rois, x, 0.5)):
        np.testing.assert_array_equal(got, want)
    assert repr(op) == "PreciseRoIPool(output_size=(2, 3), spatial_scale=0.5)"


def test_float16_computes_in_float32():
    x = np.random.default_rng(5).standard_normal((1, 2, 6, 6)).astype(np.float16)
    rois = np.array([[0, 0.5, 1, 4.5, 5]])
    out = cyroi.precise_roi_pool(x, rois, 2)
    assert out.dtype == np.float16
    np.testing.assert_array_equal(
        out, cyroi.precise_roi_pool(x.astype(np.float32), rois, 2).astype(np.float16))
