"""The public ops: normalise arguments, validate, pick the backend by array
type, call it, and hand the result back in the caller's array type."""
import numpy as np

from . import _checks, _cpu, _rois
from ._arrays import import_array, import_like


def _engine(backend):
    if backend.name == "numpy":
        return _cpu
    from . import _cuda
    return _cuda


# A forward call's input_shape: the features' own (None must stay an error).
_FROM_FEATURES = object()


class _Call:
    """One op call's validated inputs: the feature array, its backend and
    (N, C, H, W), and the RoIs as (boxes, batch index)."""

    def __init__(self, features, rois, batch_indices, layout, validate, box_columns=4,
                 input_shape=_FROM_FEATURES, features_name="features"):
        self.features, self.backend = import_array(features, features_name)
        if input_shape is _FROM_FEATURES:
            self.shape = _checks.features(self.features, layout, features_name)
        else:  # backward: `features` is the output gradient
            if not _checks.is_floating(self.features.dtype):
                raise TypeError(f"grad_output must be floating; got {self.features.dtype}")
            self.shape = _checks.input_shape(input_shape, layout)
        self.layout = layout
        self.engine = _engine(self.backend)
        self.boxes, self.batch = _rois.normalize(
            rois, batch_indices, self.shape[0], self.backend,
            self.engine.compute_dtype(self.features.dtype), validate, box_columns)

    def import_pooled(self, array, name, size, channels=None):
        """grad_output / argmax of this call's RoIs, with its shape checked
        (channels: the output's, where they differ from the input's)."""
        array = import_like(array, name, self.backend)
        channels = self.shape[1] if channels is None else channels
        expected = (len(self.boxes), channels, *size)
        return _checks.pooled_array(array, name, expected, self.layout)

    def backend_op(self, name):
        """The backend's function `name`, or a clear error where that backend
        does not have it yet."""
        try:
            return getattr(self.engine, name)
        except AttributeError:
            where = "the CPU" if self.backend.name == "numpy" else "the GPU"
            raise NotImplementedError(f"{name} is not available on {where} yet; "
                                      f"pass NumPy (CPU) arrays") from None

    def pooled_size(self):
        """(PH, PW) of a backward's grad_output."""
        if self.features.ndim != 4:
            raise ValueError(f"grad_output must be 4-D; got shape {tuple(self.features.shape)}")
        return self.features.shape[2:] if self.layout == "NCHW" else self.features.shape[1:3]


def _forward_features(call, features):
    """The forward's features, which gradients for box coordinates read."""
    if features is None:
        raise ValueError("the gradient for box coordinates needs features= (the forward's "
                         "input)")
    features = import_like(features, "features", call.backend)
    if _checks.features(features, call.layout) != call.shape:
        raise ValueError(f"features must have shape input_shape; got {tuple(features.shape)}")
    return features


# Argmax dtypes the backward loops take as they are.
_ARGMAX_DTYPES = (np.dtype(np.int32), np.dtype(np.int64))


def _argmax_indices(argmax, call, size):
    """A backward's argmax as integers the engines take: as it came if int32
    or int64, else converted to int64."""
    argmax = call.import_pooled(argmax, "argmax", size)
    if argmax.dtype.kind not in "iu":
        raise TypeError(f"argmax must be integers; got dtype {argmax.dtype}")
    if argmax.dtype in _ARGMAX_DTYPES:  # native byte order only: '>i8' != '<i8'
        return argmax
    return argmax.astype(np.int64)


