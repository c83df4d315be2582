"""cyroi.chainer: Chainer's signatures, numbers of tests/reference.py,
Chainer's own functions where both are defined, and check_backward."""
import inspect

import numpy as np
import pytest

import reference

chainer = pytest.importorskip("chainer")
cc = pytest.importorskip("cyroi.chainer")
from chainer import functions as F  # noqa: E402
from chainer import gradient_check  # noqa: E402

RNG = np.random.default_rng(5)
# Distinct, well-separated values: finite differences never move a maximum.
FEATURES = RNG.permutation(2 * 2 * 8 * 9).reshape(2, 2, 8, 9) * 0.25
# [batch_index, x1, y1, x2, y2]: inside, across the border, inverted. No
# corner * scale at k + 0.5, where Chainer's CPU roi_pooling_2d rounds to even.
ROIS = np.array([[0, 1, 1, 6, 5.2], [1, 0.4, 2, 7.8, 7], [0, -3, 4, 20, 9], [1, 6, 5, 2, 1]])
INSIDE = ROIS[:2]
SCALE = 0.9


def y_first(rois):
    return rois[:, [2, 1, 4, 3]], rois[:, 0].astype(np.int32)


def test_signatures_match_chainer():
    for name in ("roi_pooling_2d", "roi_average_align_2d", "roi_max_align_2d"):
        ours, theirs = (inspect.signature(getattr(m, name)) for m in (cc, F))
        assert ours == theirs, name


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("mode", ["avg", "max"])
def test_align_matches_reference(mode, dtype):
    x, rois = FEATURES.astype(dtype), ROIS.astype(dtype)
    op = cc.roi_average_align_2d if mode == "avg" else cc.roi_max_align_2d
    boxes, index = y_first(rois)
    v = chainer.Variable(x)
    y = op(v, boxes, index, (2, 3), SCALE, 2)
    expected, argmax = reference.roi_align(x, rois, (2, 3), SCALE, 2, False, mode, dtype=dtype)
    assert y.dtype == dtype
    np.testing.assert_array_equal(y.array, expected)

    g = np.random.default_rng(1).standard_normal(expected.shape).astype(dtype)
    gx, = chainer.grad([y], [v], grad_outputs=[g])
    np.testing.assert_array_equal(gx.array, reference.roi_align_backward(
        g, rois, x.shape, (2, 3), SCALE, 2, False, mode, argmax, dtype=dtype))


def test_roi_pooling_matches_reference():
    x = chainer.Variable(FEATURES)
    y = cc.roi_pooling_2d(x, ROIS, 3, 2, SCALE)
    expected, argmax = reference.roi_pool(FEATURES, ROIS, (3, 2), SCALE)
    np.testing.assert_array_equal(y.array, expected)
    g = np.random.default_rng(2).standard_normal(expected.shape)
    y.grad = g
    y.backward()
    np.testing.assert_array_equal(x.grad, reference.roi_pool_backward(
        g, ROIS, FEATURES.shape, (3, 2), SCALE, argmax))


def same_forward_and_backward(ours, theirs, x, args):
    """Runs both functions on float32 x; returns (ours, theirs) outputs and grads."""
    results = []
    for fn in (ours, theirs):
        v = chainer.Variable(x.copy())
        y = fn(v, *args)
        y.grad = np.linspace(-1, 1, y.size, dtype=np.float32).reshape(y.shape)
        y.backward()
        results.append((y.array, v.grad))
    return results


