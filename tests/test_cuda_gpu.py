"""The ops on a real GPU: CuPy arrays and torch CUDA tensors through the
public API against tests/reference.py, forward and backward, every dtype and
layout; deterministic=True reproducible bit for bit. Skipped where CuPy sees
no CUDA device."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import cyroi
import reference
from strategies import from_layout, roi_problem, to_layout

cupy = pytest.importorskip("cupy")


def _device_count():
    try:
        return cupy.cuda.runtime.getDeviceCount()
    except Exception:  # no driver, or no device
        return 0


pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(_device_count() == 0, reason="CuPy sees no CUDA device")]

# GPU code contracts a*b+c into fused multiply-adds, so results differ from
# the reference's separately rounded float32 by a few ulps.
TOLERANCE = {np.float32: dict(rtol=1e-5, atol=1e-5), np.float64: dict(rtol=1e-12, atol=1e-12)}
LAYOUTS = ["NCHW", "NHWC"]


def torch_cuda():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("torch has no CUDA")
    return torch


@settings(max_examples=60, deadline=None)
@given(problem=roi_problem(), ratio=st.sampled_from([-1, 1, 2]), aligned=st.booleans(),
       mode=st.sampled_from(["avg", "max"]), dtype=st.sampled_from([np.float32, np.float64]),
       layout=st.sampled_from(LAYOUTS), deterministic=st.booleans())
def test_roi_align_on_cupy(problem, ratio, aligned, mode, dtype, layout, deterministic):
    features, rois, scale, size = problem
    x, r = features.astype(dtype), rois.astype(dtype)
    expected, expected_argmax = reference.roi_align(x, r, size, scale, ratio, aligned, mode,
                                                    dtype=dtype)
    result = cyroi.roi_align(cupy.asarray(to_layout(x, layout)), cupy.asarray(r), size, scale,
                             ratio, aligned, mode, layout=layout, return_argmax=mode == "max")
    out, argmax = result if mode == "max" else (result, None)
    assert isinstance(out, cupy.ndarray) and out.dtype == dtype
    np.testing.assert_allclose(from_layout(out.get(), layout), expected, **TOLERANCE[dtype])
    host_argmax = None
    if mode == "max":
        host_argmax = from_layout(argmax.get(), layout)
        assert argmax.dtype == (np.int32 if ratio > 0 else np.int64)  # a fixed grid fits int32
        if dtype == np.float64:  # float32 near-ties may fall either way under FMA
            np.testing.assert_array_equal(host_argmax, expected_argmax)

    g = np.random.default_rng(len(rois)).standard_normal(expected.shape).astype(dtype)
    grad = cyroi.roi_align_backward(cupy.asarray(to_layout(g, layout)), cupy.asarray(r),
                                    to_layout(x, layout).shape, scale, ratio, aligned, mode,
                                    argmax=argmax, layout=layout, deterministic=deterministic)
    want = reference.roi_align_backward(g, r, x.shape, size, scale, ratio, aligned, mode,
                                        host_argmax, dtype=dtype)
    np.testing.assert_allclose(from_layout(grad.get(), layout), want, **TOLERANCE[dtype])


@settings(max_examples=40, deadline=None)
@given(problem=roi_problem(), dtype=st.sampled_from([np.float32, np.float64]),
       layout=st.sampled_from(LAYOUTS), deterministic=st.booleans())
def test_roi_pool_on_cupy(problem, dtype, layout, deterministic):
    features, rois, scale, size = problem
    x, r = features.astype(dtype), rois.astype(dtype)
    expected, expected_argmax = reference.roi_pool(x, r, size, scale, dtype=dtype)
    out, argmax = cyroi.roi_pool(cupy.asarray(to_layout(x, layout)), cupy.asarray(r), size, scale,
                                 layout=layout, return_argmax=True)
    np.testing.assert_array_equal(from_layout(out.get(), layout), expected)
    np.testing.assert_array_equal(from_layout(argmax.get(), layout), expected_argmax)
    assert argmax.dtype == np.int32

    g = np.random.default_rng(len(rois)).standard_normal(expected.shape).astype(dtype)
    want = reference.roi_pool_backward(g, r, x.shape, size, scale, expected_argmax, dtype=dtype)
    for index in (np.int32, np.int64):
        grad = cyroi.roi_pool_backward(cupy.asarray(to_layout(g, layout)), cupy.asarray(r),
                                       argmax.astype(index), to_layout(x, layout).shape,
                                       layout=layout, deterministic=deterministic)
        np.testing.assert_allclose(from_layout(grad.get(), layout), want, **TOLERANCE[dtype])


def crowded_problem(seed=0, n=2, c=16, h=24, w=32, k=300):
    """Many overlapping RoIs: every feature element collects many gradients."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c, h, w))
    xy = rng.uniform(-4, [w, h], (k, 2))
    wh = rng.uniform(1, 20, (k, 2))
    rois = np.column_stack([rng.integers(0, n, k), xy, xy + wh])
    return x, rois