def roi_align(features, rois, output_size, spatial_scale=1.0, sampling_ratio=-1, aligned=False,
              mode="avg", *, layout="NCHW", batch_indices=None, return_argmax=False,
              validate=True):
    """RoI Align (Mask R-CNN): average (mode="avg", torchvision.ops.roi_align)
    or maximum (mode="max", mmcv) of bilinear samples in each output bin.

    features: (N, C, H, W) or (N, H, W, C) with layout="NHWC"; rois: (K, 5)
    [batch_index, x1, y1, x2, y2], a list of per-image (K_i, 4) boxes, or
    (K, 4) boxes with batch_indices. Returns (K, C, PH, PW) (or (K, PH, PW, C)),
    plus the winning sample index per bin when return_argmax=True (mode "max"):
    iy * gw + ix in the bin's gh x gw sample grid, int32 for a fixed
    sampling_ratio (int64 past 46340), int64 for the adaptive grid.
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
                                                return_argmax, _checks.align_argmax_dtype(ratio))
    if return_argmax:
        return call.backend.restore(out), call.backend.restore(argmax)
    return call.backend.restore(out)


def roi_align_backward(grad_output, rois, input_shape, spatial_scale=1.0, sampling_ratio=-1,
                       aligned=False, mode="avg", *, argmax=None, layout="NCHW",
                       batch_indices=None, need_rois_grad=False, features=None, validate=True,
                       deterministic=False):
    """Gradient of roi_align with respect to features, shaped input_shape
    (in `layout`). mode="max" needs the argmax that forward returned.
    On GPU, deterministic=True gives the same bits on every run (fixed-point
    sums instead of float atomics); the CPU always does.

    need_rois_grad=True (mode "avg"; needs the forward's features=) returns
    (grad_features, grad_rois): the exact derivative of the forward for the
    box coordinates with the sample grid held fixed, in the form of `rois`
    ((K, 5) with a zero batch column, per-image (K_i, 4) list, or (K, 4)).
    """
    scale = _checks.spatial_scale(spatial_scale)
    ratio = _checks.sampling_ratio(sampling_ratio)
    _checks.choice(mode, "mode", _checks.MODES)
    if need_rois_grad and mode != "avg":
        raise ValueError("need_rois_grad=True needs mode='avg' (mode 'max' has no box gradient)")
    call = _Call(grad_output, rois, batch_indices, layout, validate, input_shape=input_shape)
    size = call.pooled_size()
    grad_out = call.import_pooled(call.features, "grad_output", size)
    if mode == "max":
        if argmax is None:
            raise ValueError("mode='max' backward needs argmax= (roi_align(..., "
                             "return_argmax=True) returns it)")
        argmax = _argmax_indices(argmax, call, size)
    grad = call.engine.roi_align_backward(grad_out, call.boxes, call.batch, call.shape, scale,
                                          ratio, bool(aligned), mode, argmax, layout,
                                          deterministic=bool(deterministic))
    if not need_rois_grad:
        return call.backend.restore(grad)
    roi_align_rois_grad = call.backend_op("roi_align_rois_grad")
    grad_boxes = roi_align_rois_grad(grad_out, _forward_features(call, features), call.boxes,
                                     call.batch, scale, ratio, bool(aligned), layout)
    return (call.backend.restore(grad),
            _rois.gradient_like(grad_boxes, rois, batch_indices, call.backend))


def roi_pool(features, rois, output_size, spatial_scale=1.0, *, layout="NCHW",
             batch_indices=None, return_argmax=False, validate=True):
    """RoI max pooling (Fast R-CNN, torchvision.ops.roi_pool) over integer
    bins; with return_argmax=True also the flat h*W + w of each maximum
    (-1 for an empty bin), which roi_pool_backward needs: int32 as
    torchvision's, int64 for maps of more than 2^31 - 1 pixels."""
    size = _checks.output_size(output_size)
    scale = _checks.spatial_scale(spatial_scale)
    call = _Call(features, rois, batch_indices, layout, validate)
    out, argmax = call.engine.roi_pool_forward(call.features, call.boxes, call.batch, size,
                                               scale, layout, return_argmax,
                                               _checks.pool_argmax_dtype(*call.shape[2:]))
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
    argmax = _argmax_indices(argmax, call, size)
    grad = call.engine.roi_pool_backward(grad_out, call.batch, argmax, call.shape, layout,
                                         deterministic=bool(deterministic))
    return call.backend.restore(grad)


def _ps_channels(channels, size, name):
    """Output channels of a position-sensitive op: C / (PH * PW)."""
    bins = size[0] * size[1]
    if channels % bins:
        raise ValueError(f"{name} must have C divisible by PH*PW = {bins} (output_size "
                         f"{size}) for position-sensitive pooling; got C={channels}")
    return channels // bins


def _ps_params(spatial_scale, *sampling_ratio):
    """(scale, ratio) checked; (scale,) for ps_roi_pool, which samples no grid."""
    return (_checks.spatial_scale(spatial_scale), *map(_checks.sampling_ratio, sampling_ratio))


def _ps_forward(name, features, rois, output_size, layout, batch_indices, validate,
                *scale_and_ratio):
    """The body of ps_roi_align and ps_roi_pool: backend op `name`."""
    size = _checks.output_size(output_size)
    params = _ps_params(*scale_and_ratio)
    call = _Call(features, rois, batch_indices, layout, validate)
    _ps_channels(call.shape[1], size, "features")
    forward = call.backend_op(name)
    out = forward(call.features, call.boxes, call.batch, size, *params, layout)
    return call.backend.restore(out)


def _ps_backward(name, grad_output, rois, input_shape, layout, batch_indices, validate,
                 deterministic, *scale_and_ratio):
    """The body of ps_roi_align_backward and ps_roi_pool_backward."""
    params = _ps_params(*scale_and_ratio)
    call = _Call(grad_output, rois, batch_indices, layout, validate, input_shape=input_shape)
    size = call.pooled_size()
    channels = _ps_channels(call.shape[1], size, "input_shape")
    grad_out = call.import_pooled(call.features, "grad_output", size, channels)
    backward = call.backend_op(name)
    grad = backward(grad_out, call.boxes, call.batch, call.shape, *params, layout,
                    deterministic=bool(deterministic))
    return call.backend.restore(grad)


def ps_roi_align(features, rois, output_size, spatial_scale=1.0, sampling_ratio=-1, *,
                 layout="NCHW", batch_indices=None, validate=True):
    """Position-sensitive RoI Align (R-FCN, torchvision.ops.ps_roi_align):
    output bin (c, ph, pw) averages bilinear samples of input channel
    (c*PH + ph)*PW + pw. Half-pixel offset, no minimum box size.

    C must be divisible by PH*PW; returns (K, C/(PH*PW), PH, PW) (or NHWC).
    """
    return _ps_forward("ps_roi_align_forward", features, rois, output_size, layout,
                       batch_indices, validate, spatial_scale, sampling_ratio)


def ps_roi_align_backward(grad_output, rois, input_shape, spatial_scale=1.0, sampling_ratio=-1,
                          *, layout="NCHW", batch_indices=None, validate=True,
                          deterministic=False):
    """Gradient of ps_roi_align with respect to features, shaped input_shape.
    deterministic as in roi_align_backward."""
    return _ps_backward("ps_roi_align_backward", grad_output, rois, input_shape, layout,
                        batch_indices, validate, deterministic, spatial_scale, sampling_ratio)


def ps_roi_pool(features, rois, output_size, spatial_scale=1.0, *, layout="NCHW",
                batch_indices=None, validate=True):
    """Position-sensitive RoI pooling (R-FCN, torchvision.ops.ps_roi_pool):
    output bin (c, ph, pw) is the mean of input channel (c*PH + ph)*PW + pw
    over the bin's integer cells (0 for an empty bin).

    C must be divisible by PH*PW; returns (K, C/(PH*PW), PH, PW) (or NHWC).
    """
    return _ps_forward("ps_roi_pool_forward", features, rois, output_size, layout,
                       batch_indices, validate, spatial_scale)


def ps_roi_pool_backward(grad_output, rois, input_shape, spatial_scale=1.0, *, layout="NCHW",
                         batch_indices=None, validate=True, deterministic=False):
    """Gradient of ps_roi_pool with respect to features: the true gradient
    of the forward (unlike torchvision's, whose backward reads one more row
    and column than its forward). deterministic as in roi_align_backward."""
    return _ps_backward("ps_roi_pool_backward", grad_output, rois, input_shape, layout,
                        batch_indices, validate, deterministic, spatial_scale)


def roi_align_rotated(features, rois, output_size, spatial_scale=1.0, sampling_ratio=-1,
                      aligned=True, clockwise=False, *, layout="NCHW", batch_indices=None,
                      validate=True):
    """RoI Align over rotated boxes (detectron2's ROIAlignRotated): the
    sample grid of roi_align laid out in each box's frame and turned by its
    angle about its centre.

    rois: (K, 6) [batch_index, cx, cy, w, h, angle_degrees] (counter-clockwise
    unless clockwise=True), a list of per-image (K_i, 5) boxes, or (K, 5)
    with batch_indices. Returns (K, C, PH, PW) (or (K, PH, PW, C)).
    """
    size = _checks.output_size(output_size)
    scale = _checks.spatial_scale(spatial_scale)
    ratio = _checks.sampling_ratio(sampling_ratio)
    call = _Call(features, rois, batch_indices, layout, validate, box_columns=5)
    roi_align_rotated_forward = call.backend_op("roi_align_rotated_forward")
    out = roi_align_rotated_forward(call.features, call.boxes, call.batch, size, scale, ratio,
                                    bool(aligned), bool(clockwise), layout)
    return call.backend.restore(out)


def roi_align_rotated_backward(grad_output, rois, input_shape, spatial_scale=1.0,
                               sampling_ratio=-1, aligned=True, clockwise=False, *,
                               layout="NCHW", batch_indices=None, need_rois_grad=False,
                               features=None, validate=True, deterministic=False):
    """Gradient of roi_align_rotated with respect to features, shaped
    input_shape. need_rois_grad=True (needs the forward's features=) returns
    (grad_features, grad_rois), grad_rois for (cx, cy, w, h, angle_degrees)
    in the form of `rois`, the sample grid held fixed. deterministic as in
    roi_align_backward."""
    scale = _checks.spatial_scale(spatial_scale)
    ratio = _checks.sampling_ratio(sampling_ratio)
    call = _Call(grad_output, rois, batch_indices, layout, validate, box_columns=5,
                 input_shape=input_shape)
    grad_out = call.import_pooled(call.features, "grad_output", call.pooled_size())
    params = (scale, ratio, bool(aligned), bool(clockwise), layout)
    roi_align_rotated_backward = call.backend_op("roi_align_rotated_backward")
    grad = roi_align_rotated_backward(grad_out, call.boxes, call.batch, call.shape, *params,
                                      deterministic=bool(deterministic))
    if not need_rois_grad:
        return call.backend.restore(grad)
    roi_align_rotated_rois_grad = call.backend_op("roi_align_rotated_rois_grad")
    grad_boxes = roi_align_rotated_rois_grad(grad_out, _forward_features(call, features),
                                             call.boxes, call.batch, *params)
    return (call.backend.restore(grad),
            _rois.gradient_like(grad_boxes, rois, batch_indices, call.backend))


def precise_roi_pool(features, rois, output_size, spatial_scale=1.0, *, layout="NCHW",
                     batch_indices=None, validate=True):
    """Precise RoI Pooling (PrRoI Pooling, IoU-Net; mmcv.ops.prroi_pool): each
    bin is the exact integral of the bilinear interpolant of the map (zero
    off the map) over the bin, divided by the bin's area. No sampling, no
    rounding, no offset; zero-area bins (inverted boxes) give 0."""
    size = _checks.output_size(output_size)
    scale = _checks.spatial_scale(spatial_scale)
    call = _Call(features, rois, batch_indices, layout, validate)
    precise_roi_pool_forward = call.backend_op("precise_roi_pool_forward")
    out = precise_roi_pool_forward(call.features, call.boxes, call.batch, size, scale, layout)
    return call.backend.restore(out)


def precise_roi_pool_backward(grad_output, rois, features, spatial_scale=1.0, *, layout="NCHW",
                              batch_indices=None, validate=True, deterministic=False):
    """Gradients of precise_roi_pool: returns (grad_features, grad_rois).
    features is the forward's input (the box gradient reads it); grad_rois
    is d/d(x1, y1, x2, y2) in the form of `rois` ((K, 5) with a zero batch
    column, per-image (K_i, 4) list, or (K, 4)). deterministic as in
    roi_align_backward."""
    scale = _checks.spatial_scale(spatial_scale)
    features_array, _ = import_array(features, "features")
    # Checked as features, so that a bad one is not reported as an input_shape
    # the caller never passed.
    _checks.features(features_array, layout)
    input_shape = tuple(int(d) for d in features_array.shape)
    call = _Call(grad_output, rois, batch_indices, layout, validate, input_shape=input_shape)
    grad_out = call.import_pooled(call.features, "grad_output", call.pooled_size())
    precise_roi_pool_backward = call.backend_op("precise_roi_pool_backward")
    grad = precise_roi_pool_backward(grad_out, call.boxes, call.batch, call.shape, scale, layout,
                                     deterministic=bool(deterministic))
    precise_roi_pool_rois_grad = call.backend_op("precise_roi_pool_rois_grad")
    grad_boxes = precise_roi_pool_rois_grad(grad_out, _forward_features(call, features),
                                            call.boxes, call.batch, scale, layout)
    return (call.backend.restore(grad),
            _rois.gradient_like(grad_boxes, rois, batch_indices, call.backend))


def _pyramid(features_list):
    if not isinstance(features_list, (list, tuple)) or not features_list:
        raise TypeError(f"features_list must be a non-empty list of feature arrays, one per "
                        f"pyramid level; got {type(features_list).__name__}")
    return features_list


def _pyramid_levels(call, features_list):
    """Every level of a feature pyramid, on the device of the first and with
    its N, C and dtype (the first is call.features)."""
    arrays = [call.features] + [import_like(array, f"features_list[{i}]", call.backend)
                                for i, array in enumerate(features_list[1:], 1)]
    for i, array in enumerate(arrays[1:], 1):
        shape = _checks.features(array, call.layout, f"features_list[{i}]")
        if shape[:2] != call.shape[:2] or array.dtype != call.features.dtype:
            raise ValueError(f"features_list[{i}] must have the N, C and dtype of "
                             f"features_list[0] ({call.shape[:2]}, {call.features.dtype}); got "
                             f"{shape[:2]}, {array.dtype}")
    return arrays


def _fpn_options(canonical_scale, canonical_level):
    scale = _checks.real_number(canonical_scale, "canonical_scale")
    if scale <= 0:
        raise ValueError(f"canonical_scale must be > 0; got {canonical_scale!r}")
    return scale, _checks.real_number(canonical_level, "canonical_level")


def multiscale_roi_align(features_list, rois, output_size, spatial_scales, sampling_ratio=2,
                         aligned=False, canonical_scale=224, canonical_level=4, *,
                         layout="NCHW", batch_indices=None, validate=True):
    """RoI Align over a feature pyramid (FPN; torchvision.ops.MultiScaleRoIAlign):
    each RoI is pooled by roi_align (mode "avg") from the level
    floor(canonical_level + log2(sqrt(area) / canonical_scale) + 1e-6),
    clamped to the pyramid, in one parallel pass over the RoIs.

    features_list: one (N, C, H_l, W_l) array per level, finest first;
    spatial_scales: their scales, halving level to level (e.g. 1/4 ... 1/32).
    Returns (K, C, PH, PW) (or NHWC) in the order of the rois.
    """
    size = _checks.output_size(output_size)
    ratio = _checks.sampling_ratio(sampling_ratio)
    fpn = _fpn_options(canonical_scale, canonical_level)
    features_list = _pyramid(features_list)
    scales, levels = _checks.pyramid_scales(spatial_scales, len(features_list))
    call = _Call(features_list[0], rois, batch_indices, layout, validate,
                 features_name="features_list[0]")
    arrays = _pyramid_levels(call, features_list)
    multiscale_roi_align_forward = call.backend_op("multiscale_roi_align_forward")
    out = multiscale_roi_align_forward(arrays, call.boxes, call.batch, size, scales, levels, ratio,
                                       bool(aligned), *fpn, layout)
    return call.backend.restore(out)


def multiscale_roi_align_backward(grad_output, rois, input_shapes, spatial_scales,
                                  sampling_ratio=2, aligned=False, canonical_scale=224,
                                  canonical_level=4, *, layout="NCHW", batch_indices=None,
                                  validate=True, deterministic=False):
    """Gradient of multiscale_roi_align: a list with the gradient of every
    level's features (zeros where no RoI reads), shaped input_shapes.
    deterministic as in roi_align_backward."""
    ratio = _checks.sampling_ratio(sampling_ratio)
    fpn = _fpn_options(canonical_scale, canonical_level)
    if not isinstance(input_shapes, (list, tuple)) or not input_shapes:
        raise TypeError(f"input_shapes must be a non-empty list of 4-D shapes, one per level; "
                        f"got {input_shapes!r}")
    shapes = [_checks.input_shape(shape, layout) for shape in input_shapes]
    if any(shape[:2] != shapes[0][:2] for shape in shapes):
        raise ValueError(f"input_shapes must share N and C; got {list(input_shapes)}")
    scales, levels = _checks.pyramid_scales(spatial_scales, len(shapes))
    call = _Call(grad_output, rois, batch_indices, layout, validate, input_shape=input_shapes[0])
    grad_out = call.import_pooled(call.features, "grad_output", call.pooled_size())
    multiscale_roi_align_backward = call.backend_op("multiscale_roi_align_backward")
    grads = multiscale_roi_align_backward(grad_out, call.boxes, call.batch, shapes, scales, levels,
                                          ratio, bool(aligned), *fpn, layout,
                                          deterministic=bool(deterministic))
    return [call.backend.restore(grad) for grad in grads]
