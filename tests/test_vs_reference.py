"""roi_align and roi_pool against tests/reference.py (float64 NumPy from
SPEC.md), forward and backward, on random problems. The oracle computes the
geometry and sums in the dtype under test, so results must agree exactly:
the same formulas in the same order of operations."""
import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import cyroi
import reference
from strategies import from_layout, roi_problem, to_layout

DTYPES = [np.float32, np.float64]
LAYOUTS = ["NCHW", "NHWC"]


def assert_same(actual, expected):
    np.testing.assert_array_equal(np.asarray(actual, np.float64), expected)


@settings(max_examples=150, deadline=None)
@given(problem=roi_problem(), ratio=st.sampled_from([-1, 1, 2, 3]), aligned=st.booleans(),
       mode=st.sampled_from(["avg", "max"]), dtype=st.sampled_from(DTYPES),
       layout=st.sampled_from(LAYOUTS))
def test_roi_align(problem, ratio, aligned, mode, dtype, layout):
    features, rois, scale, size = problem
    x = features.astype(dtype)
    r = rois.astype(dtype)
    expected, expected_argmax = reference.roi_align(x, r, size, scale, ratio, aligned, mode,
                                                    dtype=dtype)
    result = cyroi.roi_align(to_layout(x, layout), r, size, scale, ratio, aligned, mode,
                             layout=layout, return_argmax=mode == "max")
    out, argmax = result if mode == "max" else (result, None)
    assert out.dtype == dtype
    assert_same(from_layout(out, layout), expected)
    if mode == "max":
        np.testing.assert_array_equal(from_layout(argmax, layout), expected_argmax)

    g = np.random.default_rng(len(rois)).standard_normal(expected.shape).astype(dtype)
    grad = cyroi.roi_align_backward(to_layout(g, layout), r, to_layout(x, layout).shape, scale,
                                    ratio, aligned, mode, argmax=argmax, layout=layout)
    assert_same(from_layout(grad, layout),
                reference.roi_align_backward(g, r, x.shape, size, scale, ratio, aligned, mode,
                                             expected_argmax, dtype=dtype))


@settings(max_examples=150, deadline=None)
@given(problem=roi_problem(), dtype=st.sampled_from(DTYPES), layout=st.sampled_from(LAYOUTS))
def test_roi_pool(problem, dtype, layout):
    features, rois, scale, size = problem
    x = features.astype(dtype)
    r = rois.astype(dtype)
    expected, expected_argmax = reference.roi_pool(x, r, size, scale, dtype=dtype)
    out, argmax = cyroi.roi_pool(to_layout(x, layout), r, size, scale, layout=layout,
                                 return_argmax=True)
    assert_same(from_layout(out, layout), expected)
    np.testing.assert_array_equal(from_layout(argmax, layout), expected_argmax)

    g = np.random.default_rng(len(rois)).standard_normal(expected.shape).astype(dtype)
    grad = cyroi.roi_pool_backward(to_layout(g, layout), r, argmax, to_layout(x, layout).shape,
                                   layout=layout)
    assert_same(from_layout(grad, layout),
                reference.roi_pool_backward(g, r, x.shape, size, scale, expected_argmax,
                                            dtype=dtype))


@settings(max_examples=40, deadline=None)
@given(problem=roi_problem(max_side=6), aligned=st.booleans(), ratio=st.sampled_from([-1, 2]))
def test_roi_align_avg_gradient_is_the_derivative(problem, aligned, ratio):
    """Backward equals central finite differences of the float64 forward
    (roi_align avg is linear in the features, so differences are exact up to
    rounding)."""
    features, rois, scale, size = problem
    g = np.random.default_rng(3).standard_normal((len(rois), features.shape[1], *size))

    def loss(x):
        return float((cyroi.roi_align(x, rois, size, scale, ratio, aligned) * g).sum())

    grad = cyroi.roi_align_backward(g, rois, features.shape, scale, ratio, aligned)
    np.testing.assert_allclose(grad, reference.numeric_grad(loss, features), atol=1e-7)


