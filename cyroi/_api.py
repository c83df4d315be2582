"""The public ops: normalise arguments, validate, pick the backend by array
type, call it, and hand the result back in the caller's array type."""
import numpy as np

from . import _checks, _rois
from ._arrays import import_array, import_like


def _engine(backend):
    if backend.name == "numpy":
        from . import _cpu
        return _cpu
    from . import _cuda
    return _cuda


# A forward call's input_shape: the features' own (None must stay an error).
_FROM_FEATURES = object()


class _Call:
    """One op call's validated inputs: the feature array, its backend and
    (N, C, H, W), and the RoIs as (boxes, batch index)."""

    def __init__(self, features, rois, batch_indices, layout, validate, box_columns=4,
                 input_shape=_FROM_FEATURES):
        self.features, self.backend = import_array(features, "features")
        if input_shape is _FROM_FEATURES:
            self.shape = _checks.features(self.features, layout)
        else:  # backward: `features` is the output gradient
            if not _checks.is_floating(self.features.dtype):
                raise TypeError(f"grad_output must be floating; got {self.features.dtype}")
            self.shape = _checks.input_shape(input_shape, layout)
        self.layout = layout
        self.engine = _engine(self.backend)
        self.boxes, self.batch = _rois.normalize(
            rois, batch_indices, self.shape[0], self.backend,
            self.engine.compute_dtype(self.features.dtype), validate, box_columns)

    def import_pooled(self, array, name, size):
        """grad_output / argmax of this call's RoIs, with its shape checked."""
        array = import_like(array, name, self.backend)
        expected = (len(self.boxes), self.shape[1], *size)
        return _checks.pooled_array(array, name, expected, self.layout)

    def pooled_size(self):
        """(PH, PW) of a backward's grad_output."""
        if self.features.ndim != 4:
            raise ValueError(f"grad_output must be 4-D; got shape {tuple(self.features.shape)}")
        return self.features.shape[2:] if self.layout == "NCHW" else self.features.shape[1:3]


def _argmax_int64(argmax, call, size):
    argmax = call.import_pooled(argmax, "argmax", size)
    if argmax.dtype.kind not in "iu":
        raise TypeError(f"argmax must be integers; got dtype {argmax.dtype}")
    return argmax.astype(np.int64, copy=False)


def roi_align(features, rois, output_size, spatial_scale=1.0, sampling_ratio=-1, aligned=False,
              mode="avg", *, layout="NCHW", batch_indices=None, return_argmax=False,
              validate=True):
    """RoI Align (Mask R-CNN): average (mode="avg", torchvision.ops.roi_align)
    or maximum (mode="max", mmcv) of bilinear samples in each output bin.

    features: (N, C, H, W) or (N, H, W, C) with layout="NHWC"; rois: (K, 5)
    [batch_index, x1, y1, x2, y2], a list of per-image (K_i, 4) boxes, or
    (K, 4) boxes with batch_indices. Returns (K, C, PH, PW) (or (K, PH, PW, C)),
    plus the winning sample index per bin when return_argmax=True (mode "max").
    """
    size = _checks.output_size(output_size)
    scale = _checks.spatial_scale(spatial_scale)
    ratio = _checks.sampling_ratio(sampling_ratio)
    _checks.choice(mode, "mode", _checks.MODES)
    if return_argmax and mode != "max":
        raise ValueError("return_argmax=True needs mode='max' (mode 'avg' has no argmax)")
    call = _Call(features, rois, batch_indices, layout, validate)
    out, argmax = call.engine.roi_align_forward(call.features, call.boxes, call.batch, size,
                                                scale, ratio, bool(aligned), mode, layout,
                                                return_argmax)
    if return_argmax:
        return call.backend.restore(out), call.backend.restore(argmax)
    return call.backend.restore(out)


def roi_align_backward(grad_output, rois, input_shape, spatial_scale=1.0, sampling_ratio=-1,
                       aligned=False, mode="avg", *, argmax=None, layout="NCHW",
                       batch_indices=None, validate=True, deterministic=False):
    """Gradient of roi_align with respect to features, shaped input_shape
    (in `layout`). mode="max" needs the argmax that forward returned.
    On GPU, deterministic=True gives the same bits on every run (fixed-point
    sums instead of float atomics); the CPU always does."""
    scale = _checks.spatial_scale(spatial_scale)
    ratio = _checks.sampling_ratio(sampling_ratio)
    _checks.choice(mode, "mode", _checks.MODES)
    call = _Call(grad_output, rois, batch_indices, layout, validate, input_shape=input_shape)
    size = call.pooled_size()
    grad_out = call.import_pooled(call.features, "grad_output", size)
    if mode == "max":
        if argmax is None:
            raise ValueError("mode='max' backward needs argmax= (roi_align(..., "
                             "return_argmax=True) returns it)")
        argmax = _argmax_int64(argmax, call, size)
    grad = call.engine.roi_align_backward(grad_out, call.boxes, call.batch, call.shape, scale,
                                          ratio, bool(aligned), mode, argmax, layout,
                                          deterministic=bool(deterministic))
    return call.backend.restore(grad)


def roi_pool(features, rois, output_size, spatial_scale=1.0, *, layout="NCHW",
             batch_indices=None, return_argmax=False, validate=True):
    """RoI max pooling (Fast R-CNN, torchvision.ops.roi_pool) over integer
    bins; with return_argmax=True also the flat h*W + w of each maximum
    (-1 for an empty bin), which roi_pool_backward needs."""
    size = _checks.output_size(output_size)
    scale = _checks.spatial_scale(spatial_scale)
    call = _Call(features, rois, batch_indices, layout, validate)
    out, argmax = call.engine.roi_pool_forward(call.features, call.boxes, call.batch, size,
                                               scale, layout)
    if return_argmax:
        return call.backend.restore(out), call.backend.restore(argmax)
    return call.backend.restore(out)


def roi_pool_backward(grad_output, rois, argmax, input_shape, *, layout="NCHW",
                      batch_indices=None, validate=True, deterministic=False):
    """Gradient of roi_pool with respect to features: each output gradient is
    added at its argmax. deterministic as in roi_align_backward."""
    call = _Call(grad_output, rois, batch_indices, layout, validate, input_shape=input_shape)
    size = call.pooled_size()
    grad_out = call.import_pooled(call.features, "grad_output", size)
    grad = call.engine.roi_pool_backward(grad_out, call.batch, _argmax_int64(argmax, call, size),
                                         call.shape, layout,
                                         deterministic=bool(deterministic))
    return call.backend.restore(grad)
