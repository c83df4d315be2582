"""cyroi.mxnet's position-sensitive and rotated op types against
tests/reference.py, through mx.nd.Custom and autograd, and mx.sym."""
import numpy as np
import pytest

import reference

mx = pytest.importorskip("mxnet")
pytest.importorskip("cyroi.mxnet")
from test_adapter_mxnet import custom, gradient_like, run  # noqa: E402

RNG = np.random.default_rng(17)
FEATURES = RNG.standard_normal((2, 8, 7, 8))  # 8 channels: 2 of 2x2 bins, 4 of 1x2
ROIS = np.array([[0, 1, 1, 5, 6], [1, 0.5, 2, 7.5, 7], [0, -3, 4, 20, 9], [1, 6, 5, 2, 1]])
ROTATED = np.array([[0, 4, 3.5, 5, 3, 30], [1, 2, 5, 6, 2.5, -75], [0, 3, 3, 12, 9, 200]])
CASES = [  # op_type, MXNet arguments, reference name, reference parameters, rois
    ("cyroi_ps_roi_align", dict(pooled_size=(2, 2), spatial_scale=0.5, sample_ratio=2),
     "ps_roi_align", ((2, 2), 0.5, 2), ROIS),
    ("cyroi_ps_roi_align", dict(pooled_size=(1, 2), spatial_scale=1.0),
     "ps_roi_align", ((1, 2), 1.0, -1), ROIS),
    ("cyroi_ps_roi_pool", dict(pooled_size=(2, 1), spatial_scale=0.5),
     "ps_roi_pool", ((2, 1), 0.5), ROIS),
    ("cyroi_roi_align_rotated", dict(pooled_size=(2, 3), spatial_scale=1.0, sampling_ratio=2),
     "roi_align_rotated", ((2, 3), 1.0, 2, False, False), ROTATED),
    ("cyroi_roi_align_rotated", dict(pooled_size=(3, 2), spatial_scale=0.5, aligned=True),
     "roi_align_rotated", ((3, 2), 0.5, -1, True, False), ROTATED),
    ("cyroi_roi_align_rotated", dict(pooled_size=(2, 2), spatial_scale=0.5, sampling_ratio=0,
                                     clockwise=True),
     "roi_align_rotated", ((2, 2), 0.5, -1, False, True), ROTATED)]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("op_type, kwargs, name, params, rois", CASES)
def test_matches_reference(op_type, kwargs, name, params, rois, dtype):
    x, rois = FEATURES.astype(dtype), rois.astype(dtype)
    expected = getattr(reference, name)(x, rois, *params, dtype=dtype)
    g = gradient_like(expected.shape, dtype)
    out, grad = run(custom(op_type), x, rois, g, **kwargs)
    expected_grad = getattr(reference, name + "_backward")(g, rois, x.shape, *params, dtype=dtype)
    assert out.dtype == dtype
    # Under NumPy 1.x the reference's float64 cos/sin of the rotated boxes'
    # angles differ from C++'s by an ulp; everything else is exact.
    tolerance = dict(rtol=1e-13, atol=1e-15) if dtype == np.float64 else dict(rtol=0, atol=0)
    np.testing.assert_allclose(out, expected, **tolerance)
    np.testing.assert_allclose(grad, expected_grad, **tolerance)


@pytest.mark.parametrize("kwargs", [dict(pooled_size=(2, 3), spatial_scale=1.0, sampling_ratio=2),
                                    dict(pooled_size=(3, 3), spatial_scale=0.5)])
def test_rotated_defaults_equal_mxnets_rroialign(kwargs):
    """MXNet's RROIAlign: no half-pixel offset, counter-clockwise angles."""
    x, rois = mx.nd.array(FEATURES, dtype="float64"), mx.nd.array(ROTATED, dtype="float64")
    expected = mx.nd.contrib.RROIAlign(x, rois, **kwargs).asnumpy()
    out = mx.nd.Custom(x, rois, op_type="cyroi_roi_align_rotated", **kwargs).asnumpy()
    np.testing.assert_allclose(out, expected, rtol=1e-12, atol=1e-14)


def test_symbol_infers_position_sensitive_shape():
    y = mx.sym.Custom(mx.sym.var("data"), mx.sym.var("rois"), op_type="cyroi_ps_roi_pool",
                      pooled_size=(2, 2), spatial_scale=1.0)
    _, shapes, _ = y.infer_shape(data=FEATURES.shape, rois=ROIS.shape)
    assert shapes == [(4, 2, 2, 2)]
    with pytest.raises(mx.base.MXNetError):  # MXNet prints the ValueError, not raises it
        y.infer_shape(data=(2, 6, 7, 8), rois=ROIS.shape)
