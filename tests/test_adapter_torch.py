"""cyroi.torch: torchvision.ops signatures, numbers of tests/reference.py,
float64 gradcheck, torch.library checks and torch.compile(fullgraph=True)."""
import inspect

import numpy as np
import pytest

import reference

torch = pytest.importorskip("torch")
ct = pytest.importorskip("cyroi.torch")

RNG = np.random.default_rng(7)
# Distinct, well-separated values: finite differences never move a maximum.
FEATURES = RNG.permutation(2 * 3 * 7 * 8).reshape(2, 3, 7, 8) * 0.25
ROIS = np.array([[0, 1, 1, 5, 6], [1, 0.5, 2, 7.5, 7], [1, 3, 3, 3, 3], [0, -3, 4, 20, 9],
                 [1, 6, 5, 2, 1]], np.float64)
ALIGN_CASES = [  # output_size, spatial_scale, sampling_ratio, aligned, mode
    ((2, 3), 1.0, -1, False, "avg"), (3, 0.5, 2, True, "avg"), ((3, 2), 1.0, 2, False, "max"),
    (2, 0.75, -1, True, "max")]
POOL_CASES = [((2, 3), 1.0), (3, 0.5)]


def tensors(dtype=torch.float64, requires_grad=False):
    return (torch.tensor(FEATURES, dtype=dtype, requires_grad=requires_grad),
            torch.tensor(ROIS, dtype=dtype))


def pair(size):
    return (size, size) if isinstance(size, int) else size


def reference_align(size, scale, ratio, aligned, mode, dtype=np.float64):
    return reference.roi_align(FEATURES.astype(dtype), ROIS.astype(dtype), pair(size), scale,
                               ratio, aligned, mode, dtype=dtype)


def test_signatures_match_torchvision():
    def described(f):
        return [(p.name, p.default) for p in inspect.signature(f).parameters.values()]
    empty = inspect.Parameter.empty
    assert described(ct.roi_align)[:6] == [
        ("input", empty), ("boxes", empty), ("output_size", empty), ("spatial_scale", 1.0),
        ("sampling_ratio", -1), ("aligned", False)]
    assert described(ct.roi_pool) == [("input", empty), ("boxes", empty),
                                      ("output_size", empty), ("spatial_scale", 1.0)]
    assert described(ct.RoIAlign)[:4] == [("output_size", empty), ("spatial_scale", empty),
                                          ("sampling_ratio", empty), ("aligned", False)]
    assert described(ct.RoIPool) == [("output_size", empty), ("spatial_scale", empty)]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("case", ALIGN_CASES)
def test_roi_align_matches_reference(case, dtype):
    np_dtype = np.float32 if dtype == torch.float32 else np.float64
    x, rois = tensors(dtype, requires_grad=True)
    out = ct.roi_align(x, rois, *case)
    expected, argmax = reference_align(*case, dtype=np_dtype)
    assert out.dtype == dtype and out.shape == expected.shape
    np.testing.assert_array_equal(out.detach().double().numpy(), expected)

    g = np.random.default_rng(1).standard_normal(expected.shape).astype(np_dtype)
    out.backward(torch.tensor(g))
    size, scale, ratio, aligned, mode = case
    expected_grad = reference.roi_align_backward(
        g, ROIS.astype(np_dtype), FEATURES.shape, pair(size), scale, ratio, aligned, mode,
        argmax, dtype=np_dtype)
    np.testing.assert_array_equal(x.grad.double().numpy(), expected_grad)


@pytest.mark.parametrize("case", POOL_CASES)
def test_roi_pool_matches_reference(case):
    x, rois = tensors(requires_grad=True)
    out = ct.roi_pool(x, rois, *case)
    size, scale = pair(case[0]), case[1]
    expected, argmax = reference.roi_pool(FEATURES, ROIS, size, scale)
    np.testing.assert_array_equal(out.detach().numpy(), expected)
    g = np.random.default_rng(2).standard_normal(expected.shape)
    out.backward(torch.tensor(g))
    np.testing.assert_array_equal(
        x.grad.numpy(), reference.roi_pool_backward(g, ROIS, FEATURES.shape, size, scale, argmax))


@pytest.mark.parametrize("op", ["roi_align", "roi_pool"])
def test_channels_last_tensors_read_in_place(op):
    """torch.channels_last features (NCHW shape, channels adjacent) give the
    reference's numbers and gradients, as contiguous ones do."""
    x, rois = tensors()
    x = x.contiguous(memory_format=torch.channels_last).requires_grad_(True)
    assert x.stride()[1] == 1
    size, scale = (3, 2), 0.5
    if op == "roi_align":
        out = ct.roi_align(x, rois, size, scale, 2, True)
        expected, _ = reference.roi_align(FEATURES, ROIS, size, scale, 2, True, "avg")
    else:
        out = ct.roi_pool(x, rois, size, scale)
        expected, argmax = reference.roi_pool(FEATURES, ROIS, size, scale)
    np.testing.assert_array_equal(out.detach().numpy(), expected)
    g = np.random.default_rng(3).standard_normal(expected.shape)
    out.backward(torch.tensor(g))
    want = (reference.roi_align_backward(g, ROIS, FEATURES.shape, size, scale, 2, True)
            if op == "roi_align"
            else reference.roi_pool_backward(g, ROIS, FEATURES.shape, size, scale, argmax))
    np.testing.assert_array_equal(x.grad.numpy(), want)


