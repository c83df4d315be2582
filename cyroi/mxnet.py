"""MXNet adapter: cyroi's ops as MXNet custom operators.

    import cyroi.mxnet  # registers the op types
    out = mx.nd.Custom(data, rois, op_type="cyroi_roi_align", pooled_size=(7, 7),
                       spatial_scale=1 / 16, sample_ratio=2)

op_type "cyroi_roi_pool" takes mx.nd.ROIPooling's arguments (pooled_size,
spatial_scale); "cyroi_roi_align" takes mx.nd.contrib.ROIAlign's
(pooled_size, spatial_scale, sample_ratio=-1, aligned=False; no
position_sensitive) plus cyroi's mode="avg"|"max". "cyroi_ps_roi_align"
(pooled_size, spatial_scale, sample_ratio=-1) and "cyroi_ps_roi_pool"
(pooled_size, spatial_scale) are cyroi's position-sensitive ops (as
torchvision's; C divisible by PH*PW); "cyroi_roi_align_rotated" takes
mx.nd.contrib.RROIAlign's (pooled_size, spatial_scale, sampling_ratio=-1)
plus cyroi's aligned=False (RROIAlign's choice), clockwise=False, with rois (K, 6) [batch_index,
cx, cy, w, h, angle_degrees]. Inputs are data (N, C, H, W) and rois (K, 5)
[batch_index, x1, y1, x2, y2], as MXNet's ops;
usable through mx.nd.Custom, mx.sym.Custom and autograd. Arrays pass through
host memory (asnumpy) and compute in cyroi's CPU loops.

Outputs and gradients equal MXNet's operators (ROIAlign up to the rounding
of its bilinear weights), with MXNet's conventions: sample_ratio <= 0 is
adaptive, and a negative batch index gives a zero output (cyroi runs
unvalidated here, as MXNet does; any out-of-range index reads as zeros).
Where MXNet 1.9.1's CPU ROIAlign misbehaves, cyroi follows the formulas: it
aborts the process on a box of width or height <= 0 with aligned=True, and
for a negative batch index it leaves that RoI's output uninitialised and
writes its zero into another RoI's.
"""
import ast
import functools

import mxnet as mx

from . import _adapter_ops, _checks

__all__ = ["RoIPoolProp", "RoIAlignProp", "PSRoIAlignProp", "PSRoIPoolProp",
           "RoIAlignRotatedProp"]


def _sampling_ratio(value):
    """MXNet's sample_ratio <= 0 is adaptive, cyroi's -1."""
    return int(value) if int(value) > 0 else -1


def _parse(value):
    """MXNet hands custom-op arguments over as strings ("(7, 7)", "True");
    a string that is no Python literal ("avg") stays a string."""
    try:
        return ast.literal_eval(value) if isinstance(value, str) else value
    except (ValueError, SyntaxError):
        return value


class _Pooling(mx.operator.CustomOp):
    def __init__(self, op, output_size, params):
        super().__init__()
        self.op = op
        self.output_size = output_size
        self.params = params
        self.argmax = None

    def forward(self, is_train, req, in_data, out_data, aux):
        data, rois = in_data
        out, self.argmax = self.op.forward(data.asnumpy(), rois.asnumpy(), self.output_size,
                                           self.params, validate=False)
        self.assign(out_data[0], req[0], mx.nd.array(out, ctx=data.context, dtype=out.dtype))

    def backward(self, req, out_grad, in_data, out_data, in_grad, aux):
        data, rois = in_data
        grad = self.op.backward(out_grad[0].asnumpy(), rois.asnumpy(), data.shape, self.argmax,
                                self.params, validate=False)
        self.assign(in_grad[0], req[0], mx.nd.array(grad, ctx=data.context, dtype=grad.dtype))
        self.assign(in_grad[1], req[1], mx.nd.zeros_like(rois))  # as MXNet's: none for rois


