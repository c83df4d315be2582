"""PyTorch adapter: drop-in replacements for torchvision.ops.

    from cyroi.torch import roi_align, RoIAlign, roi_pool, RoIPool
    from cyroi.torch import ps_roi_align, PSRoIAlign, ps_roi_pool, PSRoIPool
    from cyroi.torch import roi_align_rotated, RoIAlignRotated  # detectron2's
    from cyroi.torch import MultiScaleRoIAlign, multiscale_roi_align

Same argument names, defaults and box formats as torchvision (Tensor[K, 5]
[batch_index, x1, y1, x2, y2] or a list of Tensor[K_i, 4], one per image;
rotated boxes Tensor[K, 6] [batch_index, cx, cy, w, h, angle_degrees] or a
list of Tensor[K_i, 5]). Each op is a torch.library custom op
(cyroi::roi_align, cyroi::roi_pool, ... and their *_backward) with a fake
implementation and autograd, so it works in eager mode, under autograd
(float64 gradcheck) and in torch.compile(fullgraph=True). CPU tensors compute
in cyroi's OpenMP loops, CUDA tensors in its CuPy kernels on the caller's
current stream; either way tensors cross by DLPack, without copies.
"""
import contextlib
import math

import torch
from torch import Tensor, nn
from torch.nn.modules.utils import _pair

from . import _adapter_ops, _api

__all__ = ["roi_align", "RoIAlign", "roi_pool", "RoIPool", "ps_roi_align", "PSRoIAlign",
           "ps_roi_pool", "PSRoIPool", "roi_align_rotated", "RoIAlignRotated",
           "MultiScaleRoIAlign", "multiscale_roi_align"]

_SCHEMA_TYPES = {float: "float", int: "int", bool: "bool", str: "str"}


def _caller_stream(tensor):
    """CuPy launches on torch's current stream for the tensor's device, so
    the op is ordered with the caller's work without a synchronisation."""
    if tensor.device.type != "cuda":
        return contextlib.nullcontext()
    import cupy
    stream = torch.cuda.current_stream(tensor.device)
    return cupy.cuda.ExternalStream(stream.cuda_stream, tensor.device.index)


def _define(op):
    """Registers cyroi::<name> -> (out, argmax) and cyroi::<name>_backward,
    with fakes and autograd; returns the forward op. An op without an argmax
    returns an empty one, so every op has the same two outputs."""
    names = [name for name, _ in op.params]
    params_schema = "".join(f", {_SCHEMA_TYPES[kind]} {name}" for name, kind in op.params)

    @torch.library.custom_op(
        f"cyroi::{op.name}", mutates_args=(),
        schema=f"(Tensor features, Tensor rois, int[] output_size{params_schema}) "
               "-> (Tensor, Tensor)")
    def forward(features, rois, output_size, *values):
        params = dict(zip(names, values))
        with _caller_stream(features):
            out, argmax = op.forward(features, rois, tuple(output_size), params)
        if argmax is None:
            argmax = features.new_empty((0,), dtype=torch.int64)
        return out, argmax

    @forward.register_fake
    def _(features, rois, output_size, *values):
        params = dict(zip(names, values))
        op.check(params)  # under torch.compile, bad parameters fail while tracing
        shape = op.pooled_shape(features.shape, rois.shape[0], tuple(output_size))
        if op.keeps_argmax(params):
            argmax_shape = shape
            index = getattr(torch, op.argmax_dtype(*features.shape[2:], params).name)
        else:
            argmax_shape, index = (0,), torch.int64
        return features.new_empty(shape), features.new_empty(argmax_shape, dtype=index)

    @torch.library.custom_op(
        f"cyroi::{op.name}_backward", mutates_args=(),
        schema=f"(Tensor grad_output, Tensor rois, Tensor argmax, SymInt[] input_shape"
               f"{params_schema}) -> Tensor")
    def backward(grad_output, rois, argmax, input_shape, *values):
        params = dict(zip(names, values))
        kept = argmax if op.keeps_argmax(params) else None
        with _caller_stream(grad_output):
            # The forward validated these RoIs.
            return op.backward(grad_output, rois, tuple(input_shape), kept, params,
                               validate=False)

    @backward.register_fake
    def _(grad_output, rois, argmax, input_shape, *values):
        return grad_output.new_empty(input_shape)

    def setup_context(ctx, inputs, output):
        features, rois, _, *values = inputs
        ctx.save_for_backward(rois, output[1])
        ctx.input_shape = features.shape
        ctx.values = values

    def differentiate(ctx, grad_output, _grad_argmax):
        rois, argmax = ctx.saved_tensors
        grad = None
        if ctx.needs_input_grad[0]:
            grad = backward(grad_output, rois, argmax, list(ctx.input_shape), *ctx.values)
        return (grad, None, None) + (None,) * len(ctx.values)

    forward.register_autograd(differentiate, setup_context=setup_context)
    return forward


