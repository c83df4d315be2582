"""The SPEC's bad-input rules hold for the RoI family too: the right
exception, naming the argument. (Checks are shared with roi_align; these
tests pin that every op goes through them.)"""
import numpy as np
import pytest

import cyroi

F = np.zeros((2, 8, 6, 6), np.float32)  # 8 = 2 * (2 * 2): ps ops take output_size 2
BOXES = np.array([[0, 1, 1, 4, 4], [1, 0, 0, 5, 5]], np.float32)
ROTATED = np.array([[0, 3, 3, 2, 2, 30], [1, 2, 2, 4, 3, -10]], np.float32)


def pyramid_op(features, rois, output_size, **kwargs):
    return cyroi.multiscale_roi_align([features, features[:, :, ::2, ::2]], rois, output_size,
                                      [1 / 4, 1 / 8], **kwargs)


OPS = [(cyroi.ps_roi_align, BOXES), (cyroi.ps_roi_pool, BOXES),
       (cyroi.roi_align_rotated, ROTATED), (cyroi.precise_roi_pool, BOXES),
       (pyramid_op, BOXES)]
IDS = ["ps_roi_align", "ps_roi_pool", "roi_align_rotated", "precise_roi_pool",
       "multiscale_roi_align"]


@pytest.mark.parametrize("op, rois", OPS, ids=IDS)
def test_features_not_floating(op, rois):
    with pytest.raises(TypeError, match="must be floating.*int32"):
        op(F.astype(np.int32), rois, 2)


@pytest.mark.parametrize("op, rois", OPS, ids=IDS)
def test_rois_wrong_shape(op, rois):
    with pytest.raises(ValueError, match=rf"rois must have shape \(K, {rois.shape[1]}\)"):
        op(F, rois[:, :-1], 2)


@pytest.mark.parametrize("op, rois", OPS, ids=IDS)
def test_batch_index_out_of_range(op, rois):
    bad = rois.copy()
    bad[0, 0] = 2
    with pytest.raises(ValueError, match=r"batch index must be in \[0, 2\)"):
        op(F, bad, 2)


@pytest.mark.parametrize("op, rois", OPS, ids=IDS)
def test_non_finite_coordinates(op, rois):
    bad = rois.copy()
    bad[1, 2] = np.nan
    with pytest.raises(ValueError, match="rois box coordinates must be finite"):
        op(F, bad, 2)


@pytest.mark.parametrize("op, rois", OPS, ids=IDS)
def test_output_size_below_one(op, rois):
    with pytest.raises(ValueError, match="output_size must be >= 1"):
        op(F, rois, (2, 0))


@pytest.mark.parametrize("op, rois", OPS[:4], ids=IDS[:4])
def test_spatial_scale_not_positive(op, rois):
    with pytest.raises(ValueError, match="spatial_scale must be finite and > 0"):
        op(F, rois, 2, 0.0)


@pytest.mark.parametrize("op, rois", [OPS[0], OPS[2], OPS[4]], ids=[IDS[0], IDS[2], IDS[4]])
def test_sampling_ratio_zero(op, rois):
    with pytest.raises(ValueError, match="sampling_ratio must be > 0, or -1"):
        op(F, rois, 2, sampling_ratio=0)


@pytest.mark.parametrize("op, rois", OPS, ids=IDS)
def test_unknown_layout(op, rois):
    with pytest.raises(ValueError, match="layout must be one of"):
        op(F, rois, 2, layout="CHWN")


@pytest.mark.parametrize("op, rois", OPS, ids=IDS)
def test_k_zero_gives_empty_output(op, rois):
    out = op(F, rois[:0], 2)
    channels = 2 if op in (cyroi.ps_roi_align, cyroi.ps_roi_pool) else 8
    assert out.shape == (0, channels, 2, 2) and out.dtype == F.dtype


@pytest.mark.parametrize("op, rois", OPS, ids=IDS)
def test_invalid_batch_index_unchecked_reads_zeros(op, rois):
    # validate=False: an out-of-range image reads zeros, never memory
    bad = rois.copy()
    bad[:, 0] = [-3, 7]
    out = op(np.ones_like(F), bad, 2, validate=False)
    np.testing.assert_array_equal(out, 0)


def test_backwards_take_deterministic_and_the_cpu_always_is():
    g = np.random.default_rng(0).standard_normal((2, 2, 2, 2)).astype(np.float32)
    g_full = np.random.default_rng(1).standard_normal((2, 8, 2, 2)).astype(np.float32)
    f = np.random.default_rng(2).standard_normal(F.shape).astype(np.float32)
    calls = [
        lambda **kw: cyroi.ps_roi_align_backward(g, BOXES, F.shape, **kw),
        lambda **kw: cyroi.ps_roi_pool_backward(g, BOXES, F.shape, **kw),
        lambda **kw: cyroi.roi_align_rotated_backward(g_full, ROTATED, F.shape, **kw),
        lambda **kw: cyroi.precise_roi_pool_backward(g_full, BOXES, f, **kw)[0],
        lambda **kw: cyroi.multiscale_roi_align_backward(
            g_full, BOXES, [F.shape, (2, 8, 3, 3)], [1 / 4, 1 / 8], **kw)[0]]
    for call in calls:
        np.testing.assert_array_equal(call(deterministic=True), call())


def test_fpn_options_are_checked():
    levels = [F, F[:, :, ::2, ::2]]
    with pytest.raises(TypeError, match="canonical_level must be a real number"):
        cyroi.multiscale_roi_align(levels, BOXES, 2, [1 / 4, 1 / 8], canonical_level="4")
    with pytest.raises(ValueError, match="canonical_scale must be finite"):
        cyroi.multiscale_roi_align(levels, BOXES, 2, [1 / 4, 1 / 8], canonical_scale=np.inf)
    with pytest.raises(TypeError, match="spatial_scales must be a sequence of real numbers"):
        cyroi.multiscale_roi_align(levels, BOXES, 2, 0.25)
