"""roi_align_rotated against tests/reference.py (bit for bit), its relation
to roi_align, and its gradients for features and box coordinates."""
import pathlib
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import cyroi
import reference
from gradcheck import assert_directional
from strategies import from_layout, roi_problem, to_layout

ROOT = pathlib.Path(__file__).resolve().parent.parent  # imports this tree's cyroi
DTYPES = [np.float32, np.float64]
LAYOUTS = ["NCHW", "NHWC"]
ANGLES = st.one_of(st.sampled_from([0.0, 90.0, -90.0, 180.0, 45.0, -30.0, 360.0]),
                   st.floats(-720, 720, width=32))


def assert_same(actual, expected):
    np.testing.assert_array_equal(np.asarray(actual, np.float64), expected)


@st.composite
def rotated_problem(draw, max_side=9):
    """roi_problem's boxes (inside, across, outside, inverted, points) as
    [batch, cx, cy, w, h, angle]."""
    features, rois, scale, size = draw(roi_problem(max_side))
    b, x1, y1, x2, y2 = rois.T
    angles = [draw(ANGLES) for _ in range(len(rois))]
    rotated = np.column_stack([b, (x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1, angles])
    return features, rotated.reshape(-1, 6), scale, size


@settings(max_examples=150, deadline=None)
@given(problem=rotated_problem(), ratio=st.sampled_from([-1, 1, 2, 3]), aligned=st.booleans(),
       clockwise=st.booleans(), dtype=st.sampled_from(DTYPES), layout=st.sampled_from(LAYOUTS))
def test_matches_reference(problem, ratio, aligned, clockwise, dtype, layout):
    features, rois, scale, size = problem
    x, r = features.astype(dtype), rois.astype(dtype)
    expected = reference.roi_align_rotated(x, r, size, scale, ratio, aligned, clockwise,
                                           dtype=dtype)
    out = cyroi.roi_align_rotated(to_layout(x, layout), r, size, scale, ratio, aligned,
                                  clockwise, layout=layout)
    assert out.dtype == dtype
    assert_same(from_layout(out, layout), expected)

    g = np.random.default_rng(len(rois)).standard_normal(expected.shape).astype(dtype)
    grad = cyroi.roi_align_rotated_backward(to_layout(g, layout), r, to_layout(x, layout).shape,
                                            scale, ratio, aligned, clockwise, layout=layout)
    assert_same(from_layout(grad, layout),
                reference.roi_align_rotated_backward(g, r, x.shape, size, scale, ratio, aligned,
                                                     clockwise, dtype=dtype))


@pytest.mark.parametrize("aligned", [True, False])
@pytest.mark.parametrize("ratio", [-1, 2])
def test_angle_zero_is_roi_align(aligned, ratio):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 3, 11, 13))
    corners = np.array([[0, 1.3, 2.2, 9.7, 8.1], [1, -2.5, 3.5, 6.5, 14.25], [1, 4, 4, 30, 7]])
    b, x1, y1, x2, y2 = corners.T
    rotated = np.column_stack([b, (x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1, 0 * b])
    np.testing.assert_allclose(cyroi.roi_align_rotated(x, rotated, (3, 4), 0.8, ratio, aligned),
                               cyroi.roi_align(x, corners, (3, 4), 0.8, ratio, aligned),
                               rtol=1e-12, atol=1e-12)


def test_half_turn_reverses_the_bins():
    # 180 degrees about the centre: bin (ph, pw) of the turned box reads what
    # bin (PH-1-ph, PW-1-pw) of the upright one reads.
    x = np.random.default_rng(2).standard_normal((1, 2, 10, 12))
    box = np.array([[0, 5.5, 4.75, 6.0, 5.0, 0.0]])
    upright = cyroi.roi_align_rotated(x, box, (2, 3), 1.0, 2)
    turned = cyroi.roi_align_rotated(x, box + [0, 0, 0, 0, 0, 180], (2, 3), 1.0, 2)
    np.testing.assert_allclose(turned, upright[:, :, ::-1, ::-1], atol=1e-6)


def test_clockwise_is_the_negative_angle():
    x = np.random.default_rng(3).standard_normal((1, 2, 9, 9))
    box = np.array([[0, 4.2, 3.9, 5.1, 3.3, 37.5]])
    flipped = box * [1, 1, 1, 1, 1, -1]
    np.testing.assert_array_equal(cyroi.roi_align_rotated(x, box, 3, clockwise=True),
                                  cyroi.roi_align_rotated(x, flipped, 3))


def random_rotated_rois(rng, count, height, width):
    centres = rng.uniform([-1, -1], [width + 1, height + 1], (count, 2))
    sizes = rng.uniform(0.3, 9, (count, 2))
    return np.column_stack([rng.integers(0, 2, count), centres, sizes,
                            rng.uniform(-180, 180, count)])


@pytest.mark.parametrize("aligned", [True, False])
def test_feature_gradient_is_the_derivative(aligned):
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 3, 8, 9))
    rois = random_rotated_rois(rng, 6, 8, 9)
    g = rng.standard_normal((6, 3, 2, 3))
    assert_directional(
        lambda f: float((cyroi.roi_align_rotated(f, rois, (2, 3), 0.7, -1, aligned) * g).sum()),
        x, cyroi.roi_align_rotated_backward(g, rois, x.shape, 0.7, -1, aligned))


