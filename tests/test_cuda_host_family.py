"""The CUDA kernels of ps_roi_align, ps_roi_pool, roi_align_rotated,
precise_roi_pool, multiscale_roi_align and the box-coordinate gradients run
on the host (the g++ build of
test_cuda_host.py) through cyroi._cuda's drivers, against tests/reference.py:
forward and atomic backward bit for bit where the reference is (one thread
adds in its order), precise_roi_pool within the tolerance its CPU tests use,
the fixed-point deterministic backward within its resolution, box gradients
as their CPU tests check them."""
import contextlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import reference
from cyroi import _cuda
from strategies import from_layout, roi_problem, to_layout
from test_cuda_host import (HOST_DTYPES, fixed_point_tolerance, host_kernels,  # noqa: F401
                            on_host, split_rois)
from test_multiscale_roi_align import pyramid_problem
from test_precise_roi_pool import TOLERANCE as PRECISE_TOLERANCE
from test_precise_roi_pool import box_grad_tolerance as precise_box_grad_tolerance
from test_ps_roi import ps_features
from test_roi_align_box_grad import box_grad_case
from test_roi_align_rotated import random_rotated_rois, rotated_problem

LAYOUTS = ["NCHW", "NHWC"]


def check_backward(run, g, want, layout, bins, tolerance=None):
    """run(deterministic) in both modes against the reference's gradient:
    atomic bit for bit (or within `tolerance`), fixed point within its unit."""
    for deterministic in (False, True):
        grad = from_layout(run(deterministic), layout)
        assert grad.dtype == g.dtype and grad.shape == want.shape
        if deterministic:
            atol = fixed_point_tolerance(g, bins) + (tolerance or {}).get("atol", 0)
            np.testing.assert_allclose(grad, want, rtol=(tolerance or {}).get("rtol", 0),
                                       atol=atol)
        elif tolerance:
            np.testing.assert_allclose(grad, want, **tolerance)
        else:
            np.testing.assert_array_equal(grad, want)


@settings(max_examples=80, deadline=None)
@given(problem=roi_problem(), ratio=st.sampled_from([-1, 1, 2, 3]),
       dtype=st.sampled_from(HOST_DTYPES), layout=st.sampled_from(LAYOUTS))
def test_ps_roi_align_kernels_match_the_reference(on_host, problem, ratio, dtype, layout):
    features, rois, scale, size = problem
    x, r = ps_features(features, size, dtype), rois.astype(dtype)
    boxes, batch = split_rois(r, dtype)
    expected = reference.ps_roi_align(x, r, size, scale, ratio, dtype=dtype)
    out = on_host.ps_roi_align_forward(to_layout(x, layout), boxes, batch, size, scale, ratio,
                                       layout)
    assert out.dtype == dtype
    np.testing.assert_array_equal(from_layout(out, layout), expected)

    g = np.random.default_rng(len(rois)).standard_normal(expected.shape).astype(dtype)
    want = reference.ps_roi_align_backward(g, r, x.shape, size, scale, ratio, dtype=dtype)
    check_backward(lambda deterministic: on_host.ps_roi_align_backward(
        to_layout(g, layout), boxes, batch, x.shape, scale, ratio, layout, deterministic),
        g, want, layout, len(r) * size[0] * size[1])


@settings(max_examples=80, deadline=None)
@given(problem=roi_problem(), dtype=st.sampled_from(HOST_DTYPES),
       layout=st.sampled_from(LAYOUTS))
def test_ps_roi_pool_kernels_match_the_reference(on_host, problem, dtype, layout):
    features, rois, scale, size = problem
    x, r = ps_features(features, size, dtype), rois.astype(dtype)
    boxes, batch = split_rois(r, dtype)
    expected = reference.ps_roi_pool(x, r, size, scale, dtype=dtype)
    out = on_host.ps_roi_pool_forward(to_layout(x, layout), boxes, batch, size, scale, layout)
    assert out.dtype == dtype
    np.testing.assert_array_equal(from_layout(out, layout), expected)

    g = np.random.default_rng(len(rois)).standard_normal(expected.shape).astype(dtype)
    want = reference.ps_roi_pool_backward(g, r, x.shape, size, scale, dtype=dtype)
    check_backward(lambda deterministic: on_host.ps_roi_pool_backward(
        to_layout(g, layout), boxes, batch, x.shape, scale, layout, deterministic),
        g, want, layout, len(r) * size[0] * size[1])


