"""The CUDA backend run on the host: g++ compiles the very source the runtime
hands to NVRTC (cyroi._cuda.build) for float and double, with
tests/cuda_host/cuda_host_shim.h standing in for CUDA (a one-thread grid,
plain adds for atomics). cyroi._cuda's drivers then run on NumPy arrays with
their kernel launches served by the host build, and are compared with
tests/reference.py: forward and atomic backward bit for bit (one thread adds
in the reference's order), the fixed-point deterministic backward within its
documented resolution."""
import contextlib
import ctypes
import functools
import os
import shutil
import subprocess

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import reference
from cyroi import _cuda
from strategies import from_layout, roi_problem, to_layout

HOST_DTYPES = ("float32", "float64")
SHIM_DIR = os.path.join(os.path.dirname(__file__), "cuda_host")

_CTYPES = {np.int64: ctypes.c_int64, np.int32: ctypes.c_int32, np.uint64: ctypes.c_uint64,
           np.float32: ctypes.c_float, np.float64: ctypes.c_double}


class HostKernels:
    """Every kernel instantiation of the host build, callable with the
    arguments _cuda passes to a CuPy kernel (NumPy arrays for pointers)."""

    def __init__(self, library, names):
        self._library = library
        self._index = {name: i for i, name in enumerate(names)}
        library.cyroi_kernel.restype = ctypes.c_void_p
        library.cyroi_kernel.argtypes = [ctypes.c_int]

    def launch(self, dtype_name, kernel, total, *args):
        if total == 0:
            return
        address = self._library.cyroi_kernel(self._index[_cuda.name_expression(kernel,
                                                                                dtype_name)])
        values, types = [], []
        for arg in args:
            if isinstance(arg, np.ndarray):
                values.append(arg.ctypes.data)
                types.append(ctypes.c_void_p)
            else:
                values.append(arg)
                types.append(_CTYPES[type(arg)])
        ctypes.CFUNCTYPE(None, *types)(address)(*values)


@pytest.fixture(scope="module")
def host_kernels(tmp_path_factory):
    compiler = shutil.which("g++")
    assert compiler, "g++ is needed to run the CUDA kernels on the host"
    work = tmp_path_factory.mktemp("cuda_host")
    names = [name for dtype in HOST_DTYPES for name in _cuda.build(dtype)[2]]
    sources = {_cuda.build(dtype)[0] for dtype in HOST_DTYPES}
    assert len(sources) == 1, "one source serves every dtype"
    (work / "roi_ops_runtime.cu").write_text(sources.pop())
    table = ",\n".join(f"    (void*)&{name}" for name in names)
    (work / "driver.cpp").write_text(
        '#include "cuda_host_shim.h"\n#include "roi_ops_runtime.cu"\n'
        f'extern "C" void* cyroi_kernel(int i) {{\n  static void* const table[] = {{\n{table}}};\n'
        "  return table[i];\n}\n")
    library = work / "libroi_host.so"
    # -ffp-contract=off: no fused multiply-adds, so sums round as the reference's.
    subprocess.run([compiler, "-std=c++17", "-O1", "-ffp-contract=off", "-shared", "-fPIC",
                    "-I", SHIM_DIR, "-I", str(work), "-o", str(library), str(work / "driver.cpp")],
                   check=True)
    return HostKernels(ctypes.CDLL(str(library)), names)


@pytest.fixture(scope="module")
def on_host(host_kernels):
    """_cuda with its launches served by the host build."""
    @contextlib.contextmanager
    def on_device(array):
        yield functools.partial(host_kernels.launch, array.dtype.name)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_cuda, "_on_device", on_device)
        yield _cuda


def split_rois(rois, dtype):
    """(K, 5) rois -> the (boxes, batch) _cuda receives from cyroi._rois."""
    boxes = np.ascontiguousarray(rois[:, 1:], dtype=_cuda.compute_dtype(np.dtype(dtype)))
    return boxes, rois[:, 0].astype(np.int64)


def with_ties(features, ties):
    """Rounded features repeat values often: the first maximum must win."""
    return np.round(features) if ties else features


def fixed_point_tolerance(g, bins):
    """Deterministic backward against the reference's float sums: each value
    added rounds to a unit of 2^(E + B - 61) (see roi_elements.h), at most
    2^20 of them per element here; the reference's own sums round in g's
    dtype, by a few eps of the largest term."""
    finite = np.abs(g[np.isfinite(g)])
    top = finite.max() if finite.size else 0.0
    return top * (2.0 * max(bins, 1) * 2.0 ** (20 - 61) + 64 * np.finfo(g.dtype).eps)


@settings(max_examples=120, deadline=None)
@given(problem=roi_problem(), ratio=st.sampled_from([-1, 1, 2, 3]), aligned=st.booleans(),
       mode=st.sampled_from(["avg", "max"]), dtype=st.sampled_from(HOST_DTYPES),
       layout=st.sampled_from(["NCHW", "NHWC"]), ties=st.booleans())