@pytest.mark.parametrize("aligned, clockwise, ratio", [(True, False, 2), (False, True, 2),
                                                      (True, True, -1)])
def test_box_gradient_is_the_derivative(aligned, clockwise, ratio):
    """Central differences of the reference forward in (cx, cy, w, h, angle),
    with the sample grid fixed (ratio 2) or adaptive (these boxes keep their
    grid under the small step); random boxes avoid the kinks of the
    bilinear surface (sample coordinates on integers)."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 2, 7, 8))
    rois = random_rotated_rois(rng, 5, 7, 8)
    size = (2, 2)
    g = rng.standard_normal((5, 2, *size))
    grad_x, grad_rois = cyroi.roi_align_rotated_backward(
        g, rois, x.shape, 0.9, ratio, aligned, clockwise, need_rois_grad=True, features=x)
    np.testing.assert_array_equal(
        grad_x, cyroi.roi_align_rotated_backward(g, rois, x.shape, 0.9, ratio, aligned, clockwise))
    assert grad_rois.shape == (5, 6) and not grad_rois[:, 0].any()

    want = reference.numeric_box_grad(
        lambda r: reference.roi_align_rotated(x, r, size, 0.9, ratio, aligned, clockwise) * g,
        rois)
    np.testing.assert_allclose(grad_rois[:, 1:], want, rtol=1e-6, atol=1e-6)


def test_box_gradient_in_the_form_of_the_rois():
    rng = np.random.default_rng(6)
    x = rng.standard_normal((2, 2, 7, 8)).astype(np.float32)
    rois = random_rotated_rois(rng, 3, 7, 8).astype(np.float32)
    rois[:, 0] = [0, 1, 1]
    g = rng.standard_normal((3, 2, 2, 2)).astype(np.float32)
    _, table = cyroi.roi_align_rotated_backward(g, rois, x.shape, need_rois_grad=True, features=x)
    assert table.dtype == np.float32
    _, per_image = cyroi.roi_align_rotated_backward(g, [rois[:1, 1:], rois[1:, 1:]], x.shape,
                                                    need_rois_grad=True, features=x)
    np.testing.assert_array_equal(np.concatenate(per_image), table[:, 1:])
    _, boxes = cyroi.roi_align_rotated_backward(g, rois[:, 1:], x.shape, need_rois_grad=True,
                                                features=x, batch_indices=np.array([0, 1, 1]))
    np.testing.assert_array_equal(boxes, table[:, 1:])
    x_nhwc, g_nhwc = to_layout(x, "NHWC"), to_layout(g, "NHWC")
    _, nhwc = cyroi.roi_align_rotated_backward(g_nhwc, rois, x_nhwc.shape, layout="NHWC",
                                               need_rois_grad=True, features=x_nhwc)
    np.testing.assert_allclose(nhwc, table, rtol=1e-5, atol=1e-6)


def test_box_gradient_needs_the_features():
    with pytest.raises(ValueError, match="needs features="):
        cyroi.roi_align_rotated_backward(np.zeros((1, 1, 2, 2)), np.zeros((1, 6)), (1, 1, 4, 4),
                                         need_rois_grad=True)
    with pytest.raises(ValueError, match="features must have shape input_shape"):
        cyroi.roi_align_rotated_backward(np.zeros((1, 1, 2, 2)), np.zeros((1, 6)), (1, 1, 4, 4),
                                         need_rois_grad=True, features=np.zeros((1, 1, 4, 5)))


def test_rois_forms_and_shape_errors():
    x = np.random.default_rng(7).standard_normal((2, 3, 7, 6)).astype(np.float32)
    rois = np.array([[0, 3, 3, 4, 2, 10], [1, 2, 4, 3, 5, -70], [1, 5, 1, 2, 2, 200]], np.float32)
    expected = cyroi.roi_align_rotated(x, rois, 2, 0.9)
    np.testing.assert_array_equal(cyroi.roi_align_rotated(x, [rois[:1, 1:], rois[1:, 1:]], 2, 0.9),
                                  expected)
    np.testing.assert_array_equal(
        cyroi.roi_align_rotated(x, rois[:, 1:], 2, 0.9, batch_indices=np.array([0, 1, 1])),
        expected)
    with pytest.raises(ValueError, match=r"rois must have shape \(K, 6\)"):
        cyroi.roi_align_rotated(x, rois[:, :5], 2)
    with pytest.raises(ValueError, match=r"rois\[0\] must have shape \(K_0, 5\)"):
        cyroi.roi_align_rotated(x, [rois[:, 1:5]], 2)


def test_float16_computes_in_float32():
    x = np.random.default_rng(8).standard_normal((1, 2, 6, 6)).astype(np.float16)
    rois = np.array([[0, 3, 3, 4, 2.5, 33]])
    out = cyroi.roi_align_rotated(x, rois, 2)
    assert out.dtype == np.float16
    np.testing.assert_array_equal(
        out, cyroi.roi_align_rotated(x.astype(np.float32), rois, 2).astype(np.float16))


def test_object_form():
    rng = np.random.default_rng(9)
    x = rng.standard_normal((2, 3, 8, 9))
    rois = random_rotated_rois(rng, 4, 8, 9)
    op = cyroi.RoIAlignRotated((2, 3), 0.5, 2, aligned=False, clockwise=True)
    out = op.forward(x, rois)
    g = rng.standard_normal(out.shape)
    np.testing.assert_array_equal(out, cyroi.roi_align_rotated(x, rois, (2, 3), 0.5, 2, False,
                                                               True))
    np.testing.assert_array_equal(op.backward(g), cyroi.roi_align_rotated_backward(
        g, rois, x.shape, 0.5, 2, False, True))
    assert repr(op) == ("RoIAlignRotated(output_size=(2, 3), spatial_scale=0.5, sampling_ratio=2, "
                        "aligned=False, clockwise=True)")


# A box 6e7 px wide whose first column of samples lands on the map (float32
# rounds x there to even numbers): the rows' window must not widen with |cx|.
FAR_WIDE = (3e7 - 3e4 + 2.3, 2.7)


@pytest.mark.parametrize("centre, size, angle", [
    ((300.2, -200.6), (1000.0, 900.0), 33.0), ((420.3, -310.7), (1000.0, 900.0), -120.0),
    ((420.3, -310.7), (1000.0, 900.0), 90.0), ((-490.1, 40.3), (1000.0, 900.0), 181.5),
    (FAR_WIDE, (6e7, 900.0), 0.0), (FAR_WIDE, (6e7, 900.0), 1e-6)])
def test_sample_window_misses_no_sample(centre, size, angle):
    """A large box centred off the map, on a 500 x 500 grid per bin: the
    bounded window of candidate samples gives exactly the full grid's sum
    (every sample evaluated here in float32, in the SPEC's order)."""
    T = np.float32
    f = np.random.default_rng(10).standard_normal((1, 1, 6, 7)).astype(T)
    box = np.array([[0, *centre, *size, angle]], T)
    out = cyroi.roi_align_rotated(f, box, 2, 1.0, 500, aligned=True)
    assert out.any()
    theta = T(box[0, 5]) * T(np.pi) / T(180)
    cos, sin = T(np.cos(np.float64(theta))), T(np.sin(np.float64(theta)))
    cx, cy = box[0, 1] - T(0.5), box[0, 2] - T(0.5)
    bw, bh = box[0, 3] / T(2), box[0, 4] / T(2)
    index = (np.arange(500, dtype=T) + T(0.5))
    for ph in range(2):
        yy = (-box[0, 4] / T(2) + T(ph) * bh) + (index * bh) / T(500)
        for pw in range(2):
            xx = (-box[0, 3] / T(2) + T(pw) * bw) + (index * bw) / T(500)
            y = (yy[:, None] * cos - xx[None, :] * sin) + cy
            x = (yy[:, None] * sin + xx[None, :] * cos) + cx
            acc = T(0)
            for i, j in zip(*np.nonzero((y >= -1) & (y <= 6) & (x >= -1) & (x <= 7))):
                acc = acc + T(reference.bilinear(f[0, 0], y[i, j], x[i, j], T))
            assert out[0, 0, ph, pw] == acc / T(250000)


HUGE_UPRIGHT_BOX = """
import numpy as np
import cyroi
x = np.ones((1, 1, 6, 4), np.float32)
box = np.array([[0, 1.5e38, 4.6e18, 3e38, 9.2e18, 0.0]], np.float32)
out = cyroi.roi_align_rotated(x, box, (3, 2), 1.0, -1, False)
grad = cyroi.roi_align_rotated_backward(np.ones_like(out), box, x.shape, 1.0, -1, False)
assert np.isfinite(out).all() and np.isfinite(grad).all()
"""


def test_upright_box_centred_far_off_the_map_finishes():
    """An upright float32 box of 3e38 x 9.2e18 px centred at x = 1.5e38 (a
    valid box: finite): the rounding slack of |cx| once widened the window of
    rows too, to the whole 2^31 x 2^31 adaptive grid (hours; found by
    fuzzing). In a subprocess, so that a hang fails instead of blocking."""
    result = subprocess.run([sys.executable, "-c", HUGE_UPRIGHT_BOX], cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