@settings(max_examples=80, deadline=None)
@given(problem=rotated_problem(), ratio=st.sampled_from([-1, 1, 2, 3]), aligned=st.booleans(),
       clockwise=st.booleans(), dtype=st.sampled_from(HOST_DTYPES),
       layout=st.sampled_from(LAYOUTS))
def test_roi_align_rotated_kernels_match_the_reference(on_host, problem, ratio, aligned,
                                                       clockwise, dtype, layout):
    features, rois, scale, size = problem
    x, r = features.astype(dtype), rois.astype(dtype)
    boxes, batch = split_rois(r, dtype)
    expected = reference.roi_align_rotated(x, r, size, scale, ratio, aligned, clockwise,
                                           dtype=dtype)
    out = on_host.roi_align_rotated_forward(to_layout(x, layout), boxes, batch, size, scale,
                                            ratio, aligned, clockwise, layout)
    assert out.dtype == dtype
    np.testing.assert_array_equal(from_layout(out, layout), expected)

    g = np.random.default_rng(len(rois)).standard_normal(expected.shape).astype(dtype)
    want = reference.roi_align_rotated_backward(g, r, x.shape, size, scale, ratio, aligned,
                                                clockwise, dtype=dtype)
    check_backward(lambda deterministic: on_host.roi_align_rotated_backward(
        to_layout(g, layout), boxes, batch, x.shape, scale, ratio, aligned, clockwise, layout,
        deterministic), g, want, layout, len(r) * size[0] * size[1])


@settings(max_examples=80, deadline=None)
@given(problem=roi_problem(), dtype=st.sampled_from(HOST_DTYPES),
       layout=st.sampled_from(LAYOUTS))
def test_precise_roi_pool_kernels_match_the_reference(on_host, problem, dtype, layout):
    features, rois, scale, size = problem
    x, r = features.astype(dtype), rois.astype(dtype)
    boxes, batch = split_rois(r, dtype)
    tolerance = PRECISE_TOLERANCE[np.dtype(dtype).type]
    expected = reference.precise_roi_pool(x, r, size, scale, dtype=dtype)
    out = on_host.precise_roi_pool_forward(to_layout(x, layout), boxes, batch, size, scale,
                                           layout)
    assert out.dtype == dtype
    np.testing.assert_allclose(from_layout(out, layout), expected, **tolerance)

    g = np.random.default_rng(len(rois)).standard_normal(expected.shape).astype(dtype)
    want, _ = reference.precise_roi_pool_backward(g, x, r, size, scale, dtype=dtype)
    check_backward(lambda deterministic: on_host.precise_roi_pool_backward(
        to_layout(g, layout), boxes, batch, x.shape, scale, layout, deterministic),
        g, want, layout, len(r) * size[0] * size[1], tolerance)


@settings(max_examples=60, deadline=None)
@given(problem=pyramid_problem(), ratio=st.sampled_from([-1, 1, 2]), aligned=st.booleans(),
       dtype=st.sampled_from(HOST_DTYPES), layout=st.sampled_from(LAYOUTS))
