"""multiscale_roi_align (FPN) against tests/reference.py (bit for bit), FPN
level assignment by known answers, and the gradients of every level."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import cyroi
import reference
from gradcheck import assert_directional
from strategies import from_layout, to_layout

DTYPES = [np.float32, np.float64]
LAYOUTS = ["NCHW", "NHWC"]
SCALES = [1 / 4, 1 / 8, 1 / 16, 1 / 32]


def assert_same(actual, expected):
    np.testing.assert_array_equal(np.asarray(actual, np.float64), expected)


@st.composite
def pyramid_problem(draw):
    """A 2-4 level pyramid over an image of up to 256 px, and boxes from a
    few px to far beyond the image (every level gets some), inverted ones
    and points included."""
    levels = draw(st.integers(2, 4))
    first = draw(st.integers(0, 4 - levels))
    scales = SCALES[first:first + levels]
    n, c = draw(st.integers(1, 2)), draw(st.integers(1, 3))
    height, width = draw(st.integers(8, 256)), draw(st.integers(8, 256))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    features = [rng.standard_normal((n, c, max(1, int(height * s)), max(1, int(width * s))))
                for s in scales]
    k = draw(st.integers(0, 8))
    corners = rng.uniform(-50, max(height, width) + 50, (k, 2))
    sizes = np.exp(rng.uniform(np.log(2), np.log(1500), (k, 2)))
    sizes *= rng.choice([1, 1, 1, -1, 0], (k, 1))  # some inverted, some points
    rois = np.column_stack([rng.integers(0, n, k), corners, corners + sizes])
    size = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    return features, rois.reshape(-1, 5), scales, size


@settings(max_examples=120, deadline=None)
@given(problem=pyramid_problem(), ratio=st.sampled_from([-1, 1, 2]), aligned=st.booleans(),
       dtype=st.sampled_from(DTYPES), layout=st.sampled_from(LAYOUTS))
def test_matches_reference(problem, ratio, aligned, dtype, layout):
    features, rois, scales, size = problem
    xs, r = [f.astype(dtype) for f in features], rois.astype(dtype)
    expected = reference.multiscale_roi_align(xs, r, size, scales, ratio, aligned, dtype=dtype)
    out = cyroi.multiscale_roi_align([to_layout(x, layout) for x in xs], r, size, scales, ratio,
                                     aligned, layout=layout)
    assert out.dtype == dtype
    assert_same(from_layout(out, layout), expected)

    g = np.random.default_rng(len(rois)).standard_normal(expected.shape).astype(dtype)
    shapes = [to_layout(x, layout).shape for x in xs]
    grads = cyroi.multiscale_roi_align_backward(to_layout(g, layout), r, shapes, scales, ratio,
                                                aligned, layout=layout)
    expected_grads = reference.multiscale_roi_align_backward(
        g, r, [x.shape for x in xs], size, scales, ratio, aligned, dtype=dtype)
    assert len(grads) == len(xs)
    for grad, want in zip(grads, expected_grads):
        assert_same(from_layout(grad, layout), want)


def level_pyramid(n=1, c=2):
    """Level i is the constant i + 1, so a bin's value names its level."""
    return [np.full((n, c, 256 // (4 * 2**i), 256 // (4 * 2**i)), i + 1.0) for i in range(4)]


@pytest.mark.parametrize("side, level", [
    (224, 4), (112, 3), (111.9, 2), (448, 5), (10, 2), (5000, 5), (224 * (1 - 5e-7), 4),
    (224 * (1 - 2e-6), 3)])
def test_fpn_level_assignment(side, level):
    # k = floor(4 + log2(side / 224) + 1e-6) clamped to [2, 5]: the 1e-6
    # keeps a box a hair under 224 px on level 4. One sample at the box
    # centre (the image centre) reads the constant of the box's level.
    box = np.array([[0, 128 - side / 2, 128 - side / 2, 128 + side / 2, 128 + side / 2]])
    out = cyroi.multiscale_roi_align(level_pyramid(), box, 1, SCALES, 1, aligned=True)
    assert out[0, 0, 0, 0] == pytest.approx(level - 2 + 1, rel=1e-12)


def test_canonical_parameters_move_the_levels():
    box = np.array([[0, 72, 72, 184, 184]])  # 112 px: level 3 by default
    default = cyroi.multiscale_roi_align(level_pyramid(), box, 1, SCALES, 1, aligned=True)
    moved = cyroi.multiscale_roi_align(level_pyramid(), box, 1, SCALES, 1, aligned=True,
                                       canonical_scale=112, canonical_level=5)
    assert default[0, 0, 0, 0] == 2.0 and moved[0, 0, 0, 0] == 4.0


def test_output_in_input_order_and_equal_to_roi_align_per_level():
    rng = np.random.default_rng(1)
    features = [rng.standard_normal((2, 3, 64 // 2**i, 64 // 2**i)) for i in range(4)]
    rois = np.array([[1, 10, 10, 250, 240], [0, 5, 5, 20, 30], [1, 3, 4, 503, 504],
                     [0, 30, 40, 150, 160]], np.float64)
    out = cyroi.multiscale_roi_align(features, rois, (2, 3), SCALES)
    levels = reference.fpn_levels(rois, SCALES)
    assert levels.tolist() == [2, 0, 3, 1]
    for k, level in enumerate(levels):
        np.testing.assert_array_equal(
            out[k], cyroi.roi_align(features[level], rois[k:k + 1], (2, 3), SCALES[level], 2)[0])


def test_backward_fills_every_level_and_is_the_derivative():
    rng = np.random.default_rng(2)
    features = [rng.standard_normal((2, 2, 256 // 2**i, 288 // 2**i)) for i in range(4)]
    sides = np.array([20, 60, 150, 400, 30, 800])
    corners = rng.uniform(0, 100, (6, 2))
    rois = np.column_stack([[0, 1, 0, 1, 1, 0], corners, corners + sides[:, None]])
    g = rng.standard_normal((6, 2, 2, 2))
    grads = cyroi.multiscale_roi_align_backward(g, rois, [f.shape for f in features], SCALES,
                                                aligned=True)
    assert all(np.abs(grad).sum() > 0 for grad in grads)
    for level in range(4):
        def loss(x, level=level):
            pyramid = list(features)
            pyramid[level] = x
            out = cyroi.multiscale_roi_align(pyramid, rois, 2, SCALES, aligned=True)
            return float((out * g).sum())
        assert_directional(loss, features[level], grads[level], seed=level)


def test_rois_forms_and_object_form():
    rng = np.random.default_rng(3)
    features = [rng.standard_normal((2, 3, 32 // 2**i, 32 // 2**i)).astype(np.float32)
                for i in range(3)]
    scales = SCALES[:3]
    rois = np.array([[0, 1, 1, 60, 50], [1, 10, 20, 120, 110], [1, 5, 5, 15, 12]], np.float32)
    expected = cyroi.multiscale_roi_align(features, rois, 2, scales)
    np.testing.assert_array_equal(
        cyroi.multiscale_roi_align(features, [rois[:1, 1:], rois[1:, 1:]], 2, scales), expected)
    np.testing.assert_array_equal(
        cyroi.multiscale_roi_align(features, rois[:, 1:], 2, scales,
                                   batch_indices=np.array([0, 1, 1])), expected)
    op = cyroi.MultiScaleRoIAlign(2, scales)
    np.testing.assert_array_equal(op.forward(features, rois), expected)
    g = rng.standard_normal(expected.shape).astype(np.float32)
    for got, want in zip(op.backward(g), cyroi.multiscale_roi_align_backward(
            g, rois, [f.shape for f in features], scales)):
        np.testing.assert_array_equal(got, want)
    assert repr(op).startswith("MultiScaleRoIAlign(output_size=2, spatial_scales=[0.25,")


def test_bad_pyramids():
    f = [np.zeros((1, 2, 16, 16)), np.zeros((1, 2, 8, 8))]
    rois = np.zeros((1, 5))
    with pytest.raises(ValueError, match="spatial_scales must halve"):
        cyroi.multiscale_roi_align(f, rois, 2, [1 / 4, 1 / 16])
    with pytest.raises(ValueError, match=r"spatial_scales must have one scale per level \(2\)"):
        cyroi.multiscale_roi_align(f, rois, 2, [1 / 4])
    with pytest.raises(ValueError, match=r"features_list\[1\] must have the N, C and dtype"):
        cyroi.multiscale_roi_align([f[0], np.zeros((1, 3, 8, 8))], rois, 2, [1 / 4, 1 / 8])
    with pytest.raises(ValueError, match=r"features_list\[1\] must be 4-D"):
        cyroi.multiscale_roi_align([f[0], np.zeros((2, 8, 8))], rois, 2, [1 / 4, 1 / 8])
    with pytest.raises(TypeError, match="features_list must be a non-empty list"):
        cyroi.multiscale_roi_align([], rois, 2, [])
    with pytest.raises(ValueError, match="canonical_scale must be > 0"):
        cyroi.multiscale_roi_align(f, rois, 2, [1 / 4, 1 / 8], canonical_scale=0)
    with pytest.raises(ValueError, match="input_shapes must share N and C"):
        cyroi.multiscale_roi_align_backward(np.zeros((1, 2, 2, 2)), rois,
                                            [(1, 2, 16, 16), (1, 3, 8, 8)], [1 / 4, 1 / 8])