def test_list_of_boxes_equals_roi_table():
    x, rois = tensors()
    per_image = [rois[rois[:, 0] == i, 1:] for i in range(2)]
    in_image_order = torch.cat([rois[rois[:, 0] == i] for i in range(2)])
    for op in (ct.roi_align, ct.roi_pool):
        torch.testing.assert_close(op(x, per_image, 2, 0.5), op(x, in_image_order, 2, 0.5),
                                   rtol=0, atol=0)


def gradcheck_inputs():
    """One channel fewer (time), and no point box: its samples of mode "max"
    nearly tie, and a finite difference would cross the tie."""
    x, rois = tensors()
    return x[:, :2].detach().requires_grad_(True), rois[[0, 1, 3, 4]]


@pytest.mark.parametrize("case", ALIGN_CASES)
def test_roi_align_gradcheck(case):
    x, rois = gradcheck_inputs()
    assert torch.autograd.gradcheck(lambda f: ct.roi_align(f, rois, *case), (x,))


def test_roi_pool_gradcheck():
    x, rois = gradcheck_inputs()
    assert torch.autograd.gradcheck(lambda f: ct.roi_pool(f, rois, (3, 2), 0.5), (x,))


@pytest.mark.parametrize("op, args", [
    (torch.ops.cyroi.roi_align.default, ([2, 3], 0.5, 2, True, "avg")),
    (torch.ops.cyroi.roi_align.default, ([2, 2], 1.0, -1, False, "max")),
    (torch.ops.cyroi.roi_align.default, ([2, 2], 1.0, 2, True, "max")),  # int32 argmax
    (torch.ops.cyroi.roi_pool.default, ([3, 2], 0.5))])
def test_custom_op_registration(op, args):
    x, rois = tensors(requires_grad=True)
    torch.library.opcheck(op, (x, rois, *args))


def test_modules_equal_functions():
    x, rois = tensors()
    align = ct.RoIAlign((2, 3), 0.5, 2, aligned=True)
    pool = ct.RoIPool(3, 0.5)
    assert isinstance(align, torch.nn.Module)
    torch.testing.assert_close(align(x, rois), ct.roi_align(x, rois, (2, 3), 0.5, 2, True))
    torch.testing.assert_close(pool(x, rois), ct.roi_pool(x, rois, 3, 0.5))
    assert repr(align) == ("RoIAlign(output_size=(2, 3), spatial_scale=0.5, sampling_ratio=2, "
                           "aligned=True, mode='avg')")
    assert repr(pool) == "RoIPool(output_size=3, spatial_scale=0.5)"


def test_compile_fullgraph_forward_and_backward():
    def heads(x, rois):
        per_image = [rois[:2, 1:], rois[2:, 1:]]
        return (ct.roi_align(x, rois, 2, 0.5, 2).sum()
                + ct.roi_align(x, per_image, 2, mode="max").sum()
                + ct.roi_pool(x, rois, 2).square().sum())

    compiled = torch.compile(heads, fullgraph=True)
    for k in (5, 3):  # a second RoI count exercises the fakes with another shape
        grads = []
        for fn in (heads, compiled):
            x, rois = tensors(requires_grad=True)
            fn(x, rois[:k]).backward()
            grads.append(x.grad)
        torch.testing.assert_close(grads[1], grads[0], rtol=0, atol=0)


def test_empty_and_invalid_inputs():
    x, rois = tensors()
    assert ct.roi_align(x, rois[:0], (2, 3)).shape == (0, 3, 2, 3)
    with pytest.raises(TypeError, match="boxes must be a Tensor"):
        ct.roi_pool(x, ROIS, 2)
    with pytest.raises(ValueError, match=r"boxes\[0\] must have shape"):
        ct.roi_pool(x, [rois], 2)
    with pytest.raises(ValueError, match="batch index must be in"):
        ct.roi_align(x, rois + torch.tensor([5.0, 0, 0, 0, 0]), 2)


@pytest.mark.gpu
def test_cuda_matches_cpu_on_the_callers_stream():
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    pytest.importorskip("cupy")
    x, rois = tensors(requires_grad=True)
    x_gpu = x.detach().cuda().requires_grad_(True)
    stream = torch.cuda.Stream()
    with torch.cuda.stream(stream):
        out = ct.roi_align(x_gpu, rois.cuda(), 2, 0.5, 2)
        out.backward(torch.ones_like(out))
    stream.synchronize()
    expected = ct.roi_align(x, rois, 2, 0.5, 2)
    expected.backward(torch.ones_like(expected))
    torch.testing.assert_close(out.cpu(), expected)
    torch.testing.assert_close(x_gpu.grad.cpu(), x.grad)