def test_multiscale_roi_align_kernels_match_the_reference(on_host, problem, ratio, aligned,
                                                          dtype, layout):
    features, rois, scales, size = problem
    xs, r = [f.astype(dtype) for f in features], rois.astype(dtype)
    boxes, batch = split_rois(r, dtype)
    levels = (int(round(-np.log2(scales[0]))), int(round(-np.log2(scales[-1]))))
    fpn = (224.0, 4.0)
    expected = reference.multiscale_roi_align(xs, r, size, scales, ratio, aligned, *fpn,
                                              dtype=dtype)
    out = on_host.multiscale_roi_align_forward([to_layout(x, layout) for x in xs], boxes, batch,
                                               size, scales, levels, ratio, aligned, *fpn,
                                               layout)
    assert out.dtype == dtype
    np.testing.assert_array_equal(from_layout(out, layout), expected)

    g = np.random.default_rng(len(rois)).standard_normal(expected.shape).astype(dtype)
    wants = reference.multiscale_roi_align_backward(g, r, [x.shape for x in xs], size, scales,
                                                    ratio, aligned, *fpn, dtype=dtype)
    for i, want in enumerate(wants):
        check_backward(lambda deterministic: on_host.multiscale_roi_align_backward(
            to_layout(g, layout), boxes, batch, [x.shape for x in xs], scales, levels, ratio,
            aligned, *fpn, layout, deterministic)[i], g, want, layout,
            len(r) * size[0] * size[1])


