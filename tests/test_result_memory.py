"""Large CPU results live in reusable memory (cyroi._memory): a dead
result's block serves the next call of a similar size, a live result's
block never does, and the cache stays within its limit."""
import gc

import numpy as np
import pytest

import cyroi
import reference
from cyroi import _memory

DEFAULT_LIMIT = 512 << 20


@pytest.fixture(autouse=True)
def default_cache():
    """The default limit during the test; conftest's setting after it."""
    before = _memory.limit()
    cyroi.set_result_cache(DEFAULT_LIMIT)
    yield
    cyroi.set_result_cache(before)


def problem(k, channels=64, seed=0):
    """A call whose (k, channels, 7, 7) float32 result is over 1 MiB for k >= 84."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((2, channels, 20, 24)).astype(np.float32)
    boxes = rng.uniform(0, 20, (k, 4))
    rois = np.column_stack([rng.integers(0, 2, k), np.minimum(boxes[:, :2], boxes[:, 2:]),
                            np.maximum(boxes[:, :2], boxes[:, 2:])]).astype(np.float32)
    return x, rois


def address(array):
    return array.__array_interface__["data"][0]


def test_a_dead_result_block_serves_the_next_call():
    x, rois = problem(200)
    first = cyroi.roi_align(x, rois, 7, 1.0, 2)
    where = address(first)
    del first
    gc.collect()
    assert _memory.cached_bytes() > 0
    second = cyroi.roi_align(x, rois, 7, 1.0, 2)
    assert address(second) == where
    np.testing.assert_array_equal(second, reference.roi_align(x, rois, (7, 7), 1.0, 2,
                                                                dtype=np.float32)[0])


def test_live_results_keep_their_values():
    results, expected = [], []
    for seed in range(4):
        x, rois = problem(200 + seed, seed=seed)
        results.append(cyroi.roi_pool(x, rois, 7, 0.5))
        expected.append(reference.roi_pool(x, rois, (7, 7), 0.5, dtype=np.float32)[0])
    assert len({address(r) for r in results}) == len(results)
    for got, want in zip(results, expected):
        np.testing.assert_array_equal(got, want)


def test_the_cache_stays_within_its_limit():
    limit = 8 << 20
    cyroi.set_result_cache(limit)
    for k in (100, 300, 600, 1200, 150, 900):
        x, rois = problem(k)
        cyroi.roi_align(x, rois, 7, 1.0, 2)
        assert _memory.cached_bytes() <= limit
    cyroi.set_result_cache(0)
    assert _memory.cached_bytes() == 0
    x, rois = problem(200)
    out = cyroi.roi_align(x, rois, 7, 1.0, 2)
    assert out.flags.owndata  # a plain NumPy array
    del out
    assert _memory.cached_bytes() == 0


@pytest.mark.parametrize("bad", [-1, 1.5, "1", True, None])
def test_set_result_cache_rejects_non_sizes(bad):
    with pytest.raises(ValueError, match="set_result_cache expects an int >= 0"):
        cyroi.set_result_cache(bad)


@pytest.mark.parametrize("layout,grad_out", [("NCHW", "contiguous"), ("NHWC", "view"),
                                             ("NHWC", "contiguous")])
@pytest.mark.parametrize("op", ["roi_align", "roi_pool"])
def test_a_gradient_in_a_dirty_block_is_zeroed_by_the_loop(op, layout, grad_out):
    """A gradient of reusable size takes a cached block as it is (here one
    filled with NaN bits) and the backward loop zeroes it: the result equals
    the reference, pixels no RoI reads included. NHWC output gradients come
    as a transposed view of NCHW ones (channels apart) and contiguous:
    roi_pool's backward takes a loop of its own for each."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 64, 48, 40))
    rois = np.array([[0, 2, 3, 20, 30], [1, 10, 5, 38, 17], [1, 0, 0, 9, 9]], np.float64)
    size = (3, 4)
    if op == "roi_align":
        out = reference.roi_align(x, rois, size, 0.5, 2, True)[0]
        want = reference.roi_align_backward(np.ones_like(out), rois, x.shape, size, 0.5, 2,
                                            True)
    else:
        out, argmax = reference.roi_pool(x, rois, size, 0.5)
        want = reference.roi_pool_backward(np.ones_like(out), rois, x.shape, size, 0.5, argmax)
    dirty = np.frombuffer(_memory.Block(x.nbytes), np.uint8)
    dirty[:] = 0xFF
    where = address(dirty)
    del dirty
    def in_layout(array):
        return array.transpose(0, 2, 3, 1) if layout == "NHWC" else array

    g, shape = in_layout(np.ones(out.shape)), in_layout(x).shape
    if grad_out == "contiguous":
        g = np.ascontiguousarray(g)
    if op == "roi_align":
        grad = cyroi.roi_align_backward(g, rois, shape, 0.5, 2, True, layout=layout)
    else:
        grad = cyroi.roi_pool_backward(g, rois, in_layout(argmax), shape, layout=layout)
    assert address(grad) == where
    grad = grad.transpose(0, 3, 1, 2) if layout == "NHWC" else grad
    np.testing.assert_allclose(grad, want, rtol=1e-12, atol=1e-12)
    assert (grad == 0).any()
