"""The ops as the framework adapters (cyroi.torch, .chainer, .mxnet, .jax)
see them: a forward that also returns what its backward needs, and a
stateless backward.

Each adapter wraps every Op once into its framework's autograd machinery, so
a new op reaches all frameworks as one Op here plus its public signature in
each adapter. Arrays are whatever cyroi accepts (NumPy, CuPy, DLPack).
"""
from dataclasses import dataclass
from typing import Callable, Tuple

import numpy as np

from . import _api, _checks


def same_channels(channels, output_size):
    return channels


@dataclass(frozen=True)
class Op:
    """name: the adapters' registration name. params: (name, type) of the
    op's scalar parameters, in cyroi's order and spelling.

    forward(features, rois, output_size, params, *, layout, batch_indices,
    validate) -> (out, argmax or None); backward(grad_output, rois,
    input_shape, argmax, params, *, layout, batch_indices, validate) -> the
    gradient of features. keeps_argmax(params): whether forward returns an
    argmax. check(params) raises what the op raises for bad parameters, for
    adapters that must fail before any array exists (JAX tracing).
    pooled_channels(C, (PH, PW)): the output's channel count.
    box_columns: numbers per box after the batch index (4, or 5 rotated).
    argmax_dtype(H, W, params): the kept argmax's dtype for maps of H x W
    pixels."""
    name: str
    params: Tuple[Tuple[str, type], ...]
    forward: Callable
    backward: Callable
    keeps_argmax: Callable
    check: Callable
    pooled_channels: Callable = same_channels
    box_columns: int = 4
    argmax_dtype: Callable = lambda height, width, params: np.dtype(np.int64)

    def pooled_shape(self, features_shape, num_rois, output_size, layout="NCHW"):
        """Shape of the output for `num_rois` RoIs of features_shape."""
        if layout == "NCHW":
            channels = self.pooled_channels(features_shape[1], output_size)
            return (num_rois, channels, *output_size)
        channels = self.pooled_channels(features_shape[3], output_size)
        return (num_rois, *output_size, channels)


def _roi_align_forward(features, rois, output_size, params, **options):
    keep = params["mode"] == "max"
    result = _api.roi_align(features, rois, output_size, **params, return_argmax=keep, **options)
    return result if keep else (result, None)


def _roi_align_backward(grad_output, rois, input_shape, argmax, params, **options):
    return _api.roi_align_backward(grad_output, rois, input_shape, **params, argmax=argmax,
                                   **options)


def _roi_pool_forward(features, rois, output_size, params, **options):
    return _api.roi_pool(features, rois, output_size, **params, return_argmax=True, **options)


def _roi_pool_backward(grad_output, rois, input_shape, argmax, params, **options):
    return _api.roi_pool_backward(grad_output, rois, argmax, input_shape, **options)


def _check_sampled(params):
    _checks.spatial_scale(params["spatial_scale"])
    _checks.sampling_ratio(params["sampling_ratio"])


def _check_align(params):
    _check_sampled(params)
    _checks.choice(params["mode"], "mode", _checks.MODES)


def _check_pool(params):
    _checks.spatial_scale(params["spatial_scale"])


ROI_ALIGN = Op(
    "roi_align",
    params=(("spatial_scale", float), ("sampling_ratio", int), ("aligned", bool), ("mode", str)),
    forward=_roi_align_forward, backward=_roi_align_backward,
    keeps_argmax=lambda params: params["mode"] == "max", check=_check_align,
    argmax_dtype=lambda height, width, params: _checks.align_argmax_dtype(
        _checks.sampling_ratio(params["sampling_ratio"])))

ROI_POOL = Op(
    "roi_pool", params=(("spatial_scale", float),),
    forward=_roi_pool_forward, backward=_roi_pool_backward,
    keeps_argmax=lambda params: True, check=_check_pool,
    argmax_dtype=lambda height, width, params: _checks.pool_argmax_dtype(height, width))


def _ps_channels(channels, output_size):
    return _api._ps_channels(channels, output_size, "features")


def _without_argmax(forward):
    """An op whose backward needs no argmax, seen as one that keeps none."""
    def forward_op(features, rois, output_size, params, **options):
        return forward(features, rois, output_size, **params, **options), None
    return forward_op


def _ignoring_argmax(backward):
    def backward_op(grad_output, rois, input_shape, argmax, params, **options):
        return backward(grad_output, rois, input_shape, **params, **options)
    return backward_op


PS_ROI_ALIGN = Op(
    "ps_roi_align", params=(("spatial_scale", float), ("sampling_ratio", int)),
    forward=_without_argmax(_api.ps_roi_align),
    backward=_ignoring_argmax(_api.ps_roi_align_backward),
    keeps_argmax=lambda params: False, check=_check_sampled, pooled_channels=_ps_channels)

PS_ROI_POOL = Op(
    "ps_roi_pool", params=(("spatial_scale", float),),
    forward=_without_argmax(_api.ps_roi_pool),
    backward=_ignoring_argmax(_api.ps_roi_pool_backward),
    keeps_argmax=lambda params: False, check=_check_pool, pooled_channels=_ps_channels)

ROI_ALIGN_ROTATED = Op(
    "roi_align_rotated",
    params=(("spatial_scale", float), ("sampling_ratio", int), ("aligned", bool),
            ("clockwise", bool)),
    forward=_without_argmax(_api.roi_align_rotated),
    backward=_ignoring_argmax(_api.roi_align_rotated_backward),
    keeps_argmax=lambda params: False, check=_check_sampled, box_columns=5)