@pytest.mark.parametrize("dtype", HOST_DTYPES)
@pytest.mark.parametrize("deterministic", [False, True])
def test_multiscale_roi_align_pools_every_level_in_one_launch(on_host, host_kernels, monkeypatch,
                                                             dtype, deterministic):
    rng = np.random.default_rng(1)
    scales = [1 / 4, 1 / 8, 1 / 16, 1 / 32]
    xs = [rng.standard_normal((2, 3, 64 // 2**i, 64 // 2**i)).astype(dtype) for i in range(4)]
    r = np.array([[1, 10, 10, 250, 240], [0, 5, 5, 20, 30], [1, 3, 4, 503, 504],
                  [0, 30, 40, 150, 160]], dtype)
    assert reference.fpn_levels(r, scales).tolist() == [2, 0, 3, 1]
    boxes, batch = split_rois(r, dtype)
    size, args = (2, 3), ((2, 5), 2, False, 224.0, 4.0, "NCHW")
    launched = []

    @contextlib.contextmanager
    def on_device(array):
        def launch(kernel, total, *kernel_args):
            launched.append(kernel)
            host_kernels.launch(array.dtype.name, kernel, total, *kernel_args)
        yield launch

    monkeypatch.setattr(_cuda, "_on_device", on_device)
    out = _cuda.multiscale_roi_align_forward(xs, boxes, batch, size, scales, *args)
    assert launched == ["multiscale_roi_align_forward"]
    np.testing.assert_array_equal(out, reference.multiscale_roi_align(xs, r, size, scales, 2,
                                                                      dtype=dtype))
    g = rng.standard_normal(out.shape).astype(dtype)
    launched.clear()
    grads = _cuda.multiscale_roi_align_backward(g, boxes, batch, [x.shape for x in xs], scales,
                                                *args, deterministic)
    assert launched.count("multiscale_roi_align_backward") == 1
    wants = reference.multiscale_roi_align_backward(g, r, [x.shape for x in xs], size, scales,
                                                    2, dtype=dtype)
    for grad, want in zip(grads, wants):
        assert np.abs(want).sum() > 0
        np.testing.assert_allclose(grad, want, rtol=0,
                                   atol=fixed_point_tolerance(g, len(r) * 6) if deterministic
                                   else 0)


def test_rois_of_missing_images_read_and_write_nothing(on_host):
    """validate=False lets batch indices outside [0, N) through: zeros out, no
    gradient, no access outside the arrays."""
    x = np.random.default_rng(4).standard_normal((2, 8, 5, 5))
    boxes = np.array([[0, 0, 4, 4]] * 3, np.float64)
    rotated = np.array([[2, 2, 4, 4, 30]] * 3, np.float64)
    batch = np.array([-1, 2, 1 << 40], np.int64)
    size = (2, 2)
    pyramid, scales, fpn = [x, x[:, :, ::2, ::2]], [1.0, 0.5], ((0, 1), -1, True, 224.0, 4.0)
    runs = [
        (lambda: on_host.ps_roi_align_forward(x, boxes, batch, size, 1.0, -1, "NCHW"),
         lambda g: on_host.ps_roi_align_backward(g, boxes, batch, x.shape, 1.0, -1, "NCHW")),
        (lambda: on_host.ps_roi_pool_forward(x, boxes, batch, size, 1.0, "NCHW"),
         lambda g: on_host.ps_roi_pool_backward(g, boxes, batch, x.shape, 1.0, "NCHW")),
        (lambda: on_host.roi_align_rotated_forward(x, rotated, batch, size, 1.0, -1, True, False,
                                                   "NCHW"),
         lambda g: on_host.roi_align_rotated_backward(g, rotated, batch, x.shape, 1.0, -1, True,
                                                      False, "NCHW")),
        (lambda: on_host.precise_roi_pool_forward(x, boxes, batch, size, 1.0, "NCHW"),
         lambda g: on_host.precise_roi_pool_backward(g, boxes, batch, x.shape, 1.0, "NCHW")),
        (lambda: on_host.multiscale_roi_align_forward(pyramid, boxes, batch, size, scales, *fpn,
                                                      "NCHW"),
         lambda g: np.concatenate([grad.ravel() for grad in on_host.multiscale_roi_align_backward(
             g, boxes, batch, [f.shape for f in pyramid], scales, *fpn, "NCHW")])),
    ]
    for forward, backward in runs:
        out = forward()
        assert out.shape[0] == 3 and not out.any()
        assert not backward(np.ones_like(out)).any()


@settings(max_examples=60, deadline=None)
@given(problem=roi_problem(), dtype=st.sampled_from(HOST_DTYPES),
       layout=st.sampled_from(LAYOUTS))
def test_precise_roi_pool_box_gradient_matches_the_reference(on_host, problem, dtype, layout):
    features, rois, scale, size = problem
    x, r = features.astype(dtype), rois.astype(dtype)
    boxes, batch = split_rois(r, dtype)
    g = np.random.default_rng(len(rois)).standard_normal((len(r), x.shape[1], *size))
    g = g.astype(dtype)
    grad_boxes = on_host.precise_roi_pool_rois_grad(to_layout(g, layout), to_layout(x, layout),
                                                    boxes, batch, scale, layout)
    assert grad_boxes.dtype == dtype and grad_boxes.shape == boxes.shape
    _, want = reference.precise_roi_pool_backward(g, x, r, size, scale, dtype=dtype)
    assert np.all(np.abs(grad_boxes - want[:, 1:])
                  <= precise_box_grad_tolerance(x, r, size, scale)[:, 1:])


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("aligned, ratio, scale", [(True, 2, 1.0), (False, -1, 0.5),
                                                   (False, 2, 1.0)])
def test_roi_align_box_gradient_is_the_derivative(on_host, layout, aligned, ratio, scale):
    """Central differences of the reference forward, as tests/test_roi_align_box_grad.py."""
    x, rois, g, want = box_grad_case(aligned, ratio, scale)
    boxes, batch = split_rois(rois, np.float64)
    grad_boxes = on_host.roi_align_rois_grad(to_layout(g, layout), to_layout(x, layout), boxes,
                                             batch, scale, ratio, aligned, layout)
    np.testing.assert_allclose(grad_boxes, want, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("aligned, clockwise, ratio", [(True, False, 2), (False, True, 2),
                                                      (True, True, -1)])
def test_roi_align_rotated_box_gradient_is_the_derivative(on_host, layout, aligned, clockwise,
                                                          ratio):
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 2, 7, 8))
    rois = random_rotated_rois(rng, 5, 7, 8)
    size = (2, 2)
    g = rng.standard_normal((5, 2, *size))
    boxes, batch = split_rois(rois, np.float64)
    grad_boxes = on_host.roi_align_rotated_rois_grad(to_layout(g, layout), to_layout(x, layout),
                                                     boxes, batch, 0.9, ratio, aligned,
                                                     clockwise, layout)

    want = reference.numeric_box_grad(
        lambda r: reference.roi_align_rotated(x, r, size, 0.9, ratio, aligned, clockwise) * g,
        rois)
    np.testing.assert_allclose(grad_boxes, want, rtol=1e-6, atol=1e-6)
