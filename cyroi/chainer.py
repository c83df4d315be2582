"""Chainer adapter: drop-in replacements for chainer.functions' RoI ops.

    from cyroi.chainer import roi_pooling_2d, roi_average_align_2d, roi_max_align_2d

Same signatures and box formats as Chainer 7: roi_pooling_2d takes rois
(K, 5) [batch_index, x1, y1, x2, y2]; the align functions take y-first boxes
(K, 4) [y1, x1, y2, x2] and int roi_indices (K,). NumPy arrays compute in
cyroi's OpenMP loops, CuPy arrays in its CUDA kernels; float32 and float64.

Where the numbers differ from Chainer's own functions:
- roi_pooling_2d rounds box corners half away from zero (C's round, as
  torchvision and Chainer's GPU kernel); Chainer's CPU code uses Python's
  round, half to even, so a corner at exactly k + 0.5 can land one cell over.
- roi_max_align_2d reads a sample outside the feature map as 0 (mmcv, and
  cyroi's SPEC); Chainer skips it, and gives -inf to a bin with no sample
  inside the map. Both agree when every sample is inside the map.
- roi_pooling_2d gives an empty bin 0 and no gradient; Chainer's CPU backward
  loops over the box's cells and misplaces gradients of boxes that leave the
  map. Both agree on boxes inside the map.
- sampling_ratio must be the same for both axes (an int, None, or an equal
  pair): cyroi has one sampling ratio.
"""
import chainer

from . import _adapter_ops

__all__ = ["RoIFunction", "roi_pooling_2d", "roi_average_align_2d", "roi_max_align_2d"]


class RoIFunction(chainer.FunctionNode):
    """One cyroi op as a FunctionNode. Inputs: (x, rois) with rois (K, 5)
    [batch_index, x1, y1, x2, y2], or (x, boxes, batch_indices) with
    x-first boxes (K, 4). Differentiable in x."""

    def __init__(self, op, output_size, params):
        self.op = op
        self.output_size = output_size
        self.params = params

    def forward_cpu(self, inputs):
        x, rois, *batch = inputs
        self.retain_inputs(tuple(range(1, len(inputs))))
        self.input_shape = x.shape
        out, self.argmax = self.op.forward(x, rois, self.output_size, self.params,
                                           batch_indices=batch[0] if batch else None)
        return out,

    # cyroi picks its CPU or CUDA code from the array type itself.
    forward_gpu = forward_cpu

    def backward(self, indexes, grad_outputs):
        roi_inputs = [v.array for v in self.get_retained_inputs()]
        grad = _RoIGrad(self, roi_inputs).apply(grad_outputs)[0]
        return (grad,) + (None,) * len(roi_inputs)


class _RoIGrad(chainer.FunctionNode):
    """The gradient of a RoIFunction with respect to x."""

    def __init__(self, pooled, roi_inputs):
        self.pooled = pooled
        self.roi_inputs = roi_inputs

    def forward(self, inputs):
        p = self.pooled
        rois, *batch = self.roi_inputs
        # The forward validated these RoIs.
        return p.op.backward(inputs[0], rois, p.input_shape, p.argmax, p.params,
                             batch_indices=batch[0] if batch else None, validate=False),

    def backward(self, indexes, grad_outputs):
        p = self.pooled
        if p.argmax is not None:
            raise NotImplementedError(f"cyroi.chainer: no double backward for {p.op.name} "
                                      f"with mode 'max'")
        # Without an argmax the op is linear in x; the adjoint of its
        # backward is the op itself.
        node = RoIFunction(p.op, p.output_size, p.params)
        return node.apply((grad_outputs[0], *self.roi_inputs))


def _one_ratio(sampling_ratio):
    """Chainer's sampling_ratio (None, int, or a pair) -> cyroi's single int."""
    pair = sampling_ratio if isinstance(sampling_ratio, (tuple, list)) else (sampling_ratio,) * 2
    if len(pair) != 2 or pair[0] != pair[1]:
        raise ValueError("cyroi uses one sampling ratio for both axes; got sampling_ratio="
                         f"{sampling_ratio!r}")
    return -1 if pair[0] is None else pair[0]


def _x_first(boxes):
    """Chainer's (y1, x1, y2, x2) boxes -> cyroi's (x1, y1, x2, y2)."""
    boxes = chainer.as_array(boxes)
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f"rois must have shape (K, 4) [y1, x1, y2, x2]; got {boxes.shape}")
    return boxes[:, [1, 0, 3, 2]]


def _align(x, rois, roi_indices, outsize, spatial_scale, sampling_ratio, mode):
    params = dict(spatial_scale=spatial_scale, sampling_ratio=_one_ratio(sampling_ratio),
                  aligned=False, mode=mode)
    node = RoIFunction(_adapter_ops.ROI_ALIGN, outsize, params)
    return node.apply((x, _x_first(rois), chainer.as_array(roi_indices)))[0]


def roi_pooling_2d(x, rois, outh, outw, spatial_scale):
    """chainer.functions.roi_pooling_2d: Fast R-CNN max pooling; rois (K, 5)
    [batch_index, x1, y1, x2, y2]."""
    node = RoIFunction(_adapter_ops.ROI_POOL, (outh, outw), dict(spatial_scale=spatial_scale))
    return node.apply((x, chainer.as_array(rois)))[0]


def roi_average_align_2d(x, rois, roi_indices, outsize, spatial_scale, sampling_ratio=None):
    """chainer.functions.roi_average_align_2d: RoI Align (average), boxes
    (K, 4) [y1, x1, y2, x2] of images roi_indices."""
    return _align(x, rois, roi_indices, outsize, spatial_scale, sampling_ratio, "avg")


def roi_max_align_2d(x, rois, roi_indices, outsize, spatial_scale, sampling_ratio=None):
    """chainer.functions.roi_max_align_2d: RoI Align (maximum), boxes
    (K, 4) [y1, x1, y2, x2] of images roi_indices."""
    return _align(x, rois, roi_indices, outsize, spatial_scale, sampling_ratio, "max")