@pytest.mark.parametrize("name", ["roi_average_align_2d", "roi_max_align_2d"])
def test_align_equals_chainer(name):
    rois = (ROIS if name == "roi_average_align_2d" else INSIDE).astype(np.float32)
    boxes, index = y_first(rois)
    for ratio in (None, 2):
        (out, grad), (want, want_grad) = same_forward_and_backward(
            getattr(cc, name), getattr(F, name), FEATURES.astype(np.float32),
            (boxes, index, (3, 2), SCALE, ratio))
        # Chainer computes weights as (y1 - y) where cyroi takes 1 - (y - y0).
        np.testing.assert_allclose(out, want, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(grad, want_grad, rtol=1e-5, atol=1e-5)


def test_roi_pooling_equals_chainer():
    rois = INSIDE.astype(np.float32)
    (out, grad), (want, want_grad) = same_forward_and_backward(
        cc.roi_pooling_2d, F.roi_pooling_2d, FEATURES.astype(np.float32), (rois, 3, 2, SCALE))
    np.testing.assert_array_equal(out, want)
    np.testing.assert_array_equal(grad, want_grad)


def test_documented_differences_from_chainer():
    x = FEATURES.astype(np.float32)
    # A corner at x = 2.5: half away from zero starts the box at column 3,
    # Chainer's CPU half to even at column 2, where the maximum is.
    x[0, :, 0, 2] = 1000
    half = np.array([[0, 2.5, 0, 6, 6]], np.float32)
    ours = cc.roi_pooling_2d(x, half, 1, 1, 1.0).array
    np.testing.assert_array_equal(ours, reference.roi_pool(x, half, (1, 1), 1.0)[0])
    assert (ours < 1000).all()
    assert (F.roi_pooling_2d(x, half, 1, 1, 1.0).array == 1000).all()
    # A box wholly outside the map: 0 here, -inf from Chainer's max align.
    boxes, index = y_first(np.array([[0, 30, 30, 40, 40]], np.float32))
    assert (cc.roi_max_align_2d(x, boxes, index, 2, 1.0).array == 0).all()
    assert (F.roi_max_align_2d(x, boxes, index, 2, 1.0).array == -np.inf).all()


@pytest.mark.parametrize("name", ["roi_average_align_2d", "roi_max_align_2d"])
def test_align_check_backward(name):
    boxes, index = y_first(ROIS)
    op = getattr(cc, name)
    gy = np.random.default_rng(3).standard_normal((len(ROIS), 2, 2, 3))
    gradient_check.check_backward(lambda x: op(x, boxes, index, (2, 3), SCALE, 2), FEATURES,
                                  gy, eps=1e-6, atol=1e-6, rtol=1e-5)


def test_average_align_double_backward():
    boxes, index = y_first(ROIS)
    rng = np.random.default_rng(4)
    gy = rng.standard_normal((len(ROIS), 2, 2, 2))
    ggx = rng.standard_normal(FEATURES.shape)
    gradient_check.check_double_backward(
        lambda x: cc.roi_average_align_2d(x, boxes, index, 2, SCALE), FEATURES, gy, ggx,
        eps=1e-6, atol=1e-6, rtol=1e-5)


def test_roi_pooling_check_backward():
    gy = np.random.default_rng(5).standard_normal((len(ROIS), 2, 3, 2))
    gradient_check.check_backward(lambda x: cc.roi_pooling_2d(x, ROIS, 3, 2, SCALE), FEATURES,
                                  gy, eps=1e-6, atol=1e-6, rtol=1e-5)


def test_bad_arguments():
    x = FEATURES.astype(np.float32)
    boxes, index = y_first(ROIS.astype(np.float32))
    with pytest.raises(ValueError, match="one sampling ratio for both axes"):
        cc.roi_average_align_2d(x, boxes, index, 2, 1.0, (1, 2))
    with pytest.raises(ValueError, match=r"rois must have shape \(K, 4\)"):
        cc.roi_max_align_2d(x, ROIS.astype(np.float32), index, 2, 1.0)
    with pytest.raises(ValueError, match="batch index must be in"):
        cc.roi_average_align_2d(x, boxes, index + 2, 2, 1.0)
    v = chainer.Variable(x)
    y = cc.roi_max_align_2d(v, boxes, index, 2, 1.0)
    gy = chainer.Variable(np.ones_like(y.array))
    gx, = chainer.grad([y], [v], grad_outputs=[gy], enable_double_backprop=True)
    with pytest.raises(NotImplementedError, match="no double backward"):
        chainer.grad([gx], [gy], grad_outputs=[np.ones_like(x)])