class _PoolingProp(mx.operator.CustomOpProp):
    """Shapes and types of one cyroi op, from MXNet's arguments.

    MXNet hands the arguments to __init__ as strings, and a Python exception
    raised there crashes the process; they are parsed and checked in
    infer_shape instead, where MXNet turns an exception into an MXNetError
    (and prints the Python one)."""
    op = None
    arguments = {}  # MXNet's argument names and defaults (None: required)
    # to_params(**arguments but pooled_size, parsed) -> cyroi's parameters

    def __init__(self, **given):
        super().__init__(need_top_grad=True)
        self.given = given

    @functools.cached_property
    def setup(self):
        """(output_size, params)."""
        unknown = sorted(set(self.given) - set(self.arguments))
        if unknown:
            raise TypeError(f"unknown arguments {unknown}; expected {list(self.arguments)}")
        arguments = {name: _parse(value) for name, value in {**self.arguments,
                                                             **self.given}.items()}
        missing = [name for name, value in arguments.items() if value is None]
        if missing:
            raise TypeError(f"missing required arguments {missing}")
        output_size = _checks.output_size(arguments.pop("pooled_size"))
        params = self.to_params(**arguments)
        self.op.check(params)
        return output_size, params

    def list_arguments(self):
        return ["data", "rois"]

    def list_outputs(self):
        return ["output"]

    def infer_shape(self, in_shape):
        data, rois = in_shape
        output_size, _ = self.setup
        return in_shape, [self.op.pooled_shape(data, rois[0], output_size)], []

    def infer_type(self, in_type):
        return in_type, [in_type[0]], []

    def create_operator(self, ctx, shapes, dtypes):
        return _Pooling(self.op, *self.setup)


@mx.operator.register("cyroi_roi_pool")
class RoIPoolProp(_PoolingProp):
    """op_type "cyroi_roi_pool": mx.nd.ROIPooling's arguments."""
    op = _adapter_ops.ROI_POOL
    arguments = {"pooled_size": None, "spatial_scale": None}

    @staticmethod
    def to_params(spatial_scale):
        return dict(spatial_scale=float(spatial_scale))


@mx.operator.register("cyroi_roi_align")
class RoIAlignProp(_PoolingProp):
    """op_type "cyroi_roi_align": mx.nd.contrib.ROIAlign's arguments, plus mode."""
    op = _adapter_ops.ROI_ALIGN
    arguments = {"pooled_size": None, "spatial_scale": None, "sample_ratio": -1,
                 "aligned": False, "mode": "avg"}

    @staticmethod
    def to_params(spatial_scale, sample_ratio, aligned, mode):
        return dict(spatial_scale=float(spatial_scale),
                    sampling_ratio=_sampling_ratio(sample_ratio),
                    aligned=bool(aligned), mode=mode)


@mx.operator.register("cyroi_ps_roi_align")
class PSRoIAlignProp(_PoolingProp):
    """op_type "cyroi_ps_roi_align": cyroi.ps_roi_align, named as ROIAlign's arguments."""
    op = _adapter_ops.PS_ROI_ALIGN
    arguments = {"pooled_size": None, "spatial_scale": None, "sample_ratio": -1}

    @staticmethod
    def to_params(spatial_scale, sample_ratio):
        return dict(spatial_scale=float(spatial_scale),
                    sampling_ratio=_sampling_ratio(sample_ratio))


@mx.operator.register("cyroi_ps_roi_pool")
class PSRoIPoolProp(RoIPoolProp):
    """op_type "cyroi_ps_roi_pool": cyroi.ps_roi_pool, with ROIPooling's arguments."""
    op = _adapter_ops.PS_ROI_POOL


@mx.operator.register("cyroi_roi_align_rotated")
class RoIAlignRotatedProp(_PoolingProp):
    """op_type "cyroi_roi_align_rotated": mx.nd.contrib.RROIAlign's
    arguments and numbers (aligned=False), plus aligned and clockwise."""
    op = _adapter_ops.ROI_ALIGN_ROTATED
    arguments = {"pooled_size": None, "spatial_scale": None, "sampling_ratio": -1,
                 "aligned": False, "clockwise": False}

    @staticmethod
    def to_params(spatial_scale, sampling_ratio, aligned, clockwise):
        return dict(spatial_scale=float(spatial_scale),
                    sampling_ratio=_sampling_ratio(sampling_ratio), aligned=bool(aligned),
                    clockwise=bool(clockwise))