def test_roi_align_kernels_match_the_reference(on_host, problem, ratio, aligned, mode, dtype,
                                               layout, ties):
    features, rois, scale, size = problem
    x = with_ties(features, ties).astype(dtype)
    r = rois.astype(dtype)
    boxes, batch = split_rois(r, dtype)
    expected, expected_argmax = reference.roi_align(x, r, size, scale, ratio, aligned, mode,
                                                    dtype=dtype)
    for index in (np.int32, np.int64):  # the kernel writes either (wide_argmax)
        out, argmax = on_host.roi_align_forward(to_layout(x, layout), boxes, batch, size, scale,
                                                ratio, aligned, mode, layout, True, index)
        assert out.dtype == dtype
        np.testing.assert_array_equal(from_layout(out, layout), expected)
        if mode == "max":
            np.testing.assert_array_equal(from_layout(argmax, layout), expected_argmax)
            assert argmax.dtype == index

    g = np.random.default_rng(len(rois)).standard_normal(expected.shape).astype(dtype)
    want = reference.roi_align_backward(g, r, x.shape, size, scale, ratio, aligned, mode,
                                        expected_argmax, dtype=dtype)
    for deterministic, index in ((False, np.int32), (True, np.int32), (False, np.int64)):
        kept = None if argmax is None else argmax.astype(index)
        grad = on_host.roi_align_backward(to_layout(g, layout), boxes, batch, x.shape, scale,
                                          ratio, aligned, mode, kept, layout, deterministic)
        assert grad.dtype == dtype and grad.shape == to_layout(x, layout).shape
        if deterministic:
            np.testing.assert_allclose(from_layout(grad, layout), want, rtol=0,
                                       atol=fixed_point_tolerance(g, len(r) * size[0] * size[1]))
        else:
            np.testing.assert_array_equal(from_layout(grad, layout), want)


@settings(max_examples=80, deadline=None)
@given(problem=roi_problem(), dtype=st.sampled_from(HOST_DTYPES),
       layout=st.sampled_from(["NCHW", "NHWC"]), ties=st.booleans())
def test_roi_pool_kernels_match_the_reference(on_host, problem, dtype, layout, ties):
    features, rois, scale, size = problem
    x = with_ties(features, ties).astype(dtype)
    r = rois.astype(dtype)
    boxes, batch = split_rois(r, dtype)
    expected, expected_argmax = reference.roi_pool(x, r, size, scale, dtype=dtype)
    for index in (np.int32, np.int64):  # the kernel writes either (wide_argmax)
        out, argmax = on_host.roi_pool_forward(to_layout(x, layout), boxes, batch, size, scale,
                                               layout, True, index)
        np.testing.assert_array_equal(from_layout(out, layout), expected)
        np.testing.assert_array_equal(from_layout(argmax, layout), expected_argmax)
        assert argmax.dtype == index

    g = np.random.default_rng(len(rois)).standard_normal(expected.shape).astype(dtype)
    want = reference.roi_pool_backward(g, r, x.shape, size, scale, expected_argmax, dtype=dtype)
    for deterministic, index in ((False, np.int32), (True, np.int32), (False, np.int64)):
        grad = on_host.roi_pool_backward(to_layout(g, layout), batch, argmax.astype(index),
                                         x.shape, layout, deterministic)
        if deterministic:
            np.testing.assert_allclose(from_layout(grad, layout), want, rtol=0,
                                       atol=fixed_point_tolerance(g, len(r) * size[0] * size[1]))
        else:
            np.testing.assert_array_equal(from_layout(grad, layout), want)


@pytest.mark.parametrize("dtype", HOST_DTYPES)
def test_strided_features_are_read_through_their_strides(on_host, dtype):
    """A reversed, sliced view (negative and non-unit strides) reads as its
    copy would."""
    rng = np.random.default_rng(2)
    base = rng.standard_normal((2, 6, 11, 13)).astype(dtype)
    view = base[::-1, ::2, 1:, ::-1]
    rois = np.array([[0, 1.5, 0.5, 9, 8], [1, -2, 3, 14, 7.5], [1, 4, 4, 4, 4]], dtype)
    boxes, batch = split_rois(rois, dtype)
    for mode in ("avg", "max"):
        out, _ = on_host.roi_align_forward(view, boxes, batch, (3, 2), 0.5, 2, True, mode,
                                           "NCHW", False, np.int32)
        copy, _ = on_host.roi_align_forward(np.ascontiguousarray(view), boxes, batch, (3, 2),
                                            0.5, 2, True, mode, "NCHW", False, np.int32)
        np.testing.assert_array_equal(out, copy)
    out, _ = on_host.roi_pool_forward(view, boxes, batch, (3, 2), 0.5, "NCHW", False, np.int32)
    np.testing.assert_array_equal(out, reference.roi_pool(np.ascontiguousarray(view), rois,
                                                          (3, 2), 0.5, dtype=dtype)[0])