_roi_align = _define(_adapter_ops.ROI_ALIGN)
_roi_pool = _define(_adapter_ops.ROI_POOL)
_ps_roi_align = _define(_adapter_ops.PS_ROI_ALIGN)
_ps_roi_pool = _define(_adapter_ops.PS_ROI_POOL)
_roi_align_rotated = _define(_adapter_ops.ROI_ALIGN_ROTATED)


_PYRAMID_PARAMS = ("int[] output_size, float[] spatial_scales, int sampling_ratio, bool aligned, "
                   "float canonical_scale, float canonical_level")


@torch.library.custom_op("cyroi::multiscale_roi_align", mutates_args=(),
                         schema=f"(Tensor[] features, Tensor rois, {_PYRAMID_PARAMS}) -> Tensor")
def _multiscale_roi_align(features, rois, output_size, spatial_scales, *options):
    with _caller_stream(features[0]):
        return _api.multiscale_roi_align(features, rois, tuple(output_size), spatial_scales,
                                         *options)


@_multiscale_roi_align.register_fake
def _(features, rois, output_size, spatial_scales, *options):
    return features[0].new_empty((rois.shape[0], features[0].shape[1], *output_size))


# The backward takes the forward's features only for their shapes: a schema
# has no list of shapes.
@torch.library.custom_op("cyroi::multiscale_roi_align_backward", mutates_args=(),
                         schema=f"(Tensor grad_output, Tensor rois, Tensor[] features, "
                                f"{_PYRAMID_PARAMS}) -> Tensor[]")
def _multiscale_roi_align_backward(grad_output, rois, features, output_size, spatial_scales,
                                   *options):
    with _caller_stream(grad_output):
        # The forward validated these RoIs.
        return _api.multiscale_roi_align_backward(
            grad_output, rois, [f.shape for f in features], spatial_scales, *options,
            validate=False)


@_multiscale_roi_align_backward.register_fake
def _(grad_output, rois, features, *params):
    return [f.new_empty(f.shape) for f in features]


def _multiscale_setup_context(ctx, inputs, output):
    features, rois, *params = inputs
    ctx.save_for_backward(rois, *features)
    ctx.params = params


def _multiscale_differentiate(ctx, grad_output):
    rois, *features = ctx.saved_tensors
    grads = None
    if ctx.needs_input_grad[0]:
        grads = _multiscale_roi_align_backward(grad_output, rois, features, *ctx.params)
    return (grads, None) + (None,) * len(ctx.params)


_multiscale_roi_align.register_autograd(_multiscale_differentiate,
                                        setup_context=_multiscale_setup_context)


def _roi_table(boxes, columns=4):
    """torchvision's box formats -> Tensor[K, 1 + columns] [batch_index, box...]."""
    if isinstance(boxes, Tensor):
        return boxes
    if not isinstance(boxes, (list, tuple)) or not all(isinstance(b, Tensor) for b in boxes):
        raise TypeError(f"boxes must be a Tensor[K, {columns + 1}] or a list of "
                        f"Tensor[K_i, {columns}]; got {type(boxes).__name__}")
    if not boxes:
        raise ValueError(f"boxes is an empty list; give one Tensor[K_i, {columns}] per image")
    for image, b in enumerate(boxes):
        if b.dim() != 2 or b.shape[1] != columns:
            raise ValueError(f"boxes[{image}] must have shape (K_{image}, {columns}); "
                             f"got {tuple(b.shape)}")
    index = [torch.full_like(b[:, :1], image) for image, b in enumerate(boxes)]
    return torch.cat([torch.cat(index), torch.cat(boxes)], dim=1)


