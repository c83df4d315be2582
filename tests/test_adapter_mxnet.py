"""cyroi.mxnet: custom ops against tests/reference.py and against MXNet's own
ROIPooling / contrib.ROIAlign, through mx.nd, autograd and mx.sym."""
import re

import numpy as np
import pytest

import reference

mx = pytest.importorskip("mxnet")
pytest.importorskip("cyroi.mxnet")

RNG = np.random.default_rng(9)
FEATURES = RNG.permutation(2 * 3 * 8 * 9).reshape(2, 3, 8, 9) * 0.25
# [batch_index, x1, y1, x2, y2]: inside, across the border, inverted, a point.
ROIS = np.array([[0, 1, 1, 6, 5.2], [1, 0.4, 2, 7.8, 7], [0, -3, 4, 20, 9], [1, 6, 5, 2, 1],
                 [1, 3, 3, 3, 3]])
# The comparisons with MXNet use boxes of positive size (MXNet's ROIAlign
# aborts the process on others with aligned=True) and first a RoI with a
# negative batch index, whose output MXNet documents as zeros. MXNet 1.9.1's
# CPU ROIAlign breaks that promise: it writes one zero at flat output element
# k (the RoI's number) and leaves the RoI's block as allocated, so that RoI
# is compared with ROIPooling only; with k = 0 the stray zero stays inside it.
MXNET_ROIS = np.concatenate([[[-1, 1, 1, 5, 5]], ROIS[:3]])
ALIGN_ARGS = [dict(pooled_size=(2, 3), spatial_scale=0.5, sample_ratio=2, aligned=True),
              dict(pooled_size=(3, 3), spatial_scale=1.0),
              dict(pooled_size=(2, 2), spatial_scale=0.75, sample_ratio=0, aligned=False)]
POOL_ARGS = [dict(pooled_size=(2, 3), spatial_scale=1.0), dict(pooled_size=(3, 2),
                                                              spatial_scale=0.5)]


def run(op, data, rois, grad, **kwargs):
    """(output, gradient of data) of op under autograd.record."""
    x, r = mx.nd.array(data, dtype=data.dtype), mx.nd.array(rois, dtype=rois.dtype)
    x.attach_grad()
    with mx.autograd.record():
        y = op(x, r, **kwargs)
    y.backward(mx.nd.array(grad, dtype=grad.dtype))
    return y.asnumpy(), x.grad.asnumpy()


def custom(op_type):
    return lambda x, r, **kwargs: mx.nd.Custom(x, r, op_type=op_type, **kwargs)