@pytest.mark.parametrize("dtype", HOST_DTYPES)
def test_huge_boxes_visit_only_the_map(on_host, dtype):
    """Adaptive grids of ~1e5 samples per side finish and follow the formulas."""
    rng = np.random.default_rng(11)
    x = rng.standard_normal((1, 2, 6, 7)).astype(dtype)
    rois = np.array([[0, -3e5, -2e5, 4e5, 5e5], [0, -1e5, 2, 1e5, 4], [0, 1, -1e6, 3, 1e6]],
                    dtype)
    boxes, batch = split_rois(rois, dtype)
    for mode in ("avg", "max"):
        expected, expected_argmax = reference.roi_align(x, rois, (2, 2), 1.0, -1, True, mode,
                                                        dtype=dtype)
        out, argmax = on_host.roi_align_forward(x, boxes, batch, (2, 2), 1.0, -1, True, mode,
                                                "NCHW", True, np.int64)
        np.testing.assert_array_equal(out, expected)
        if mode == "max":
            np.testing.assert_array_equal(argmax, expected_argmax)


def test_rois_of_missing_images_read_and_write_nothing(on_host):
    """validate=False lets batch indices outside [0, N) through: zeros out,
    argmax -1, no gradient, and no access outside the arrays."""
    x = np.random.default_rng(4).standard_normal((2, 3, 5, 5)).astype(np.float32)
    boxes = np.array([[0, 0, 4, 4]] * 3, np.float32)
    batch = np.array([-1, 2, 1 << 40], np.int64)
    for mode in ("avg", "max"):
        out, argmax = on_host.roi_align_forward(x, boxes, batch, (2, 2), 1.0, -1, False, mode,
                                                "NCHW", True, np.int64)
        assert not out.any()
        g = np.ones_like(out)
        assert not on_host.roi_align_backward(g, boxes, batch, x.shape, 1.0, -1, False, mode,
                                              argmax, "NCHW").any()
    out, argmax = on_host.roi_pool_forward(x, boxes, batch, (2, 2), 1.0, "NCHW", True, np.int32)
    assert not out.any() and (argmax == -1).all()
    hand_made = np.full(argmax.shape, 7, np.int64)
    assert not on_host.roi_pool_backward(np.ones_like(out), batch, hand_made, x.shape,
                                         "NCHW").any()


def test_hand_made_argmax_outside_the_grid_is_ignored(on_host):
    x = np.zeros((1, 1, 4, 4), np.float64)
    boxes, batch = np.array([[0.0, 0.0, 3.0, 3.0]]), np.zeros(1, np.int64)
    g = np.ones((1, 1, 1, 1))
    for index in (np.int32, np.int64):
        for bad in (-5, 4, 10**12, 2**32 + 1):  # the grid has samples 0..3
            if np.iinfo(index).min <= bad <= np.iinfo(index).max:
                argmax = np.full((1, 1, 1, 1), bad, index)
                assert not on_host.roi_align_backward(g, boxes, batch, x.shape, 1.0, 2, False,
                                                      "max", argmax, "NCHW").any()
        for bad in (-5, 16, 10**12, 2**32 + 5):  # the plane has elements 0..15
            if np.iinfo(index).min <= bad <= np.iinfo(index).max:
                argmax = np.full((1, 1, 1, 1), bad, index)
                assert not on_host.roi_pool_backward(g, batch, argmax, x.shape, "NCHW").any()


@pytest.mark.parametrize("deterministic", [False, True])
def test_non_finite_gradients_propagate(on_host, deterministic):
    """inf and NaN in grad_output reach the gradient as the reference's float
    sums give them, in the fixed-point mode too (they are added as floats)."""
    x = np.random.default_rng(6).standard_normal((1, 2, 6, 6))
    rois = np.array([[0, 0.5, 0.5, 3.5, 3.5], [0, 2, 2, 5, 5], [0, 1, 3, 4, 5]])
    boxes, batch = split_rois(rois, np.float64)
    g = np.random.default_rng(7).standard_normal((3, 2, 2, 2))
    g[0, 0, 0, 0], g[1, 0, 1, 1], g[2, 1, 0, 1] = np.inf, -np.inf, np.nan
    want = reference.roi_align_backward(g, rois, x.shape, (2, 2), 1.0, 2, False)
    grad = on_host.roi_align_backward(g, boxes, batch, x.shape, 1.0, 2, False, "avg", None,
                                      "NCHW", deterministic)
    np.testing.assert_array_equal(np.isnan(grad), np.isnan(want))
    np.testing.assert_allclose(grad, want, rtol=0, atol=fixed_point_tolerance(g, 12))


def test_fixed_point_keeps_tiny_gradients(on_host):
    """The fixed-point unit follows the largest |grad_output|: gradients of
    1e-30 keep their relative precision."""
    x = np.zeros((1, 1, 8, 8))
    rois = np.array([[0, 0.3, 0.7, 6.2, 5.9]])
    boxes, batch = split_rois(rois, np.float64)
    g = np.random.default_rng(8).standard_normal((1, 1, 3, 3)) * 1e-30
    want = reference.roi_align_backward(g, rois, x.shape, (3, 3), 1.0, -1, False)
    grad = on_host.roi_align_backward(g, boxes, batch, x.shape, 1.0, -1, False, "avg", None,
                                      "NCHW", True)
    np.testing.assert_allclose(grad, want, rtol=1e-9, atol=1e-45)