def roi_align(input, boxes, output_size, spatial_scale=1.0, sampling_ratio=-1, aligned=False,
              mode="avg"):
    """torchvision.ops.roi_align, plus mode="max" (mmcv's max over the
    bilinear samples). Returns Tensor[K, C, PH, PW]."""
    out, _ = _roi_align(input, _roi_table(boxes), list(_pair(output_size)),
                        float(spatial_scale), int(sampling_ratio), bool(aligned), mode)
    return out


def roi_pool(input, boxes, output_size, spatial_scale=1.0):
    """torchvision.ops.roi_pool (Fast R-CNN max pooling). Returns
    Tensor[K, C, PH, PW]."""
    out, _ = _roi_pool(input, _roi_table(boxes), list(_pair(output_size)),
                       float(spatial_scale))
    return out


def ps_roi_align(input, boxes, output_size, spatial_scale=1.0, sampling_ratio=-1):
    """torchvision.ops.ps_roi_align (R-FCN). C must be divisible by PH*PW;
    returns Tensor[K, C/(PH*PW), PH, PW]."""
    out, _ = _ps_roi_align(input, _roi_table(boxes), list(_pair(output_size)),
                           float(spatial_scale), int(sampling_ratio))
    return out


def ps_roi_pool(input, boxes, output_size, spatial_scale=1.0):
    """torchvision.ops.ps_roi_pool (R-FCN). C must be divisible by PH*PW;
    returns Tensor[K, C/(PH*PW), PH, PW]. Its gradient is the true gradient
    of the forward; torchvision's backward reads one more row and column."""
    out, _ = _ps_roi_pool(input, _roi_table(boxes), list(_pair(output_size)),
                          float(spatial_scale))
    return out


def roi_align_rotated(input, rois, output_size, spatial_scale=1.0, sampling_ratio=-1,
                      aligned=True, clockwise=False):
    """detectron2's roi_align_rotated: rois Tensor[K, 6] [batch_index, cx, cy,
    w, h, angle_degrees] (counter-clockwise unless clockwise=True) or a list
    of Tensor[K_i, 5]. Returns Tensor[K, C, PH, PW]; gradients flow to input."""
    out, _ = _roi_align_rotated(input, _roi_table(rois, columns=5), list(_pair(output_size)),
                                float(spatial_scale), int(sampling_ratio), bool(aligned),
                                bool(clockwise))
    return out


def multiscale_roi_align(features, boxes, output_size, spatial_scales, sampling_ratio=2,
                         aligned=False, canonical_scale=224, canonical_level=4):
    """cyroi.multiscale_roi_align for tensors: features one Tensor[N, C, H_l,
    W_l] per FPN level, finest first, with their spatial_scales (halving
    level to level); boxes as roi_align's. Each RoI is pooled from the
    level of its size. Returns Tensor[K, C, PH, PW]."""
    return _multiscale_roi_align(list(features), _roi_table(boxes), list(_pair(output_size)),
                                 [float(s) for s in spatial_scales], int(sampling_ratio),
                                 bool(aligned), float(canonical_scale), float(canonical_level))