def test_roi_max_gradients_match_differences_on_separated_values():
    """Max modes: with well-separated feature values the winner does not
    change under a small step, so finite differences are exact."""
    rng = np.random.default_rng(5)
    features = rng.permutation(2 * 2 * 8 * 9).reshape(2, 2, 8, 9).astype(np.float64)
    rois = np.array([[0, 0.3, 1.2, 6.1, 7.4], [1, 2.2, 0.1, 8.8, 5.5], [1, -2, -1, 3, 2]])
    g = rng.standard_normal((3, 2, 3, 2))

    out, argmax = cyroi.roi_pool(features, rois, (3, 2), return_argmax=True)
    grad = cyroi.roi_pool_backward(g, rois, argmax, features.shape)
    numeric = reference.numeric_grad(
        lambda x: float((cyroi.roi_pool(x, rois, (3, 2)) * g).sum()), features, eps=1e-3)
    np.testing.assert_allclose(grad, numeric, atol=1e-6)

    out, argmax = cyroi.roi_align(features, rois, (3, 2), 1.0, 2, True, "max",
                                  return_argmax=True)
    grad = cyroi.roi_align_backward(g, rois, features.shape, 1.0, 2, True, "max", argmax=argmax)
    numeric = reference.numeric_grad(
        lambda x: float((cyroi.roi_align(x, rois, (3, 2), 1.0, 2, True, "max") * g).sum()),
        features, eps=1e-4)
    np.testing.assert_allclose(grad, numeric, atol=1e-6)


@pytest.mark.parametrize("dtype", DTYPES)
def test_huge_boxes_follow_the_formulas(dtype):
    """Boxes far larger than the map: the adaptive grid has ~1e5 samples per
    side; only the in-map ones are visited, and the result is the same."""
    rng = np.random.default_rng(11)
    features = rng.standard_normal((1, 2, 6, 7)).astype(dtype)
    rois = np.array([[0, -3e5, -2e5, 4e5, 5e5], [0, -1e5, 2, 1e5, 4], [0, 1, -1e6, 3, 1e6]],
                    dtype)
    for mode in ("avg", "max"):
        expected, expected_argmax = reference.roi_align(features, rois, (2, 2), 1.0, -1, True, mode,
                                                        dtype=dtype)
        result = cyroi.roi_align(features, rois, 2, 1.0, -1, True, mode,
                                 return_argmax=mode == "max")
        out = result[0] if mode == "max" else result
        assert_same(out, expected)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("channels", [40, 70])
def test_wide_channel_blocks(channels, layout, threads, restore_threads):
    """Enough channels for several channel blocks per image (the problems
    above have at most 3): NCHW copies, NHWC dense copies of part of the
    channels, staged RoI gradients."""
    cyroi.set_num_threads(threads)
    rng = np.random.default_rng(channels)
    x = rng.standard_normal((1, channels, 11, 13)).astype(np.float32)
    boxes = rng.uniform(-2, 14, (7, 4))
    r = np.column_stack([np.zeros(7), np.minimum(boxes[:, :2], boxes[:, 2:]),
                         np.maximum(boxes[:, :2], boxes[:, 2:])]).astype(np.float32)
    f = to_layout(x, layout)
    for mode in ("avg", "max"):
        expected, expected_argmax = reference.roi_align(x, r, (3, 4), 1.0, 2, True, mode,
                                                        dtype=np.float32)
        result = cyroi.roi_align(f, r, (3, 4), 1.0, 2, True, mode, layout=layout,
                                 return_argmax=mode == "max")
        out, argmax = result if mode == "max" else (result, None)
        assert_same(from_layout(out, layout), expected)
        g = rng.standard_normal(expected.shape).astype(np.float32)
        grad = cyroi.roi_align_backward(to_layout(g, layout), r, f.shape, 1.0, 2, True, mode,
                                        argmax=argmax, layout=layout)
        assert_same(from_layout(grad, layout),
                    reference.roi_align_backward(g, r, x.shape, (3, 4), 1.0, 2, True, mode,
                                                 expected_argmax, dtype=np.float32))
    expected, expected_argmax = reference.roi_pool(x, r, (3, 4), 1.0, dtype=np.float32)
    out, argmax = cyroi.roi_pool(f, r, (3, 4), 1.0, layout=layout, return_argmax=True)
    assert_same(from_layout(out, layout), expected)
    g = rng.standard_normal(expected.shape).astype(np.float32)
    grad = cyroi.roi_pool_backward(to_layout(g, layout), r, argmax, f.shape, layout=layout)
    assert_same(from_layout(grad, layout),
                reference.roi_pool_backward(g, r, x.shape, (3, 4), 1.0, expected_argmax,
                                            dtype=np.float32))