def gradient_like(shape, dtype, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kwargs", ALIGN_ARGS)
def test_roi_align_matches_reference(kwargs, dtype):
    x, rois = FEATURES.astype(dtype), ROIS.astype(dtype)
    size, scale = kwargs["pooled_size"], kwargs["spatial_scale"]
    ratio = kwargs.get("sample_ratio", -1) or -1
    aligned = kwargs.get("aligned", False)
    expected, _ = reference.roi_align(x, rois, size, scale, ratio, aligned, dtype=dtype)
    g = gradient_like(expected.shape, dtype)
    out, grad = run(custom("cyroi_roi_align"), x, rois, g, **kwargs)
    assert out.dtype == dtype
    np.testing.assert_array_equal(out, expected)
    np.testing.assert_array_equal(grad, reference.roi_align_backward(
        g, rois, x.shape, size, scale, ratio, aligned, dtype=dtype))


def test_roi_align_max_mode_matches_reference():
    expected, argmax = reference.roi_align(FEATURES, ROIS, (2, 2), 0.5, 2, True, "max")
    g = gradient_like(expected.shape, np.float64)
    out, grad = run(custom("cyroi_roi_align"), FEATURES, ROIS, g, pooled_size=(2, 2),
                    spatial_scale=0.5, sample_ratio=2, aligned=True, mode="max")
    np.testing.assert_array_equal(out, expected)
    np.testing.assert_array_equal(grad, reference.roi_align_backward(
        g, ROIS, FEATURES.shape, (2, 2), 0.5, 2, True, "max", argmax))


@pytest.mark.parametrize("kwargs", POOL_ARGS)
def test_roi_pool_matches_reference(kwargs):
    size, scale = kwargs["pooled_size"], kwargs["spatial_scale"]
    expected, argmax = reference.roi_pool(FEATURES, ROIS, size, scale)
    g = gradient_like(expected.shape, np.float64)
    out, grad = run(custom("cyroi_roi_pool"), FEATURES, ROIS, g, **kwargs)
    np.testing.assert_array_equal(out, expected)
    np.testing.assert_array_equal(grad, reference.roi_pool_backward(
        g, ROIS, FEATURES.shape, size, scale, argmax))


@pytest.mark.parametrize("kwargs", ALIGN_ARGS)
def test_roi_align_equals_mxnet(kwargs):
    x, rois = FEATURES.astype(np.float32), MXNET_ROIS.astype(np.float32)
    g = gradient_like((len(rois), 3, *kwargs["pooled_size"]), np.float32)
    out, grad = run(custom("cyroi_roi_align"), x, rois, g, **kwargs)
    want, want_grad = run(mx.nd.contrib.ROIAlign, x, rois, g, **kwargs)
    assert (out[0] == 0).all()
    # MXNet computes bilinear weights as (y1 - y) where cyroi takes 1 - (y - y0).
    np.testing.assert_allclose(out[1:], want[1:], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(grad, want_grad, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kwargs", POOL_ARGS)
def test_roi_pool_equals_mxnet(kwargs):
    x, rois = FEATURES.astype(np.float32), MXNET_ROIS.astype(np.float32)
    g = gradient_like((len(rois), 3, *kwargs["pooled_size"]), np.float32)
    out, grad = run(custom("cyroi_roi_pool"), x, rois, g, **kwargs)
    want, want_grad = run(mx.nd.ROIPooling, x, rois, g, **kwargs)
    assert (out[0] == 0).all()
    np.testing.assert_array_equal(out, want)
    np.testing.assert_array_equal(grad, want_grad)


def test_symbol_api_and_json_round_trip():
    data, rois = mx.sym.Variable("data"), mx.sym.Variable("rois")
    net = mx.sym.Custom(data, rois, op_type="cyroi_roi_align", pooled_size=(2, 3),
                        spatial_scale=0.5, sample_ratio=2, aligned=True, name="pool")
    net = mx.sym.load_json(net.tojson())
    x, r = FEATURES.astype(np.float32), ROIS.astype(np.float32)
    executor = net.simple_bind(mx.cpu(), data=x.shape, rois=r.shape, grad_req={
        "data": "write", "rois": "null"})
    assert executor.outputs[0].shape == (len(r), 3, 2, 3)
    out = executor.forward(is_train=True, data=mx.nd.array(x), rois=mx.nd.array(r))[0]
    g = gradient_like(out.shape, np.float32)
    executor.backward(mx.nd.array(g))
    expected, _ = reference.roi_align(x, r, (2, 3), 0.5, 2, True, dtype=np.float32)
    np.testing.assert_array_equal(out.asnumpy(), expected)
    np.testing.assert_array_equal(executor.grad_dict["data"].asnumpy(),
                                  reference.roi_align_backward(g, r, x.shape, (2, 3), 0.5, 2,
                                                               True, dtype=np.float32))


@pytest.mark.parametrize("op_type, kwargs, message", [
    ("cyroi_roi_pool", dict(pooled_size=(2, 2), spatial_scale=0),
     "spatial_scale must be finite and > 0"),
    ("cyroi_roi_align", dict(pooled_size=(2, 2), spatial_scale=1, mode="min"),
     "mode must be one of"),
    ("cyroi_roi_align", dict(pooled_size=(2, 2), spatial_scale=1, sample_ratio="two"),
     "invalid literal for int"),
    ("cyroi_roi_align", dict(pooled_size=0, spatial_scale=1), "output_size must be >= 1"),
    ("cyroi_roi_pool", dict(pooled_size=2), r"missing required arguments \['spatial_scale'\]"),
    ("cyroi_roi_pool", dict(pooled_size=2, spatial_scale=1, aligned=True),
     r"unknown arguments \['aligned'\]")])
def test_bad_arguments(op_type, kwargs, message, capfd):
    # MXNet raises its own error and prints the Python one.
    with pytest.raises(mx.base.MXNetError):
        mx.nd.Custom(mx.nd.array(FEATURES), mx.nd.array(ROIS), op_type=op_type, **kwargs)
    assert re.search(message, capfd.readouterr().out)
