"""ps_roi_align, ps_roi_pool, roi_align_rotated, precise_roi_pool and
multiscale_roi_align on a real GPU: CuPy arrays through the public API
against tests/reference.py, forward and backward, both layouts, atomic and
deterministic backward (the latter reproducible bit for bit), and the
gradients for box coordinates. Skipped where
CuPy sees no CUDA device."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import cyroi
import reference
from strategies import from_layout, roi_problem, to_layout
from test_cuda_gpu import LAYOUTS, TOLERANCE, cupy, pytestmark  # noqa: F401
from test_multiscale_roi_align import pyramid_problem
from test_precise_roi_pool import box_grad_tolerance as precise_box_grad_tolerance
from test_ps_roi import ps_features
from test_roi_align_box_grad import random_rois
from test_roi_align_rotated import random_rotated_rois, rotated_problem

DTYPES = [np.float32, np.float64]
# precise_roi_pool's float32 reference already differs from the CPU by this.
PRECISE_TOLERANCE = {np.float32: dict(rtol=5e-5, atol=5e-5),
                     np.float64: dict(rtol=1e-11, atol=1e-12)}


def on_gpu(array, layout):
    return cupy.asarray(to_layout(array, layout))


def check(actual, expected, layout, tolerance):
    assert isinstance(actual, cupy.ndarray)
    np.testing.assert_allclose(from_layout(actual.get(), layout), expected, **tolerance)


@settings(max_examples=40, deadline=None)
@given(problem=roi_problem(), ratio=st.sampled_from([-1, 1, 2]), dtype=st.sampled_from(DTYPES),
       layout=st.sampled_from(LAYOUTS), deterministic=st.booleans())
def test_ps_roi_align_on_cupy(problem, ratio, dtype, layout, deterministic):
    features, rois, scale, size = problem
    x, r = ps_features(features, size, dtype), rois.astype(dtype)
    expected = reference.ps_roi_align(x, r, size, scale, ratio, dtype=dtype)
    out = cyroi.ps_roi_align(on_gpu(x, layout), cupy.asarray(r), size, scale, ratio,
                             layout=layout)
    assert out.dtype == dtype
    check(out, expected, layout, TOLERANCE[dtype])
    g = np.random.default_rng(len(rois)).standard_normal(expected.shape).astype(dtype)
    grad = cyroi.ps_roi_align_backward(on_gpu(g, layout), cupy.asarray(r),
                                       to_layout(x, layout).shape, scale, ratio, layout=layout,
                                       deterministic=deterministic)
    check(grad, reference.ps_roi_align_backward(g, r, x.shape, size, scale, ratio, dtype=dtype),
          layout, TOLERANCE[dtype])


@settings(max_examples=40, deadline=None)
@given(problem=roi_problem(), dtype=st.sampled_from(DTYPES), layout=st.sampled_from(LAYOUTS),
       deterministic=st.booleans())
def test_ps_roi_pool_on_cupy(problem, dtype, layout, deterministic):
    features, rois, scale, size = problem
    x, r = ps_features(features, size, dtype), rois.astype(dtype)
    expected = reference.ps_roi_pool(x, r, size, scale, dtype=dtype)
    out = cyroi.ps_roi_pool(on_gpu(x, layout), cupy.asarray(r), size, scale, layout=layout)
    check(out, expected, layout, TOLERANCE[dtype])
    g = np.random.default_rng(len(rois)).standard_normal(expected.shape).astype(dtype)
    grad = cyroi.ps_roi_pool_backward(on_gpu(g, layout), cupy.asarray(r),
                                      to_layout(x, layout).shape, scale, layout=layout,
                                      deterministic=deterministic)
    check(grad, reference.ps_roi_pool_backward(g, r, x.shape, size, scale, dtype=dtype), layout,
          TOLERANCE[dtype])


@settings(max_examples=40, deadline=None)
@given(problem=rotated_problem(), ratio=st.sampled_from([-1, 1, 2]), aligned=st.booleans(),
       clockwise=st.booleans(), layout=st.sampled_from(LAYOUTS), deterministic=st.booleans())
def test_roi_align_rotated_on_cupy(problem, ratio, aligned, clockwise, layout, deterministic):
    """float64 only: in float32 a sample landing exactly on the map's edge
    may fall either way under fused multiply-adds."""
    features, rois, scale, size = problem
    dtype = np.float64
    x, r = features.astype(dtype), rois.astype(dtype)
    expected = reference.roi_align_rotated(x, r, size, scale, ratio, aligned, clockwise)
    out = cyroi.roi_align_rotated(on_gpu(x, layout), cupy.asarray(r), size, scale, ratio,
                                  aligned, clockwise, layout=layout)
    check(out, expected, layout, TOLERANCE[dtype])
    g = np.random.default_rng(len(rois)).standard_normal(expected.shape).astype(dtype)
    grad = cyroi.roi_align_rotated_backward(on_gpu(g, layout), cupy.asarray(r),
                                            to_layout(x, layout).shape, scale, ratio, aligned,
                                            clockwise, layout=layout,
                                            deterministic=deterministic)
    check(grad, reference.roi_align_rotated_backward(g, r, x.shape, size, scale, ratio, aligned,
                                                     clockwise), layout, TOLERANCE[dtype])


@settings(max_examples=40, deadline=None)
@given(problem=roi_problem(), dtype=st.sampled_from(DTYPES), layout=st.sampled_from(LAYOUTS),
       deterministic=st.booleans())
def test_precise_roi_pool_on_cupy(problem, dtype, layout, deterministic):
    features, rois, scale, size = problem
    x, r = features.astype(dtype), rois.astype(dtype)
    expected = reference.precise_roi_pool(x, r, size, scale, dtype=dtype)
    out = cyroi.precise_roi_pool(on_gpu(x, layout), cupy.asarray(r), size, scale, layout=layout)
    check(out, expected, layout, PRECISE_TOLERANCE[dtype])
    g = np.random.default_rng(len(rois)).standard_normal(expected.shape).astype(dtype)
    grad, grad_rois = cyroi.precise_roi_pool_backward(on_gpu(g, layout), cupy.asarray(r),
                                                      on_gpu(x, layout), scale, layout=layout,
                                                      deterministic=deterministic)
    want, want_rois = reference.precise_roi_pool_backward(g, x, r, size, scale, dtype=dtype)
    check(grad, want, layout, PRECISE_TOLERANCE[dtype])
    # fused multiply-adds: a few more ulps than the CPU's bound
    assert np.all(np.abs(grad_rois.get() - want_rois)
                  <= 4 * precise_box_grad_tolerance(x, r, size, scale))


@settings(max_examples=30, deadline=None)
@given(problem=pyramid_problem(), ratio=st.sampled_from([-1, 1, 2]), aligned=st.booleans(),
       layout=st.sampled_from(LAYOUTS), deterministic=st.booleans())
def test_multiscale_roi_align_on_cupy(problem, ratio, aligned, layout, deterministic):
    features, rois, scales, size = problem
    dtype = np.float64  # the FPN level of a box on a level boundary is exact in float64
    xs, r = [f.astype(dtype) for f in features], rois.astype(dtype)
    expected = reference.multiscale_roi_align(xs, r, size, scales, ratio, aligned)
    out = cyroi.multiscale_roi_align([on_gpu(x, layout) for x in xs], cupy.asarray(r), size,
                                     scales, ratio, aligned, layout=layout)
    check(out, expected, layout, TOLERANCE[dtype])
    g = np.random.default_rng(len(rois)).standard_normal(expected.shape).astype(dtype)
    grads = cyroi.multiscale_roi_align_backward(on_gpu(g, layout), cupy.asarray(r),
                                                [to_layout(x, layout).shape for x in xs], scales,
                                                ratio, aligned, layout=layout,
                                                deterministic=deterministic)
    wants = reference.multiscale_roi_align_backward(g, r, [x.shape for x in xs], size, scales,
                                                    ratio, aligned)
    assert len(grads) == len(wants)
    for grad, want in zip(grads, wants):
        check(grad, want, layout, TOLERANCE[dtype])


@pytest.mark.parametrize("op", ["ps_roi_align", "ps_roi_pool", "roi_align_rotated"])
def test_deterministic_family_backward_repeats_bit_for_bit(op):
    rng = np.random.default_rng(3)
    size = (3, 3)
    x_shape = (2, 4 * size[0] * size[1], 20, 24)
    corners = rng.uniform(0, 16, (400, 2))
    ends = corners + rng.uniform(1, 8, (400, 2))
    rois = np.column_stack([rng.integers(0, 2, 400), corners, ends])
    if op == "roi_align_rotated":
        rois = np.column_stack([rois[:, 0], (rois[:, 1:3] + rois[:, 3:5]) / 2,
                                rois[:, 3:5] - rois[:, 1:3], rng.uniform(-180, 180, 400)])
    r = cupy.asarray(rois.astype(np.float32))
    channels = x_shape[1] if op == "roi_align_rotated" else 4
    g = cupy.asarray(rng.standard_normal((400, channels, *size)).astype(np.float32))
    backward = getattr(cyroi, op + "_backward")
    runs = [backward(g, r, x_shape, deterministic=True).get() for _ in range(3)]
    for run in runs[1:]:
        np.testing.assert_array_equal(run, runs[0])


@pytest.mark.parametrize("aligned, ratio", [(True, 2), (False, -1)])
def test_roi_align_box_gradient_on_cupy(aligned, ratio):
    """Central differences of the reference forward (float64)."""
    rng = np.random.default_rng(7)
    x = rng.standard_normal((2, 3, 7, 8))
    rois = random_rois(rng, 6, 7, 8, 1.0)
    g = rng.standard_normal((6, 3, 2, 3))
    _, grad_rois = cyroi.roi_align_backward(cupy.asarray(g), cupy.asarray(rois), x.shape, 1.0,
                                            ratio, aligned, need_rois_grad=True,
                                            features=cupy.asarray(x))

    want = reference.numeric_box_grad(
        lambda r: reference.roi_align(x, r, (2, 3), 1.0, ratio, aligned)[0] * g, rois)
    np.testing.assert_allclose(grad_rois.get()[:, 1:], want, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("aligned, clockwise, ratio", [(True, False, 2), (False, True, -1)])
def test_roi_align_rotated_box_gradient_on_cupy(aligned, clockwise, ratio):
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 2, 7, 8))
    rois = random_rotated_rois(rng, 5, 7, 8)
    g = rng.standard_normal((5, 2, 2, 2))
    _, grad_rois = cyroi.roi_align_rotated_backward(
        cupy.asarray(g), cupy.asarray(rois), x.shape, 0.9, ratio, aligned, clockwise,
        need_rois_grad=True, features=cupy.asarray(x))

    want = reference.numeric_box_grad(
        lambda r: reference.roi_align_rotated(x, r, (2, 2), 0.9, ratio, aligned, clockwise) * g,
        rois)
    np.testing.assert_allclose(grad_rois.get()[:, 1:], want, rtol=1e-6, atol=1e-6)


SIXTEEN_BIT_OPS = {
    # name: (forward, backward, reference forward, reference backward), C = 4 * 2 * 2
    "ps_roi_align": (
        lambda f, r: cyroi.ps_roi_align(f, r, 2, 0.5, 2),
        lambda g, r, shape, det: cyroi.ps_roi_align_backward(g, r, shape, 0.5, 2,
                                                             deterministic=det),
        lambda x, r: reference.ps_roi_align(x, r, (2, 2), 0.5, 2, dtype=np.float32),
        lambda g, r, shape: reference.ps_roi_align_backward(g, r, shape, (2, 2), 0.5, 2,
                                                            dtype=np.float32)),
    "ps_roi_pool": (
        lambda f, r: cyroi.ps_roi_pool(f, r, 2, 0.5),
        lambda g, r, shape, det: cyroi.ps_roi_pool_backward(g, r, shape, 0.5, deterministic=det),
        lambda x, r: reference.ps_roi_pool(x, r, (2, 2), 0.5, dtype=np.float32),
        lambda g, r, shape: reference.ps_roi_pool_backward(g, r, shape, (2, 2), 0.5,
                                                           dtype=np.float32)),
    "precise_roi_pool": (
        lambda f, r: cyroi.precise_roi_pool(f, r, 2, 0.5),
        None,
        lambda x, r: reference.precise_roi_pool(x, r, (2, 2), 0.5, dtype=np.float32),
        None),
}


@pytest.mark.parametrize("deterministic", [False, True])
@pytest.mark.parametrize("name", ["float16", "bfloat16"])
@pytest.mark.parametrize("op", sorted(SIXTEEN_BIT_OPS))
def test_sixteen_bit_family_on_cupy(op, name, deterministic):
    """16-bit data computes in float32: the reference in float32 on the same
    (rounded) values."""
    from test_cuda_gpu import crowded_problem, sixteen_bit_dtype, sixteen_bit_tolerance
    dtype = sixteen_bit_dtype(name)
    x, rois = crowded_problem(k=20, c=16, h=12, w=14)
    x16 = cupy.asarray(x.astype(dtype))
    x32 = x16.get().astype(np.float32)
    r32 = rois.astype(np.float32)
    forward, backward, ref_forward, ref_backward = SIXTEEN_BIT_OPS[op]
    out = forward(x16, cupy.asarray(r32))
    assert out.dtype == dtype
    expected = ref_forward(x32, r32)
    np.testing.assert_allclose(out.get().astype(np.float32), expected,
                               **sixteen_bit_tolerance(name))
    if backward is not None:
        grad = backward(cupy.ones_like(out), cupy.asarray(r32), x16.shape, deterministic)
        assert grad.dtype == dtype
        want = ref_backward(np.ones(expected.shape, np.float32), r32, x32.shape)
        np.testing.assert_allclose(grad.get().astype(np.float32), want,
                                   **sixteen_bit_tolerance(name))