@pytest.mark.parametrize("op", ["align_avg", "align_max", "pool"])
@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_deterministic_backward_repeats_bit_for_bit(op, dtype):
    x, rois = crowded_problem()
    f, r = cupy.asarray(x.astype(dtype)), cupy.asarray(rois.astype(dtype))
    if op == "pool":
        out, argmax = cyroi.roi_pool(f, r, 7, 0.5, return_argmax=True)

        def backward(g, **kw):
            return cyroi.roi_pool_backward(g, r, argmax, f.shape, **kw)
    else:
        mode = op.split("_")[1]
        out, argmax = cyroi.roi_align(f, r, 7, 0.5, 2, True, mode, return_argmax=True) \
            if mode == "max" else (cyroi.roi_align(f, r, 7, 0.5, 2, True), None)

        def backward(g, **kw):
            return cyroi.roi_align_backward(g, r, f.shape, 0.5, 2, True, mode, argmax=argmax, **kw)
    g = cupy.asarray(np.random.default_rng(1).standard_normal(out.shape).astype(dtype))
    runs = [backward(g, deterministic=True) for _ in range(3)]
    for run in runs[1:]:
        assert run.dtype == dtype
        assert cupy.array_equal(run.view(np.uint8), runs[0].view(np.uint8))
    atomic = backward(g).astype(np.float64)
    scale = float(cupy.abs(atomic).max())
    tolerance = scale * (1e-3 if dtype == np.float16 else 1e-5 if dtype == np.float32 else 1e-12)
    assert float(cupy.abs(runs[0].astype(np.float64) - atomic).max()) <= tolerance