@pytest.mark.parametrize("dtype", DTYPES)
def test_map_copied_channels_last_in_stretches(dtype, restore_threads):
    """NCHW maps that the loops copy channels-last (many reads per pixel):
    this one has more pixels than a stretch of the copy (cpu_common.h
    kStretchBytes) and a channel count that is not a whole number of SIMD
    chunks, so the copy and the gradient's store go stretch by stretch with
    a partial last chunk; mode "max" backward runs on both argmax widths.
    Each reference answer is computed once and faces 1 and 2 threads (the
    reference is most of the test's time, 4x more under the sanitizers)."""
    rng = np.random.default_rng(11)
    x = rng.standard_normal((1, 37, 97, 101)).astype(dtype)
    corner = rng.uniform(-5, 40, (8, 2))
    r = np.column_stack([np.zeros(8), corner, corner + rng.uniform(50, 70, (8, 2))]).astype(dtype)
    g = rng.standard_normal((8, 37, 7, 7)).astype(dtype)
    threads = (1, 2)

    for ratio in (-1, 8):  # int64 and int32 argmax; 8^2 samples fill a SampleBatch
        expected, expected_argmax = reference.roi_align(x, r, (7, 7), 1.0, ratio, True, "max",
                                                        dtype=dtype)
        expected_grad = reference.roi_align_backward(g, r, x.shape, (7, 7), 1.0, ratio, True,
                                                     "max", expected_argmax, dtype=dtype)
        for n in threads:
            cyroi.set_num_threads(n)
            out, argmax = cyroi.roi_align(x, r, 7, 1.0, ratio, True, "max", return_argmax=True)
            assert_same(out, expected)
            np.testing.assert_array_equal(argmax, expected_argmax)
            assert_same(cyroi.roi_align_backward(g, r, x.shape, 1.0, ratio, True, "max",
                                                 argmax=argmax), expected_grad)
    expected = reference.roi_align(x, r, (7, 7), 1.0, -1, True, dtype=dtype)[0]
    expected_grad = reference.roi_align_backward(g, r, x.shape, (7, 7), 1.0, -1, True,
                                                 dtype=dtype)
    expected_pool, expected_pool_argmax = reference.roi_pool(x, r, (7, 7), 1.0, dtype=dtype)
    for n in threads:
        cyroi.set_num_threads(n)
        assert_same(cyroi.roi_align(x, r, 7, 1.0, -1, True), expected)
        assert_same(cyroi.roi_align_backward(g, r, x.shape, 1.0, -1, True), expected_grad)
        out, argmax = cyroi.roi_pool(x, r, 7, 1.0, return_argmax=True)
        assert_same(out, expected_pool)
        np.testing.assert_array_equal(argmax, expected_pool_argmax)


@pytest.mark.parametrize("dtype", DTYPES)
def test_channels_in_register_chunks(dtype, restore_threads):
    """The forward loops hold the running sums and maxima of a dense block's
    channels in registers, 8 (or 4), 4, 2 then 1 lines of one SIMD register
    at a time (cpu_common.h for_each_lines; 64, 32 or 16 bytes by target),
    and roi_align's backward its output gradients, the channels past the
    last whole line in memory: 255 channels take every chunk and a
    remainder on every target in either dtype (255 mod 8n is at least 7n,
    and not a multiple of n, for n lanes a line). A map of few levels makes
    ties, whose first maximum must win; sampling_ratio -1 and 2 give both
    argmax widths and bins whose sample count has an exact inverse and
    not. Each reference answer faces both layouts (it is most of the
    test's time)."""
    rng = np.random.default_rng(5)
    x = rng.integers(0, 3, (2, 255, 23, 29)).astype(dtype)
    corner = rng.uniform(-3, 20, (16, 2))  # enough reads that NCHW is copied channels-last
    r = np.column_stack([rng.integers(0, 2, 16), corner,
                         corner + rng.uniform(5, 25, (16, 2))]).astype(dtype)
    cyroi.set_num_threads(1)  # one block of every channel where the map is NHWC
    for ratio in (-1, 2):
        for mode in ("avg", "max"):
            expected, expected_argmax = reference.roi_align(x, r, (5, 4), 0.9, ratio, True, mode,
                                                            dtype=dtype)
            g = rng.standard_normal(expected.shape).astype(dtype)
            expected_grad = reference.roi_align_backward(g, r, x.shape, (5, 4), 0.9, ratio, True,
                                                         mode, expected_argmax, dtype=dtype)
            for layout in LAYOUTS:
                f = to_layout(x, layout)
                out = cyroi.roi_align(f, r, (5, 4), 0.9, ratio, True, mode,
                                      layout=layout, return_argmax=mode == "max")
                argmax = None
                if mode == "max":
                    out, argmax = out
                    np.testing.assert_array_equal(from_layout(argmax, layout), expected_argmax)
                assert_same(from_layout(out, layout), expected)
                grad = cyroi.roi_align_backward(to_layout(g, layout), r, f.shape, 0.9, ratio,
                                                True, mode, argmax=argmax, layout=layout)
                assert_same(from_layout(grad, layout), expected_grad)
    expected, expected_argmax = reference.roi_pool(x, r, (5, 4), 0.9, dtype=dtype)
    for layout in LAYOUTS:
        out, argmax = cyroi.roi_pool(to_layout(x, layout), r, (5, 4), 0.9, layout=layout,
                                     return_argmax=True)
        assert_same(from_layout(out, layout), expected)
        np.testing.assert_array_equal(from_layout(argmax, layout), expected_argmax)