class MultiScaleRoIAlign(nn.Module):
    """torchvision.ops.MultiScaleRoIAlign: pools boxes (a list of Tensor[K_i,
    4] in image coordinates) from the features named in featmap_names, each
    box from the level of its size, in one pass; the levels' scales are
    inferred from their sizes against the largest of image_shapes."""

    def __init__(self, featmap_names, output_size, sampling_ratio, *, canonical_scale=224,
                 canonical_level=4):
        super().__init__()
        self.featmap_names = featmap_names
        self.output_size = _pair(output_size)
        self.sampling_ratio = sampling_ratio
        self.canonical_scale = canonical_scale
        self.canonical_level = canonical_level

    def forward(self, x, boxes, image_shapes):
        features = [x[name] for name in self.featmap_names]
        image_size = [max(shape[i] for shape in image_shapes) for i in (0, 1)]
        return multiscale_roi_align(features, boxes, self.output_size,
                                    [_level_scale(f, image_size) for f in features],
                                    self.sampling_ratio, False, self.canonical_scale,
                                    self.canonical_level)

    def __repr__(self):
        return (f"{type(self).__name__}(featmap_names={self.featmap_names}, "
                f"output_size={self.output_size}, sampling_ratio={self.sampling_ratio})")


def _level_scale(features, image_size):
    """A power of two that maps image_size onto the feature map, as torchvision infers it."""
    scales = {2.0 ** round(math.log2(f / i)) for f, i in zip(features.shape[-2:], image_size)}
    if len(scales) != 1:
        raise ValueError(f"a feature map of size {tuple(features.shape[-2:])} has different "
                         f"scales in height and width against the image size {image_size}")
    return scales.pop()


class _Pooler(nn.Module):
    """A module calling `function` with its constructor's arguments, named
    and printed as the wrapped framework names them."""
    function = None
    settings = ()

    def __init__(self, *values):
        super().__init__()
        for name, value in zip(self.settings, values, strict=True):
            setattr(self, name, value)

    def forward(self, input, rois):
        return type(self).function(input, rois, *(getattr(self, n) for n in self.settings))

    def __repr__(self):
        values = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.settings)
        return f"{type(self).__name__}({values})"


class PSRoIAlign(_Pooler):
    """torchvision.ops.PSRoIAlign; see ps_roi_align."""
    function = ps_roi_align
    settings = ("output_size", "spatial_scale", "sampling_ratio")

    def __init__(self, output_size, spatial_scale, sampling_ratio):
        super().__init__(output_size, spatial_scale, sampling_ratio)


class PSRoIPool(_Pooler):
    """torchvision.ops.PSRoIPool; see ps_roi_pool."""
    function = ps_roi_pool
    settings = ("output_size", "spatial_scale")

    def __init__(self, output_size, spatial_scale):
        super().__init__(output_size, spatial_scale)


class RoIAlignRotated(_Pooler):
    """detectron2.layers.ROIAlignRotated; see roi_align_rotated."""
    function = roi_align_rotated
    settings = ("output_size", "spatial_scale", "sampling_ratio", "aligned", "clockwise")

    def __init__(self, output_size, spatial_scale, sampling_ratio, aligned=True,
                 clockwise=False):
        super().__init__(output_size, spatial_scale, sampling_ratio, aligned, clockwise)


class RoIAlign(nn.Module):
    """torchvision.ops.RoIAlign; see roi_align."""

    def __init__(self, output_size, spatial_scale, sampling_ratio, aligned=False, mode="avg"):
        super().__init__()
        self.output_size = output_size
        self.spatial_scale = spatial_scale
        self.sampling_ratio = sampling_ratio
        self.aligned = aligned
        self.mode = mode

    def forward(self, input, rois):
        return roi_align(input, rois, self.output_size, self.spatial_scale,
                         self.sampling_ratio, self.aligned, self.mode)

    def __repr__(self):
        return (f"{type(self).__name__}(output_size={self.output_size}, "
                f"spatial_scale={self.spatial_scale}, sampling_ratio={self.sampling_ratio}, "
                f"aligned={self.aligned}, mode={self.mode!r})")


class RoIPool(nn.Module):
    """torchvision.ops.RoIPool; see roi_pool."""

    def __init__(self, output_size, spatial_scale):
        super().__init__()
        self.output_size = output_size
        self.spatial_scale = spatial_scale

    def forward(self, input, rois):
        return roi_pool(input, rois, self.output_size, self.spatial_scale)

    def __repr__(self):
        return (f"{type(self).__name__}(output_size={self.output_size}, "
                f"spatial_scale={self.spatial_scale})")