def test_strided_cupy_views_read_through_strides():
    x, rois = crowded_problem(k=40)
    base = cupy.asarray(x.astype(np.float32))
    view = base[::-1, ::2, 1:, ::-1]
    r = cupy.asarray(rois.astype(np.float32))
    r[:, 0] = r[:, 0] % view.shape[0]
    for mode in ("avg", "max"):
        np.testing.assert_array_equal(
            cyroi.roi_align(view, r, 5, 0.5, 2, False, mode).get(),
            cyroi.roi_align(cupy.ascontiguousarray(view), r, 5, 0.5, 2, False, mode).get())
    nhwc = cupy.ascontiguousarray(base.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    np.testing.assert_array_equal(cyroi.roi_pool(nhwc, r, 5, 0.5).get(),
                                  cyroi.roi_pool(base, r, 5, 0.5).get())


def test_no_rois_and_no_channels():
    f = cupy.zeros((2, 3, 8, 8), np.float32)
    out = cyroi.roi_align(f, cupy.zeros((0, 5), np.float32), (2, 3))
    assert out.shape == (0, 3, 2, 3)
    grad = cyroi.roi_align_backward(out, cupy.zeros((0, 5), np.float32), f.shape)
    assert grad.shape == f.shape and not grad.any()
    empty = cupy.zeros((1, 0, 4, 4), np.float32)
    assert cyroi.roi_pool(empty, cupy.asarray([[0, 0, 0, 3, 3]], np.float32), 2).shape == \
        (1, 0, 2, 2)


def half_problem():
    x, rois = crowded_problem(k=20, c=4, h=12, w=14)
    return x, rois


def sixteen_bit_tolerance(name):
    return dict(rtol=2e-2, atol=2e-2) if name == "bfloat16" else dict(rtol=2e-3, atol=2e-3)


def check_sixteen_bit(name, x16, r32, to_host, run):
    """run(features, rois) -> (out, grad) in the 16-bit dtype; compared with
    the reference on the same (rounded) values in float32."""
    x = to_host(x16)
    out, grad = run(x16, r32)
    expected, _ = reference.roi_align(x, r32, (4, 4), 0.5, 2, True, dtype=np.float32)
    np.testing.assert_allclose(to_host(out), expected, **sixteen_bit_tolerance(name))
    g = np.ones(expected.shape, np.float32)
    want = reference.roi_align_backward(g, r32, x.shape, (4, 4), 0.5, 2, True, dtype=np.float32)
    np.testing.assert_allclose(to_host(grad), want, **sixteen_bit_tolerance(name))


def sixteen_bit_dtype(name):
    """NumPy dtype of float16, or of bfloat16 (CuPy takes it from ml_dtypes)."""
    if name == "bfloat16":
        return np.dtype(pytest.importorskip("ml_dtypes").bfloat16)
    return np.dtype(name)


@pytest.mark.parametrize("deterministic", [False, True])
@pytest.mark.parametrize("name", ["float16", "bfloat16"])
def test_sixteen_bit_on_cupy(name, deterministic):
    dtype = sixteen_bit_dtype(name)
    x, rois = half_problem()

    def run(f, host_boxes):
        boxes = cupy.asarray(host_boxes)
        out = cyroi.roi_align(f, boxes, 4, 0.5, 2, True)
        assert out.dtype == dtype
        grad = cyroi.roi_align_backward(cupy.ones_like(out), boxes, f.shape, 0.5, 2, True,
                                        deterministic=deterministic)
        assert grad.dtype == dtype
        return out, grad

    check_sixteen_bit(name, cupy.asarray(x.astype(dtype)), rois.astype(np.float32),
                      lambda a: a.get().astype(np.float32), run)


@pytest.mark.parametrize("dtype_name", ["float16", "bfloat16", "float32", "float64"])
def test_torch_cuda_tensors_in_torch_out(dtype_name):
    torch = torch_cuda()
    if dtype_name == "bfloat16":
        sixteen_bit_dtype(dtype_name)  # CuPy imports bfloat16 through ml_dtypes
    dtype = getattr(torch, dtype_name)
    x, rois = half_problem()
    f = torch.as_tensor(x, device="cuda").to(dtype)

    def run(features, host_boxes):
        boxes = torch.as_tensor(host_boxes, device="cuda")
        out = cyroi.roi_align(features, boxes, 4, 0.5, 2, True)
        assert isinstance(out, torch.Tensor) and out.dtype == dtype
        assert out.device == features.device
        grad = cyroi.roi_align_backward(torch.ones_like(out), boxes, tuple(features.shape), 0.5,
                                        2, True)
        assert isinstance(grad, torch.Tensor) and grad.dtype == dtype
        return out, grad

    def to_host(t):
        return t.float().cpu().numpy()

    if dtype_name in ("float16", "bfloat16"):
        check_sixteen_bit(dtype_name, f, rois.astype(np.float32), to_host, run)
    else:
        out, _ = run(f, rois.astype(dtype_name))
        expected, _ = reference.roi_align(x, rois, (4, 4), 0.5, 2, True, dtype=np.dtype(dtype_name))
        np.testing.assert_allclose(to_host(out), expected, **TOLERANCE[np.dtype(dtype_name).type])


def test_torch_side_stream_results():
    """Features still being computed on a side torch stream are read only
    once ready."""
    torch = torch_cuda()
    x, rois = crowded_problem(k=50)
    r = torch.as_tensor(rois, device="cuda", dtype=torch.float32)
    expected = cyroi.roi_align(x.astype(np.float32), rois.astype(np.float32), 7, 0.5)
    side = torch.cuda.Stream()
    with torch.cuda.stream(side):
        f = torch.as_tensor(x, device="cuda", dtype=torch.float32)
        torch.cuda._sleep(10_000_000)  # the features are not ready for a while
        f = f * 1.0
        out = cyroi.roi_align(f, r, 7, 0.5)
        result = out.cpu()
    np.testing.assert_allclose(result.numpy(), expected, rtol=1e-5, atol=1e-5)


def test_cupy_stream_results():
    x, rois = crowded_problem(k=50)
    expected = cyroi.roi_pool(x, rois, 7, 0.5)
    with cupy.cuda.Stream(non_blocking=True) as stream:
        out = cyroi.roi_pool(cupy.asarray(x), cupy.asarray(rois), 7, 0.5)
        stream.synchronize()
    np.testing.assert_array_equal(out.get(), expected)


def test_launches_follow_the_callers_stream():
    from cyroi import _cuda
    assert _cuda._caller_stream(cupy, 0).ptr == cupy.cuda.get_current_stream().ptr
    with cupy.cuda.Stream(non_blocking=True) as stream:
        assert _cuda._caller_stream(cupy, 0).ptr == stream.ptr
    torch = torch_cuda()
    side = torch.cuda.Stream()
    with torch.cuda.stream(side):
        assert _cuda._caller_stream(cupy, 0).ptr == side.cuda_stream