def skewed_copy(x, skew):
    """x in memory that starts `skew` bytes past a 64-byte line."""
    buffer = np.empty(x.nbytes + 128, np.uint8)
    start = (-buffer.ctypes.data) % 64 + skew
    y = buffer[start:start + x.nbytes].view(x.dtype).reshape(x.shape)
    y[...] = x
    return y


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("channels", [32, 80, 112, 256])
@pytest.mark.parametrize("skew", [0, 8, 16, 32, 48])
@pytest.mark.parametrize("dtype", DTYPES)
def test_nhwc_map_off_a_line(dtype, skew, channels, threads, restore_threads):
    """NHWC maps are read in place, and NumPy puts large arrays 16 bytes
    past a 64-byte line: roi_align's average then runs each pixel's first
    channels apart from the lines after them, and its last ones (LineSpan),
    on every whole-line count of the forward's chunks; mode "max" reads
    the lines as they fall. Integer levels make ties in mode "max", whose
    first maximum must win."""
    cyroi.set_num_threads(threads)
    rng = np.random.default_rng(channels + skew)
    x = rng.integers(-2, 3, (2, channels, 9, 12)).astype(dtype)
    corner = rng.uniform(-3, 9, (12, 2))
    r = np.column_stack([rng.integers(0, 2, 12), corner,
                         corner + rng.uniform(1, 10, (12, 2))]).astype(dtype)
    f = skewed_copy(to_layout(x, "NHWC"), skew)
    for ratio, mode in itertools.product((-1, 2), ("avg", "max")):
        expected, expected_argmax = reference.roi_align(x, r, (3, 5), 0.8, ratio, True, mode,
                                                        dtype=dtype)
        out = cyroi.roi_align(f, r, (3, 5), 0.8, ratio, True, mode, layout="NHWC",
                              return_argmax=mode == "max")
        if mode == "max":
            out, argmax = out
            np.testing.assert_array_equal(from_layout(argmax, "NHWC"), expected_argmax)
        assert_same(from_layout(out, "NHWC"), expected)


def padded_view(x, pad):
    """x as a view of an array `pad` channels wider (NHWC: channels last)."""
    wide = np.zeros(x.shape[:-1] + (x.shape[-1] + pad,), x.dtype)
    wide[..., :x.shape[-1]] = x
    return wide[..., :x.shape[-1]]


ARGMAX_VIEWS = {
    "contiguous": lambda a: a,
    "padded": lambda a: padded_view(a, 7),
    "planes": lambda a: np.ascontiguousarray(from_layout(a, "NHWC")).transpose(0, 2, 3, 1),
}


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("argmax_view", ARGMAX_VIEWS)
@pytest.mark.parametrize("grad_pad", [0, 3])
def test_nhwc_pool_backward_reads_bins_in_place(grad_pad, argmax_view, threads,
                                                restore_threads):
    """NHWC roi_pool backward reads each bin's output gradients where they
    lie, and the argmax too where its channels are adjacent: here views of
    arrays wider than their channels, as a channels-last tensor sliced from
    a larger one comes, and an argmax whose channels lie planes apart."""
    cyroi.set_num_threads(threads)
    rng = np.random.default_rng(grad_pad)
    x = rng.standard_normal((2, 48, 10, 13)).astype(np.float32)
    corner = rng.uniform(-2, 11, (9, 2))
    r = np.column_stack([rng.integers(0, 2, 9), corner,
                         corner + rng.uniform(1, 8, (9, 2))]).astype(np.float32)
    expected, expected_argmax = reference.roi_pool(x, r, (3, 4), 1.0, dtype=np.float32)
    g = rng.standard_normal(expected.shape).astype(np.float32)
    argmax = ARGMAX_VIEWS[argmax_view](to_layout(expected_argmax, "NHWC"))
    grad = cyroi.roi_pool_backward(padded_view(to_layout(g, "NHWC"), grad_pad), r, argmax,
                                   to_layout(x, "NHWC").shape, layout="NHWC")
    assert_same(from_layout(grad, "NHWC"),
                reference.roi_pool_backward(g, r, x.shape, (3, 4), 1.0, expected_argmax,
                                            dtype=np.float32))
